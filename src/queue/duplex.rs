//! [`Duplex`]: a two-way channel between two processes through shared memory.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ring::{AttachFail, Fail, Ring, Wait};
use super::{QueueError, QueueOptions, with_buf};
use crate::CodecError;

/// How long a waiting end sleeps before it checks whether its peer is still there.
const CHECK: Duration = Duration::from_millis(50);
/// `Ends::owner` of an end that was dropped.
const CLOSED: u32 = u32::MAX;

/// Why a [`Duplex`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DuplexError {
    /// The other end was dropped, or its process died, and nothing is left to receive.
    #[error("the other end of the channel is gone")]
    Disconnected,
    /// Nothing arrived before the deadline.
    #[error("timed out")]
    Timeout,
    /// The value could not be encoded; nothing was sent.
    #[error("cannot encode message: {0}")]
    Encode(#[source] CodecError),
    /// A message arrived but does not decode as the requested type (it is consumed).
    #[error("cannot decode message: {0}")]
    Decode(#[source] CodecError),
    /// The message (of `len` bytes) is larger than the channel carries (a segment made by
    /// another program may set a maximum message size); nothing was sent, or it was consumed.
    #[error("message of {len} bytes too large for the channel")]
    TooLarge {
        /// The message's length.
        len: u64,
    },
}

/// One end of a two-way channel through shared memory, made by [`duplex`]: the fast
/// counterpart of a [`pipe`](crate::pipe) between two processes.
///
/// Each direction is a queue in its own segment; an end sends on one and receives from the
/// other. A sender records the CPU it runs on; a receiver with nothing to receive yields at
/// once if that is its own CPU (the sender cannot run while it spins) and spins for a few tens
/// of microseconds otherwise, then sleeps. An end is a value
/// that travels (as a process argument, or on a connection). When the other end is dropped, or
/// its process dies, `recv` returns what was already sent, then [`DuplexError::Disconnected`]
/// (within about 50 ms of the death).
///
/// Unlike a [`Connection`](crate::Connection), both ends must be processes of this crate (no
/// Python peer), and a send to a peer that died without dropping its end succeeds until the
/// channel is full.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::Process;
/// use multiproc::queue::{Duplex, duplex};
///
/// fn echo(end: Duplex) {
///     while let Ok(n) = end.recv::<u64>() {
///         end.send(&(n + 1)).unwrap();
///     }
/// }
///
/// let (mine, theirs) = duplex().unwrap();
/// let child = Process::start(echo, theirs).unwrap();
/// mine.send(&41u64).unwrap();
/// assert_eq!(mine.recv::<u64>().unwrap(), 42);
/// drop(mine); // the child's `recv` now reports the disconnection
/// child.join().unwrap();
/// ```
pub struct Duplex {
    /// End 0 → end 1; holds the end table.
    first: Arc<Ring>,
    /// End 1 → end 0.
    second: Arc<Ring>,
    side: usize,
}

/// A channel of two [`Duplex`] ends.
///
/// # Errors
///
/// When the system cannot create the segments.
pub fn duplex() -> Result<(Duplex, Duplex), QueueError> {
    let opts = QueueOptions::default();
    let (first, second) = (opts.create_bytes()?, opts.create_bytes()?);
    let ends = first.handle.ring.ends();
    let me = u32::from(first.handle.ring.me);
    ends.owner[0].store(me, Release);
    ends.owner[1].store(me, Release);
    first.handle.ring.cpu_aware.store(true, Relaxed);
    second.handle.ring.cpu_aware.store(true, Relaxed);
    let end = |side| Duplex {
        first: Arc::clone(&first.handle.ring),
        second: Arc::clone(&second.handle.ring),
        side,
    };
    Ok((end(0), end(1)))
}

impl Duplex {
    fn tx(&self) -> &Ring {
        if self.side == 0 {
            &self.first
        } else {
            &self.second
        }
    }

    fn rx(&self) -> &Ring {
        if self.side == 0 {
            &self.second
        } else {
            &self.first
        }
    }

    /// Whether the other end was dropped, or its process died (and no copy of it is on its
    /// way to another process).
    fn peer_gone(&self) -> bool {
        let ends = self.first.ends();
        let peer = 1 - self.side;
        if ends.pending[peer].load(Acquire) > 0 {
            return false;
        }
        match ends.owner[peer].load(Acquire) {
            CLOSED => true,
            owner => !self.first.alive(owner as u16),
        }
    }

    /// Sends the bytes of `msg`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`DuplexError::Disconnected`] when the other end is gone.
    pub fn send_bytes(&self, msg: &[u8]) -> Result<(), DuplexError> {
        let peer = 1 - self.side;
        if self.first.ends().owner[peer].load(Relaxed) == CLOSED && self.peer_gone() {
            return Err(DuplexError::Disconnected);
        }
        self.tx().note_producer_cpu();
        loop {
            match self.tx().put(msg, Wait::Within(CHECK)) {
                Ok(()) => return Ok(()),
                Err(Fail::TooLarge(len)) => return Err(DuplexError::TooLarge { len }),
                Err(Fail::WouldBlock | Fail::TimedOut | Fail::Descriptors) => {
                    if self.peer_gone() {
                        return Err(DuplexError::Disconnected);
                    }
                }
            }
        }
    }

    /// Sends `value`, encoded with the crate's codec.
    ///
    /// # Errors
    ///
    /// [`DuplexError::Encode`] when the value cannot be encoded (a descriptor-carrying object
    /// cannot travel through shared memory); otherwise as for [`send_bytes`](Self::send_bytes).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), DuplexError> {
        with_buf(|buf| {
            crate::codec::encode_plain_into(value, buf).map_err(DuplexError::Encode)?;
            self.send_bytes(buf)
        })
    }

    /// Receives the next message into `out` (replacing its contents), waiting at most until
    /// `deadline` (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// [`DuplexError::Disconnected`] when nothing is left and the other end is gone;
    /// [`DuplexError::Timeout`] at the deadline.
    pub fn recv_bytes_into(
        &self,
        out: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<(), DuplexError> {
        loop {
            let wait = match deadline {
                None => Wait::Within(CHECK),
                Some(d) => Wait::Until(d.min(Instant::now() + CHECK)),
            };
            match self.rx().get(out, wait) {
                Ok(()) => return Ok(()),
                Err(Fail::TooLarge(len)) => return Err(DuplexError::TooLarge { len }),
                Err(Fail::WouldBlock | Fail::TimedOut | Fail::Descriptors) => {
                    if self.peer_gone() {
                        // What was sent before the end went away is still delivered.
                        return match self.rx().get(out, Wait::No) {
                            Ok(()) => Ok(()),
                            Err(_) => Err(DuplexError::Disconnected),
                        };
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(DuplexError::Timeout);
                    }
                }
            }
        }
    }

    /// Receives the next message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As for [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, DuplexError> {
        let mut out = Vec::new();
        self.recv_bytes_into(&mut out, None)?;
        Ok(out)
    }

    /// Receives the next message as a `T`.
    ///
    /// # Errors
    ///
    /// [`DuplexError::Decode`] when it is not a `T`; otherwise as for
    /// [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, DuplexError> {
        with_buf(|buf| {
            self.recv_bytes_into(buf, None)?;
            crate::codec::decode(buf, Vec::new()).map_err(DuplexError::Decode)
        })
    }

    /// Receives the next message as a `T`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Self::recv).
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, DuplexError> {
        with_buf(|buf| {
            self.recv_bytes_into(buf, Instant::now().checked_add(timeout))?;
            crate::codec::decode(buf, Vec::new()).map_err(DuplexError::Decode)
        })
    }

    /// Whether a message is waiting (waiting up to `timeout` for one; `None`: as long as it
    /// takes). `true` also when the other end is gone, so that the next `recv` reports it, as
    /// Python's `Connection.poll` does at end of file.
    pub fn poll(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if self.rx().len() > 0 || self.peer_gone() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

impl Drop for Duplex {
    fn drop(&mut self) {
        let ends = self.first.ends();
        let me = u32::from(self.first.me);
        if ends.owner[self.side]
            .compare_exchange(me, CLOSED, AcqRel, Relaxed)
            .is_ok()
        {
            // The peer may be asleep waiting for us.
            self.tx().wake_consumers();
        }
    }
}

impl fmt::Debug for Duplex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Duplex").field("end", &self.side).finish()
    }
}

struct FdRef<'a>(BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::codec::serialize_fd(self.0, s)
    }
}

struct Fd(OwnedFd);

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::codec::deserialize_fd(d).map(Fd)
    }
}

impl Serialize for Duplex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Counted as on its way until a process receives it: meanwhile, the other end does not
        // report a disconnection when this copy is dropped.
        self.first.ends().pending[self.side].fetch_add(1, AcqRel);
        (
            FdRef(self.first.fd()),
            FdRef(self.second.fd()),
            self.side as u8,
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Duplex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (first, second, side) = <(Fd, Fd, u8)>::deserialize(d)?;
        if side > 1 {
            return Err(D::Error::custom(crate::codec::reason(
                "not a duplex channel end".into(),
            )));
        }
        let attach = |fd: Fd| {
            Ring::attach(fd.0, None).map(Arc::new).map_err(|e| {
                let e = match e {
                    AttachFail::Os(e) => QueueError::Os(e),
                    AttachFail::Bad(_) => QueueError::NotAQueue,
                    AttachFail::TableFull => QueueError::TableFull,
                };
                D::Error::custom(crate::codec::reason(e.to_string()))
            })
        };
        let end = Duplex {
            first: attach(first)?,
            second: attach(second)?,
            side: usize::from(side),
        };
        end.first.cpu_aware.store(true, Relaxed);
        end.second.cpu_aware.store(true, Relaxed);
        let ends = end.first.ends();
        ends.owner[end.side].store(u32::from(end.first.me), Release);
        let _ = ends.pending[end.side].fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
        Ok(end)
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Duplex>();
};
