//! What `from_descriptor`, deserialization and `SharedMemory::open` refuse: planted symlinks,
//! crafted segments (oversized, with a zeroed mutex), and layouts that differ.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;

use multiproc::Descriptor;
use multiproc::shm::{AttachError, SharedMemory, ShmSafe, Value};
use multiproc::sync::Lock;
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
    let _leaks = common::leak_check();
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
    let _leaks = common::leak_check();
    let name = format!("mp_attach_dir_{}", std::process::id());
    std::fs::create_dir(format!("/dev/shm/{name}")).unwrap();
    let r = SharedMemory::open(&name);
    let _ = std::fs::remove_dir(format!("/dev/shm/{name}"));
    assert!(r.is_err());
}

#[test]
fn oversized_segment_is_refused_without_being_populated() {
    let _leaks = common::leak_check();
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
    let _leaks = common::leak_check();
    // The crafted-segment helper itself produces acceptable segments: the refusals above are
    // about their content.
    let v = Value::new(5u32).unwrap();
    let bytes = contents(v.descriptor().unwrap());
    let fd = crafted(&bytes, bytes.len() as u64);
    let copy = Value::<u32>::from_descriptor(Descriptor::new(fd)).unwrap();
    assert_eq!(copy.load(), 5);
}

#[test]
fn segment_with_a_zeroed_mutex_is_refused() {
    let _leaks = common::leak_check();
    let v = Value::new(1u8).unwrap();
    let mut bytes = contents(v.descriptor().unwrap());
    // Keep the 64-byte header, zero the lock state and the data.
    bytes[64..].fill(0);
    let fd = crafted(&bytes, bytes.len() as u64);
    assert!(Value::<u8>::from_descriptor(Descriptor::new(fd)).is_err());
    let l = Lock::new().unwrap();
    let mut bytes = contents(l.descriptor().unwrap());
    bytes[64..].fill(0);
    let fd = crafted(&bytes, bytes.len() as u64);
    assert!(Lock::from_descriptor(Descriptor::new(fd)).is_err());
}

mod first {
    multiproc::shared_struct! {
        #[derive(Clone, Copy)]
        pub struct Point { pub x: f64, pub y: f64 }
    }
}

mod second {
    // Same layout, same field names, another module: the same fingerprint.
    multiproc::shared_struct! {
        #[derive(Clone, Copy)]
        pub struct Point { pub x: f64, pub y: f64 }
    }
    // Same layout, fields swapped in meaning: another fingerprint.
    multiproc::shared_struct! {
        #[derive(Clone, Copy)]
        pub struct Swapped { pub y: f64, pub x: f64 }
    }
    // Same size, other field types.
    multiproc::shared_struct! {
        #[derive(Clone, Copy)]
        pub struct Ints { pub x: i64, pub y: i64 }
    }
}

#[test]
fn layout_fingerprints_follow_fields() {
    let _leaks = common::leak_check();
    assert_eq!(first::Point::FINGERPRINT, second::Point::FINGERPRINT);
    assert_ne!(first::Point::FINGERPRINT, second::Swapped::FINGERPRINT);
    assert_ne!(first::Point::FINGERPRINT, second::Ints::FINGERPRINT);
    assert_ne!(<[u32; 2]>::FINGERPRINT, <[u32; 3]>::FINGERPRINT);
    assert_ne!(<[u32; 2]>::FINGERPRINT, u64::FINGERPRINT);
    let v = Value::new(first::Point { x: 1.0, y: 2.0 }).unwrap();
    let same = Value::<second::Point>::from_descriptor(v.descriptor().unwrap()).unwrap();
    assert_eq!(same.load().y, 2.0);
    assert!(Value::<second::Swapped>::from_descriptor(v.descriptor().unwrap()).is_err());
    assert!(Value::<second::Ints>::from_descriptor(v.descriptor().unwrap()).is_err());
}
