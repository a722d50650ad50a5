//! [`IMap`]: the streaming results of `imap` and `imap_unordered`, read through a bounded
//! window of the input.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Pool;
use super::error::TaskError;
use super::job::{Feed, Job, next_chunk};

/// The results of [`Pool::imap`] (in input order) or [`Pool::imap_unordered`] (as they
/// complete), one per input item, each a `Result` of its own: a failed task is yielded in its
/// place and the iteration goes on.
///
/// The input is read lazily: at most [`window`](super::Builder::window) chunks are encoded
/// and not yet yielded, so an endless input streams. The iterator borrows the pool, which
/// therefore cannot be joined or dropped while results are pending.
///
/// Dropping the iterator early stops reading the input; chunks already sent still run, and
/// their results are discarded.
///
/// # Progress
///
/// [`completed`](IMap::completed), [`taken`](IMap::taken) and [`left`](IMap::left) tell how
/// far the work is, for a progress display.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::pool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2).unwrap();
/// // An endless input: only what the window admits is ever read.
/// let first: Vec<u64> = pool.imap(square, 1..).take(4).map(Result::unwrap).collect();
/// assert_eq!(first, [1, 4, 9, 16]);
///
/// let mut it = pool.imap(square, 0..10u64);
/// assert_eq!(it.left(), Some(10));
/// assert_eq!(it.next().unwrap().unwrap(), 0);
/// assert_eq!(it.taken(), 1);
/// ```
pub struct IMap<'p, R> {
    pool: &'p Pool,
    job: Arc<Job<R>>,
    feed: Option<Box<dyn Feed + 'p>>,
    total: Option<u64>,
}

impl<R> fmt::Debug for IMap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("completed", &self.completed())
            .field("taken", &self.taken())
            .field("total", &self.total)
            .finish()
    }
}

impl<'p, R: DeserializeOwned + Send + 'static> IMap<'p, R> {
    pub(super) fn new(pool: &'p Pool, job: Arc<Job<R>>, feed: Box<dyn Feed + 'p>) -> Self {
        let total = feed.left();
        let feed = match pool.shared.begin_job() {
            Ok(()) => Some(feed),
            Err(e) => {
                // A closed pool: one error in place of the results.
                super::closed(&job, &e);
                None
            }
        };
        IMap {
            pool,
            job,
            feed,
            total,
        }
    }
}

impl<R> IMap<'_, R> {
    /// How many tasks have finished (their results arrived), taken or not.
    pub fn completed(&self) -> u64 {
        self.job.lock().completed
    }

    /// How many results this iterator has yielded.
    pub fn taken(&self) -> u64 {
        self.job.lock().taken
    }

    /// How many results are still to come, when the input's length is known (from its
    /// `size_hint`, or once it is exhausted).
    pub fn left(&self) -> Option<u64> {
        let st = self.job.lock();
        if st.input_done {
            return Some(st.submitted - st.taken);
        }
        self.total.map(|t| t.saturating_sub(st.taken))
    }

    /// The number of tasks, when known.
    pub fn total(&self) -> Option<u64> {
        let st = self.job.lock();
        if st.input_done {
            Some(st.submitted)
        } else {
            self.total
        }
    }

    fn close_feed(&mut self) {
        if self.feed.take().is_some() {
            self.pool.shared.end_job();
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Iterator for IMap<'_, R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let st = self.job.lock();
            let mut st = st;
            if let Some(r) = st.pop() {
                return Some(r);
            }
            if st.finished() {
                drop(st);
                self.close_feed();
                return None;
            }
            let room = st.open < self.pool.window;
            if let (true, Some(feed)) = (room, self.feed.as_mut()) {
                drop(st);
                match next_chunk(
                    &self.job,
                    &mut **feed,
                    self.pool.chunksize,
                    self.pool.processes(),
                ) {
                    Some(Some(chunk)) => self.pool.shared.submit(chunk),
                    Some(None) => {}
                    None => self.close_feed(),
                }
                continue;
            }
            drop(self.job.wait(st, None));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.left().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => (n, Some(n)),
            None => (0, None),
        }
    }
}

impl<R> Drop for IMap<'_, R> {
    fn drop(&mut self) {
        self.close_feed();
    }
}
