//! What `from_descriptor`, deserialization and `SharedMemory::open` refuse: planted symlinks,
//! crafted segments (oversized, with a zeroed mutex), and layouts that differ.

use multiproc::shm::SharedMemory;

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
