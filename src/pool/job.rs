//! One call's tasks (a job): encoding its input into chunks, and collecting its results.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::ser::SerializeSeq;

use super::chunking::Estimate;
use super::error::{Fault, TaskError};
use super::worker::{Answer, TaskEntry};
use crate::{Descriptor, codec};

/// Where a chunk's outcome goes: the job it came from, whatever its result type.
pub(super) trait Sink: Send + Sync {
    /// The worker answered the chunk of tasks `first..first + n`.
    fn complete(&self, first: u64, n: u32, answer: Answer<'_>, nanos: u64);
    /// The chunk of tasks `first..first + n` failed as a whole with `error` (given for its
    /// first task).
    fn fail(&self, first: u64, n: u32, error: &TaskError);
}

/// Tasks on their way to a worker.
pub(super) struct Chunk {
    pub(super) job: Arc<dyn Sink>,
    pub(super) first: u64,
    pub(super) n: u32,
    pub(super) entry: TaskEntry,
    pub(super) data: Vec<u8>,
    pub(super) fds: Vec<Descriptor>,
    /// How many times the chunk has run before (for retries).
    pub(super) tries: u32,
}

impl Chunk {
    pub(super) fn fail(self, error: &TaskError) {
        self.job
            .fail(self.first, self.n, &error.for_task(self.first));
    }
}

/// A chunk's input, encoded: the tasks `first..first + n`.
pub(super) struct Encoded {
    pub(super) first: u64,
    pub(super) n: u32,
    pub(super) data: Result<(Vec<u8>, Vec<Descriptor>), String>,
}

/// The input side of a job, whatever its item type.
pub(super) trait Feed {
    /// Encodes the next `n` tasks at most; `None` when the input is exhausted.
    fn take(&mut self, n: u32) -> Option<Encoded>;
    /// How many tasks are left, when the input knows.
    fn left(&self) -> Option<u64>;
    /// The function the tasks run.
    fn entry(&self) -> TaskEntry;
}

/// A [`Feed`] over an iterator of items that serialize as `A`.
pub(super) struct Items<A, I> {
    iter: I,
    entry: TaskEntry,
    next: u64,
    /// Encoded bytes per item in the last chunk, to size the next chunk's buffer.
    bytes_per_item: usize,
    _a: PhantomData<fn(A)>,
}

/// Encoded inputs of finished chunks, for the next chunks to encode into: their memory is
/// mapped and sized already (a new buffer of a large chunk costs a page fault per 4 KiB, and
/// its growth copies).
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// How many spare buffers are kept, and the largest kept.
const SPARE_COUNT: usize = 8;
const SPARE_BYTES: usize = 16 << 20;

/// Keeps a finished chunk's input buffer for reuse.
pub(super) fn recycle(buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_BYTES {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < SPARE_COUNT {
        spare.push(buf);
    }
}

/// An empty buffer for at least `bytes`: a spare one when there is one.
fn buffer(bytes: usize) -> Vec<u8> {
    let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut buf = spare.unwrap_or_default();
    buf.clear();
    buf.reserve(bytes);
    buf
}

impl<A, I> Items<A, I>
where
    A: Serialize + DeserializeOwned,
    I: Iterator<Item: Borrow<A>>,
{
    pub(super) fn new<R: Serialize>(f: fn(A) -> R, iter: I) -> Self {
        Items {
            iter,
            entry: TaskEntry::of(f),
            next: 0,
            bytes_per_item: 0,
            _a: PhantomData,
        }
    }
}

/// Items serialized as a sequence of `A`s.
struct SeqOf<'a, A, T>(&'a [T], PhantomData<fn(A)>);

impl<A: Serialize, T: Borrow<A>> Serialize for SeqOf<'_, A, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(item.borrow())?;
        }
        seq.end()
    }
}

impl<A, I> Feed for Items<A, I>
where
    A: Serialize + DeserializeOwned,
    I: Iterator<Item: Borrow<A>>,
{
    fn take(&mut self, n: u32) -> Option<Encoded> {
        let items: Vec<I::Item> = self.iter.by_ref().take(n as usize).collect();
        if items.is_empty() {
            return None;
        }
        let first = self.next;
        let n = items.len() as u32;
        self.next += u64::from(n);
        // Sized by the last chunk (plus a little: the length, and a chunk slightly denser than
        // the last), so that encoding seldom grows the buffer.
        let guess = self
            .bytes_per_item
            .saturating_mul(n as usize + n as usize / 8)
            + 16;
        let mut buf = buffer(guess);
        let data = codec::encode_into(&SeqOf(&items, PhantomData), &mut buf)
            .map(|fds| {
                self.bytes_per_item = buf.len().div_ceil(n as usize);
                let fds = fds.into_iter().map(Descriptor::from).collect();
                (buf, fds)
            })
            .map_err(|e| format!("cannot encode the arguments: {e}"));
        Some(Encoded { first, n, data })
    }

    fn left(&self) -> Option<u64> {
        match self.iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo as u64),
            _ => None,
        }
    }

    fn entry(&self) -> TaskEntry {
        self.entry
    }
}

/// How a job hands its results out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// In input order (`map`, `imap`).
    Input,
    /// As they complete (`imap_unordered`).
    Completion,
}

/// A result as a job keeps it (the error boxed: results are moved around in bulk).
pub(super) type Stored<R> = Result<R, Box<TaskError>>;

/// A chunk's results.
pub(super) enum Results<R> {
    /// Every task succeeded (the common case, kept as plain values: no per-task tag).
    Ok(Vec<R>),
    /// Some failed.
    Mixed(Vec<Stored<R>>),
}

impl<R> Results<R> {
    fn len(&self) -> usize {
        match self {
            Results::Ok(v) => v.len(),
            Results::Mixed(v) => v.len(),
        }
    }

    fn errors(&self) -> usize {
        match self {
            Results::Ok(_) => 0,
            Results::Mixed(v) => v.iter().filter(|r| r.is_err()).count(),
        }
    }

    /// The results one by one.
    pub(super) fn into_iter(self) -> ResultsIter<R> {
        match self {
            Results::Ok(v) => ResultsIter::Ok(v.into_iter()),
            Results::Mixed(v) => ResultsIter::Mixed(v.into_iter()),
        }
    }

    /// Appends the values to `out`, or returns the first error.
    pub(super) fn append_to(self, out: &mut Vec<R>) -> Result<(), TaskError> {
        match self {
            Results::Ok(mut v) => out.append(&mut v),
            Results::Mixed(v) => {
                for r in v {
                    out.push(r.map_err(|e| *e)?);
                }
            }
        }
        Ok(())
    }
}

/// [`Results`], one by one.
pub(super) enum ResultsIter<R> {
    Ok(std::vec::IntoIter<R>),
    Mixed(std::vec::IntoIter<Stored<R>>),
}

impl<R> Iterator for ResultsIter<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ResultsIter::Ok(it) => it.next().map(Ok),
            ResultsIter::Mixed(it) => it.next().map(|r| r.map_err(|e| *e)),
        }
    }
}

/// What a worker sends back for a chunk: the values alone when every task succeeded.
#[derive(serde::Deserialize)]
pub(super) enum WireResults<R> {
    Ok(Vec<R>),
    Mixed(Vec<Result<R, Fault>>),
}

/// An open chunk of an input-order job, and its results once they arrive.
struct Record<R> {
    first: u64,
    results: Option<Results<R>>,
}

/// A job's results, and what the chunking rule and the window need.
pub(super) struct State<R> {
    order: Order,
    /// Input order: the open chunks, in input order.
    records: VecDeque<Record<R>>,
    /// Completion order: finished chunks' results not yet taken.
    batches: VecDeque<Results<R>>,
    /// Chunks encoded and not yet taken.
    pub(super) open: usize,
    /// Tasks encoded so far.
    pub(super) submitted: u64,
    /// Tasks whose result has arrived.
    pub(super) completed: u64,
    /// Tasks whose result was taken.
    pub(super) taken: u64,
    /// Results that are errors, among those arrived.
    pub(super) errors: u64,
    /// The input is exhausted: `submitted` is the number of tasks.
    pub(super) input_done: bool,
    pub(super) estimate: Estimate,
    /// Called once, outside the lock, when every result has arrived (callbacks).
    on_done: Option<Box<dyn FnOnce() + Send>>,
}

/// A job: its state and a condition variable signalled whenever results arrive.
pub(super) struct Job<R> {
    state: Mutex<State<R>>,
    pub(super) arrived: Condvar,
}

impl<R> Job<R> {
    pub(super) fn new(order: Order) -> Arc<Self> {
        Arc::new(Job {
            state: Mutex::new(State {
                order,
                records: VecDeque::new(),
                batches: VecDeque::new(),
                open: 0,
                submitted: 0,
                completed: 0,
                taken: 0,
                errors: 0,
                input_done: false,
                estimate: Estimate::default(),
                on_done: None,
            }),
            arrived: Condvar::new(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for news, until `deadline` (`None`: without limit).
    pub(super) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State<R>>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State<R>> {
        match deadline {
            None => self.arrived.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                self.arrived
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }

    /// Runs `hook` once every result has arrived: now if they have, otherwise from the thread
    /// that completes the job.
    pub(super) fn when_done(&self, hook: Box<dyn FnOnce() + Send>) {
        let mut st = self.lock();
        if st.all_arrived() {
            drop(st);
            hook();
        } else {
            st.on_done = Some(hook);
        }
    }

    /// Wakes the waiters, and runs the completion hook if the job just completed.
    pub(super) fn announce(&self, mut st: MutexGuard<'_, State<R>>) {
        let hook = if st.all_arrived() {
            st.on_done.take()
        } else {
            None
        };
        drop(st);
        self.arrived.notify_all();
        if let Some(hook) = hook {
            hook();
        }
    }

    fn store(&self, first: u64, results: Results<R>, nanos: Option<u64>) {
        let mut st = self.lock();
        let n = results.len() as u32;
        if let Some(nanos) = nanos {
            st.estimate.record(n, nanos);
        }
        st.completed += u64::from(n);
        st.errors += results.errors() as u64;
        match st.order {
            Order::Input => {
                let at = st.records.partition_point(|r| r.first < first);
                match st.records.get_mut(at) {
                    Some(rec) if rec.first == first => rec.results = Some(results),
                    _ => return,
                }
            }
            Order::Completion => st.batches.push_back(results),
        }
        self.announce(st);
    }
}

impl<R: DeserializeOwned + Send + 'static> Sink for Job<R> {
    fn complete(&self, first: u64, n: u32, answer: Answer<'_>, nanos: u64) {
        let decoded = answer.and_then(|(bytes, fds): (&[u8], Vec<OwnedFd>)| {
            let w: WireResults<R> =
                codec::decode(bytes, fds).map_err(|e| format!("cannot decode the results: {e}"))?;
            let r = match w {
                WireResults::Ok(v) => Results::Ok(v),
                // (`enumerate`, not `zip`: the conversion then reuses the vector's memory.)
                WireResults::Mixed(v) => Results::Mixed(
                    v.into_iter()
                        .enumerate()
                        .map(|(k, r)| r.map_err(|f| Box::new(f.into_error(first + k as u64))))
                        .collect(),
                ),
            };
            if r.len() == n as usize {
                Ok(r)
            } else {
                Err(format!("{} results for {n} tasks", r.len()))
            }
        });
        let results = match decoded {
            Ok(r) => r,
            Err(message) => Results::Mixed(
                (first..first + u64::from(n))
                    .map(|task| {
                        Err(Box::new(TaskError::Codec {
                            task,
                            message: message.clone(),
                        }))
                    })
                    .collect(),
            ),
        };
        self.store(first, results, Some(nanos));
    }

    fn fail(&self, first: u64, n: u32, error: &TaskError) {
        let results = (first..first + u64::from(n))
            .map(|i| Err(Box::new(error.for_task(i))))
            .collect();
        self.store(first, Results::Mixed(results), None);
    }
}

impl<R> State<R> {
    /// Records a chunk of tasks `first..first + n` as encoded (and soon on its way).
    pub(super) fn opened(&mut self, first: u64, n: u32) {
        self.open += 1;
        self.submitted = self.submitted.max(first + u64::from(n));
        if self.order == Order::Input {
            self.records.push_back(Record {
                first,
                results: None,
            });
        }
    }

    /// The next chunk's results to hand out, if they have arrived.
    pub(super) fn pop_batch(&mut self) -> Option<Results<R>> {
        let batch = match self.order {
            Order::Input => {
                self.records.front()?.results.as_ref()?;
                self.records.pop_front()?.results?
            }
            Order::Completion => self.batches.pop_front()?,
        };
        self.open -= 1;
        self.taken += batch.len() as u64;
        Some(batch)
    }

    /// Whether every task has been handed out.
    pub(super) fn finished(&self) -> bool {
        self.input_done && self.taken == self.submitted
    }

    /// Whether every task's result has arrived.
    pub(super) fn all_arrived(&self) -> bool {
        self.input_done && self.completed == self.submitted
    }
}

/// Encodes the next chunk of `feed` for `job`, sized by the job's estimate (or `fixed`), and
/// records it as open. `None` when the input is exhausted (the job then knows its size). A
/// chunk whose input did not encode is failed at once and not returned.
pub(super) fn next_chunk<R: DeserializeOwned + Send + 'static>(
    job: &Arc<Job<R>>,
    feed: &mut dyn Feed,
    fixed: Option<u32>,
    workers: usize,
) -> Option<Option<Chunk>> {
    let n = match fixed {
        Some(n) => n.max(1),
        None => job.lock().estimate.next(feed.left(), workers),
    };
    let Some(enc) = feed.take(n) else {
        let mut st = job.lock();
        st.input_done = true;
        job.announce(st);
        return None;
    };
    job.lock().opened(enc.first, enc.n);
    match enc.data {
        Ok((data, fds)) => Some(Some(Chunk {
            job: job.clone(),
            first: enc.first,
            n: enc.n,
            entry: feed.entry(),
            data,
            fds,
            tries: 0,
        })),
        Err(message) => {
            job.fail(
                enc.first,
                enc.n,
                &TaskError::Codec {
                    task: enc.first,
                    message,
                },
            );
            Some(None)
        }
    }
}
