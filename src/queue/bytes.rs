//! [`BytesQueue`]: the queue for raw byte messages.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ring::{Fail, Wait};
use super::{GetError, Handle, PutError, QueueError, QueueOptions, QueueStats, until};

/// A queue of raw byte messages, without serde (the same queue as a [`Queue`](super::Queue), see
/// [`Queue::to_bytes_queue`](super::Queue::to_bytes_queue)).
///
/// # Examples
///
/// ```
/// let q = multiproc::queue::BytesQueue::new().unwrap();
/// q.put(b"hello").unwrap();
/// q.put(vec![7u8; 100_000]).unwrap(); // larger than a slot: streamed, or spilled (no reader yet)
/// assert_eq!(q.get().unwrap(), b"hello");
/// assert_eq!(q.get().unwrap(), vec![7u8; 100_000]);
/// ```
#[derive(Clone)]
pub struct BytesQueue {
    pub(super) handle: Handle,
}

impl fmt::Debug for BytesQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BytesQueue")
            .field("qsize", &self.qsize())
            .finish()
    }
}

impl BytesQueue {
    /// A queue with the default options.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new() -> Result<Self, QueueError> {
        QueueOptions::default().create_bytes()
    }

    /// Puts the bytes of `msg`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`PutError::Closed`] after [`close`](Self::close), handing `msg` back.
    pub fn put<B: AsRef<[u8]>>(&self, msg: B) -> Result<(), PutError<B>> {
        self.put_with(msg, Wait::Forever)
    }

    fn finish_put<B>(&self, v: B, r: Result<(), Fail>) -> Result<(), PutError<B>> {
        match r {
            Ok(()) => Ok(()),
            Err(Fail::WouldBlock) => Err(PutError::Full(v)),
            Err(Fail::TimedOut) => Err(PutError::Timeout(v)),
            Err(Fail::TooLarge(n)) => Err(PutError::TooLarge(v, n)),
            Err(Fail::Descriptors) => Err(PutError::Encode(
                v,
                crate::CodecError::Encode("cannot pass descriptors".into()),
            )),
        }
    }

    fn put_with<B: AsRef<[u8]>>(&self, msg: B, wait: Wait) -> Result<(), PutError<B>> {
        if self.handle.is_closed() {
            return Err(PutError::Closed(msg));
        }
        let r = self.handle.ring.put(msg.as_ref(), wait);
        self.finish_put(msg, r)
    }

    /// Puts `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] or [`PutError::Closed`], handing `msg` back.
    pub fn put_nowait<B: AsRef<[u8]>>(&self, msg: B) -> Result<(), PutError<B>> {
        self.put_with(msg, Wait::No)
    }

    /// Puts `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PutError::Timeout`] or [`PutError::Closed`], handing `msg` back.
    pub fn put_timeout<B: AsRef<[u8]>>(
        &self,
        msg: B,
        timeout: Duration,
    ) -> Result<(), PutError<B>> {
        self.put_with(msg, until(timeout))
    }

    /// Takes the next message, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`GetError::Closed`] after [`close`](Self::close).
    pub fn get(&self) -> Result<Vec<u8>, GetError> {
        let mut out = Vec::new();
        self.handle.get(&mut out, Wait::Forever)?;
        Ok(out)
    }

    /// Takes the next message into `out` (replacing its contents), reusing its allocation.
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`] (nothing now, with `timeout` zero), [`GetError::Timeout`],
    /// [`GetError::Closed`]. `None` waits as long as it takes.
    pub fn get_into(&self, out: &mut Vec<u8>, timeout: Option<Duration>) -> Result<(), GetError> {
        let wait = match timeout {
            None => Wait::Forever,
            Some(d) if d.is_zero() => Wait::No,
            Some(d) => until(d),
        };
        self.handle.get(out, wait)
    }

    /// Takes the next message if there is one now.
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`] or [`GetError::Closed`].
    pub fn get_nowait(&self) -> Result<Vec<u8>, GetError> {
        let mut out = Vec::new();
        self.handle.get(&mut out, Wait::No)?;
        Ok(out)
    }

    /// Takes the next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`GetError::Timeout`] or [`GetError::Closed`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        let mut out = Vec::new();
        self.handle.get(&mut out, until(timeout))?;
        Ok(out)
    }

    /// Messages in the queue; exact when no `put` or `get` is in progress.
    pub fn qsize(&self) -> usize {
        self.handle.ring.len() as usize
    }

    /// Whether the queue holds no message.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Marks this handle closed (see [`Queue::close`](super::Queue::close)).
    pub fn close(&self) {
        self.handle.closed.store(true, Ordering::Relaxed);
    }

    /// Counters over every process using the queue.
    pub fn stats(&self) -> QueueStats {
        self.handle.stats()
    }
}

impl Serialize for BytesQueue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BytesQueue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BytesQueue {
            handle: Handle::deserialize(d)?,
        })
    }
}
