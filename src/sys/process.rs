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
    let marker = format!("{keep_fd},{}", parent.as_raw_nonzero());
    cmd.arg0(argv0).args(args).env(CHILD_ENV, marker);
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
    /// Ends the child if `child` unwinds: a panic must never travel up into the frames the child
    /// copied from its parent (they belong to the parent's program, not to the child).
    struct ExitOnUnwind;
    impl Drop for ExitOnUnwind {
        fn drop(&mut self) {
            exit_immediately(1);
        }
    }
    // SAFETY: `fork` has no memory-safety preconditions; the child runs `child` and then exits
    // (by return or by unwinding into `ExitOnUnwind`), so control never comes back into the
    // parent's frames in the child.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let _guard = ExitOnUnwind;
            child();
            exit_immediately(127)
        }
        pid => Ok(pid as u32),
    }
}

/// Kills and reaps a child known only by its pid (when no pidfd could be had for it).
pub(crate) fn kill_and_reap(pid: u32) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
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

/// What the child marker in the environment says about this process.
pub(crate) enum Marker {
    /// No marker, or one inherited by accident (this process was not started by
    /// [`spawn_self`]): run as the program itself.
    None,
    /// This process was started as a child; here is the descriptor leading back to its parent.
    Child(OwnedFd),
}

/// Reads the child marker: the inherited descriptor leading back to the parent, if this process
/// was started as a child by [`spawn_self`]. Only the first call can return it.
///
/// The marker names the descriptor and the parent's pid. A process whose parent is that pid was
/// started by `spawn_self`; if its descriptor is not the parent's socket (`SO_PEERCRED`), or if
/// its parent died before it got here (it was re-parented, but the socket is its parent's), it
/// exits at once with code 1 rather than run the program a second time. Any other process that
/// sees a marker inherited it by accident (a program started with `std::process::Command` by a
/// child, say) and runs as itself. The environment is left as it is: changing it is unsound
/// while other threads may read it.
pub(crate) fn take_child_marker() -> Marker {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some((fd, parent)) = read_marker() else {
        return Marker::None;
    };
    if TAKEN.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return Marker::None;
    }
    let is_parents_socket = fd >= 3 && {
        // SAFETY: the descriptor is only borrowed for these two calls, which fail cleanly
        // (EBADF, ENOTSOCK) on a number that is closed or not a socket.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::fs::fstat(borrowed).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
        }) && rustix::net::sockopt::socket_peercred(borrowed)
            .is_ok_and(|c| c.pid.as_raw_nonzero().get() == parent)
    };
    let our_parent = getppid_raw() == Some(parent);
    match (our_parent, is_parents_socket) {
        (true, true) => {
            // SAFETY: the parent left exactly this descriptor open for this process to own (it
            // created the socket, as SO_PEERCRED shows), and `TAKEN` guarantees it is claimed
            // once.
            let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // Grandchildren must not inherit it.
            let _ = rustix::io::fcntl_setfd(owned.as_fd(), rustix::io::FdFlags::CLOEXEC);
            Marker::Child(owned)
        }
        (true, false) => {
            eprintln!("multiproc: started as a child, but the descriptor to the parent is missing");
            exit_immediately(1)
        }
        // Our parent died before we reached our entry point: nobody to run for.
        (false, true) => exit_immediately(1),
        (false, false) => Marker::None,
    }
}

/// Whether this process carries a child marker addressed to it (its parent is the pid the
/// marker names), whether or not [`take_child_marker`] has run yet.
pub(crate) fn is_marked_child() -> bool {
    read_marker().is_some_and(|(_, parent)| getppid_raw() == Some(parent))
}

fn read_marker() -> Option<(RawFd, i32)> {
    let value = std::env::var_os(CHILD_ENV)?;
    let (fd, parent) = value.to_str()?.split_once(',')?;
    Some((fd.parse().ok()?, parent.parse().ok()?))
}

fn getppid_raw() -> Option<i32> {
    rustix::process::getppid().map(|p| p.as_raw_nonzero().get())
}

/// The number of online CPUs in the system (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 { 1 } else { n as usize }
}
