//! Child processes that run a Rust function, as `multiprocessing.Process` does.
//!
//! A [`Process`] runs a non-capturing `fn(A) -> R` in a new process and hands its result back to
//! [`join`](Process::join). `A` and `R` are serde types; they may contain descriptor-carrying
//! objects of this crate (a [`Descriptor`](crate::Descriptor), and the shared objects built on
//! it), which arrive usable on the other side.
//!
//! # Start methods
//!
//! - [`StartMethod::Spawn`] (the default) re-executes the current program. The child recognises
//!   that it is a child in [`init`], which `main` must call before anything else,
//!   like Python's `if __name__ == '__main__'` guard. In test binaries,
//!   [`test_support!`](crate::test_support) plays that part; in doc-tests, a hidden
//!   `# multiproc::init();` first line does.
//! - [`StartMethod::Fork`] forks the calling process. The child runs the target on a copy of the
//!   parent's memory, with a single thread. In a multi-threaded parent, locks held by other
//!   threads at the moment of the fork stay locked forever in the child, so the target must then
//!   keep to async-signal-safe work; memory allocation is safe with glibc's `malloc`, creating
//!   threads is not (the standard library's own locks may be held). This crate starts no thread
//!   in a forked child: there, a daemon grandchild is tied to the thread that starts it, and a
//!   dropped child is reaped at the next start or [`active_children`] call.
//!
//! # Lifetimes of children
//!
//! - A **daemon** child ([`Builder::daemon`]) is killed with `SIGKILL` when its parent process
//!   dies, however it dies (`PR_SET_PDEATHSIG`, armed before the child's first instruction and
//!   checked against a parent that died first).
//! - A **non-daemon** child outlives its parent if the parent exits without joining it (it is
//!   re-parented to the nearest sub-reaper or to `init`). Python joins such children at exit;
//!   a Rust program cannot hook every exit, so join the children you start.
//! - Dropping a [`Process`] without joining it never leaves a zombie: a background reaper thread
//!   collects the child's exit status once it ends. The child itself keeps running.

mod error;

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::{JoinError, JoinTimeoutError, PanicInfo, StartError};

use crate::codec;
use crate::connection::frame::{self, FrameError};
use crate::sys::entry::Entry;
use crate::sys::{process as os, socket};

/// How long a child may take to reach its entry point, by default.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest control message (not argument or result) accepted on the bootstrap socket.
const MAX_CONTROL: u64 = 1 << 20;

/// How a child process is created. See the [module documentation](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current program; the child finds its entry point in
    /// [`init`]. Safe in multi-threaded programs.
    #[default]
    Spawn,
    /// `fork(2)` the calling process. Fast; see the module documentation for its constraints.
    Fork,
}

/// Control messages on the bootstrap socket.
#[derive(Debug, Serialize, Deserialize)]
enum Control {
    /// Child → parent, first thing in [`init`]: the child is running.
    Started,
    /// Parent → child: what to run; a frame with the encoded arguments follows.
    Run(Bootstrap),
    /// Child → parent: the target returned; a frame with the encoded result follows.
    Returned,
    /// Child → parent: the target panicked.
    Panicked(PanicInfo),
    /// Child → parent: the arguments or the result could not be decoded or encoded.
    Failed(String),
}

/// What a spawned child needs to know to run its entry point.
#[derive(Debug, Serialize, Deserialize)]
struct Bootstrap {
    entry: Entry,
    me: Identity,
    parent: Identity,
}

/// A process's place in the tree: its name, pid, daemon flag and Python-style identity
/// (`[]` for the main process, `[1]` for its first child, `[1, 2]` for that child's second, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Identity {
    name: String,
    pid: u32,
    daemon: bool,
    path: Vec<u32>,
}

/// What happened when the target ran (the trampoline's report).
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The target returned this encoded value.
    Returned(Vec<u8>, Vec<OwnedFd>),
    /// The target panicked.
    Panicked(PanicInfo),
    /// The arguments or the result could not be decoded or encoded.
    Failed(String),
}

// ---------------------------------------------------------------------------------------------
// Process-wide state

static INIT_CALLED: AtomicBool = AtomicBool::new(false);
static TEST_HARNESS: AtomicBool = AtomicBool::new(false);
static CHILD_COUNTER: AtomicU32 = AtomicU32::new(0);
/// This process's identity and its parent's. Replaced in a child; locked across `fork` so that
/// the forked child finds it unlocked.
static CURRENT: Mutex<Option<Arc<Tree>>> = Mutex::new(None);
static CHILDREN: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// The filter that selects the test [`test_support!`](crate::test_support) defines.
const TEST_ENTRY_NAME: &str = "__multiproc_child_entry";

fn main_identity() -> Identity {
    Identity {
        name: "MainProcess".into(),
        pid: os::getpid(),
        daemon: false,
        path: Vec::new(),
    }
}

/// A process's identity and its parent's.
type Tree = (Identity, Option<Identity>);

fn current() -> Arc<Tree> {
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    cur.get_or_insert_with(|| Arc::new((main_identity(), None)))
        .clone()
}

fn set_current(me: Identity, parent: Identity) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new((me, Some(parent))));
}

/// Becomes the child if this process was started as one; returns at once otherwise.
///
/// Call it first thing in `main` in every program that starts processes with the default
/// [`StartMethod::Spawn`]: the child is the same program re-executed, and `init` is where it
/// turns into the child, runs its target and exits, without running the rest of `main`. In the
/// parent (or any program not started by this crate) it returns after a couple of nanoseconds
/// of work.
///
/// In doc-tests, make it the first (hidden) line. In test binaries, use
/// [`test_support!`](crate::test_support) instead.
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     multiproc::init();
///     let p = multiproc::Process::start(square, 12).unwrap();
///     assert_eq!(p.join().unwrap(), 144);
/// }
/// ```
pub fn init() {
    INIT_CALLED.store(true, Ordering::Relaxed);
    if let os::Marker::Child(sock) = os::take_child_marker() {
        IN_CHILD.store(true, Ordering::Relaxed);
        run_spawned_child(sock);
    }
}

/// Set in a spawned child once [`init`] has taken over.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

#[doc(hidden)]
pub fn __mark_test_harness() {
    TEST_HARNESS.store(true, Ordering::Relaxed);
}

/// Lets the tests of an integration-test (or unit-test) binary start processes with the spawn
/// method.
///
/// Invoke it once in the test crate, at any module level. It defines a hidden test that a child
/// runs instead of the test suite, and tells the spawn method to select that test when it
/// re-executes the binary.
///
/// # Examples
///
/// ```no_run
/// // tests/workers.rs
/// multiproc::test_support!();
///
/// fn add(args: (i32, i32)) -> i32 {
///     args.0 + args.1
/// }
///
/// #[test]
/// fn adds_in_a_child() {
///     let p = multiproc::Process::start(add, (2, 3)).unwrap();
///     assert_eq!(p.join().unwrap(), 5);
/// }
/// ```
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        fn __multiproc_child_entry() {
            $crate::init();
        }

        // Runs before `main`: marks this binary as a test harness with the entry above.
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __MULTIPROC_TEST_SUPPORT: extern "C" fn() = {
            extern "C" fn mark() {
                $crate::__mark_test_harness();
            }
            mark
        };
    };
}

/// The name, pid and daemon flag of a process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
    daemon: bool,
}

impl ProcessInfo {
    fn from_identity(id: &Identity) -> Self {
        ProcessInfo {
            name: id.name.clone(),
            pid: id.pid,
            daemon: id.daemon,
        }
    }

    /// The process's name: `MainProcess`, a name given with [`Builder::name`], or
    /// `Process-N` (`Process-N:M` for a grandchild) as in Python.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process was started as a daemon.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether a process with this pid still exists. Once the process has ended and been
    /// reaped, the kernel may give its pid to an unrelated process.
    pub fn is_alive(&self) -> bool {
        os::pid_exists(self.pid)
    }
}

/// The current process: `MainProcess` in a program's original process, the child's name inside
/// a child.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// fn my_name(_: ()) -> String {
///     multiproc::current_process().name().to_owned()
/// }
///
/// assert_eq!(multiproc::current_process().name(), "MainProcess");
/// let p = multiproc::Process::builder().name("worker").start(my_name, ()).unwrap();
/// assert_eq!(p.join().unwrap(), "worker");
/// ```
pub fn current_process() -> ProcessInfo {
    ProcessInfo::from_identity(&current().0)
}

/// The process that started this one, if this process was started by this crate.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// fn parent_pid(_: ()) -> Option<u32> {
///     multiproc::parent_process().map(|p| p.pid())
/// }
///
/// assert!(multiproc::parent_process().is_none());
/// let p = multiproc::Process::start(parent_pid, ()).unwrap();
/// assert_eq!(p.join().unwrap(), Some(std::process::id()));
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    current().1.as_ref().map(ProcessInfo::from_identity)
}

/// The children this process started that are still running (reaping those that have ended).
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// fn nap(ms: u64) {
///     std::thread::sleep(std::time::Duration::from_millis(ms));
/// }
///
/// let p = multiproc::Process::start(nap, 10_000).unwrap();
/// assert!(multiproc::active_children().iter().any(|c| c.pid() == p.pid()));
/// p.kill().unwrap();
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    reap_unreaped();
    let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    children.retain(|w| w.upgrade().is_some_and(|c| c.exitcode().is_none()));
    children
        .iter()
        .filter_map(Weak::upgrade)
        .map(|c| ProcessInfo {
            name: c.name.clone(),
            pid: c.pid,
            daemon: c.daemon,
        })
        .collect()
}

/// The number of CPUs online in the system, as Python's `cpu_count()`.
///
/// This counts CPUs the process may not be allowed to use; for the number it can use, see
/// [`std::thread::available_parallelism`].
///
/// # Examples
///
/// ```
/// assert!(multiproc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    os::cpu_count()
}

// ---------------------------------------------------------------------------------------------
// Parent side

/// What the parent knows of a running child, shared with the reaper and the child list.
struct Inner {
    pid: u32,
    pidfd: OwnedFd,
    name: String,
    daemon: bool,
    exit: Mutex<Option<i32>>,
}

impl Inner {
    /// The exit code if the child has ended (reaping it), `None` while it runs.
    fn exitcode(&self) -> Option<i32> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none() {
            *exit = os::pidfd_reap(self.pidfd.as_fd(), false).ok().flatten();
        }
        *exit
    }

    /// Waits for the child to end (at most `timeout`); its exit code, or `None` on time-out.
    /// The lock is not held while waiting, so other threads can still ask.
    fn wait(&self, timeout: Option<Duration>) -> std::io::Result<Option<i32>> {
        if let Some(code) = self.exitcode() {
            return Ok(Some(code));
        }
        if !os::pidfd_wait_exit(self.pidfd.as_fd(), timeout)? {
            return Ok(None);
        }
        Ok(self.exitcode())
    }
}

/// Where a [`Process`] is in its conversation with the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the child's `Started`.
    Starting,
    /// Waiting for the child's report.
    Running,
}

/// A child process running a function; [`join`](Process::join) returns what the function
/// returned.
///
/// Created by [`Process::start`] or [`Process::builder`]. The handle is `Send` and `Sync`;
/// `join` consumes it. Dropping it without joining leaves the child running (see the
/// [module documentation](self)).
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::Process;
///
/// fn task(mut data: Vec<i32>) -> Vec<i32> {
///     data.push(666);
///     data
/// }
///
/// let data_list = vec![];
/// let p = Process::start(task, data_list.clone()).unwrap();
/// assert_eq!(p.join().unwrap(), vec![666]);
/// assert!(data_list.is_empty()); // the child changed its own copy only
/// ```
pub struct Process<R> {
    inner: Arc<Inner>,
    sock: OwnedFd,
    stage: Stage,
    /// When the child must have reached its entry point (`None`: no limit).
    started_by: Option<Instant>,
    startup_timeout: Duration,
    max_result: u64,
    _result: PhantomData<fn() -> R>,
}

// Handles are shared between threads like Python's: pin it down.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Process<()>>();
    send_sync::<Builder>();
    send_sync::<ProcessInfo>();
};

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .field("daemon", &self.inner.daemon)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

/// Configures and starts a [`Process`].
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::{Process, StartMethod};
///
/// fn greet(who: String) -> String {
///     format!("hello, {who}")
/// }
///
/// let p = Process::builder()
///     .name("greeter")
///     .daemon(true)
///     .method(StartMethod::Spawn)
///     .start(greet, "world".to_owned())
///     .unwrap();
/// assert_eq!(p.name(), "greeter");
/// assert_eq!(p.join().unwrap(), "hello, world");
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    method: StartMethod,
    startup_timeout: Duration,
    max_result: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: None,
            daemon: false,
            method: StartMethod::Spawn,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            max_result: u64::MAX,
        }
    }
}

impl Builder {
    /// A builder with the defaults: generated name, not a daemon, [`StartMethod::Spawn`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's name (default `Process-N`, as in Python).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the child is killed when this process dies (default `false`).
    pub fn daemon(&mut self, daemon: bool) -> &mut Self {
        self.daemon = daemon;
        self
    }

    /// How the child is created (default [`StartMethod::Spawn`]).
    pub fn method(&mut self, method: StartMethod) -> &mut Self {
        self.method = method;
        self
    }

    /// How long the child may take to reach its entry point before it is killed and `join`
    /// reports [`JoinError::NotStarted`] (default 60 s).
    pub fn startup_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.startup_timeout = timeout;
        self
    }

    /// The largest encoded result `join` accepts (default: no limit). A larger result makes
    /// `join` fail with [`JoinError::Codec`].
    pub fn max_result_size(&mut self, bytes: u64) -> &mut Self {
        self.max_result = bytes;
        self
    }

    /// Starts `target(args)` in a new process.
    ///
    /// `target` is a function or a non-capturing closure. With the spawn method it must be
    /// linked into the executable (not a shared library loaded at run time).
    ///
    /// # Errors
    ///
    /// [`StartError::InitNotCalled`] with the spawn method when this program never called
    /// [`init`]; [`StartError::Encode`] when the arguments do not serialize;
    /// [`StartError::Os`] when the system refuses; [`StartError::NotStarted`] when a spawned
    /// child does not take its arguments within the start-up timeout.
    pub fn start<A, R>(&self, target: fn(A) -> R, args: A) -> Result<Process<R>, StartError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        reap_unreaped();
        let tree = current();
        let parent_id = &tree.0;
        let n = CHILD_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let mut path = parent_id.path.clone();
        path.push(n);
        let name = self.name.clone().unwrap_or_else(|| {
            let ids: Vec<String> = path.iter().map(u32::to_string).collect();
            format!("Process-{}", ids.join(":"))
        });
        let me = Identity {
            name,
            pid: 0,
            daemon: self.daemon,
            path,
        };
        let (parent_end, child_end) = socket::socketpair().map_err(StartError::Os)?;
        let (pid, sock) = match self.method {
            StartMethod::Spawn => spawn(self, target, args, &me, parent_end, child_end)?,
            StartMethod::Fork => fork(self, target, args, me.clone(), parent_end, child_end)?,
        };
        let pidfd = match os::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                os::kill_and_reap(pid);
                return Err(StartError::Os(e));
            }
        };
        let inner = Arc::new(Inner {
            pid,
            pidfd,
            name: me.name,
            daemon: self.daemon,
            exit: Mutex::new(None),
        });
        let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&inner));
        drop(children);
        Ok(Process {
            inner,
            sock,
            stage: match self.method {
                StartMethod::Spawn => Stage::Starting,
                StartMethod::Fork => Stage::Running,
            },
            started_by: Instant::now().checked_add(self.startup_timeout),
            startup_timeout: self.startup_timeout,
            max_result: self.max_result,
            _result: PhantomData,
        })
    }
}

/// Re-executes this program as the child; returns its pid and the parent's socket end.
fn spawn<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
    b: &Builder,
    target: fn(A) -> R,
    args: A,
    me: &Identity,
    parent_end: OwnedFd,
    child_end: OwnedFd,
) -> Result<(u32, OwnedFd), StartError> {
    let harness = TEST_HARNESS.load(Ordering::Relaxed);
    if !harness && !INIT_CALLED.load(Ordering::Relaxed) {
        return Err(StartError::InitNotCalled);
    }
    if os::is_marked_child() && !IN_CHILD.load(Ordering::Relaxed) {
        // A spawned child that starts processes before reaching `init`: its `main` does not
        // call `init` first, and every child would start another child, without end.
        return Err(StartError::InitNotCalled);
    }
    if !Entry::same_object(target) {
        return Err(StartError::TargetNotInExecutable);
    }
    // Encode everything before creating the process: an encoding error then costs nothing.
    let mut control = Vec::new();
    let run = Control::Run(Bootstrap {
        entry: Entry::of(target),
        me: me.clone(),
        parent: current().0.clone(),
    });
    codec::encode_plain_into(&run, &mut control).map_err(StartError::Encode)?;
    let mut payload = Vec::new();
    let fds = codec::encode_into(&args, &mut payload).map_err(StartError::Encode)?;
    drop(args);

    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| "multiproc-child".into());
    let rest: Vec<std::ffi::OsString> = if harness {
        [
            TEST_ENTRY_NAME,
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ]
        .iter()
        .map(Into::into)
        .collect()
    } else {
        argv.collect()
    };
    let pid = if b.daemon && !FORKED.load(Ordering::Relaxed) {
        // PR_SET_PDEATHSIG fires when the *thread* that created the child ends, so daemons are
        // created by a thread that lives as long as the process. (A forked child starts no
        // helper thread: see `FORKED`.)
        let keep = crate::sys::dup(child_end.as_fd()).map_err(StartError::Os)?;
        spawner().map_err(StartError::Os)?.run(Box::new(move || {
            os::spawn_self(&argv0, &rest, keep.as_fd(), true)
        }))
    } else {
        os::spawn_self(&argv0, &rest, child_end.as_fd(), b.daemon)
    }
    .map_err(StartError::Os)?;
    drop(child_end);

    let sent = send_with_timeout(parent_end.as_fd(), b.startup_timeout, |sock| {
        frame::write_frame(sock, &control, &[])?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        frame::write_frame(sock, &payload, &borrowed)
    });
    match sent {
        // The child ended before taking its arguments: `join` reports how it ended.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => {
            // The child stalled (or the socket failed): make sure it does not linger.
            if let Ok(pidfd) = os::pidfd_open(pid) {
                let _ = os::pidfd_signal(pidfd.as_fd(), SIGKILL);
                let _ = os::pidfd_reap(pidfd.as_fd(), true);
            }
            return Err(StartError::NotStarted(format!(
                "it did not take its arguments ({e}); does its main() call multiproc::init() first?"
            )));
        }
        Ok(()) => {}
    }
    Ok((pid, parent_end))
}

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// Writes on `sock` with a send time-out, restoring blocking writes afterwards.
fn send_with_timeout(
    sock: BorrowedFd<'_>,
    timeout: Duration,
    f: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use rustix::net::sockopt::{Timeout, set_socket_timeout};
    let t = if timeout.is_zero() {
        Duration::from_micros(1)
    } else {
        timeout
    };
    set_socket_timeout(sock, Timeout::Send, Some(t))?;
    let r = f(sock);
    set_socket_timeout(sock, Timeout::Send, None)?;
    r
}

/// Forks; the child runs the target and never returns from here.
fn fork<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
    b: &Builder,
    target: fn(A) -> R,
    args: A,
    me: Identity,
    parent_end: OwnedFd,
    child_end: OwnedFd,
) -> Result<(u32, OwnedFd), StartError> {
    let parent = current().0.clone();
    let pid = if b.daemon && !FORKED.load(Ordering::Relaxed) {
        // The parent-death signal is tied to the thread that forks: fork from the long-lived
        // spawner thread. The arguments cross to it encoded, and the child decodes them.
        let mut payload = Vec::new();
        let fds = codec::encode_into(&args, &mut payload).map_err(StartError::Encode)?;
        drop(args);
        let entry = Entry::of(target);
        spawner()
            .map_err(StartError::Os)?
            .run(Box::new(move || {
                fork_child(true, me, parent, child_end, move || {
                    entry.run(&payload, fds)
                })
            }))
            .map_err(StartError::Os)?
    } else {
        fork_child(b.daemon, me, parent, child_end, || run_target(target, args))
            .map_err(StartError::Os)?
    };
    Ok((pid, parent_end))
}

/// Forks; the child sets its identity, runs `run`, reports on `child_end` and exits.
fn fork_child(
    daemon: bool,
    me: Identity,
    parent: Identity,
    child_end: OwnedFd,
    run: impl FnOnce() -> Outcome,
) -> std::io::Result<u32> {
    use std::io::Write;
    // The child must not take any lock that another thread of this process may hold at the
    // instant of the fork: install the panic hook here, once, and hold every process-wide lock
    // the child touches across the fork, so that the child's copies are held by its only thread
    // (the owner, for the re-entrant stdio locks) and released there.
    install_panic_hook();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    // Anything buffered now would be written twice, once by each process.
    let _ = out.flush();
    let _ = err.flush();
    let parent_pid = os::getpid();
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let mut spawner = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    let mut reaper = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    let forked = os::fork_run(|| {
        FORKED.store(true, Ordering::Relaxed);
        if daemon {
            os::die_with_parent(parent_pid);
        }
        let me = Identity {
            pid: os::getpid(),
            ..me
        };
        *cur = Some(Arc::new((me, Some(parent))));
        children.clear();
        if let Ok(mut u) = UNREAPED.try_lock() {
            u.clear();
        }
        // The parent's helper threads do not exist here (and a forked child starts none).
        *spawner = None;
        *reaper = None;
        drop((out, err, cur, children, spawner, reaper));
        // The child's copy of the parent's end stays open until it exits; it only writes. A
        // forked child is at its entry point already: it sends no `Started`.
        run_child(child_end.as_fd(), run);
    });
    // In the parent, dropping the closure released the locks and closed the child's end.
    forked
}

// ---------------------------------------------------------------------------------------------
// Joining

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Starts `target(args)` in a new process with the default settings (spawn method, not a
    /// daemon, generated name). See [`Builder::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn shout(s: String) -> String {
    ///     s.to_uppercase()
    /// }
    ///
    /// let p = multiproc::Process::start(shout, "hey".to_owned()).unwrap();
    /// assert_eq!(p.join().unwrap(), "HEY");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Builder::start`].
    pub fn start<A>(target: fn(A) -> R, args: A) -> Result<Self, StartError>
    where
        A: Serialize + DeserializeOwned,
    {
        Builder::new().start(target, args)
    }

    /// Waits for the child to finish and returns what its function returned.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the panic message when the function panicked (the child
    /// exits with code 1); [`JoinError::Exited`] or [`JoinError::Killed`] when the child ended
    /// without returning; [`JoinError::NotStarted`] when it never reached its entry point within
    /// the start-up timeout; [`JoinError::Codec`] when the result could not be transferred.
    pub fn join(self) -> Result<R, JoinError> {
        match self.join_deadline(None) {
            Ok(r) => Ok(r),
            Err(JoinTimeoutError::Failed(e)) => Err(e),
            Err(JoinTimeoutError::Timeout(_)) => unreachable!("no deadline, no time-out"),
        }
    }

    /// Waits at most `timeout` for the child to finish.
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError::Timeout`] hands the process back when it is still running;
    /// [`JoinTimeoutError::Failed`] as [`join`](Process::join). Once the child has begun sending
    /// its result, the result is read to the end even if that takes longer than `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// use std::time::Duration;
    /// use multiproc::{JoinTimeoutError, Process};
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let p = Process::start(nap, 60_000).unwrap();
    /// let p = match p.join_timeout(Duration::from_millis(50)) {
    ///     Err(JoinTimeoutError::Timeout(p)) => p,
    ///     other => panic!("{other:?}"),
    /// };
    /// p.terminate().unwrap();
    /// assert_eq!(p.join().unwrap_err().exitcode(), Some(-15));
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<R, JoinTimeoutError<R>> {
        // A time-out too large to represent waits forever.
        self.join_deadline(Instant::now().checked_add(timeout))
    }

    fn join_deadline(mut self, deadline: Option<Instant>) -> Result<R, JoinTimeoutError<R>> {
        let mut buf = Vec::new();
        let mut fds = Vec::new();
        loop {
            let limit = match (self.stage, self.started_by) {
                (Stage::Starting, Some(s)) => Some(deadline.map_or(s, |d| d.min(s))),
                _ => deadline,
            };
            let mut watch = Watch::new(self.sock.as_fd(), self.inner.pidfd.as_fd());
            let control = match watch.read_frame(MAX_CONTROL, &mut buf, &mut fds, limit) {
                Ok(true) => codec::decode::<Control>(&buf, Vec::new())
                    .map_err(|e| JoinError::Codec(format!("bad message from the child: {e}"))),
                Ok(false) => {
                    if self.stage == Stage::Starting
                        && self.started_by.is_some_and(|s| Instant::now() >= s)
                    {
                        let _ = self.kill();
                        let _ = self.inner.wait(None);
                        return Err(JoinTimeoutError::Failed(JoinError::NotStarted(format!(
                            "it did not reach its entry point within {:?}; does its main() \
                             call multiproc::init() first?",
                            self.startup_timeout
                        ))));
                    }
                    return Err(JoinTimeoutError::Timeout(self));
                }
                Err(FrameError::Closed) => Err(self.ended()),
                Err(e) => Err(protocol_error(e)),
            };
            let failure = match (self.stage, control) {
                (Stage::Starting, Ok(Control::Started)) => {
                    self.stage = Stage::Running;
                    continue;
                }
                (Stage::Running, Ok(Control::Returned)) => {
                    // The result's descriptors may have arrived with the control frame.
                    let value = match watch.read_frame(self.max_result, &mut buf, &mut fds, None) {
                        Ok(_) => codec::decode::<R>(&buf, std::mem::take(&mut fds))
                            .map_err(|e| JoinError::Codec(e.to_string())),
                        Err(FrameError::TooLarge { len, max }) => Err(JoinError::Codec(format!(
                            "the result is {len} bytes, more than the maximum of {max}"
                        ))),
                        Err(FrameError::Closed | FrameError::Truncated { .. }) => Err(self.ended()),
                        Err(e) => Err(protocol_error(e)),
                    };
                    let _ = self.inner.wait(None);
                    return value.map_err(JoinTimeoutError::Failed);
                }
                (Stage::Running, Ok(Control::Panicked(info))) => JoinError::Panicked(info),
                (Stage::Running, Ok(Control::Failed(msg))) => JoinError::Codec(msg),
                (_, Ok(other)) => JoinError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unexpected message from the child: {other:?}"),
                )),
                (_, Err(e)) => e,
            };
            let _ = self.inner.wait(None);
            return Err(JoinTimeoutError::Failed(failure));
        }
    }

    /// The child closed its end without a report: it ended. Why?
    fn ended(&self) -> JoinError {
        let code = match self.inner.wait(None) {
            Ok(Some(code)) => code,
            Ok(None) => return JoinError::Io(std::io::ErrorKind::UnexpectedEof.into()),
            Err(e) => return JoinError::Io(e),
        };
        match (self.stage, code) {
            (_, c) if c < 0 => JoinError::Killed(-c),
            (Stage::Starting, code) => JoinError::NotStarted(format!(
                "it ended with exit code {code} before reaching its entry point; does its main() \
                 call multiproc::init() first?"
            )),
            (Stage::Running, c) => JoinError::Exited(c),
        }
    }
}

fn protocol_error(e: FrameError) -> JoinError {
    JoinError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        e.to_string(),
    ))
}

/// Reads the child's frames without trusting end-of-stream alone: a process the child forked may
/// hold its end of the socket open, so the child's exit (its pidfd) ends the stream too.
struct Watch<'a> {
    sock: BorrowedFd<'a>,
    pidfd: BorrowedFd<'a>,
    exited: bool,
}

impl<'a> Watch<'a> {
    fn new(sock: BorrowedFd<'a>, pidfd: BorrowedFd<'a>) -> Self {
        Watch {
            sock,
            pidfd,
            exited: false,
        }
    }

    /// Fills `buf`; returns how much arrived (less at end of stream: the socket closed, or the
    /// child ended and everything it wrote has been read).
    fn fill(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match crate::sys::net::recv_some_with(self.sock, &mut buf[got..], fds, true) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.exited {
                        // Everything the child wrote before it ended is already here.
                        break;
                    }
                    self.wait(None)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// Waits until the socket is readable or the child has ended; `false` on time-out.
    fn wait(&mut self, deadline: Option<Instant>) -> std::io::Result<bool> {
        let ready = socket::poll_in(&[self.sock, self.pidfd], deadline)?;
        self.exited |= ready[1];
        Ok(ready[0] || ready[1])
    }

    /// Reads one frame into `buf` (descriptors into `fds`): `Ok(false)` when `deadline` passed
    /// before it began. Once it has begun, the rest is waited for without limit (the child is
    /// writing it, or has ended).
    fn read_frame(
        &mut self,
        max: u64,
        buf: &mut Vec<u8>,
        fds: &mut Vec<OwnedFd>,
        deadline: Option<Instant>,
    ) -> Result<bool, FrameError> {
        if deadline.is_some() && !self.wait(deadline)? {
            return Ok(false);
        }
        let len = frame::read_header(max, |b| self.fill(b, fds))?;
        frame::read_payload(len, buf, |b| self.fill(b, fds))?;
        Ok(true)
    }
}

fn read_control(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fds: &mut Vec<OwnedFd>,
) -> Result<Control, FrameError> {
    frame::read_frame(sock, MAX_CONTROL, buf, fds)?;
    codec::decode::<Control>(buf, Vec::new()).map_err(|e| {
        FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        ))
    })
}

impl Process<()> {
    /// Starts configuring a process (the same as [`Builder::new`]).
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<R> Process<R> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the child is a daemon (killed when this process dies).
    pub fn daemon(&self) -> bool {
        self.inner.daemon
    }

    /// Whether the child is still running.
    pub fn is_alive(&self) -> bool {
        self.inner.exitcode().is_none()
    }

    /// The child's exit code once it has ended, in Python's convention: `0` for success, `1`
    /// after a panic, the code given to `std::process::exit`, or minus the signal number that
    /// killed it (`-9` for `SIGKILL`). `None` while it runs.
    pub fn exitcode(&self) -> Option<i32> {
        self.inner.exitcode()
    }

    /// Asks the child to end with `SIGTERM`. Nothing happens if it has already ended.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn terminate(&self) -> std::io::Result<()> {
        os::pidfd_signal(self.inner.pidfd.as_fd(), SIGTERM)
    }

    /// Kills the child with `SIGKILL`. Nothing happens if it has already ended.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn kill(&self) -> std::io::Result<()> {
        os::pidfd_signal(self.inner.pidfd.as_fd(), SIGKILL)
    }

    /// A descriptor that becomes readable when the child ends (a pidfd), like Python's
    /// `Process.sentinel`, for use with `poll(2)`-style multiplexing.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.inner.pidfd.as_fd()
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        if self.inner.exitcode().is_none() {
            if FORKED.load(Ordering::Relaxed) {
                // A forked child starts no helper thread (see `FORKED`): the next start or
                // `active_children()` reaps it, as Python does.
                UNREAPED
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(self.inner.clone());
            } else if let Ok(r) = reaper() {
                r.adopt(self.inner.clone());
            }
            // (Without a thread to spare, the child stays a zombie until this process exits.)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side

/// Runs in a re-executed child from [`init`]: receives its entry point and arguments, runs,
/// reports, exits.
fn run_spawned_child(sock: OwnedFd) -> ! {
    let sock = sock.as_fd();
    if frame::write_frame(sock, &control_bytes(&Control::Started), &[]).is_err() {
        // The parent is gone before we started.
        std::process::exit(1);
    }
    let mut buf = Vec::new();
    let mut fds = Vec::new();
    let boot = match read_control(sock, &mut buf, &mut fds) {
        Ok(Control::Run(boot)) => boot,
        _ => std::process::exit(1),
    };
    fds.clear();
    if frame::read_frame(sock, u64::MAX, &mut buf, &mut fds).is_err() {
        std::process::exit(1);
    }
    set_current(
        Identity {
            pid: os::getpid(),
            ..boot.me
        },
        boot.parent,
    );
    install_panic_hook();
    let entry = boot.entry;
    match run_child(sock, move || entry.run(&buf, fds)) {}
}

/// Runs the target with panic reporting, sends the report on `sock` and exits.
///
/// Everything that runs user code (decoding the arguments, the target, encoding and dropping the
/// result) is inside `catch_unwind`: a panic anywhere there is reported as the target's panic.
fn run_child(sock: BorrowedFd<'_>, run: impl FnOnce() -> Outcome) -> std::convert::Infallible {
    let outcome = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|p| panic_outcome(&*p));
    let code = match outcome {
        Outcome::Returned(bytes, fds) => {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            let _ = frame::write_frames(
                sock,
                &[&control_bytes(&Control::Returned), &bytes],
                &borrowed,
            );
            0
        }
        Outcome::Panicked(info) => {
            let _ = frame::write_frame(sock, &control_bytes(&Control::Panicked(info)), &[]);
            1
        }
        Outcome::Failed(msg) => {
            eprintln!("multiproc: {msg}");
            let _ = frame::write_frame(sock, &control_bytes(&Control::Failed(msg)), &[]);
            1
        }
    };
    exit_child(code)
}

fn exit_child(code: i32) -> std::convert::Infallible {
    use std::io::Write;
    // In a forked child these locks were released by `fork_child`, so flushing is safe; the
    // child exits without `atexit` handlers, which belong to the parent's program.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if FORKED.load(Ordering::Relaxed) {
        os::exit_immediately(code)
    }
    std::process::exit(code)
}

/// Set in a child created by [`StartMethod::Fork`], which must leave by `_exit`: its `atexit`
/// handlers and C stdio buffers are the parent's. Such a child also starts no helper thread
/// (spawner, reaper): creating a thread there can deadlock on a lock of the standard library
/// that another thread of the parent held at the instant of the fork.
/// Dropped children of a forked child, reaped at the next start or `active_children()`.
static UNREAPED: Mutex<Vec<Arc<Inner>>> = Mutex::new(Vec::new());

fn reap_unreaped() {
    if let Ok(mut list) = UNREAPED.try_lock() {
        list.retain(|c| c.exitcode().is_none());
    }
}
static FORKED: AtomicBool = AtomicBool::new(false);

fn control_bytes(c: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_plain_into(c, &mut out).expect("control messages always encode");
    out
}

/// Decodes the arguments, calls the target, encodes its result. Called by the trampoline.
pub(crate) fn invoke<A: DeserializeOwned, R: Serialize>(
    f: fn(A) -> R,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> Outcome {
    let args: A = match codec::decode(args, fds) {
        Ok(a) => a,
        Err(e) => return Outcome::Failed(format!("cannot decode the arguments: {e}")),
    };
    run_target(f, args)
}

fn run_target<A, R: Serialize>(f: fn(A) -> R, args: A) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| f(args))) {
        Ok(value) => {
            let mut bytes = Vec::new();
            match codec::encode_into(&value, &mut bytes) {
                // The descriptors are duplicates: `value` may go.
                Ok(fds) => Outcome::Returned(bytes, fds),
                Err(e) => Outcome::Failed(format!("cannot encode the result: {e}")),
            }
        }
        Err(payload) => panic_outcome(&*payload),
    }
}

/// The report of a panic with this payload, at the location the panic hook recorded.
fn panic_outcome(payload: &(dyn std::any::Any + Send)) -> Outcome {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    };
    let location = PANIC_LOCATION
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    Outcome::Panicked(PanicInfo::new(message, location))
}

static PANIC_LOCATION: Mutex<Option<String>> = Mutex::new(None);

/// Records where a panic happened (for [`PanicInfo::location`]), then lets the previous hook
/// print it as usual. Installed once per process, before the first fork or in a spawned child.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_panic_hook_now);
}

fn install_panic_hook_now() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(loc) = info.location() {
            *PANIC_LOCATION.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{}:{}:{}", loc.file(), loc.line(), loc.column()));
        }
        previous(info);
    }));
}

// ---------------------------------------------------------------------------------------------
// Helper threads

/// A thread that lives as long as the process and creates daemon children, so that their
/// parent-death signal is tied to the process, not to a short-lived thread.
struct Spawner {
    jobs: Mutex<std::sync::mpsc::Sender<SpawnJob>>,
}

/// Work for the spawner thread: create a child, return its pid.
type SpawnJob = (
    Box<dyn FnOnce() -> std::io::Result<u32> + Send>,
    std::sync::mpsc::Sender<std::io::Result<u32>>,
);

impl Spawner {
    /// Runs `job` on the spawner thread and returns its result.
    fn run(&self, job: Box<dyn FnOnce() -> std::io::Result<u32> + Send>) -> std::io::Result<u32> {
        let (tx, rx) = std::sync::mpsc::channel();
        let gone = || std::io::Error::other("the multiproc spawner thread is gone");
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((job, tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

/// This process's spawner, started on first use. Reset in forked children (`fork_child`).
static SPAWNER: Mutex<Option<Arc<Spawner>>> = Mutex::new(None);

fn spawner() -> std::io::Result<Arc<Spawner>> {
    let mut slot = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = &*slot {
        return Ok(s.clone());
    }
    let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
    std::thread::Builder::new()
        .name("multiproc-spawner".into())
        .spawn(move || {
            for (job, reply) in rx {
                let _ = reply.send(job());
            }
        })?;
    let s = Arc::new(Spawner {
        jobs: Mutex::new(tx),
    });
    *slot = Some(s.clone());
    Ok(s)
}

/// Collects the exit status of children whose [`Process`] was dropped while they ran.
struct Reaper {
    adopted: Mutex<Vec<Arc<Inner>>>,
    wake_tx: OwnedFd,
    wake_rx: OwnedFd,
}

impl Reaper {
    fn adopt(&self, child: Arc<Inner>) {
        self.adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        let _ = rustix::io::write(&self.wake_tx, &[1]);
    }
}

/// This process's reaper, started on first use. Reset in forked children (`fork_child`).
static REAPER: Mutex<Option<Arc<Reaper>>> = Mutex::new(None);

fn reaper() -> std::io::Result<Arc<Reaper>> {
    let mut slot = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = &*slot {
        return Ok(r.clone());
    }
    let (wake_rx, wake_tx) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    let r = Arc::new(Reaper {
        adopted: Mutex::new(Vec::new()),
        wake_tx,
        wake_rx,
    });
    let thread_r = r.clone();
    std::thread::Builder::new()
        .name("multiproc-reaper".into())
        .spawn(move || reap_forever(&thread_r))?;
    *slot = Some(r.clone());
    Ok(r)
}

fn reap_forever(reaper: &Reaper) {
    loop {
        let children: Vec<Arc<Inner>> = reaper
            .adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut fds = Vec::with_capacity(children.len() + 1);
        fds.push(reaper.wake_rx.as_fd());
        fds.extend(children.iter().map(|c| c.pidfd.as_fd()));
        let _ = socket::poll_in(&fds, None);
        let mut drain = [0u8; 64];
        while matches!(rustix::io::read(&reaper.wake_rx, &mut drain), Ok(n) if n > 0) {}
        reaper
            .adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c.exitcode().is_none());
    }
}
