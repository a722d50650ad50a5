//! A pool of worker processes, as Python's `multiprocessing.Pool`, that never hangs when a
//! worker dies.
//!
//! [`Pool::new(n)`](Pool::new) starts `n` worker processes; [`map`](Pool::map),
//! [`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered), [`apply`](Pool::apply) and
//! their `_async` forms run a non-capturing `fn(A) -> R` on them, with serde arguments and
//! results as for [`Process`](crate::Process). A program that uses a pool calls
//! [`init`](crate::init) first thing in `main` (workers are the program started again).
//!
//! ```
//! # multiproc::init();
//! use multiproc::pool::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let pool = Pool::new(2).unwrap();
//! assert_eq!(pool.map(square, 1..=4u64).unwrap(), [1, 4, 9, 16]);
//! ```
//!
//! # Failures are per task
//!
//! Each worker is fed over its own channel by its own supervising thread in this process, one
//! chunk of tasks at a time, so the pool always knows which tasks a worker holds. What goes
//! wrong is an error of those tasks only ([`TaskError`]), and every other task completes:
//!
//! - a **panic** in a task is that task's [`TaskError::Panicked`], with its message; the worker
//!   lives on, and nothing is printed;
//! - a worker **killed** (SIGKILL, the OOM killer) or that **exits** gives
//!   [`TaskError::WorkerDied`] for the tasks of its chunk, with the signal or exit code; a new
//!   worker replaces it and the pool stays usable (unlike `ProcessPoolExecutor`'s
//!   `BrokenProcessPool`); [`Builder::retries`] runs such a chunk again first;
//! - a task over the [per-task time-out](Builder::timeout) is killed with its worker:
//!   [`TaskError::TimedOut`];
//! - an [initializer](Builder::initializer) that fails is an error from
//!   [`Builder::build`], and a replacement that keeps failing is not restarted without end.
//!
//! Workers ignore `SIGINT` and are daemons by default: they are killed when this process
//! dies, even by SIGKILL. Dropping the pool kills them, as leaving Python's `with Pool()`
//! block does; [`close`](Pool::close) and [`join`](Pool::join) let queued work finish first.
//!
//! # Chunking
//!
//! Tasks travel in chunks. Unless [`Builder::chunksize`] (for the pool) or
//! [`Pool::chunksize`] (for one call: `pool.chunksize(100).map(f, xs)`) fixes the size, it
//! adapts:
//! the first chunk of a call holds one task; then each chunk holds as many tasks as run in
//! about 5 ms at the time per task measured so far (growing at most eightfold from one chunk
//! to the next), and never more than `ceil(left / (4 × workers))` when the number of tasks
//! left is known. Tasks of a millisecond or more thus go one by one; microsecond tasks go by
//! the thousand. A worker's death fails the tasks of its chunk, so with the default rule only
//! quick tasks share a fate.
//!
//! # Lazy input
//!
//! [`imap`](Pool::imap) and [`imap_unordered`](Pool::imap_unordered) read their input only as
//! results are taken, through a window of [`Builder::window`] chunks; an endless iterator
//! works. [`map`](Pool::map) reads its input the same way, collecting the results.
//!
//! # Callbacks
//!
//! As Python's `callback` and `error_callback` arguments, [`Pool::callback`] and
//! [`Pool::error_callback`] begin an `apply_async` / `map_async` whose result or error is
//! handed to a closure in this process, on the pool's callback thread, in order of completion;
//! a panicking callback is caught and stops nothing (see [`Call`]).
//!
//! # Progress
//!
//! The [`IMap`] iterator tells how many tasks are done and how many are left; with the
//! `progress` feature, `Pool::map_progress` draws an `indicatif` progress bar.

mod async_result;
mod builder;
mod call;
mod callback;
mod chunking;
mod error;
mod imap;
mod job;
#[cfg(feature = "progress")]
mod progress;
mod supervisor;
mod worker;

use std::borrow::Borrow;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use async_result::{AsyncResult, GetTimeoutError};
pub use builder::Builder;
pub use call::Call;
pub use callback::{Callback, ErrorCallback, NoCallback};
pub use chunking::{MAX_TASKS, TARGET};
pub use error::{PoolError, TaskError, WorkerExit};
pub use imap::IMap;

use callback::Dispatch;
use job::{Job, Sink};
use supervisor::Shared;

/// A pool of worker processes. See the [module documentation](self).
///
/// The pool is `Send` and `Sync`: several threads may submit work at once.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::pool::{Pool, TaskError};
///
/// fn risky(x: i32) -> i32 {
///     if x == 3 {
///         std::process::exit(7); // the worker dies: only task 3 fails
///     }
///     x + 1
/// }
///
/// let pool = Pool::new(2).unwrap();
/// let results: Vec<_> = pool.imap(risky, 0..6).collect();
/// assert!(matches!(results[3], Err(TaskError::WorkerDied { task: 3, .. })));
/// assert_eq!(results[5].as_ref().unwrap(), &6);
/// // The pool replaced the worker and is still usable.
/// assert_eq!(pool.apply(risky, 10).unwrap(), 11);
/// ```
pub struct Pool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    chunksize: Option<u32>,
    window: usize,
    callbacks: Arc<Dispatch>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<AsyncResult<u32>>();
};

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("workers", &self.worker_pids())
            .finish()
    }
}

impl Pool {
    /// Starts a pool of `processes` workers with the defaults (see [`Builder`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Builder::new().processes(processes).build()
    }

    /// Starts configuring a pool (the same as [`Builder::new`]).
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.shared.config.processes
    }

    /// The process ids of the current workers: those started so far (right after
    /// [`build`](Builder::build), the others may still be starting), and a replaced worker's
    /// successor under its new pid.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    /// Runs `f(arg)` on a worker and waits for its result, as Python's `apply`.
    ///
    /// # Errors
    ///
    /// The task's [`TaskError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn pid(_: ()) -> u32 {
    ///     std::process::id()
    /// }
    ///
    /// let pool = multiproc::pool::Pool::new(1).unwrap();
    /// assert_eq!(pool.apply(pid, ()).unwrap(), pool.worker_pids()[0]);
    /// ```
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg).get()
    }

    /// Starts `f(arg)` on a worker; the [`AsyncResult`] delivers it.
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> AsyncResult<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        Call::new(self).apply_async(f, arg)
    }

    /// Runs `f` on every item and returns the results in input order, as Python's `map`; fails
    /// with the first failed task's error (in input order), without waiting for the rest.
    ///
    /// The items may be the arguments themselves or anything that borrows as them
    /// (`pool.map(f, &v)` for a `v: Vec<A>`).
    ///
    /// # Errors
    ///
    /// The first failed task's [`TaskError`]. [`map_results`](Pool::map_results) keeps every
    /// result.
    pub fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        Call::new(self).map(f, items)
    }

    /// Runs `f` on every item and returns every task's result, in input order.
    pub fn map_results<A, R, I>(&self, f: fn(A) -> R, items: I) -> Vec<Result<R, TaskError>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        Call::new(self).map_results(f, items)
    }

    /// Python's `starmap`: Rust functions take their several arguments as one tuple, so this
    /// is [`map`](Pool::map) over tuples.
    ///
    /// # Errors
    ///
    /// As [`map`](Pool::map).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn add((a, b): (i32, i32)) -> i32 {
    ///     a + b
    /// }
    ///
    /// let pool = multiproc::pool::Pool::new(1).unwrap();
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    /// ```
    pub fn starmap<A, R, I>(&self, f: fn(A) -> R, items: I) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        self.map(f, items)
    }

    /// Starts `f` on every item; the [`AsyncResult`] delivers all results in input order.
    /// Idle workers read the input as they go, so it need not be collected first.
    pub fn map_async<A, R, I>(&self, f: fn(A) -> R, items: I) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: Send + 'static>,
    {
        Call::new(self).map_async(f, items)
    }

    /// [`map_async`](Pool::map_async) for functions of a tuple (see
    /// [`starmap`](Pool::starmap)).
    pub fn starmap_async<A, R, I>(&self, f: fn(A) -> R, items: I) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: Send + 'static>,
    {
        self.map_async(f, items)
    }

    /// Runs `f` on every item, yielding the results in input order as they become available;
    /// a failed task is yielded in its place. The input is read lazily (see [`IMap`]).
    pub fn imap<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> IMap<'p, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: 'p>,
    {
        Call::new(self).imap(f, items)
    }

    /// As [`imap`](Pool::imap), but yields each result as soon as it arrives, whatever its
    /// place: a slow task holds back nothing but itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = multiproc::pool::Pool::builder().processes(2).chunksize(1).build().unwrap();
    /// let mut done = pool.imap_unordered(nap, [3000, 1, 1, 1]);
    /// // The three quick naps come back while the long one still runs.
    /// assert_eq!(done.next().unwrap().unwrap(), 1);
    /// ```
    pub fn imap_unordered<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> IMap<'p, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: 'p>,
    {
        Call::new(self).imap_unordered(f, items)
    }

    /// Begins a call with its own chunk size, as Python's `chunksize` argument (see [`Call`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn pid(_: u32) -> u32 {
    ///     std::process::id()
    /// }
    ///
    /// let pool = multiproc::pool::Pool::new(2).unwrap();
    /// // One chunk of all ten tasks: one worker runs them all.
    /// let pids = pool.chunksize(10).map(pid, 0..10).unwrap();
    /// assert!(pids.iter().all(|p| *p == pids[0]));
    /// ```
    pub fn chunksize(&self, n: u32) -> Call<'_> {
        Call::new(self).chunksize(n)
    }

    /// Begins an asynchronous call whose result is handed to `f` once complete, as Python's
    /// `callback` argument (see [`Call`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// use std::sync::{Arc, Mutex};
    ///
    /// fn double(x: u64) -> u64 {
    ///     x * 2
    /// }
    ///
    /// let pool = multiproc::pool::Pool::new(2).unwrap();
    /// let sum = Arc::new(Mutex::new(0));
    /// let s = sum.clone();
    /// let r = pool
    ///     .callback(move |v: &Vec<u64>| *s.lock().unwrap() = v.iter().sum())
    ///     .map_async(double, 1..=10u64);
    /// r.wait(); // ready once the callback has run
    /// assert_eq!(*sum.lock().unwrap(), 110);
    /// ```
    pub fn callback<F>(&self, f: F) -> Call<'_, F> {
        Call::new(self).callback(f)
    }

    /// Begins an asynchronous call whose error, should it fail, is handed to `f`, as Python's
    /// `error_callback` argument (see [`Call`]).
    pub fn error_callback<F>(&self, f: F) -> Call<'_, NoCallback, F>
    where
        F: FnOnce(&TaskError) + Send + 'static,
    {
        Call::new(self).error_callback(f)
    }

    /// Takes no more work, as Python's `close`: later calls fail with
    /// [`TaskError::Closed`]. Work already submitted (including `imap` iterators still being
    /// read) runs to the end.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Kills the workers now (SIGKILL) and stops, as Python's `terminate`: unfinished tasks
    /// fail with [`TaskError::Terminated`]. Returns once the workers are gone.
    pub fn terminate(&self) {
        self.shared.terminate();
        self.join_threads();
        self.callbacks.finish();
    }

    /// Closes the pool, waits for the submitted work to finish and the workers to exit, as
    /// Python's `close()` then `join()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn one(_: ()) -> u8 {
    ///     1
    /// }
    ///
    /// let pool = multiproc::pool::Pool::new(2).unwrap();
    /// let r = pool.map_async(one, vec![(); 10]);
    /// pool.join();
    /// assert_eq!(r.get().unwrap().len(), 10);
    /// ```
    pub fn join(self) {
        self.shared.close();
        self.join_threads();
        self.callbacks.finish();
    }

    fn join_threads(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Fills a job of one task with a refusal.
fn closed<R: DeserializeOwned + Send + 'static>(job: &Arc<Job<R>>, e: &TaskError) {
    let mut st = job.lock();
    st.opened(0, 1);
    st.input_done = true;
    drop(st);
    job.fail(0, 1, e);
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}
