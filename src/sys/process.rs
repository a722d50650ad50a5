//! Starting, watching and signalling child processes.
//!
//! # References
//! - [`clone(2)`](https://man7.org/linux/man-pages/man2/clone.2.html) (`CLONE_PIDFD`),
//!   [`execve(2)`](https://man7.org/linux/man-pages/man2/execve.2.html),
//!   [`getauxval(3)`](https://man7.org/linux/man-pages/man3/getauxval.3.html) (`AT_SECURE`)
//! - [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html),
//!   [`waitid(2)`](https://man7.org/linux/man-pages/man2/waitid.2.html)
//! - [`PR_SET_PDEATHSIG`](https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html)
//! - [`fork(2)`](https://man7.org/linux/man-pages/man2/fork.2.html) and its rules for
//!   multi-threaded programs in [`signal-safety(7)`](https://man7.org/linux/man-pages/man7/signal-safety.7.html)
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// The environment variable that tells a re-executed program it is a child: which inherited
/// descriptor leads back to its parent, the parent's pid, and the secret the parent wrote first
/// on that descriptor (see [`take_child_marker`]).
pub(crate) const CHILD_ENV: &str = "MULTIPROC_CHILD";

/// How a child ended, in Python's convention: an exit code, or minus the signal number.
pub(crate) type ExitCode = i32;

/// The bytes a parent writes first on a child's bootstrap socket, and names in the marker.
pub(crate) type Secret = [u8; 16];

/// Makes a fresh [`Secret`] and writes it on `parent_end` (the parent's end of the child's
/// bootstrap socket), before the child exists: it is waiting there when the child starts.
pub(crate) fn announce_secret(parent_end: BorrowedFd<'_>) -> io::Result<Secret> {
    let mut secret = Secret::default();
    super::net::random(&mut secret)?;
    let sent = rustix::net::send(parent_end, &secret, rustix::net::SendFlags::NOSIGNAL)?;
    if sent != secret.len() {
        return Err(io::Error::other("short write of the child's secret"));
    }
    Ok(secret)
}

/// A started child: its pid and a pidfd taken atomically with its creation.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
}

/// The `waitid(2)` flag that includes children whose exit signal is not `SIGCHLD`.
fn wall() -> WaitIdOptions {
    WaitIdOptions::from_bits_retain(libc::__WALL as u32)
}

/// Re-executes this process's executable (`/proc/self/exe`, so a binary replaced on disk since
/// start-up is not picked up) with `argv0` and `args`, keeping `keep` open in the child and naming
/// it, this process and `secret` in [`CHILD_ENV`]. With `die_with_parent`, the child gets
/// `SIGKILL` when the calling thread's process dies (`PR_SET_PDEATHSIG`; call this from a thread
/// that lives as long as the process).
///
/// The child is created by `clone(2)` with `CLONE_PIDFD`, so its pidfd exists before anything
/// else can reap it: a program that ignores `SIGCHLD` (the kernel then reaps children at once)
/// or reaps every child with `waitpid(-1, …)` cannot make this fail or hand back the pidfd of
/// another process. Such a program still takes the exit status away (`execve` gives every
/// child the ordinary `SIGCHLD` exit signal): see [`Ended::Unknown`].
///
/// As `posix_spawn` and `vfork`, the child shares this process's memory until its `execve`
/// (`CLONE_VM | CLONE_VFORK`, on a stack of its own), so starting it costs the same in a large
/// parent as in a small one: a copy of the page tables grew with the parent's memory (a parent
/// holding 100 MB took ~10 ms to start a child that way).
pub(crate) fn spawn_self(
    argv0: &OsString,
    args: &[OsString],
    keep: BorrowedFd<'_>,
    secret: &Secret,
    die_with_parent: bool,
) -> io::Result<Child> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument or environment variable contains a NUL byte",
            )
        })
    };
    let keep_fd: RawFd = keep.as_raw_fd();
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    // Everything the child needs is built here: between `clone` and `execve` it must not
    // allocate (another thread may hold the allocator's lock).
    let path = c"/proc/self/exe";
    let mut argv = vec![cstr(argv0.as_bytes())?];
    for a in args {
        argv.push(cstr(a.as_bytes())?);
    }
    let mut envp = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k != CHILD_ENV {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp.push(cstr(&kv)?);
        }
    }
    envp.push(cstr(
        format!("{CHILD_ENV}={keep_fd},{parent},{hex}").as_bytes(),
    )?);
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_ptrs: Vec<*const libc::c_char> = envp
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // The child reports a failed `execve` here; a successful one closes it (CLOEXEC).
    let (err_rx, err_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let plan = ExecPlan {
        path: path.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        keep_fd,
        err_fd: err_tx.as_raw_fd(),
        die_with_parent,
        parent,
    };
    // The child runs on a stack of its own, in this process's memory, until `execve`.
    let mut stack = vec![0u8; CHILD_STACK];
    let top = stack.as_mut_ptr().wrapping_add(CHILD_STACK);
    let top = top.wrapping_sub(top as usize % 16);
    let mut pidfd: libc::c_int = -1;
    let all = signal_mask_all()?;
    // SAFETY: `clone` with CLONE_VM | CLONE_VFORK runs `exec_child` in a new process that
    // shares this memory, on `stack` (valid, writable, 16-byte aligned top, used by nobody
    // else), and suspends this thread until the child has called `execve` or `_exit`: `plan`,
    // the strings it points to and `stack` outlive every use the child makes of them. The kernel
    // writes the pidfd into `pidfd` (valid for writes, the `parent_tid` argument with
    // CLONE_PIDFD) before either side runs on. Signals are blocked across the call, so no
    // handler of this process runs in the child before `exec_child` resets them.
    let ret = unsafe {
        libc::clone(
            exec_child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            (&plan as *const ExecPlan).cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::pid_t>(),
        )
    };
    let clone_error = io::Error::last_os_error();
    restore_signal_mask(&all);
    drop(stack);
    if ret < 0 {
        return Err(clone_error);
    }
    drop(err_tx);
    // SAFETY: the kernel stored a new descriptor that nothing else owns in `pidfd`.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    let _ = rustix::io::fcntl_setfd(&pidfd, rustix::io::FdFlags::CLOEXEC);
    let child = Child {
        pid: ret as u32,
        pidfd,
    };
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match rustix::io::read(&err_rx, &mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                kill_and_reap(&child);
                return Err(e.into());
            }
        }
    }
    if got == 0 {
        return Ok(child);
    }
    let _ = pidfd_reap(child.pidfd.as_fd(), true);
    Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
}

/// The stack of a child of [`spawn_self`] between `clone` and `execve`: it calls a few
/// system-call wrappers only.
const CHILD_STACK: usize = 64 * 1024;

/// What the child of [`spawn_self`] needs, prepared before `clone` (the child must not
/// allocate: it runs in the parent's memory, where another thread may hold the allocator's lock).
struct ExecPlan {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    keep_fd: RawFd,
    err_fd: RawFd,
    die_with_parent: bool,
    parent: i32,
}

/// The child of [`spawn_self`]: resets the signal handlers it inherited, clears `FD_CLOEXEC`
/// on the bootstrap socket, arms the parent-death signal, and executes the program. It shares
/// the parent's memory (the parent's thread is suspended meanwhile), so it only reads the
/// [`ExecPlan`] and calls async-signal-safe functions; on failure it writes `errno` on the plan's
/// pipe and exits.
extern "C" fn exec_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ExecPlan` that `spawn_self` keeps alive until this process has
    // called `execve` or `_exit` (CLONE_VFORK); only async-signal-safe calls follow, on local
    // values and the plan's memory, which this function never writes.
    unsafe {
        let plan = &*arg.cast::<ExecPlan>();
        let fail = |errno: libc::c_int| -> ! {
            let bytes = errno.to_ne_bytes();
            libc::write(plan.err_fd, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        };
        // A handler of the parent would run here on the parent's memory: every caught signal
        // goes back to its default (as `execve` does anyway); ignored ones stay ignored.
        for sig in 1..=64 {
            let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
            if libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) == 0 {
                let handler = old.assume_init_ref().sa_sigaction;
                if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                    let mut dfl = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
                    dfl.assume_init_mut().sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(sig, dfl.as_ptr(), std::ptr::null_mut());
                }
            }
        }
        // The Rust runtime ignores SIGPIPE; the new program starts with the default.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut());
        // Clear FD_CLOEXEC on the bootstrap socket so that it survives exec.
        if libc::fcntl(plan.keep_fd, libc::F_SETFD, 0) == -1 {
            fail(*libc::__errno_location());
        }
        if plan.die_with_parent {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                fail(*libc::__errno_location());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != plan.parent {
                libc::_exit(1);
            }
        }
        libc::execve(plan.path, plan.argv, plan.envp);
        fail(*libc::__errno_location())
    }
}

/// Blocks every signal in the calling thread; returns the mask to restore.
fn signal_mask_all() -> io::Result<libc::sigset_t> {
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: both sets are valid for writes; `sigfillset` initialises `all`, and
    // `pthread_sigmask` writes the previous mask into `old` when it succeeds.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        match libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr()) {
            0 => Ok(old.assume_init()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Restores a mask saved by [`signal_mask_all`].
fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a valid signal set; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
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

/// Kills and reaps a child.
pub(crate) fn kill_and_reap(child: &Child) {
    let _ = pidfd_signal(child.pidfd.as_fd(), libc::SIGKILL);
    let _ = pidfd_reap(child.pidfd.as_fd(), true);
}

/// Kills and reaps a child known only by its pid: one blocked in [`await_parent`], whose pid
/// cannot have been reused.
pub(crate) fn kill_and_reap_pid(pid: u32) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }
}

/// A pidfd for a child made by [`fork_run`], whose first act is [`await_parent`]: the child
/// cannot end (short of being killed) before this returns, so no reaper can take it first.
pub(crate) fn forked_child(pid: u32) -> io::Result<Child> {
    let pidfd = pidfd_open(pid)?;
    Ok(Child { pid, pidfd })
}

/// In the parent of a forked child: lets the child go on past [`await_parent`].
pub(crate) fn release_child(parent_end: BorrowedFd<'_>) -> io::Result<()> {
    rustix::net::send(parent_end, &[1], rustix::net::SendFlags::NOSIGNAL)?;
    Ok(())
}

/// In a forked child, first thing: waits until the parent holds its pidfd (or has died).
pub(crate) fn await_parent(child_end: BorrowedFd<'_>) {
    let mut b = [0u8; 1];
    while let Err(rustix::io::Errno::INTR) =
        rustix::net::recv(child_end, &mut b, rustix::net::RecvFlags::empty())
    {}
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

/// Ignores `SIGPIPE`, as the Rust runtime does before `main`: for a child that becomes the child
/// before `main` (from a constructor), so that a write to a closed pipe is an `EPIPE` error
/// there too, not death by signal.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler; it is what the
    // standard library's own start-up code does.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Ignores `SIGINT` (Ctrl-C): for pool workers, which their parent stops.
pub(crate) fn ignore_sigint() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler and touches no
    // memory; other threads see only the new disposition.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
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

/// How a child ended, as far as can be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Its exit code in Python's convention (negative: killed by that signal).
    Code(ExitCode),
    /// It has ended, but its status went elsewhere: the kernel reaped it at once because this
    /// process ignores `SIGCHLD` (or set `SA_NOCLDWAIT`), or another part of the program
    /// reaped it (`waitpid(-1, …)`).
    Unknown,
}

/// Reaps the process if it has ended (or, with `block`, once it ends). `None` without `block`
/// means it is still running.
pub(crate) fn pidfd_reap(pidfd: BorrowedFd<'_>, block: bool) -> io::Result<Option<Ended>> {
    let mut opts = WaitIdOptions::EXITED | wall();
    if !block {
        opts |= WaitIdOptions::NOHANG;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), opts) {
            Ok(Some(status)) => {
                if let Some(code) = status.exit_status() {
                    return Ok(Some(Ended::Code(code)));
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(Some(Ended::Code(-sig)));
                }
                // NOHANG with nothing to report fills in an empty status.
                if !block {
                    return Ok(None);
                }
            }
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            // Not waitable (any more): it was reaped elsewhere. A pidfd polls readable once its
            // process has ended.
            Err(rustix::io::Errno::CHILD) => {
                let timeout = if block { None } else { Some(Duration::ZERO) };
                return Ok(super::socket::wait_readable(pidfd, timeout)?.then_some(Ended::Unknown));
            }
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
    // A pidfd polls readable once the process has terminated.
    super::socket::wait_readable(pidfd, timeout)
}

/// What the child marker in the environment says about this process.
pub(crate) enum Marker {
    /// No marker, one inherited by accident (this process was not started by [`spawn_self`]),
    /// or a program running with elevated privileges (`AT_SECURE`): run as the program itself.
    None,
    /// This process was started as a child; here is the descriptor leading back to its parent.
    Child(OwnedFd),
}

/// A marker as read from the environment.
struct MarkerValue {
    fd: RawFd,
    parent: i32,
    secret: Secret,
}

/// Reads the child marker: the inherited descriptor leading back to the parent, if this process
/// was started as a child by [`spawn_self`]. Only the first call can return it.
///
/// The marker names a descriptor, the parent's pid and a secret. It is believed only when the
/// descriptor is a socket made by that pid (`SO_PEERCRED`) under this process's user, and the
/// first bytes waiting on it are the secret, which the parent wrote there before this process
/// existed. The parent's pid is not required to be this process's parent any more: a parent may
/// return from `main` right after starting a child, whose arguments are then already on the
/// socket.
///
/// - In a program running with elevated privileges (set-user-ID, set-group-ID, file
///   capabilities: `getauxval(AT_SECURE)`), the marker is ignored: whoever started the program
///   chose its environment.
/// - A marker that names this process's parent but whose descriptor or secret is wrong is
///   refused: the process prints why on standard error and exits with code 1, running no entry
///   point (and not the program, which would run a second time).
/// - Any other process that sees a marker inherited it by accident (a program started with
///   `std::process::Command` by a child, say) and runs as itself.
///
/// The environment is left as it is: changing it is unsound while other threads may read it.
pub(crate) fn take_child_marker() -> Marker {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(m) = read_marker() else {
        return Marker::None;
    };
    if at_secure() || TAKEN.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return Marker::None;
    }
    if is_parents_socket(&m) {
        // SAFETY: the descriptor is open (the check above used it), and `TAKEN` guarantees it
        // is claimed once; the parent left exactly this descriptor open for this process.
        let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(m.fd) };
        match read_secret(owned.as_fd()) {
            Some(s) if s == m.secret => {
                // Grandchildren must not inherit it.
                let _ = rustix::io::fcntl_setfd(owned.as_fd(), rustix::io::FdFlags::CLOEXEC);
                return Marker::Child(owned);
            }
            _ => refuse("the descriptor it names does not carry the parent's secret"),
        }
    }
    if getppid_raw() == Some(m.parent) {
        refuse("the descriptor it names is not a socket made by the parent");
    }
    Marker::None
}

fn refuse(why: &str) -> ! {
    use std::io::Write;
    // Straight to the descriptor: a test harness capturing `eprintln!` would swallow it.
    let _ = writeln!(
        std::io::stderr(),
        "multiproc: refusing to run as a child ({CHILD_ENV} is set, but {why})"
    );
    exit_immediately(1)
}

/// Whether the marker's descriptor is a socket made by the process it names, under our user.
fn is_parents_socket(m: &MarkerValue) -> bool {
    if m.fd < 3 {
        return false;
    }
    // SAFETY: the descriptor is only borrowed for these calls, which fail cleanly (EBADF,
    // ENOTSOCK) on a number that is closed or not a socket.
    let borrowed = unsafe { BorrowedFd::borrow_raw(m.fd) };
    rustix::fs::fstat(borrowed).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
    }) && rustix::net::sockopt::socket_peercred(borrowed).is_ok_and(|c| {
        c.pid.as_raw_nonzero().get() == m.parent && c.uid == rustix::process::geteuid()
    })
}

/// The secret waiting at the start of the bootstrap socket, without waiting for it: the real
/// parent wrote it before this process was created.
fn read_secret(sock: BorrowedFd<'_>) -> Option<Secret> {
    let mut secret = Secret::default();
    let mut got = 0;
    while got < secret.len() {
        match rustix::net::recv(sock, &mut secret[got..], rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return None,
            Ok((n, _)) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    Some(secret)
}

/// Whether the kernel marks this program as running with privileges its caller lacks
/// (`getauxval(AT_SECURE)`: set-user-ID, set-group-ID or file capabilities).
fn at_secure() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; it has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether this process carries a child marker addressed to it (its parent is the pid the
/// marker names, or its descriptor is the named parent's socket), whether or not
/// [`take_child_marker`] has run yet.
pub(crate) fn is_marked_child() -> bool {
    read_marker()
        .is_some_and(|m| !at_secure() && (getppid_raw() == Some(m.parent) || is_parents_socket(&m)))
}

fn read_marker() -> Option<MarkerValue> {
    let value = std::env::var_os(CHILD_ENV)?;
    let mut parts = value.to_str()?.split(',');
    let fd = parts.next()?.parse().ok()?;
    let parent = parts.next()?.parse().ok()?;
    let hex = parts.next()?;
    if parts.next().is_some() || hex.len() != 2 * size_of::<Secret>() {
        return None;
    }
    let mut secret = Secret::default();
    for (i, b) in secret.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(MarkerValue { fd, parent, secret })
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
