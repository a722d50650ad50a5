//! Liveness locks: open-file-description (OFD) byte-range locks on a private description of a
//! segment.
//!
//! A process that takes part in a shared structure (a queue) holds a write lock on one byte of
//! the segment's file, through a description of its own (the file reopened through
//! `/proc/self/fd`, so that neither a descriptor passed to another process nor a `dup` shares
//! it). The kernel drops the lock when that description is closed, which happens when the
//! process exits, however it exits (`SIGKILL` included, and before it becomes a zombie). Any
//! other participant can ask whether the byte is still locked: that is the liveness test.
//!
//! Classic POSIX record locks (`F_SETLK`) would not do: a process loses all of them when it
//! closes *any* descriptor of the file, which this crate does whenever a handle's duplicate has
//! been sent. OFD locks belong to the description, not to the process.
//!
//! A child created with `fork` shares the parent's descriptions, and so holds its locks too,
//! until it closes them or exits.
//!
//! # References
//! - [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description locks"
//! - [`proc_pid_fd(5)`](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html)
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Opens a new description of the file behind `fd` (read and write, close-on-exec), through
/// `/proc/self/fd/N`.
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(
        path.as_str(),
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?)
}

fn flock(kind: libc::c_int, byte: u64) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: byte as libc::off_t,
        l_len: 1,
        // Must be 0 for OFD locks.
        l_pid: 0,
    }
}

fn fcntl(fd: BorrowedFd<'_>, cmd: libc::c_int, lock: &mut libc::flock) -> io::Result<()> {
    loop {
        // SAFETY: `fd` is an open descriptor for the duration of the call, and `lock` is a
        // valid, exclusively borrowed `struct flock` that the kernel reads and (for GETLK)
        // writes; no other memory is touched.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lock as *mut libc::flock) };
        if rc != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Takes the write lock on `byte` through the description `fd`, without waiting. `Ok(false)`
/// when another description holds a lock on it.
pub(crate) fn try_lock(fd: impl AsFd, byte: u64) -> io::Result<bool> {
    let mut l = flock(libc::F_WRLCK, byte);
    match fcntl(fd.as_fd(), libc::F_OFD_SETLK, &mut l) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the write lock on `byte` through the description `fd`, waiting while another
/// description holds it (the kernel releases it when its holder dies).
pub(crate) fn lock(fd: impl AsFd, byte: u64) -> io::Result<()> {
    let mut l = flock(libc::F_WRLCK, byte);
    fcntl(fd.as_fd(), libc::F_OFD_SETLKW, &mut l)
}

/// Releases the lock on `byte` held through `fd` (nothing if none is held).
pub(crate) fn unlock(fd: impl AsFd, byte: u64) -> io::Result<()> {
    let mut l = flock(libc::F_UNLCK, byte);
    fcntl(fd.as_fd(), libc::F_OFD_SETLK, &mut l)
}

/// Whether a description other than `fd` holds a lock on `byte`.
pub(crate) fn locked_by_other(fd: impl AsFd, byte: u64) -> io::Result<bool> {
    let mut l = flock(libc::F_WRLCK, byte);
    fcntl(fd.as_fd(), libc::F_OFD_GETLK, &mut l)?;
    Ok(l.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_seen_by_another_description_and_released_on_close() {
        let seg = crate::sys::memfd::memfd("ofd-test", 4096).unwrap();
        let a = reopen(seg.as_fd()).unwrap();
        let b = reopen(seg.as_fd()).unwrap();
        assert!(try_lock(&a, 3).unwrap());
        assert!(locked_by_other(&b, 3).unwrap());
        assert!(!locked_by_other(&b, 4).unwrap());
        assert!(!try_lock(&b, 3).unwrap());
        // A duplicate of the segment's descriptor closing changes nothing.
        drop(crate::sys::dup(&seg).unwrap());
        assert!(locked_by_other(&b, 3).unwrap());
        drop(a);
        assert!(!locked_by_other(&b, 3).unwrap());
        assert!(try_lock(&b, 3).unwrap());
        unlock(&b, 3).unwrap();
    }
}
