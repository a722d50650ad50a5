//! [`SimpleQueue`] and [`JoinableQueue`]: Python's two other queue types, on the same ring.

use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{GetError, PutError, Queue, QueueError, QueueOptions, QueueStats, TaskDoneError};

/// A queue with only `put`, `get`, `empty` and `close`, like Python's
/// `multiprocessing.SimpleQueue`.
///
/// # Examples
///
/// ```
/// let q = multiproc::queue::SimpleQueue::new().unwrap();
/// q.put("x".to_string()).unwrap();
/// assert_eq!(q.get().unwrap(), "x");
/// assert!(q.empty());
/// ```
pub struct SimpleQueue<T>(Queue<T>);

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.0).finish()
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A queue with the default options.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new() -> Result<Self, QueueError> {
        Queue::new().map(SimpleQueue)
    }

    /// Puts `value`, waiting while the queue is full (see [`Queue::put`]).
    ///
    /// # Errors
    ///
    /// As for [`Queue::put`].
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.0.put(value)
    }

    /// Takes the next value, waiting while the queue is empty (see [`Queue::get`]).
    ///
    /// # Errors
    ///
    /// As for [`Queue::get`].
    pub fn get(&self) -> Result<T, GetError> {
        self.0.get()
    }

    /// Whether the queue holds no message.
    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    /// Marks this handle closed (see [`Queue::close`]).
    pub fn close(&self) {
        self.0.close()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Queue::deserialize(d).map(SimpleQueue)
    }
}

/// A [`Queue`] that counts unfinished tasks, like Python's `multiprocessing.JoinableQueue`:
/// every `put` adds one, every [`task_done`](Self::task_done) removes one, and
/// [`join`](Self::join) waits until none is left.
///
/// It dereferences to its [`Queue`] for everything but `put`.
///
/// # Tasks and crashes
///
/// A task is a message in the queue, or one a process got and has not yet marked done: the
/// queue counts per process what it got and what it marked done, so nothing has to be
/// undone when a process dies. [`task_done`](Self::task_done) marks done a task this process
/// got, or, if it holds none, one another live process holds (Python lets any process call
/// it). When a process that holds tasks dies (or drops its last handle) they are *released*:
/// `join` stops waiting for them, and [`QueueStats::released`] counts them. A message a dead
/// consumer had taken but not yet returned is delivered again (see the [crash
/// model](super#crash-model)), so it is a task again. So `join` never waits for the dead,
/// longer than the detection delay (about 50 ms).
///
/// # Differences from Python
///
/// Python's `task_done` succeeds whenever fewer tasks are done than were put, even before
/// any `get` (its count is one semaphore, released by `put`). Here a task is done by the
/// process that holds it, so `task_done` before any live process got a message is refused:
/// the count is kept per process so that a death has nothing to undo, and a `task_done`
/// ahead of its `get` would be a credit that no process holds. Kept in the dying process's
/// entry, it would vanish when that process exits (its task done, then undone); kept in a
/// shared word, a death could not tell the credits already spent by a later `get` from those
/// still owed, and two concurrent calls could both spend the last task, which the per-process
/// compare-and-swap prevents. A program that calls `task_done` only for what it got (the use
/// Python documents) sees no difference.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::Process;
/// use multiproc::queue::JoinableQueue;
///
/// fn worker(q: JoinableQueue<u32>) {
///     while let Ok(n) = q.get() {
///         if n == 0 {
///             q.task_done().unwrap();
///             break;
///         }
///         q.task_done().unwrap();
///     }
/// }
///
/// let q = JoinableQueue::new().unwrap();
/// let p = Process::start(worker, q.clone()).unwrap();
/// for n in [3, 2, 1, 0] {
///     q.put(n).unwrap();
/// }
/// q.join();
/// assert_eq!(q.unfinished_tasks(), 0);
/// p.join().unwrap();
/// assert!(q.task_done().is_err());
/// ```
pub struct JoinableQueue<T>(pub(super) Queue<T>);

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.0)
            .field("unfinished", &self.unfinished_tasks())
            .finish()
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.0
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one task done (Python: `task_done()`): one this process got, or else one another
    /// live process got and has not marked done.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] when no live process holds a task got and not marked done (called
    /// more times than items were got, or before any was got: see [Differences from
    /// Python](Self#differences-from-python)).
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.0.handle.ring.task_done() {
            Ok(())
        } else {
            Err(TaskDoneError)
        }
    }

    /// Waits until every task put so far is done.
    pub fn join(&self) {
        self.0.handle.ring.join(None);
    }

    /// Waits at most `timeout` until every task is done; `true` if they are.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.0.handle.ring.join(Instant::now().checked_add(timeout))
    }

    /// Tasks put and not yet done: messages in the queue, and messages got by live processes
    /// and not marked done.
    pub fn unfinished_tasks(&self) -> u64 {
        self.0.handle.ring.unfinished()
    }

    /// Counters over every process using the queue.
    pub fn stats(&self) -> QueueStats {
        self.0.stats()
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// A queue with the default options.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new() -> Result<Self, QueueError> {
        QueueOptions::default().create_joinable()
    }

    /// A queue of at most `maxsize` messages (0 means 1024).
    ///
    /// # Errors
    ///
    /// As for [`Queue::with_maxsize`].
    pub fn with_maxsize(maxsize: usize) -> Result<Self, QueueError> {
        QueueOptions::default().maxsize(maxsize).create_joinable()
    }

    /// Puts `value` (a task), waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// As for [`Queue::put`]; no task is counted then.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.0.put(value)
    }

    /// Puts `value` (a task), if there is room now.
    ///
    /// # Errors
    ///
    /// As for [`Queue::put_nowait`]; no task is counted then.
    pub fn put_nowait(&self, value: T) -> Result<(), PutError<T>> {
        self.0.put_nowait(value)
    }

    /// Puts `value` (a task), waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As for [`Queue::put_timeout`]; no task is counted then.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.0.put_timeout(value, timeout)
    }

    /// Puts `value` (a task), waiting at most until `deadline` for room.
    ///
    /// # Errors
    ///
    /// As for [`Queue::put_deadline`]; no task is counted then.
    pub fn put_deadline(&self, value: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.0.put_deadline(value, deadline)
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let q = Queue::deserialize(d)?;
        q.handle.ring.set_joinable();
        Ok(JoinableQueue(q))
    }
}
