//! Copying straight out of another process's memory (`process_vm_readv`), and telling a process
//! apart from a later one that gets the same pid.
//!
//! The kernel allows the read when the caller may trace the other process: same user, the
//! other process not marked undumpable, and, with Yama's `ptrace_scope` at 1, only an ancestor
//! reading a descendant (unless the descendant named the reader with `PR_SET_PTRACER`); at 2
//! or more only privileged readers. Callers treat every refusal as "use another way".
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

/// Who a process is, in a form another process can check: its pid, when it started (in clock
/// ticks since boot, as `/proc/<pid>/stat` gives it), and its pid namespace (a pid means
/// nothing across namespaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) pid: u32,
    pub(crate) start: u64,
    pub(crate) ns: u64,
}

/// This process's identity (computed once per process: a forked child computes its own).
pub(crate) fn identity() -> io::Result<Identity> {
    static MINE: Mutex<Option<Identity>> = Mutex::new(None);
    let pid = super::process::getpid();
    let mut mine = MINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(id) = *mine
        && id.pid == pid
    {
        return Ok(id);
    }
    let id = Identity {
        pid,
        start: start_time(pid)?,
        ns: pid_namespace()?,
    };
    *mine = Some(id);
    Ok(id)
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
pub(crate) fn start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| io::Error::other("unreadable /proc/<pid>/stat"))
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
/// may itself contain spaces and parentheses: the fields after it start after the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the name: field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The inode number of this process's pid namespace.
fn pid_namespace() -> io::Result<u64> {
    Ok(rustix::fs::stat("/proc/self/ns/pid")?.st_ino)
}

/// Whether the process behind `pidfd` has ended (a pidfd becomes readable then).
pub(crate) fn has_exited(pidfd: &OwnedFd) -> bool {
    // An error of the check counts as ended: never trust bytes on a doubt.
    super::socket::poll_in(&[pidfd.as_fd()], Some(std::time::Instant::now())).map_or(true, |r| r[0])
}

/// Whether an error of [`read_remote`] means the kernel will refuse every such read between
/// these two processes (as opposed to a process that has gone, or a bad address).
pub(crate) fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::ENOSYS | libc::EINVAL)
    )
}

/// Appends `len` bytes of process `pid`'s memory, from address `addr`, to `out`. On error
/// `out` keeps its length (its spare capacity may have changed).
pub(crate) fn read_remote(pid: u32, addr: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    out.try_reserve_exact(len)
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let start = out.len();
    let mut done = 0usize;
    while done < len {
        let remote = addr
            .checked_add(done as u64)
            .and_then(|a| usize::try_from(a).ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
        let local = libc::iovec {
            // SAFETY: `start + done <= start + len <= capacity` (reserved above): the pointer
            // stays within (or one past) the vector's allocation.
            iov_base: unsafe { out.as_mut_ptr().add(start + done) }.cast(),
            iov_len: len - done,
        };
        let far = libc::iovec {
            iov_base: remote as *mut libc::c_void,
            iov_len: len - done,
        };
        // SAFETY: the local iovec covers `len - done` bytes of the vector's spare capacity,
        // which nothing else references; the kernel writes only there. The remote iovec is
        // only an address in the other process, checked by the kernel (a bad one is EFAULT).
        let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &far, 1, 0) };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: the kernel wrote all `len` bytes after `start` (the loop ends only once `done`
    // reached `len`), within the reserved capacity.
    unsafe { out.set_len(start + len) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_after_a_strange_name() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 200 18446744073709551615";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time("42 (x) S 1"), None);
        assert_eq!(parse_start_time("no name at all"), None);
    }

    #[test]
    fn identity_is_stable_and_names_this_process() {
        let a = identity().unwrap();
        assert_eq!(a, identity().unwrap());
        assert_eq!(a.pid, std::process::id());
        assert_eq!(start_time(a.pid).unwrap(), a.start);
    }

    #[test]
    fn reads_this_processs_own_memory() {
        let src: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut out = b"head".to_vec();
        match read_remote(std::process::id(), src.as_ptr() as u64, src.len(), &mut out) {
            Ok(()) => {
                assert_eq!(&out[..4], b"head");
                assert!(out[4..] == src[..]);
            }
            // A sandbox may forbid it; then it must be reported as a refusal.
            Err(e) => assert!(is_refusal(&e), "{e}"),
        }
    }

    #[test]
    fn a_bad_address_is_an_error_and_leaves_the_output_alone() {
        let mut out = b"head".to_vec();
        let e = read_remote(std::process::id(), 8, 4096, &mut out).unwrap_err();
        assert!(
            e.raw_os_error() == Some(libc::EFAULT) || is_refusal(&e),
            "{e}"
        );
        assert_eq!(out, b"head");
    }

    #[test]
    fn an_ended_process_is_seen_through_its_pidfd() {
        let me = super::super::process::pidfd_open(std::process::id()).unwrap();
        assert!(!has_exited(&me));
    }
}
