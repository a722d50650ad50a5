//! [`IMap`]: the streaming results of `imap` and `imap_unordered`, read through a bounded
//! window of the input.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Pool;
use super::error::TaskError;
use super::job::{Feed, Job, Results, ResultsIter, next_chunk};

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
    chunksize: Option<u32>,
    total: Option<u64>,
    /// Results taken from the job and not yet yielded (taken a batch at a time, under one
    /// lock).
    ready: ResultsIter<R>,
    yielded: u64,
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
    pub(super) fn new(
        pool: &'p Pool,
        job: Arc<Job<R>>,
        feed: Box<dyn Feed + 'p>,
        chunksize: Option<u32>,
    ) -> Self {
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
            chunksize,
            total,
            ready: ResultsIter::Ok(Vec::new().into_iter()),
            yielded: 0,
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
        self.yielded
    }

    /// How many results are still to come, when the input's length is known (from its
    /// `size_hint`, or once it is exhausted).
    pub fn left(&self) -> Option<u64> {
        let st = self.job.lock();
        if st.input_done {
            return Some(st.submitted - self.yielded);
        }
        self.total.map(|t| t.saturating_sub(self.yielded))
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
        if let Some(r) = self.ready.next() {
            self.yielded += 1;
            return Some(r);
        }
        let batch = self.next_batch()?;
        self.ready = batch.into_iter();
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.left().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => (n, Some(n)),
            None => (0, None),
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> IMap<'_, R> {
    /// The next chunk's results, reading the input as the window opens; `None` at the end.
    fn next_batch(&mut self) -> Option<Results<R>> {
        loop {
            let mut st = self.job.lock();
            let batch = st.pop_batch();
            // Fill the window before handing out what arrived, so that the workers stay busy
            // while the caller works through it.
            let room = st.open < self.pool.window;
            if let (true, Some(feed)) = (room, self.feed.as_mut()) {
                drop(st);
                match next_chunk(
                    &self.job,
                    &mut **feed,
                    self.chunksize,
                    self.pool.processes(),
                ) {
                    Some(Some(chunk)) => self.pool.shared.submit(chunk),
                    Some(None) => {}
                    None => self.close_feed(),
                }
                match batch {
                    Some(b) => return Some(b),
                    None => continue,
                }
            }
            if batch.is_some() {
                return batch;
            }
            if st.finished() {
                drop(st);
                self.close_feed();
                return None;
            }
            drop(self.job.wait(st, None));
        }
    }

    /// Every remaining result in order, or the first error (for `map`).
    pub(super) fn collect_ok(mut self) -> Result<Vec<R>, TaskError> {
        let mut out = Vec::with_capacity(self.size_hint().0);
        for r in self.ready.by_ref() {
            out.push(r?);
        }
        while let Some(batch) = self.next_batch() {
            batch.append_to(&mut out)?;
        }
        self.yielded = out.len() as u64;
        Ok(out)
    }
}

impl<R> Drop for IMap<'_, R> {
    fn drop(&mut self) {
        self.close_feed();
    }
}
