//! Starting, watching and signalling child processes.
//!
//! # References
//! - [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html),
//!   [`waitid(2)`](https://man7.org/linux/man-pages/man2/waitid.2.html)
//! - [`PR_SET_PDEATHSIG`](https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html)
//! - [`fork(2)`](https://man7.org/linux/man-pages/man2/fork.2.html) and its rules for
//!   multi-threaded programs in [`signal-safety(7)`](https://man7.org/linux/man-pages/man7/signal-safety.7.html)
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// The environment variable that tells a re-executed program it is a child, and which inherited
/// descriptor leads back to its parent.
pub(crate) const CHILD_ENV: &str = "MULTIPROC_CHILD";

/// How a child ended, in Python's convention: an exit code, or minus the signal number.
pub(crate) type ExitCode = i32;

/// Re-executes this process's executable (`/proc/self/exe`, so a binary replaced on disk since
/// start-up is not picked up) with `argv0` and `args`, keeping `keep` open in the child and naming
/// it in [`CHILD_ENV`]. With `die_with_parent`, the child gets `SIGKILL` when the calling thread's
/// process dies (`PR_SET_PDEATHSIG`; call this from a thread that lives as long as the process).
pub(crate) fn spawn_self(
    argv0: &OsString,
    args: &[OsString],
    keep: BorrowedFd<'_>,
    die_with_parent: bool,
) -> io::Result<u32> {
    let keep_fd: RawFd = keep.as_raw_fd();
    let parent = rustix::process::getpid();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(argv0)
        .args(args)
        .env(CHILD_ENV, keep_fd.to_string());
    // SAFETY: the hook runs in the forked child before exec and only makes async-signal-safe
    // system calls (fcntl, prctl, getppid, _exit), touching no locks and allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Clear FD_CLOEXEC on the bootstrap socket so that it survives exec.
            if libc::fcntl(keep_fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            if die_with_parent {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) == -1
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if libc::getppid() != parent.as_raw_nonzero().get() {
                    libc::_exit(1);
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // `Child` neither waits nor kills on drop; the caller watches the process through a pidfd.
    Ok(child.id())
}

/// `fork(2)`: runs `child` in the new process (it never returns there) and returns the child's
/// pid in the calling one.
///
/// In a multi-threaded program, the child has a single thread and copies of every lock as it
/// was at the instant of the fork: a lock another thread held stays locked forever there, so
/// `child` must keep to what cannot deadlock on such locks. That hazard is a deadlock, not
/// undefined behaviour: memory the child sees is a consistent copy, and glibc's `malloc`
/// re-initialises its locks in the child.
pub(crate) fn fork_run(child: impl FnOnce()) -> io::Result<u32> {
    // SAFETY: `fork` has no memory-safety preconditions; the child runs `child` and then exits,
    // so control never comes back into the parent's frames in the child.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            child();
            exit_immediately(127)
        }
        pid => Ok(pid as u32),
    }
}

/// In a forked child: ask for `SIGKILL` when the parent dies, and exit at once if it already has.
pub(crate) fn die_with_parent(parent: u32) {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(parent) {
        exit_immediately(1);
    }
}

/// Ends the process at once, without running `atexit` handlers or flushing C stdio buffers
/// (`_exit(2)`). For forked children, whose copies of the parent's buffers must not be flushed
/// twice.
pub(crate) fn exit_immediately(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// The current process id.
pub(crate) fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Whether a process with this pid exists (it may be a zombie).
pub(crate) fn pid_exists(pid: u32) -> bool {
    match Pid::from_raw(pid as i32) {
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
        None => false,
    }
}

/// A descriptor that refers to one process, immune to pid reuse.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// Sends `signal` (a raw signal number) to the process. A process that has already been reaped
/// is not an error.
pub(crate) fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    let sig = Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown signal"))?;
    match rustix::process::pidfd_send_signal(pidfd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reaps the process if it has ended (or, with `block`, once it ends): its exit code in Python's
/// convention. `None` without `block` means it is still running.
pub(crate) fn pidfd_reap(pidfd: BorrowedFd<'_>, block: bool) -> io::Result<Option<ExitCode>> {
    let mut opts = WaitIdOptions::EXITED;
    if !block {
        opts |= WaitIdOptions::NOHANG;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), opts) {
            Ok(Some(status)) => {
                if let Some(code) = status.exit_status() {
                    return Ok(Some(code));
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(Some(-sig));
                }
                // NOHANG with nothing to report fills in an empty status.
                if !block {
                    return Ok(None);
                }
            }
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the process behind `pidfd` ends, at most `timeout` (`None`: forever), without
/// reaping it. Returns `false` on time-out.
pub(crate) fn pidfd_wait_exit(
    pidfd: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    if timeout.is_some() {
        // A pidfd polls readable once the process has terminated.
        return super::socket::wait_readable(pidfd, timeout);
    }
    loop {
        match rustix::process::waitid(
            WaitId::PidFd(pidfd),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            // Already reaped by another thread.
            Err(rustix::io::Errno::CHILD) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Takes the child marker out of the environment: the inherited descriptor leading back to the
/// parent, if this process was started as a child.
pub(crate) fn take_child_marker() -> Option<OwnedFd> {
    let value = std::env::var_os(CHILD_ENV)?;
    // SAFETY: called from `init` at the top of `main`, before the program starts threads that
    // could read the environment concurrently; Rust's own environment accesses are serialised by
    // the standard library.
    unsafe { std::env::remove_var(CHILD_ENV) };
    let fd: RawFd = value.to_str()?.parse().ok()?;
    if fd < 3 {
        return None;
    }
    // The descriptor must be an open socket: anything else means the variable was inherited by
    // accident (for example by a program started with `std::process::Command` from a child).
    let stat = rustix::fs::fstat(
        // SAFETY: the descriptor is only borrowed for this call; fstat on a closed or
        // unrelated number fails with EBADF or reports a non-socket, both handled below.
        unsafe { BorrowedFd::borrow_raw(fd) },
    )
    .ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return None;
    }
    // SAFETY: the parent left exactly this descriptor open for this process to own, and nothing
    // else in this process has claimed it: the marker was read once and then removed.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // Grandchildren must not inherit it.
    let _ = rustix::io::fcntl_setfd(owned.as_fd(), rustix::io::FdFlags::CLOEXEC);
    Some(owned)
}

/// The number of online CPUs in the system (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 { 1 } else { n as usize }
}
