//! Process- and thread-safe queues in shared memory: [`Queue`], [`SimpleQueue`],
//! [`JoinableQueue`], [`BytesQueue`] for raw bytes, and the two-way [`Duplex`] channel.
//!
//! A queue is one anonymous shared segment (`memfd`). There is no helper thread and no lock:
//! producers and consumers claim slots with compare-and-swap, and sleep on futexes in the
//! segment when there is nothing to do. Many producers and many consumers may use one queue;
//! the messages of one producer (one thread putting one after another) come out in the order
//! they were put. Messages of any size can be put: small ones (up to the slot payload, about 1
//! KiB by default) are copied into a slot; larger ones keep their place in the order with a
//! slot and stream through one of four lanes of a separate area of the segment while the
//! consumer copies them out, or, when no lane is free or no consumer comes to read, spill to
//! the segment's file beyond its mapped part, so that no `put` ever needs a reader.
//!
//! A queue is a value that travels: as an argument of [`Process::start`](crate::Process),
//! inside a message on a [`Connection`](crate::Connection), or inside a message of another
//! queue (values that carry descriptors go through the queue's side channel of Unix datagram
//! sockets, see below). Every handle is `Clone + Send + Sync`.
//!
//! # Examples
//!
//! ```
//! # multiproc::init();
//! use multiproc::Process;
//! use multiproc::queue::Queue;
//!
//! fn producer(q: Queue<(u32, String)>) {
//!     for i in 0..3 {
//!         q.put((i, format!("message {i}"))).unwrap();
//!     }
//! }
//!
//! let q = Queue::new().unwrap();
//! let child = Process::start(producer, q.clone()).unwrap();
//! for i in 0..3 {
//!     assert_eq!(q.get().unwrap(), (i, format!("message {i}")));
//! }
//! child.join().unwrap();
//! assert!(q.empty());
//! ```
//!
//! # Memory layout
//!
//! ```text
//! offset 0     Header (64 B): magic "MPROCQUE", layout version, table entries, slots,
//!              slot size, stream size, maxsize, total size, maximum message size
//! 64           Control, one 64-byte line each: tail | head | items futex | space futex |
//!              stream futex | 4 × stream lane {token, written, read, the producer's
//!              buffer address, pid, start time and pid namespace, direct flag} | orphans |
//!              spill end | descriptor number | direct copies on |
//!              counters (two lines, with the joinable flag) | join futex | duplex end table
//! ...          Process table: entries × 64 B {state: pid << 1 | 1 or 0, put count, got count,
//!              tasks done, gets in progress (joinable queues), direct copies}
//! ...          Ring: slots × slot size {stamp: u64, len: u32, kind: u32, payload}
//! ...          Stream area: 4 lanes, each carrying the bytes of one large message in flight
//! (64 KiB-aligned, unmapped) Spilled messages, each in an extent of the file of its own,
//!              reached with pread/pwrite and freed with fallocate(PUNCH_HOLE) once read
//! ```
//!
//! A receiver reads the header with `pread` before mapping anything, and maps the segment only
//! if it is sealed against resizing, its sizes are within limits and its file is exactly as
//! large as the header says.
//!
//! # Slots
//!
//! Positions (`tail` for producers, `head` for consumers) only grow; position `p` uses slot
//! `p mod slots`. Each slot's stamp is `p << 18 | state << 16 | owner`, where `owner` names a
//! process-table entry:
//!
//! | stamp | meaning | next |
//! |---|---|---|
//! | `Empty(p)` | free for the producer of position `p` | a producer swaps it to `Writing(p, me)`, then moves `tail` to `p + 1` |
//! | `Writing(p, w)` | `w` is copying the message in | `w` stores `Ready(p)` |
//! | `Ready(p)` | holds the message of `p` | a consumer swaps it to `Reading(p, me)`, then moves `head` to `p + 1` |
//! | `Reading(p, r)` | `r` is copying the message out | `r` stores `Empty(p + slots)`, then returns it |
//!
//! The slot is claimed *before* the position moves, and whoever finds a claimed slot at a
//! position helps move the position on; so no position is ever taken without an owner that
//! can be checked. This is Dmitry Vyukov's bounded MPMC queue, with an owner in the stamp.
//!
//! A large message's slot holds a reference to a stream lane instead of bytes. Each lane has a
//! token (`idle(n)`, or `active(n, writer, reader)`): a producer takes a free lane, publishes
//! its slot, and streams the bytes; the consumer that takes the slot attaches to the lane's
//! token as reader, frees the slot, and copies the bytes out as they come; it ends the message
//! (`idle(n + 1)`). Each large message also has an extent of the file reserved (address space
//! only): when every lane is taken its producer writes the bytes there before it publishes
//! the slot, and when its lane is full and no reader has attached, it writes them there, then
//! a mark after them, and lets the lane go (if a reader attached meanwhile, it streams after
//! all). The file only grows (it is sealed against shrinking, so no mapping can fault), and
//! the memory of a spilled message is freed once it is read.
//!
//! With [`QueueOptions::direct_copy`], a message of 1 MiB or more is also *offered* for a
//! direct copy: its producer writes the
//! address of its bytes and its identity (pid, start time, pid namespace) in its lane. The
//! reader that attaches checks that identity against the running process (through a pidfd,
//! so that a reused pid cannot pass), sets the lane's direct flag, takes what was already
//! streamed from the lane, and copies the rest straight from the producer's memory with
//! `process_vm_readv`: one copy instead of two. The producer, seeing the flag, stops
//! streaming and waits until the reader ends the message, so its bytes stay valid. The bytes
//! are kept only if the producer is still running after the copy. When the kernel refuses the
//! read (another user, an undumpable process, Yama's `ptrace_scope` letting only ancestors
//! read their descendants, a sandbox), the reader clears the flag and the message streams as
//! before; [`QueueStats::direct`] counts the direct copies.
//!
//! # Crash model
//!
//! Every process using a queue holds an entry of the process table, backed by a lock on one
//! byte of the segment's file, taken through a file description of its own (an
//! open-file-description lock). The kernel drops it when the process dies, however it dies;
//! any other process can test it. A waiter that finds a slot or the stream held by a process
//! whose lock is gone *reaps* that process: it takes the dead one's lock (so that only one
//! reaper runs, and no new process takes the entry meanwhile) and undoes what it left:
//!
//! - a slot it was **writing** is skipped (`Empty(p + slots)`): the message was never put, and
//!   its `put` never returned. Counted in [`QueueStats::abandoned`].
//! - a slot it was **reading** is handed back (`Ready(p)`) and delivered again, to another
//!   consumer: the message had not yet reached the dead reader's caller. Counted in
//!   [`QueueStats::redelivered`]. It may come out after messages its producer put later.
//! - a **large message it was reading** (its bytes partly copied out) is lost; the producer's
//!   `put` returns as if delivered. Counted in [`QueueStats::dropped`].
//! - a large message it was **writing** is skipped by its reader (or by the next consumer).
//!   Counted in [`QueueStats::abandoned`]; its spilled bytes, if any, are freed. One it had
//!   spilled whole (the mark written) is delivered, though its `put` never returned.
//! - a **spilled message it had copied out** is lost, freed, and counted in
//!   [`QueueStats::dropped`].
//! - a large message it was **copying straight from its producer** is lost, like one it was
//!   reading from a lane: its producer finds the reader dead, and its `put` returns.
//!   Counted in [`QueueStats::dropped`].
//! - a producer that dies while its reader copies straight from its memory (its `put` has not
//!   returned) loses the message: the reader discards what it copied. Counted in
//!   [`QueueStats::abandoned`].
//!
//! So every `put` that returned `Ok` is delivered exactly once, or counted as dropped; the only
//! other loss is a consumer killed between the moment its `get` freed the slot and the moment
//! its caller did something with the value. No torn message is ever delivered.
//!
//! A [`JoinableQueue`] keeps no count of its own that a death could leave wrong: its
//! unfinished tasks are the messages in the ring, plus, per live process-table entry, the
//! `get`s in progress and the messages got and not marked done. An entry that is reaped (or
//! left) takes its tasks with it: they are released, counted in [`QueueStats::released`],
//! and `join` stops waiting for them.
//!
//! Waiters spin for about a microsecond, then alternate yields (for a peer on the same CPU)
//! with longer spins (for a peer on another CPU), then sleep on a futex; asleep, they wake
//! every 50 ms to check the liveness of the processes they wait on. A dead producer or stream
//! holder therefore delays the others by at most about 50 ms (a few microseconds when the
//! waiter is still spinning). A message handed back from a dead reader is found by the next
//! such check, or when producers come round the ring to its slot. A process created
//! with `fork` that inherited a queue handle shares its parent's liveness lock: the parent
//! counts as alive until both have exited.
//!
//! A [`JoinableQueue`] whose producer died while streaming a large message that it had
//! already published keeps counting that message until a consumer takes it (and skips it).
//!
//! # Descriptors in messages
//!
//! A typed queue carries, beside its segment, a connected pair of Unix datagram sockets. The
//! descriptors of a value (a queue, a connection, ...) go there as `SCM_RIGHTS`, under a
//! number that the message carries at its end; the consumer takes them out by number. While
//! in the channel they belong to the kernel: the sender may exit. A consumer killed while it
//! holds another message's descriptors (in the few instructions where it sends them back to
//! the end of the channel) loses them: that message's `get` fails with
//! [`GetError::Decode`]. A producer killed between sending its descriptors and publishing its
//! message leaves them in the channel until the queue is gone. [`BytesQueue`] and [`Duplex`]
//! have no side channel.
//!
//! # Trust
//!
//! Whoever holds a queue can write its segment. A hostile process can corrupt or invent
//! messages and stall the queue, but cannot make another process read or write outside the
//! segment: every length and offset read from it is bounded before use. Decoding a message is
//! as safe as decoding bytes from a socket.
//!
//! # Differences from Python multiprocessing
//!
//! - No feeder thread: `put` copies the message into shared memory and returns; an error (an
//!   unencodable value) is reported by `put` itself, never lost in a background thread.
//! - A `put` on a full queue waits (Python's queues are unbounded unless given a `maxsize`);
//!   the default capacity is 1024 messages ([`QueueOptions::maxsize`]).
//! - `qsize`, `empty` and `full` are exact whenever no `put` or `get` is in progress.
//! - A producer or consumer killed at any moment does not break the queue (see [Crash
//!   model](#crash-model)); in Python it can hang every other producer.
//! - `close` marks this handle closed: its later `put`s and `get`s fail with `Closed`. There is
//!   no `join_thread` or `cancel_join_thread`: there is no thread.
//! - Large messages (above the slot payload, 1072 bytes by default) stream through the four
//!   lanes of the stream area when a consumer reads them as they come, and otherwise spill to
//!   memory of the segment's file: like Python's feeder thread, a `put` never waits for a
//!   reader, only for a free slot (`maxsize`). The memory they take is bounded by `maxsize`
//!   times the largest message ([`QueueOptions::max_message_size`] bounds that).
//! - [`JoinableQueue::task_done`] marks done a task that was got (by this process, or else by
//!   another live one); Python also accepts it for a task still in the queue. Tasks of a
//!   consumer that dies are released instead of blocking `join` forever.
//! - An optional maximum message size ([`QueueOptions::max_message_size`]) is checked by
//!   producers and consumers alike.

mod bytes;
mod duplex;
mod error;
mod fault;
mod joinable;
mod options;
mod raw;
mod ring;
mod side;
mod stream;
mod tasks;
mod wait;

pub use bytes::BytesQueue;
pub use duplex::{Duplex, DuplexError, duplex};
pub use error::{GetError, PutError, QueueError, TaskDoneError};
pub use joinable::{JoinableQueue, SimpleQueue};
pub use options::QueueOptions;

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CodecError;
use ring::{AttachFail, Fail, Ring, Wait};

/// Test support (debug builds only): the next queue operation of this process that reaches
/// the named point kills the process with `SIGKILL` there. Points: 1 a producer's slot claimed,
/// 2 a consumer's slot taken, 3 the stream taken by a large put, 4 a large put's first piece
/// written, 5 a large get's first piece read, 6 a consumer's slot taken, the head not yet moved,
/// 7 a large message spilled to the file (not yet published, or its lane not yet let go),
/// 8 a spilled message copied out (its memory and slot not yet freed), 9 the side channel of
/// descriptors locked, 10 a message's descriptors sent (the message not yet put), 11 another
/// message's descriptors taken out of the side channel (not yet sent back), 12 a large
/// message copied straight from its producer's memory (not yet ended), 13 a producer waiting
/// while its reader copies straight from its memory; 14 (for [`__stall_at`]) a reader about
/// to copy straight from its producer's memory.
#[cfg(debug_assertions)]
#[doc(hidden)]
pub fn __die_at(point: u32) {
    ring::fault::die_at(1 << point);
}

/// Test support (debug builds only): every queue operation of this process that reaches
/// `point` (see [`__die_at`]) sleeps there for a third of a second.
#[cfg(debug_assertions)]
#[doc(hidden)]
pub fn __stall_at(point: u32) {
    ring::fault::stall_at(1 << point);
}

/// Test support (debug builds only): as [`__die_at`], at whichever of `points` comes first.
#[cfg(debug_assertions)]
#[doc(hidden)]
pub fn __die_at_any(points: &[u32]) {
    ring::fault::die_at(points.iter().fold(0, |m, p| m | 1 << p));
}

const DEFAULT_SLOTS: u64 = 1024;
const DEFAULT_SLOT_SIZE: u64 = 1088;
const DEFAULT_STREAM: u64 = 1 << 20;
const DEFAULT_MEMBERS: u32 = 128;

/// Counters of a queue, over all the processes that use it (see [`Queue::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Messages put.
    pub put: u64,
    /// Messages got.
    pub got: u64,
    /// Messages whose producer died (or, for a large message, gave up at its deadline) before
    /// the message was complete: never delivered, and their `put` did not return `Ok`.
    pub abandoned: u64,
    /// Messages whose consumer died while copying a large message out: lost after their `put`
    /// returned `Ok`.
    pub dropped: u64,
    /// Messages whose consumer died before the message reached its caller: delivered again.
    pub redelivered: u64,
    /// [`JoinableQueue`] tasks got by a process that died (or let go of the queue) without
    /// marking them done: [`join`](JoinableQueue::join) no longer waits for them.
    pub released: u64,
    /// Messages a consumer refused because they declared more bytes than the maximum message
    /// size ([`GetError::TooLarge`]).
    pub rejected: u64,
    /// Large messages (1 MiB or more) that their consumer copied straight from their
    /// producer's memory: one copy instead of two ([`QueueOptions::direct_copy`]).
    pub direct: u64,
}

/// A handle: the attachment (shared by clones) and this handle's closed flag.
struct Handle {
    ring: Arc<Ring>,
    closed: AtomicBool,
}

impl Handle {
    fn new(ring: Arc<Ring>) -> Self {
        Handle {
            ring,
            closed: AtomicBool::new(false),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn put<B>(&self, value: B, bytes: &[u8], wait: Wait) -> Result<(), PutError<B>> {
        if self.is_closed() {
            return Err(PutError::Closed(value));
        }
        match self.ring.put(bytes, wait) {
            Ok(()) => Ok(()),
            Err(Fail::WouldBlock) => Err(PutError::Full(value)),
            Err(Fail::TimedOut) => Err(PutError::Timeout(value)),
            Err(Fail::TooLarge(n)) => Err(PutError::TooLarge(value, n)),
            Err(Fail::Descriptors) => Err(PutError::Encode(
                value,
                CodecError::Encode("cannot pass descriptors through this queue".into()),
            )),
        }
    }

    /// Puts a message whose value carries descriptors.
    fn put_fds<B>(
        &self,
        value: B,
        bytes: &mut Vec<u8>,
        fds: &[OwnedFd],
        wait: Wait,
    ) -> Result<(), PutError<B>> {
        if self.is_closed() {
            return Err(PutError::Closed(value));
        }
        if !self.ring.has_side() {
            return Err(PutError::Encode(
                value,
                CodecError::Encode("this queue cannot carry descriptors".into()),
            ));
        }
        match self.ring.put_with_fds(bytes, fds, wait) {
            Ok(()) => Ok(()),
            Err(Fail::WouldBlock) => Err(PutError::Full(value)),
            Err(Fail::TimedOut) => Err(PutError::Timeout(value)),
            Err(Fail::TooLarge(n)) => Err(PutError::TooLarge(value, n)),
            Err(Fail::Descriptors) => Err(PutError::Encode(
                value,
                CodecError::Encode("the system refused to pass the descriptors".into()),
            )),
        }
    }

    fn get(&self, out: &mut Vec<u8>, wait: Wait) -> Result<(), GetError> {
        self.get_fds(out, None, wait)
    }

    fn get_fds(
        &self,
        out: &mut Vec<u8>,
        fds: Option<&mut Vec<OwnedFd>>,
        wait: Wait,
    ) -> Result<(), GetError> {
        if self.is_closed() {
            return Err(GetError::Closed);
        }
        self.ring.get_msg(out, fds, wait).map_err(|e| match e {
            Fail::WouldBlock => GetError::Empty,
            Fail::TimedOut => GetError::Timeout,
            Fail::TooLarge(len) => GetError::TooLarge { len },
            Fail::Descriptors => GetError::Decode(CodecError::Decode(
                "the message's descriptors were lost with a process killed holding them".into(),
            )),
        })
    }

    fn stats(&self) -> QueueStats {
        let t = self.ring.totals();
        QueueStats {
            put: t.put,
            got: t.got,
            abandoned: t.abandoned,
            dropped: t.dropped,
            redelivered: t.redelivered,
            released: t.released,
            rejected: t.rejected,
            direct: t.direct,
        }
    }

    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let side = self.ring.side_fds().map(|(tx, rx)| (FdRef(tx), FdRef(rx)));
        (FdRef(self.ring.fd()), side).serialize(s)
    }

    fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(2, HandleVisitor)
    }
}

/// Reads a handle: the segment's descriptor, then its side channel's, if any. A descriptor
/// that is not a queue segment is reported as such, whatever follows it.
struct HandleVisitor;

impl<'de> serde::de::Visitor<'de> for HandleVisitor {
    type Value = Handle;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a queue")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Handle, A::Error> {
        let fd: FdOwned = seq
            .next_element()?
            .ok_or_else(|| A::Error::custom("a queue without its segment"))?;
        let side = seq.next_element::<Option<(FdOwned, FdOwned)>>();
        let (side, rest) = match side {
            Ok(s) => (s.flatten(), Ok(())),
            Err(e) => (None, Err(e)),
        };
        let side = side.map(|(tx, rx)| side::Side::from_fds(tx.0, rx.0));
        let handle = Ring::attach(fd.0, side)
            .map(|r| Handle::new(Arc::new(r)))
            .map_err(|e| {
                let e = match e {
                    AttachFail::Bad(raw::BadSegment::Os(e)) | AttachFail::Os(e) => {
                        QueueError::Os(e)
                    }
                    AttachFail::Bad(_) => QueueError::NotAQueue,
                    AttachFail::TableFull => QueueError::TableFull,
                };
                A::Error::custom(crate::codec::reason(e.to_string()))
            })?;
        rest.map(|()| handle)
    }
}

/// A descriptor to serialize as an index into the message's descriptor list.
struct FdRef<'a>(BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::codec::serialize_fd(self.0, s)
    }
}

/// A descriptor received by index.
struct FdOwned(OwnedFd);

impl<'de> Deserialize<'de> for FdOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::codec::deserialize_fd(d).map(FdOwned)
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Handle::new(Arc::clone(&self.ring))
    }
}

fn until(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

thread_local! {
    /// Encoding and decoding buffers, kept between calls.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (a fresh one if it is in use already).
fn with_buf<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = BUF
        .with(|b| b.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
        .unwrap_or_default();
    buf.clear();
    let r = f(&mut buf);
    if buf.capacity() <= 1 << 20 {
        BUF.with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                *b = buf;
            }
        });
    }
    r
}

/// A multi-producer, multi-consumer queue of `T` between processes and threads, like Python's
/// `multiprocessing.Queue`.
///
/// Values travel as serde values, encoded with the crate's codec (postcard); a
/// `Queue<Object>` carries Python-like data and prints it as Python does. Objects that carry a
/// descriptor (a [`Connection`](crate::Connection), another queue, ...) travel too, their
/// descriptors through the queue's side channel: a `Queue<Queue<u32>>` works, and the sender
/// may exit before the message is got. See the [module documentation](self) for the layout,
/// the crash model and the differences from Python.
///
/// ```
/// use multiproc::queue::Queue;
///
/// let outer: Queue<Queue<u32>> = Queue::new().unwrap();
/// let inner = Queue::new().unwrap();
/// inner.put(7).unwrap();
/// outer.put(inner).unwrap();
/// assert_eq!(outer.get().unwrap().get().unwrap(), 7);
/// ```
///
/// `Clone` gives another handle to the same queue (with its own [`close`](Self::close) flag);
/// serializing it (as a process argument, or on a connection) sends the queue.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::queue::{GetError, Queue};
///
/// let q: Queue<String> = Queue::with_maxsize(2).unwrap();
/// q.put("a".into()).unwrap();
/// q.put("b".into()).unwrap();
/// assert!(q.full());
/// assert_eq!(q.put_nowait("c".into()).unwrap_err().into_inner(), "c");
/// assert_eq!(q.get().unwrap(), "a");
/// assert_eq!(q.qsize(), 1);
/// assert_eq!(q.get_timeout(Duration::from_millis(1)).unwrap(), "b");
/// assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
/// ```
pub struct Queue<T> {
    handle: Handle,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            handle: self.handle.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.handle.is_closed())
            .finish()
    }
}

impl Queue<()> {
    /// Options for a new queue (size, slot and stream sizes).
    ///
    /// ```
    /// use multiproc::queue::Queue;
    ///
    /// let q = Queue::options().maxsize(10).inline_size(64).create::<u64>().unwrap();
    /// q.put(7).unwrap();
    /// assert_eq!(q.get().unwrap(), 7);
    /// ```
    pub fn options() -> QueueOptions {
        QueueOptions::default()
    }
}

impl<T> Queue<T> {
    /// A queue with the default options (up to 1024 messages).
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new() -> Result<Self, QueueError> {
        QueueOptions::default().create()
    }

    /// A queue of at most `maxsize` messages (Python: `Queue(maxsize)`; 0 means 1024).
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidArgument`] above 2^24; otherwise as for [`new`](Self::new).
    pub fn with_maxsize(maxsize: usize) -> Result<Self, QueueError> {
        QueueOptions::default().maxsize(maxsize).create()
    }

    /// Messages in the queue (Python: `qsize()`); exact when no `put` or `get` is in progress.
    pub fn qsize(&self) -> usize {
        self.handle.ring.len() as usize
    }

    /// Whether the queue holds no message.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` messages.
    pub fn full(&self) -> bool {
        self.qsize() as u64 >= self.handle.ring.geometry().maxsize
    }

    /// The most messages the queue holds.
    pub fn maxsize(&self) -> usize {
        self.handle.ring.geometry().maxsize as usize
    }

    /// Marks this handle closed: its later `put`s and `get`s fail with `Closed`. Other
    /// handles (clones, other processes) are not affected; the messages stay in the queue.
    pub fn close(&self) {
        self.handle.closed.store(true, Ordering::Relaxed);
    }

    /// Whether [`close`](Self::close) was called on this handle.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Counters over every process using the queue.
    ///
    /// ```
    /// let q = multiproc::queue::Queue::new().unwrap();
    /// q.put(1u8).unwrap();
    /// q.get().unwrap();
    /// let s = q.stats();
    /// assert_eq!((s.put, s.got, s.dropped), (1, 1, 0));
    /// ```
    pub fn stats(&self) -> QueueStats {
        self.handle.stats()
    }

    /// The same queue, for raw bytes (the codec's encoding of `T`).
    pub fn to_bytes_queue(&self) -> BytesQueue {
        BytesQueue {
            handle: self.handle.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_with(&self, value: T, wait: Wait) -> Result<(), PutError<T>> {
        with_buf(|buf| match crate::codec::encode_into(&value, buf) {
            Err(e) => Err(PutError::Encode(value, e)),
            Ok(fds) if fds.is_empty() => self.handle.put(value, buf, wait),
            Ok(fds) => self.handle.put_fds(value, buf, &fds, wait),
        })
    }

    fn get_with(&self, wait: Wait) -> Result<T, GetError> {
        with_buf(|buf| {
            let mut fds = Vec::new();
            self.handle.get_fds(buf, Some(&mut fds), wait)?;
            crate::codec::decode(buf, fds).map_err(GetError::Decode)
        })
    }

    /// Puts `value`, waiting while the queue is full.
    ///
    /// A large value (encoded above the slot payload) streams to a consumer, or spills to the
    /// segment's file when none reads it (see the [module documentation](self#slots)).
    ///
    /// # Errors
    ///
    /// [`PutError::Closed`] after [`close`](Self::close); [`PutError::Encode`] when the value
    /// cannot be encoded; [`PutError::TooLarge`] above the maximum message size. The value
    /// comes back.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Wait::Forever)
    }

    /// Puts `value` if there is room now.
    ///
    /// # Errors
    ///
    /// [`PutError::Full`], and as for [`put`](Self::put).
    pub fn put_nowait(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Wait::No)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PutError::Timeout`], and as for [`put`](Self::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(value, until(timeout))
    }

    /// Puts `value`, waiting at most until `deadline` for room.
    ///
    /// # Errors
    ///
    /// As for [`put_timeout`](Self::put_timeout).
    pub fn put_deadline(&self, value: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.put_with(value, Wait::Until(deadline))
    }

    /// Takes the next value, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`GetError::Closed`] after [`close`](Self::close); [`GetError::Decode`] when the
    /// message is not a `T` (it is consumed).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Wait::Forever)
    }

    /// Takes the next value if there is one now.
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`], and as for [`get`](Self::get).
    pub fn get_nowait(&self) -> Result<T, GetError> {
        self.get_with(Wait::No)
    }

    /// Takes the next value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`GetError::Timeout`], and as for [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(until(timeout))
    }

    /// Takes the next value, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As for [`get_timeout`](Self::get_timeout).
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetError> {
        self.get_with(Wait::Until(deadline))
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Queue {
            handle: Handle::deserialize(d)?,
            _t: PhantomData,
        })
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Queue<std::rc::Rc<u8>>>();
    send_sync::<BytesQueue>();
};

#[cfg(test)]
mod tests;
