//! Shared memory against a co-tenant that resizes it, and against descriptors that a sender
//! passes off as segments.

mod common;

use std::os::fd::AsFd;

use multiproc::shm::{RawArray, SharedMemory, SharedMemoryError, Value};
use multiproc::{Descriptor, Process, pipe};
use serde::Serialize;

multiproc::test_support!();

/// A name no other test uses.
fn unique(tag: &str) -> String {
    format!("mp_hostile_{}_{tag}", std::process::id())
}

/// The co-tenant: opens the named segment and shrinks it to `size` bytes.
fn shrink((name, size): (String, u64)) {
    let shm = SharedMemory::open(&name).unwrap();
    rustix::fs::ftruncate(shm.as_fd(), size).unwrap();
}

#[test]
fn a_named_segment_shrunk_by_another_process_gives_errors_not_sigbus() {
    let _leaks = common::leak_check();
    let shm = SharedMemory::options()
        .size(1 << 20)
        .create(&unique("shrunk"))
        .unwrap();
    shm.write_at(0, b"before").unwrap();
    Process::start(shrink, (shm.name().to_owned(), 4096))
        .unwrap()
        .join()
        .unwrap();
    // Within the new size: fine.
    let mut head = [0u8; 6];
    shm.read_at(0, &mut head).unwrap();
    assert_eq!(&head, b"before");
    // Past it, inside the mapping: an error, where a copy through the mapping faults.
    let mut out = [0u8; 16];
    let err = shm.read_at(8192, &mut out).unwrap_err();
    assert_eq!(err.len, 4096);
    assert!(shm.write_at((1 << 20) - 16, &out).is_err());
    // The failed write did not grow the segment back.
    let again = SharedMemory::open(shm.name()).unwrap();
    assert_eq!(again.size(), 4096);
}

/// What `SharedMemory` sends: a descriptor and a name.
#[derive(Serialize)]
struct Claim {
    fd: Descriptor,
    name: String,
}

fn receive(claim: Claim) -> Result<SharedMemory, String> {
    let (mut tx, mut rx) = pipe(true).unwrap();
    tx.send(&claim).unwrap();
    rx.recv::<SharedMemory>().map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })
}

#[test]
fn a_received_segment_must_be_shared_memory() {
    let _leaks = common::leak_check();
    let dir = std::env::temp_dir().join(unique("plain"));
    std::fs::write(&dir, [0u8; 4096]).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dir)
        .unwrap();
    std::fs::remove_file(&dir).unwrap();
    let err = receive(Claim {
        fd: Descriptor::from(file),
        name: unique("plain"),
    })
    .unwrap_err();
    assert!(err.contains("not shared memory"), "{err}");
}

#[test]
fn a_received_segment_cannot_claim_the_name_of_another() {
    let _leaks = common::leak_check();
    let victim = SharedMemory::options()
        .size(64)
        .create(&unique("victim"))
        .unwrap();
    let other = SharedMemory::options()
        .size(64)
        .create(&unique("other"))
        .unwrap();
    let fd = Descriptor::from(rustix::io::fcntl_dupfd_cloexec(other.as_fd(), 3).unwrap());
    let err = receive(Claim {
        fd,
        name: victim.name().to_owned(),
    })
    .unwrap_err();
    assert!(err.contains("another segment"), "{err}");
    // A bad name is refused too.
    let fd = Descriptor::from(rustix::io::fcntl_dupfd_cloexec(other.as_fd(), 3).unwrap());
    let err = receive(Claim {
        fd,
        name: "../etc/passwd".to_owned(),
    })
    .unwrap_err();
    assert!(err.contains("invalid shared memory name"), "{err}");
    // The victim is still there.
    assert_eq!(SharedMemory::open(victim.name()).unwrap().size(), 64);
    // A genuine handle still travels, and its receiver can unlink its name.
    let fd = Descriptor::from(rustix::io::fcntl_dupfd_cloexec(other.as_fd(), 3).unwrap());
    let got = receive(Claim {
        fd,
        name: other.name().to_owned(),
    })
    .unwrap();
    got.unlink().unwrap();
    assert!(matches!(
        SharedMemory::open(other.name()),
        Err(SharedMemoryError::NotFound(_))
    ));
}

#[test]
fn unlink_leaves_a_new_segment_of_the_same_name_alone() {
    let _leaks = common::leak_check();
    let name = unique("renamed");
    let creator = SharedMemory::options().size(64).create(&name).unwrap();
    let opened = SharedMemory::open(&name).unwrap();
    // Someone else (Python, say) unlinks the name and creates another segment under it.
    rustix::shm::unlink(name.as_str()).unwrap();
    let newcomer = SharedMemory::options()
        .size(128)
        .keep(true)
        .create(&name)
        .unwrap();
    assert!(matches!(
        opened.unlink(),
        Err(SharedMemoryError::Replaced(_))
    ));
    drop(creator); // the creator would unlink its name on drop: not the newcomer's
    assert_eq!(SharedMemory::open(&name).unwrap().size(), 128);
    newcomer.unlink().unwrap();
}

#[test]
fn anonymous_segments_cannot_be_resized_by_a_peer() {
    let _leaks = common::leak_check();
    let v = Value::new(7u64).unwrap();
    let a = RawArray::<u8>::new(1 << 16).unwrap();
    for fd in [v.descriptor().unwrap(), a.descriptor().unwrap()] {
        let fd = fd.into_owned_fd();
        let size = rustix::fs::fstat(&fd).unwrap().st_size as u64;
        assert!(rustix::fs::ftruncate(&fd, 0).is_err(), "shrunk");
        assert!(rustix::fs::ftruncate(&fd, size * 2).is_err(), "grown");
        // Nor can the seals be lifted or a write seal be added under our mapping.
        assert!(
            rustix::fs::fcntl_add_seals(&fd, rustix::fs::SealFlags::WRITE).is_err(),
            "sealed against writes"
        );
    }
    assert_eq!(v.load(), 7);
    assert_eq!(a.get((1 << 16) - 1), Some(0));
}
