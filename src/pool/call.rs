//! [`Call`]: the options of one call, as Python's keyword arguments `chunksize`, `callback` and
//! `error_callback`.

use std::borrow::Borrow;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::async_result::{All, AsyncResult, One, Pending, Source, submit_all};
use super::callback::{Callback, ErrorCallback, NoCallback, settle_through};
use super::error::TaskError;
use super::imap::IMap;
use super::job::{Items, Job, Order};
use super::{Pool, closed};

/// The options of one call on a [`Pool`]: begun by [`Pool::chunksize`], [`Pool::callback`] or
/// [`Pool::error_callback`], ended by the call itself, as Python's keyword arguments.
///
/// - [`chunksize`](Call::chunksize) fixes the number of tasks per chunk for this call (instead
///   of the pool's [`Builder::chunksize`](super::Builder::chunksize) or the adaptive rule);
/// - [`callback`](Call::callback) and [`error_callback`](Call::error_callback), for
///   [`apply_async`](Call::apply_async), [`map_async`](Call::map_async) and
///   [`starmap_async`](Call::starmap_async), are called in this process with a reference to
///   the result (the whole `Vec` for `map_async`) or the error (for `map_async`, the first
///   failed task's in input order), as Python's.
///
/// # Callbacks
///
/// Callbacks run on the pool's callback thread (started when the first is due), one at a time,
/// in the order the calls complete. The [`AsyncResult`] is ready once its callback has
/// returned, so `get` sees whatever the callback did. A callback should be quick: it holds up
/// the ones after it, and [`Pool::join`] and [`Pool::terminate`] (and dropping the pool) wait
/// for the callbacks of the calls they end. A callback that **panics** does not stop the
/// thread: the panic is reported by the panic hook as any panic is, the `AsyncResult` still
/// gives the tasks' result, and later callbacks run (where a Python callback that raises
/// kills the pool's result thread, and every later `get` waits forever).
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use std::sync::mpsc;
/// use multiproc::pool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn odd_only(x: u64) -> u64 {
///     assert!(x % 2 == 1, "{x} is even");
///     x
/// }
///
/// let pool = Pool::new(2).unwrap();
/// // Python's `pool.map(square, xs, chunksize=100)`:
/// let v = pool.chunksize(100).map(square, 0..1000u64).unwrap();
/// assert_eq!(v[999], 998_001);
///
/// // Python's `apply_async(..., callback=..., error_callback=...)`:
/// let (tx, rx) = mpsc::channel();
/// let ok = tx.clone();
/// let r = pool
///     .callback(move |v: &u64| ok.send(format!("got {v}")).unwrap())
///     .error_callback(move |e| tx.send(format!("failed: {e}")).unwrap())
///     .apply_async(odd_only, 2);
/// assert!(r.get().is_err());
/// assert!(rx.recv().unwrap().starts_with("failed: "));
/// ```
#[must_use = "a Call does nothing until one of its calls (map, apply_async, …) is made"]
pub struct Call<'p, C = NoCallback, E = NoCallback> {
    pool: &'p Pool,
    chunksize: Option<u32>,
    callback: C,
    error_callback: E,
}

impl<C, E> fmt::Debug for Call<'_, C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("chunksize", &self.chunksize)
            .finish_non_exhaustive()
    }
}

impl<'p> Call<'p> {
    /// A call with the pool's defaults.
    pub(super) fn new(pool: &'p Pool) -> Self {
        Call {
            pool,
            chunksize: pool.chunksize,
            callback: NoCallback,
            error_callback: NoCallback,
        }
    }

    /// As [`Pool::map`], with this call's chunk size.
    ///
    /// # Errors
    ///
    /// As [`Pool::map`].
    pub fn map<A, R, I>(self, f: fn(A) -> R, items: I) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        self.imap(f, items).collect_ok()
    }

    /// As [`Pool::map_results`], with this call's chunk size.
    pub fn map_results<A, R, I>(self, f: fn(A) -> R, items: I) -> Vec<Result<R, TaskError>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        self.imap(f, items).collect()
    }

    /// As [`Pool::starmap`], with this call's chunk size.
    ///
    /// # Errors
    ///
    /// As [`Pool::map`].
    pub fn starmap<A, R, I>(self, f: fn(A) -> R, items: I) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        self.map(f, items)
    }

    /// As [`Pool::imap`], with this call's chunk size.
    pub fn imap<A, R, I>(self, f: fn(A) -> R, items: I) -> IMap<'p, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: 'p>,
    {
        self.imap_in(Order::Input, f, items)
    }

    /// As [`Pool::imap_unordered`], with this call's chunk size.
    pub fn imap_unordered<A, R, I>(self, f: fn(A) -> R, items: I) -> IMap<'p, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: 'p>,
    {
        self.imap_in(Order::Completion, f, items)
    }

    fn imap_in<A, R, I>(self, order: Order, f: fn(A) -> R, items: I) -> IMap<'p, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: 'p>,
    {
        IMap::new(
            self.pool,
            Job::new(order),
            Box::new(Items::new(f, items.into_iter())),
            self.chunksize,
        )
    }
}

impl<'p, C, E> Call<'p, C, E> {
    /// Fixes the number of tasks per chunk for this call, as Python's `chunksize` argument
    /// (`0` counts as 1).
    pub fn chunksize(mut self, n: u32) -> Self {
        self.chunksize = Some(n.max(1));
        self
    }

    /// Calls `f` with a reference to the result once it is complete, on the pool's callback
    /// thread (see [Callbacks](Call#callbacks)), as Python's `callback`.
    pub fn callback<F>(self, f: F) -> Call<'p, F, E> {
        Call {
            pool: self.pool,
            chunksize: self.chunksize,
            callback: f,
            error_callback: self.error_callback,
        }
    }

    /// Calls `f` with the error when the call fails, on the pool's callback thread (see
    /// [Callbacks](Call#callbacks)), as Python's `error_callback`.
    pub fn error_callback<F>(self, f: F) -> Call<'p, C, F>
    where
        F: FnOnce(&TaskError) + Send + 'static,
    {
        Call {
            pool: self.pool,
            chunksize: self.chunksize,
            callback: self.callback,
            error_callback: f,
        }
    }

    /// As [`Pool::apply_async`], with this call's callbacks.
    pub fn apply_async<A, R>(self, f: fn(A) -> R, arg: A) -> AsyncResult<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: Callback<R>,
        E: ErrorCallback,
    {
        let job = Job::new(Order::Input);
        let shared = &self.pool.shared;
        match shared.begin_job() {
            Ok(()) => {
                submit_all(shared, &job, &mut Items::new(f, std::iter::once(arg)));
                shared.end_job();
            }
            Err(e) => closed(&job, &e),
        }
        self.finish(job.clone(), Box::new(One(All(job))))
    }

    /// As [`Pool::map_async`], with this call's chunk size and callbacks.
    pub fn map_async<A, R, I>(self, f: fn(A) -> R, items: I) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: Send + 'static>,
        C: Callback<Vec<R>>,
        E: ErrorCallback,
    {
        let job = Job::new(Order::Input);
        let shared = &self.pool.shared;
        match shared.begin_job() {
            Ok(()) => shared.add_refill(Arc::new(Source {
                job: job.clone(),
                feed: Mutex::new(Box::new(Items::new(f, items.into_iter()))),
                chunksize: self.chunksize,
                workers: self.pool.processes(),
            })),
            Err(e) => closed(&job, &e),
        }
        self.finish(job.clone(), Box::new(All(job)))
    }

    /// As [`Pool::starmap_async`], with this call's chunk size and callbacks.
    pub fn starmap_async<A, R, I>(self, f: fn(A) -> R, items: I) -> AsyncResult<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>, IntoIter: Send + 'static>,
        C: Callback<Vec<R>>,
        E: ErrorCallback,
    {
        self.map_async(f, items)
    }

    /// The `AsyncResult` of `job`, through the callbacks when there are any.
    fn finish<R, T>(self, job: Arc<Job<R>>, pending: Box<dyn Pending<T>>) -> AsyncResult<T>
    where
        R: DeserializeOwned + Send + 'static,
        T: Send + 'static,
        C: Callback<T>,
        E: ErrorCallback,
    {
        if self.callbacks_are_none::<T>() {
            return AsyncResult::new(pending);
        }
        let called = settle_through(
            pending,
            |hook| job.when_done(hook),
            self.pool.callbacks.clone(),
            self.callback,
            self.error_callback,
        );
        AsyncResult::new(Box::new(called))
    }

    /// Whether neither callback was given (the result then needs no callback thread).
    fn callbacks_are_none<T>(&self) -> bool
    where
        C: Callback<T>,
        E: ErrorCallback,
    {
        use std::any::TypeId;
        TypeId::of::<C>() == TypeId::of::<NoCallback>()
            && TypeId::of::<E>() == TypeId::of::<NoCallback>()
    }
}
