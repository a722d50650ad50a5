//! What `from_descriptor`, deserialization and `SharedMemory::open` refuse: planted symlinks,
//! crafted segments (oversized, with a zeroed mutex), and layouts that differ.

use std::io::Read;
use std::os::fd::OwnedFd;

use multiproc::Descriptor;
use multiproc::shm::{AttachError, SharedMemory, Value};
use rustix::fs::{MemfdFlags, SealFlags};

/// The whole content of a segment.
fn contents(fd: Descriptor) -> Vec<u8> {
    let mut out = Vec::new();
    std::fs::File::from(fd.into_owned_fd())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A sealed memfd of `size` bytes starting with `bytes`.
fn crafted(bytes: &[u8], size: u64) -> OwnedFd {
    let fd = rustix::fs::memfd_create("crafted", MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC)
        .unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    let mut off = 0;
    while off < bytes.len() {
        off += rustix::io::pwrite(&fd, &bytes[off..], off as u64).unwrap();
    }
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .unwrap();
    fd
}

fn rss_shmem_kib() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("RssShmem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn open_refuses_a_symlink() {
    let target = format!("/tmp/mp_attach_target_{}", std::process::id());
    std::fs::write(&target, b"a file that is not shared memory").unwrap();
    let name = format!("mp_attach_link_{}", std::process::id());
    std::os::unix::fs::symlink(&target, format!("/dev/shm/{name}")).unwrap();
    let r = SharedMemory::open(&name);
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    let _ = std::fs::remove_file(&target);
    assert!(r.is_err(), "followed a symlink planted in /dev/shm");
}

#[test]
fn open_refuses_a_directory() {
    let name = format!("mp_attach_dir_{}", std::process::id());
    std::fs::create_dir(format!("/dev/shm/{name}")).unwrap();
    let r = SharedMemory::open(&name);
    let _ = std::fs::remove_dir(format!("/dev/shm/{name}"));
    assert!(r.is_err());
}

#[test]
fn oversized_segment_is_refused_without_being_populated() {
    let v = Value::new(1u8).unwrap();
    let genuine = contents(v.descriptor().unwrap());
    let before = rss_shmem_kib();
    let fd = crafted(&genuine, 256 << 20);
    let r = Value::<u8>::from_descriptor(Descriptor::new(fd));
    let grown = rss_shmem_kib() - before;
    assert!(
        matches!(r, Err(AttachError::NotASegment)),
        "accepted: {}",
        r.is_ok()
    );
    assert!(grown < 10_000, "attaching populated {grown} KiB");
}

#[test]
fn genuine_copy_of_a_segment_is_accepted() {
    // The crafted-segment helper itself produces acceptable segments: the refusals above are
    // about their content.
    let v = Value::new(5u32).unwrap();
    let bytes = contents(v.descriptor().unwrap());
    let fd = crafted(&bytes, bytes.len() as u64);
    let copy = Value::<u32>::from_descriptor(Descriptor::new(fd)).unwrap();
    assert_eq!(copy.load(), 5);
}
