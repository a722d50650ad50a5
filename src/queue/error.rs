//! Errors of queue operations. A `put` that does not happen hands the value back.

use std::fmt;

use crate::CodecError;

/// Why a `put` did not happen; holds the value that was not put.
///
/// [`put`](super::Queue::put) returns `Closed` and `Encode`; [`put_nowait`](super::Queue::put_nowait)
/// also `Full`; [`put_timeout`](super::Queue::put_timeout) and
/// [`put_deadline`](super::Queue::put_deadline) also `Timeout`.
pub enum PutError<T> {
    /// The queue is full (Python: `queue.Full`).
    Full(T),
    /// The queue was still full at the deadline (Python: `queue.Full`).
    Timeout(T),
    /// This handle was [`close`](super::Queue::close)d (Python: `ValueError`).
    Closed(T),
    /// The value could not be encoded; nothing was put.
    Encode(T, CodecError),
    /// The message (of this many bytes, encoded) is larger than the queue's maximum message
    /// size ([`QueueOptions::max_message_size`](super::QueueOptions::max_message_size)).
    TooLarge(T, u64),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v) | PutError::Timeout(v) | PutError::Closed(v) => v,
            PutError::Encode(v, _) | PutError::TooLarge(v, _) => v,
        }
    }

    /// Whether the queue was full (now or until the deadline).
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_) | PutError::Timeout(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Encode(_, e) => write!(f, "Encode(.., {e:?})"),
            PutError::TooLarge(_, n) => write!(f, "TooLarge(.., {n})"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("putting on a full queue"),
            PutError::Timeout(_) => f.write_str("timed out putting on a full queue"),
            PutError::Closed(_) => f.write_str("putting on a closed queue"),
            PutError::Encode(_, e) => write!(f, "cannot put: {e}"),
            PutError::TooLarge(_, n) => {
                write!(
                    f,
                    "message of {n} bytes above the queue's maximum message size"
                )
            }
        }
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PutError::Encode(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Why a `get` returned no value.
///
/// [`get`](super::Queue::get) returns `Closed` and `Decode`;
/// [`get_nowait`](super::Queue::get_nowait) also `Empty`;
/// [`get_timeout`](super::Queue::get_timeout) and [`get_deadline`](super::Queue::get_deadline)
/// also `Timeout`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The queue is empty (Python: `queue.Empty`).
    #[error("getting from an empty queue")]
    Empty,
    /// The queue was still empty at the deadline (Python: `queue.Empty`).
    #[error("timed out getting from an empty queue")]
    Timeout,
    /// This handle was [`close`](super::Queue::close)d (Python: `ValueError`).
    #[error("getting from a closed queue")]
    Closed,
    /// A message was taken but does not decode as the queue's type (it is consumed).
    #[error("cannot decode a message from the queue: {0}")]
    Decode(#[source] CodecError),
    /// A message declared more bytes than the queue's maximum message size: it was consumed
    /// without being read, and counted in [`QueueStats::rejected`](super::QueueStats::rejected).
    #[error("refused a message of {len} bytes, above the queue's maximum message size")]
    TooLarge {
        /// The length the message declared.
        len: u64,
    },
}

/// `task_done` was called more times than items were put (Python: `ValueError: task_done()
/// called too many times`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task_done called too many times")]
pub struct TaskDoneError;

/// Why a queue could not be created or received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// An option is out of range.
    #[error("invalid queue option: {0}")]
    InvalidArgument(&'static str),
    /// The descriptor is not a queue segment of this crate (or a queue of another layout
    /// version).
    #[error("not a multiproc queue segment")]
    NotAQueue,
    /// Every entry of the queue's process table is held by a live process.
    #[error("the queue's process table is full")]
    TableFull,
    /// The system refused (out of memory, out of descriptors, ...).
    #[error("cannot create or map the queue")]
    Os(#[source] std::io::Error),
}
