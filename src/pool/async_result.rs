//! [`AsyncResult`]: the pending result of `apply_async` and `map_async`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::error::TaskError;
use super::job::{Feed, Job, Sink, next_chunk};
use super::supervisor::{Refill, Shared};

/// What an [`AsyncResult`] waits on.
pub(super) trait Pending<T>: Send + Sync {
    /// Waits until the result is complete or `deadline` passes; whether it is complete.
    fn wait_until(&self, deadline: Option<Instant>) -> bool;
    /// Whether any task failed (once complete).
    fn failed(&self) -> bool;
    /// Takes the complete result.
    fn take(&self) -> Result<T, TaskError>;
}

/// The results of a job, collected whole.
pub(super) struct All<R>(pub(super) Arc<Job<R>>);

impl<R: DeserializeOwned + Send + 'static> Pending<Vec<R>> for All<R> {
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let mut st = self.0.lock();
        loop {
            if st.all_arrived() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            st = self.0.wait(st, deadline);
        }
    }

    fn failed(&self) -> bool {
        self.0.lock().errors > 0
    }

    fn take(&self) -> Result<Vec<R>, TaskError> {
        let mut st = self.0.lock();
        let mut out = Vec::with_capacity(st.submitted as usize);
        while let Some(batch) = st.pop_batch() {
            batch.append_to(&mut out)?;
        }
        Ok(out)
    }
}

/// The single result of a job of one task.
pub(super) struct One<R>(pub(super) All<R>);

impl<R: DeserializeOwned + Send + 'static> Pending<R> for One<R> {
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.0.wait_until(deadline)
    }

    fn failed(&self) -> bool {
        self.0.failed()
    }

    fn take(&self) -> Result<R, TaskError> {
        let mut st = self.0.0.lock();
        match st.pop_batch().and_then(|b| b.into_iter().next()) {
            Some(r) => r,
            None => Err(TaskError::Closed),
        }
    }
}

/// A `map_async` input that idle workers pull chunks from.
pub(super) struct Source<R> {
    pub(super) job: Arc<Job<R>>,
    pub(super) feed: Mutex<Box<dyn Feed + Send>>,
    pub(super) chunksize: Option<u32>,
    pub(super) workers: usize,
}

impl<R: DeserializeOwned + Send + 'static> Refill for Source<R> {
    fn next(&self) -> Option<super::job::Chunk> {
        let mut feed = self.feed.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match next_chunk(&self.job, &mut **feed, self.chunksize, self.workers) {
                Some(Some(c)) => return Some(c),
                Some(None) => continue,
                None => return None,
            }
        }
    }

    fn abandon(&self, error: &TaskError) {
        // Whatever is not yet encoded will not be: the call ends with one failed task after
        // the last one sent.
        let _feed = self.feed.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = self.job.lock();
        if st.input_done {
            return;
        }
        let next = st.submitted;
        st.opened(next, 1);
        st.input_done = true;
        drop(st);
        self.job.fail(next, 1, &error.for_task(next));
    }
}

/// Submits every chunk of a small, already-known input at once (`apply_async`).
pub(super) fn submit_all<R: DeserializeOwned + Send + 'static>(
    shared: &Shared,
    job: &Arc<Job<R>>,
    feed: &mut dyn Feed,
) {
    while let Some(c) = next_chunk(job, feed, Some(u32::MAX), 1) {
        if let Some(c) = c {
            shared.submit(c);
        }
    }
}

/// A result that will be ready later: from [`Pool::apply_async`](super::Pool::apply_async)
/// (one task) or [`Pool::map_async`](super::Pool::map_async) (all of a call's tasks, in
/// input order), as Python's `AsyncResult`.
///
/// It does not borrow the pool: it can go to another thread. If the pool is terminated or
/// dropped first, the unfinished tasks fail with
/// [`TaskError::Terminated`](super::TaskError::Terminated).
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use std::time::Duration;
/// use multiproc::pool::Pool;
///
/// fn slow_square(x: u64) -> u64 {
///     std::thread::sleep(Duration::from_millis(20));
///     x * x
/// }
///
/// let pool = Pool::new(2).unwrap();
/// let one = pool.apply_async(slow_square, 7);
/// let many = pool.map_async(slow_square, vec![1, 2, 3]);
/// many.wait();
/// assert!(many.ready());
/// assert_eq!(many.successful(), Some(true));
/// assert_eq!(many.get().unwrap(), [1, 4, 9]);
/// assert_eq!(one.get_timeout(Duration::from_secs(60)).unwrap(), 49);
/// ```
pub struct AsyncResult<T> {
    inner: Box<dyn Pending<T>>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> AsyncResult<T> {
    pub(super) fn new(inner: Box<dyn Pending<T>>) -> Self {
        AsyncResult { inner }
    }

    /// Waits for the result and returns it.
    ///
    /// # Errors
    ///
    /// The failed task's [`TaskError`] (for `map_async`, the first failed task in input
    /// order).
    pub fn get(self) -> Result<T, TaskError> {
        self.inner.wait_until(None);
        self.inner.take()
    }

    /// Waits at most `timeout` for the result.
    ///
    /// # Errors
    ///
    /// [`GetTimeoutError::Timeout`] hands the `AsyncResult` back when it is not ready;
    /// [`GetTimeoutError::Failed`] as [`get`](AsyncResult::get).
    pub fn get_timeout(self, timeout: Duration) -> Result<T, GetTimeoutError<T>> {
        if !self.inner.wait_until(Instant::now().checked_add(timeout)) {
            return Err(GetTimeoutError::Timeout(self));
        }
        self.inner.take().map_err(GetTimeoutError::Failed)
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        self.inner.wait_until(None);
    }

    /// Waits at most `timeout`; whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.inner.wait_until(Instant::now().checked_add(timeout))
    }

    /// Whether the result is ready.
    pub fn ready(&self) -> bool {
        self.inner.wait_until(Some(Instant::now()))
    }

    /// Whether every task succeeded: `None` while not ready (where Python raises
    /// `ValueError`).
    pub fn successful(&self) -> Option<bool> {
        self.ready().then(|| !self.inner.failed())
    }
}

/// [`AsyncResult::get_timeout`] failed.
#[derive(thiserror::Error)]
pub enum GetTimeoutError<T> {
    /// The result is not ready yet; here is the `AsyncResult` back.
    #[error("timed out waiting for the result")]
    Timeout(AsyncResult<T>),
    /// A task failed.
    #[error(transparent)]
    Failed(TaskError),
}

impl<T> fmt::Debug for GetTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetTimeoutError::Timeout(r) => f.debug_tuple("Timeout").field(r).finish(),
            GetTimeoutError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}
