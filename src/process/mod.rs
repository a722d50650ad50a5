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
//! # Who is a child
//!
//! A spawned child learns that it is one from the `MULTIPROC_CHILD` environment variable, which
//! names an inherited socket, the parent's pid and a random secret that the parent wrote on that
//! socket before the child existed. [`init`] believes the variable only if the socket was made
//! by that pid under the same user and carries that secret; when the variable names this
//! process's parent but the proof fails, the process prints why and exits with code 1 without
//! running anything. In a set-user-ID, set-group-ID or capability-raising program
//! (`AT_SECURE`), the variable is ignored. This stops a process from being made a child by an
//! environment it merely inherited; a program's real parent chooses what its child runs either
//! way.
//!
//! # Parents that ignore `SIGCHLD`
//!
//! Each child's pidfd is taken atomically with its creation, so starting never races another
//! reaper. But a program that ignores `SIGCHLD` (or reaps every child with `waitpid(-1, …)`)
//! loses the exit status of children that end without a report: the kernel discards it. Then
//! [`Process::is_alive`] still turns `false`, [`Process::exitcode`] stays `None`, and `join`
//! returns [`JoinError::StatusUnknown`]; results and panics the child reported arrive as usual.
//!
//! # Lifetimes of children
//!
//! - A **daemon** child ([`Builder::daemon`]) is killed with `SIGKILL` when its parent process
//!   dies, however it dies (`PR_SET_PDEATHSIG`, armed before the child's first instruction and
//!   checked against a parent that died first).
//! - A **non-daemon** child outlives its parent if the parent exits without joining it (it is
//!   re-parented to the nearest sub-reaper or to `init`). Python joins such children at exit;
//!   a Rust program cannot hook every exit, so join the children you start.
//!   It runs its target even if the parent returns from `main` right after
//!   [`start`](Process::start): the arguments are on their way before `start` returns.
//! - Dropping a [`Process`] without joining it never leaves a zombie: a background reaper thread
//!   collects the child's exit status once it ends. The child itself keeps running. If it
//!   panics, its report is printed on this process's standard error (nobody will `join` it).

mod builder;
mod child;
mod error;
mod handle;
mod threads;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use builder::Builder;
pub(crate) use child::panic_info;
pub use error::{JoinError, JoinTimeoutError, PanicInfo, StartError};
pub use handle::Process;

use crate::sys::process as os;
use handle::Inner;

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
    entry: child::ChildEntry,
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

// ---------------------------------------------------------------------------------------------
// Process-wide state

static INIT_CALLED: AtomicBool = AtomicBool::new(false);
static TEST_HARNESS: AtomicBool = AtomicBool::new(false);
static CHILD_COUNTER: AtomicU32 = AtomicU32::new(0);
/// This process's identity and its parent's. Replaced in a child; locked across `fork` so that
/// the forked child finds it unlocked.
static CURRENT: Mutex<Option<Arc<Tree>>> = Mutex::new(None);
static CHILDREN: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Set in a child created by [`StartMethod::Fork`], which must leave by `_exit`: its `atexit`
/// handlers and C stdio buffers are the parent's. Such a child also starts no helper thread
/// (spawner, reaper): creating a thread there can deadlock on a lock of the standard library
/// that another thread of the parent held at the instant of the fork.
static FORKED: AtomicBool = AtomicBool::new(false);

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// The filter that selects the test [`test_support!`](crate::test_support) defines.
pub(super) const TEST_ENTRY_NAME: &str = "__multiproc_child_entry";

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
        child::run_spawned_child(sock);
    }
}

/// Set in a spawned child once [`init`] has taken over.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

#[doc(hidden)]
pub fn __mark_test_harness() {
    TEST_HARNESS.store(true, Ordering::Relaxed);
    // A child becomes the child here, before `main`: the test harness never starts in it, so
    // it prints no banner of its own. The runtime's own start-up has not run yet; do its part
    // that a target can notice.
    if os::is_marked_child() {
        os::ignore_sigpipe();
    }
    init();
}

/// Lets the tests of an integration-test (or unit-test) binary start processes with the spawn
/// method.
///
/// Invoke it once in the test crate, at any module level. It runs [`init`] before `main` (from
/// an `.init_array` constructor), so a child started by a test becomes the child before the
/// test harness starts, and prints nothing the harness would (no `running 1 test` banner). It
/// also defines a hidden test that calls [`init`], which the spawn method selects when it
/// re-executes the binary, for platforms where the constructor does not run.
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
    threads::reap_unreaped();
    let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    children.retain(|w| w.upgrade().is_some_and(|c| !c.has_ended()));
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
