//! The queue's state machine: slot stamps, the stream token, the process table and the reaper.
//!
//! See the [module documentation](super) for the layout and the crash model; this file is the
//! algorithm. It follows Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>, as in
//! crossbeam's `ArrayQueue`), with two changes that crash recovery needs: a slot is claimed
//! (its stamp swapped to name the claimant) *before* the shared position moves, so that no
//! position is ever taken without a live-checkable owner, and anyone who finds a claimed slot
//! at the shared position helps move the position on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

pub(super) use super::fault;
use super::raw::{BadSegment, Geometry, Raw};
use super::side::{KIND_FDS, Side};
use super::stream::WRITER_DEAD;
pub(super) use super::wait::{Backoff, Peer};
use crate::sys::ofd;

const POS_BITS: u32 = 46;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

/// Slot states (bits 16..18 of a stamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Free for the producer of the stamp's position.
    Empty = 0,
    /// Claimed by the owner, who is writing the payload.
    Writing = 1,
    /// Holds the message of the stamp's position.
    Ready = 2,
    /// Claimed by the owner, who is copying the message out.
    Reading = 3,
}

/// A slot's state word: `pos << 18 | state << 16 | owner`.
///
/// `pos` is the ring position (modulo 2^46) the state refers to; `owner` is a process-table
/// index + 1 for `Writing` and `Reading`, 0 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp(u64);

impl Stamp {
    fn new(pos: u64, state: State, owner: u16) -> Stamp {
        Stamp(((pos & POS_MASK) << 18) | ((state as u64) << 16) | u64::from(owner))
    }
    fn pos(self) -> u64 {
        self.0 >> 18
    }
    fn state(self) -> State {
        match (self.0 >> 16) & 3 {
            0 => State::Empty,
            1 => State::Writing,
            2 => State::Ready,
            _ => State::Reading,
        }
    }
    fn owner(self) -> u16 {
        self.0 as u16
    }
    fn at(self, pos: u64) -> bool {
        self.pos() == pos & POS_MASK
    }
}

/// The stamp a fresh slot for position `i` carries.
pub(crate) fn empty_stamp(i: u64) -> u64 {
    Stamp::new(i, State::Empty, 0).0
}

/// What a slot's payload holds.
pub(super) const KIND_INLINE: u32 = 0;
pub(super) const KIND_LARGE: u32 = 1;
/// A spilled large message its reader has copied out (it is about to free it).
pub(super) const KIND_CONSUMED: u32 = 2;

/// Why a put or get did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Full (put) or empty (get), and the caller does not wait.
    WouldBlock,
    /// Still full or empty at the deadline.
    TimedOut,
    /// The message's descriptors cannot travel (a queue without a side channel, or the system
    /// refused them).
    Descriptors,
    /// The message (of this many bytes) is larger than the queue's maximum message size: a
    /// put refuses it, a get consumes and refuses it.
    TooLarge(u64),
}

/// How long an operation may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    No,
    Forever,
    Until(Instant),
    /// For this long from the first moment the operation would have to wait (the clock is
    /// read only then).
    Within(Duration),
}

impl Wait {
    pub(super) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(d) => Some(d),
            Wait::No => Some(Instant::now()),
            Wait::Forever => None,
            Wait::Within(d) => Instant::now().checked_add(d),
        }
    }
}

/// The deadline of a [`Wait`], read from the clock only when first needed.
struct Deadline {
    wait: Wait,
    at: Option<Option<Instant>>,
}

impl Deadline {
    fn new(wait: Wait) -> Self {
        Deadline { wait, at: None }
    }

    fn get(&mut self) -> Option<Instant> {
        *self.at.get_or_insert_with(|| self.wait.deadline())
    }
}

/// Why a segment could not be attached to.
#[derive(Debug)]
pub(crate) enum AttachFail {
    Bad(BadSegment),
    /// Every entry of the process table is in use by a live process.
    TableFull,
    Os(std::io::Error),
}

/// Counters, summed over the process table.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) put: u64,
    pub(crate) got: u64,
    pub(crate) abandoned: u64,
    pub(crate) dropped: u64,
    pub(crate) redelivered: u64,
    pub(crate) released: u64,
    pub(crate) rejected: u64,
    pub(crate) direct: u64,
}

/// This process's attachment to a queue segment: the mapping, the segment's descriptor, and
/// its entry in the process table with the liveness lock that backs it.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(super) raw: Raw,
    pub(super) fd: OwnedFd,
    /// A description of the segment's file of our own, holding our liveness lock (and, while
    /// reaping, the dead member's).
    pub(super) lockfd: OwnedFd,
    /// Our process-table index + 1 (what stamps and tokens name).
    pub(super) me: u16,
    /// One reaper at a time in this attachment (OFD locks do not exclude the same description).
    pub(super) reaping: Mutex<()>,
    /// Set for a direction of a duplex channel: its one producer publishes its CPU, and the
    /// consumer waits accordingly.
    pub(super) cpu_aware: std::sync::atomic::AtomicBool,
    /// The channel descriptors in messages travel through (none for duplex directions).
    pub(super) side: Option<Side>,
    /// The last producer whose memory the kernel refused to let us read (see
    /// `Ring::read_direct`): its large messages stream instead.
    pub(super) refused: Mutex<Option<crate::sys::vm::Identity>>,
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.retire(self.me);
        self.raw
            .member(u32::from(self.me - 1))
            .state
            .store(0, Release);
        // Closing `lockfd` (after this) releases the liveness lock.
    }
}

impl Ring {
    /// Creates a segment of geometry `g` (with a side channel for descriptors, or not) and
    /// joins it.
    pub(crate) fn create(g: Geometry, side: bool) -> std::io::Result<Ring> {
        let (fd, raw) = Raw::create(g, empty_stamp)?;
        // Without sockets (a sandbox may forbid them) the queue still works: values that carry
        // descriptors are then an encode error at `put`.
        let side = if side { Side::new().ok() } else { None };
        Ring::register(fd, raw, side).map_err(|e| match e {
            AttachFail::Os(e) => e,
            AttachFail::TableFull | AttachFail::Bad(_) => {
                std::io::Error::other("cannot join a new queue")
            }
        })
    }

    /// Checks the segment behind `fd` and joins it.
    pub(crate) fn attach(fd: OwnedFd, side: Option<Side>) -> Result<Ring, AttachFail> {
        let raw = Raw::attach(&fd).map_err(AttachFail::Bad)?;
        Ring::register(fd, raw, side)
    }

    /// Takes an entry of the process table: a free one, or one whose process died (reaping
    /// it first).
    fn register(fd: OwnedFd, raw: Raw, side: Option<Side>) -> Result<Ring, AttachFail> {
        let lockfd = ofd::reopen(fd.as_fd()).map_err(AttachFail::Os)?;
        let pid = u64::from(std::process::id());
        for i in 0..raw.geometry().members {
            let m = raw.member(i);
            if m.state.load(Acquire) != 0
                && ofd::locked_by_other(&lockfd, u64::from(i)).map_err(AttachFail::Os)?
            {
                continue;
            }
            if !ofd::try_lock(&lockfd, u64::from(i)).map_err(AttachFail::Os)? {
                continue;
            }
            let ring = Ring {
                raw,
                fd,
                lockfd,
                me: i as u16 + 1,
                reaping: Mutex::new(()),
                cpu_aware: std::sync::atomic::AtomicBool::new(false),
                side,
                refused: Mutex::new(None),
            };
            // Whoever held this entry before is gone; clear what it may have left behind
            // (cheap: one pass over the stamps).
            ring.reap_locked(i as u16 + 1);
            ring.raw.member(i).state.store(pid << 1 | 1, Release);
            return Ok(ring);
        }
        Err(AttachFail::TableFull)
    }

    /// The duplex-channel end table (in the queue of the channel's first direction).
    pub(super) fn ends(&self) -> &super::raw::Ends {
        &self.raw.control().ends
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The two ends of the side channel, if this queue has one.
    pub(crate) fn side_fds(&self) -> Option<(BorrowedFd<'_>, BorrowedFd<'_>)> {
        self.side.as_ref().map(|s| (s.tx.as_fd(), s.rx.as_fd()))
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        self.raw.geometry()
    }

    pub(super) fn slots(&self) -> u64 {
        self.raw.geometry().slots
    }

    /// Messages in the queue (published or being written), from the two positions.
    pub(crate) fn len(&self) -> u64 {
        let c = self.raw.control();
        let h = c.head.0.load(Acquire);
        let t = c.tail.0.load(Acquire);
        let n = t.wrapping_sub(h) as i64;
        let orphans = c.orphans.0.load(Relaxed);
        (n.max(0) as u64 + orphans).min(self.slots())
    }

    pub(crate) fn totals(&self) -> Totals {
        let c = &self.raw.control().counters;
        let mut t = Totals {
            put: c.retired_put.load(Relaxed),
            got: c.retired_got.load(Relaxed),
            abandoned: c.abandoned.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            redelivered: c.redelivered.load(Relaxed),
            released: c.released.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            direct: c.retired_direct.load(Relaxed),
        };
        for i in 0..self.raw.geometry().members {
            let m = self.raw.member(i);
            t.put += m.put.load(Relaxed);
            t.got += m.got.load(Relaxed);
            t.direct += m.direct.load(Relaxed);
        }
        t
    }

    // ---- liveness and the reaper ----------------------------------------------------------

    /// Whether the member that `owner` names (index + 1) is alive. An error of the lock query
    /// counts as alive: never reap on a doubt.
    pub(super) fn alive(&self, owner: u16) -> bool {
        if owner == self.me || owner == 0 || owner == WRITER_DEAD {
            return owner == self.me;
        }
        let i = u32::from(owner - 1);
        if i >= self.raw.geometry().members {
            return false;
        }
        ofd::locked_by_other(&self.lockfd, u64::from(i)).unwrap_or(true)
    }

    /// Reaps `owner` if it is dead and nobody else is reaping it. Returns whether it did.
    pub(super) fn try_reap(&self, owner: u16) -> bool {
        if owner == self.me || owner == 0 || owner == WRITER_DEAD {
            return false;
        }
        let i = u32::from(owner - 1);
        if i >= self.raw.geometry().members {
            return false;
        }
        let _one = self.reaping.lock().unwrap_or_else(|e| e.into_inner());
        // The dead member's lock: held by a live member, or by another reaper, this fails.
        if !ofd::try_lock(&self.lockfd, u64::from(i)).unwrap_or(false) {
            return false;
        }
        self.reap_locked(owner);
        self.raw.member(i).state.store(0, Release);
        let _ = ofd::unlock(&self.lockfd, u64::from(i));
        true
    }

    /// Reaps every member whose entry is in use but whose process is gone.
    pub(crate) fn sweep(&self) {
        for i in 0..self.raw.geometry().members {
            let owner = i as u16 + 1;
            if owner != self.me && self.raw.member(i).state.load(Relaxed) != 0 && !self.alive(owner)
            {
                self.try_reap(owner);
            }
        }
    }

    /// Undoes what member `owner` (dead, its lock held by us) left in flight: its stream
    /// token, the slots it was writing (skipped) and reading (handed back), its counters.
    fn reap_locked(&self, owner: u16) {
        let c = self.raw.control();
        let dropped_seq = self.reap_stream(owner);
        let cap = self.slots();
        for i in 0..cap {
            let slot = self.raw.slot(i);
            let s = Stamp(slot.stamp.load(Acquire));
            if s.owner() != owner {
                continue;
            }
            match s.state() {
                State::Writing => {
                    if slot.kind.load(Acquire) & !KIND_FDS == KIND_LARGE {
                        // It may have spilled part of its bytes (extents are never reused, so
                        // freeing a stale one again is harmless).
                        self.punch_extent_of(i);
                    }
                    let skip = Stamp::new(s.pos() + cap, State::Empty, 0);
                    if slot
                        .stamp
                        .compare_exchange(s.0, skip.0, AcqRel, Relaxed)
                        .is_ok()
                    {
                        c.counters.abandoned.fetch_add(1, Relaxed);
                    }
                }
                State::Reading if slot.kind.load(Acquire) & !KIND_FDS == KIND_CONSUMED => {
                    // A spilled message the dead reader had copied out: lost with it.
                    self.punch_extent_of(i);
                    let free = Stamp::new(s.pos() + cap, State::Empty, 0);
                    if slot
                        .stamp
                        .compare_exchange(s.0, free.0, AcqRel, Relaxed)
                        .is_ok()
                    {
                        c.counters.dropped.fetch_add(1, Relaxed);
                    }
                }
                State::Reading => {
                    let streamed = slot.kind.load(Relaxed) & !KIND_FDS == KIND_LARGE && {
                        let r = self.large_ref(i);
                        r.lane.is_some_and(|lane| dropped_seq[lane] == Some(r.seq))
                    };
                    if streamed {
                        // Its bytes were partly read by the dead reader: lost (counted above).
                        let free = Stamp::new(s.pos() + cap, State::Empty, 0);
                        let _ = slot.stamp.compare_exchange(s.0, free.0, AcqRel, Relaxed);
                    } else {
                        // Never reached the dead reader's caller: deliver it again, behind the
                        // head (moved past it first if the reader died before moving it), where
                        // consumers look for it while `orphans` counts it.
                        let h = c.head.0.load(Acquire);
                        if h & POS_MASK == s.pos() {
                            let _ = c.head.0.compare_exchange(h, h + 1, Release, Relaxed);
                        }
                        c.orphans.0.fetch_add(1, SeqCst);
                        let back = Stamp::new(s.pos(), State::Ready, 0);
                        if slot
                            .stamp
                            .compare_exchange(s.0, back.0, AcqRel, Relaxed)
                            .is_err()
                        {
                            c.orphans.0.fetch_sub(1, SeqCst);
                        }
                    }
                }
                State::Empty | State::Ready => {}
            }
        }
        self.retire(owner);
        self.notify(&c.items);
        self.notify(&c.space);
    }

    /// Frees the spilled bytes of the large message in the slot of `pos`, if any.
    fn punch_extent_of(&self, pos: u64) {
        let len = self.large_ref(pos).len;
        if let Some(off) = self.extent(pos, len) {
            self.punch(off, len);
        }
    }

    /// Gives up the slot of `pos`, claimed by us and not published: consumers skip it.
    pub(super) fn unclaim(&self, pos: u64) {
        let slot = self.raw.slot(pos);
        slot.stamp
            .store(Stamp::new(pos + self.slots(), State::Empty, 0).0, Release);
        self.raw.control().counters.abandoned.fetch_add(1, Relaxed);
        self.notify(&self.raw.control().items);
    }

    /// Moves the counters of member `owner` (leaving, or dead and being reaped) to the
    /// queue-wide ones. Its tasks got and not marked done are released: `join` no longer
    /// waits for them.
    fn retire(&self, owner: u16) {
        let m = self.raw.member(u32::from(owner - 1));
        let c = self.raw.control();
        let got = m.got.swap(0, SeqCst);
        let done = m.done.swap(0, SeqCst);
        m.taking.store(0, SeqCst);
        c.counters
            .retired_put
            .fetch_add(m.put.swap(0, Relaxed), Relaxed);
        c.counters.retired_got.fetch_add(got, Relaxed);
        c.counters
            .retired_direct
            .fetch_add(m.direct.swap(0, Relaxed), Relaxed);
        if c.counters.joinable.load(Relaxed) != 0 && got > done {
            c.counters.released.fetch_add(got - done, Relaxed);
        }
        self.notify(&c.joined);
    }

    // ---- producers ------------------------------------------------------------------------

    /// Claims the slot of the next position: returns the position, its stamp naming us.
    pub(super) fn claim(&self, wait: Wait) -> Result<u64, Fail> {
        let c = self.raw.control();
        let cap = self.slots();
        let max = self.raw.geometry().maxsize;
        let mut deadline = Deadline::new(wait);
        let mut backoff = Backoff::new();
        loop {
            let t = c.tail.0.load(Acquire);
            let slot = self.raw.slot(t);
            let s = Stamp(slot.stamp.load(Acquire));
            let blocker;
            if s == Stamp::new(t, State::Empty, 0) {
                // With `maxsize == slots` the stamps alone bound the queue: no need to read
                // the consumers' cache line.
                let n = if max == cap {
                    0
                } else {
                    let n = t.wrapping_sub(c.head.0.load(Acquire)) as i64;
                    if n < 0 && c.tail.0.load(Acquire) != t {
                        // The tail moved on while we read: look again.
                        continue;
                    }
                    n
                };
                // A head beyond an unmoved tail (a corrupt segment, or for a moment after the
                // reaper skipped a dead producer's slot) blocks like a full queue: the wait
                // below re-checks it, honouring the deadline.
                if n >= 0 && (n as u64) < max {
                    let mine = Stamp::new(t, State::Writing, self.me);
                    if slot
                        .stamp
                        .compare_exchange_weak(s.0, mine.0, AcqRel, Relaxed)
                        .is_ok()
                    {
                        let _ = c.tail.0.compare_exchange(t, t + 1, Release, Relaxed);
                        return Ok(t);
                    }
                    continue;
                }
                let h = c.head.0.load(Acquire);
                blocker = Stamp(self.raw.slot(h).stamp.load(Relaxed)).owner();
            } else if (s.at(t) && s.state() != State::Empty)
                || s == Stamp::new(t + cap, State::Empty, 0)
            {
                // Claimed (or already consumed) but the tail lags: help it on.
                let _ = c.tail.0.compare_exchange(t, t + 1, Release, Relaxed);
                continue;
            } else if s.at(t.wrapping_sub(cap)) {
                // The previous lap's message is still there: full.
                blocker = s.owner();
            } else if c.tail.0.load(Acquire) != t {
                // The tail moved on since we read it (and the slot with it): look again.
                continue;
            } else {
                // A stamp no state explains at an unmoved tail: only a corrupt segment has
                // one. Wait for it to change, like for a full queue, without trusting its
                // owner.
                blocker = 0;
            }
            if matches!(wait, Wait::No) {
                return Err(Fail::WouldBlock);
            }
            if backoff.snooze() {
                // (An owner that cannot be reaped, being reaped by another or named by a
                // corrupt stamp, is waited for like a live one.)
                if blocker != 0 && !self.alive(blocker) && self.try_reap(blocker) {
                    continue;
                }
                let unchanged = || {
                    let h = c.head.0.load(Acquire);
                    c.tail.0.load(Acquire) == t
                        && slot.stamp.load(Acquire) == s.0
                        && (s != Stamp::new(t, State::Empty, 0) || t.wrapping_sub(h) >= max)
                };
                if !self.sleep(&c.space, deadline.get(), unchanged) {
                    return Err(Fail::TimedOut);
                }
            }
        }
    }

    /// Publishes the slot of `pos` (claimed by us, payload written).
    pub(super) fn publish(&self, pos: u64) {
        let slot = self.raw.slot(pos);
        slot.stamp
            .store(Stamp::new(pos, State::Ready, 0).0, Release);
        self.raw
            .member(u32::from(self.me - 1))
            .put
            .fetch_add(1, Relaxed);
        self.notify(&self.raw.control().items);
    }

    /// Puts one message.
    pub(crate) fn put(&self, bytes: &[u8], wait: Wait) -> Result<(), Fail> {
        let len = bytes.len() as u64;
        if self.too_large(len) {
            return Err(Fail::TooLarge(len));
        }
        self.put_unchecked(bytes, 0, wait)
    }

    /// Puts one message, whatever its size, its slot's kind marked with `flags`.
    pub(super) fn put_unchecked(&self, bytes: &[u8], flags: u32, wait: Wait) -> Result<(), Fail> {
        if bytes.len() <= self.raw.payload_size() {
            let pos = self.claim(wait)?;
            fault::point(fault::AFTER_CLAIM);
            let slot = self.raw.slot(pos);
            slot.kind.store(KIND_INLINE | flags, Relaxed);
            slot.len.store(bytes.len() as u32, Relaxed);
            self.raw.write_payload(pos, 0, bytes);
            self.publish(pos);
            Ok(())
        } else {
            self.put_large(bytes, flags, wait)
        }
    }

    // ---- consumers ------------------------------------------------------------------------

    /// Where the producer runs, if this queue is a duplex direction that knows it.
    fn producer_placement(&self) -> Peer {
        if !self.cpu_aware.load(Relaxed) {
            return Peer::Unknown;
        }
        match self.raw.control().ends.producer_cpu.load(Relaxed) {
            0 => Peer::Unknown,
            cpu if cpu - 1 == crate::sys::cpu::current() => Peer::Here,
            _ => Peer::Elsewhere,
        }
    }

    /// Records the CPU this producer runs on (a duplex direction: there is one producer).
    pub(super) fn note_producer_cpu(&self) {
        let cpu = crate::sys::cpu::current() + 1;
        let word = &self.raw.control().ends.producer_cpu;
        if word.load(Relaxed) != cpu {
            word.store(cpu, Relaxed);
        }
    }

    /// Frees the slot of `pos` (read by us) for the producer of the next lap.
    pub(super) fn free(&self, pos: u64) {
        let slot = self.raw.slot(pos);
        slot.stamp
            .store(Stamp::new(pos + self.slots(), State::Empty, 0).0, Release);
        self.notify(&self.raw.control().space);
    }

    /// Takes a message handed back by the reaper (its reader died), if there is one.
    fn rescue(&self) -> Option<u64> {
        let c = self.raw.control();
        let cap = self.slots();
        let h = c.head.0.load(Acquire);
        for i in 0..cap {
            let slot = self.raw.slot(i);
            let s = Stamp(slot.stamp.load(Acquire));
            if s.state() != State::Ready {
                continue;
            }
            let behind = (h & POS_MASK).wrapping_sub(s.pos()) & POS_MASK;
            if behind == 0 || behind > cap {
                continue;
            }
            let mine = Stamp::new(s.pos(), State::Reading, self.me);
            if slot
                .stamp
                .compare_exchange(s.0, mine.0, AcqRel, Relaxed)
                .is_ok()
            {
                c.orphans.0.fetch_sub(1, SeqCst);
                c.counters.redelivered.fetch_add(1, Relaxed);
                return Some(s.pos());
            }
        }
        None
    }

    /// Claims the slot at the head: returns its position, its stamp naming us.
    fn take(&self, wait: Wait) -> Result<u64, Fail> {
        let c = self.raw.control();
        let cap = self.slots();
        let mut deadline = Deadline::new(wait);
        let mut backoff = Backoff::with_peer(self.producer_placement());
        loop {
            if c.orphans.0.load(Relaxed) > 0
                && let Some(pos) = self.rescue()
            {
                return Ok(pos);
            }
            let h = c.head.0.load(Acquire);
            let slot = self.raw.slot(h);
            let s = Stamp(slot.stamp.load(Acquire));
            let mut blocker = 0;
            if s == Stamp::new(h, State::Ready, 0) {
                let mine = Stamp::new(h, State::Reading, self.me);
                if slot
                    .stamp
                    .compare_exchange_weak(s.0, mine.0, AcqRel, Relaxed)
                    .is_ok()
                {
                    fault::point(fault::BEFORE_HEAD);
                    let _ = c.head.0.compare_exchange(h, h + 1, Release, Relaxed);
                    return Ok(h);
                }
                continue;
            } else if (s.at(h) && s.state() == State::Reading)
                || s == Stamp::new(h + cap, State::Empty, 0)
            {
                let _ = c.head.0.compare_exchange(h, h + 1, Release, Relaxed);
                continue;
            } else if s.at(h) && s.state() == State::Writing {
                blocker = s.owner();
            } else if !(s == Stamp::new(h, State::Empty, 0) || s.at(h.wrapping_sub(cap)))
                && c.head.0.load(Acquire) != h
            {
                // The head moved on since we read it (and the slot with it): look again.
                continue;
            }
            // Otherwise empty, or a stamp no state explains at an unmoved head (a corrupt
            // segment): wait for a change, honouring the deadline.
            if matches!(wait, Wait::No) {
                if blocker != 0 && !self.alive(blocker) && self.try_reap(blocker) {
                    continue;
                }
                return Err(Fail::WouldBlock);
            }
            if backoff.snooze() {
                // (An owner that cannot be reaped, being reaped by another or named by a
                // corrupt stamp, is waited for like a live one.)
                if blocker != 0 && !self.alive(blocker) && self.try_reap(blocker) {
                    continue;
                }
                let unchanged = || {
                    c.head.0.load(Acquire) == h
                        && slot.stamp.load(Acquire) == s.0
                        && c.orphans.0.load(Acquire) == 0
                };
                if !self.sleep(&c.items, deadline.get(), unchanged) {
                    return Err(Fail::TimedOut);
                }
            }
        }
    }

    /// Whether a message of `len` bytes exceeds the queue's maximum message size.
    pub(super) fn too_large(&self, len: u64) -> bool {
        let max = self.raw.geometry().max_message;
        max != 0 && len > max
    }

    /// Gets one message into `out` (cleared first); the descriptors it carries, if any, are
    /// closed.
    pub(crate) fn get(&self, out: &mut Vec<u8>, wait: Wait) -> Result<(), Fail> {
        self.get_msg(out, None, wait)
    }

    /// Gets one message into `out` (cleared first), and the descriptors it carries into `fds`
    /// (closed if `None`).
    pub(crate) fn get_msg(
        &self,
        out: &mut Vec<u8>,
        fds: Option<&mut Vec<OwnedFd>>,
        wait: Wait,
    ) -> Result<(), Fail> {
        let c = self.raw.control();
        if c.counters.joinable.load(Relaxed) == 0 {
            return self.get_one(out, fds, wait);
        }
        // A joinable queue: from before the slot is taken until `got` counts the message, this
        // get is counted as taking (see `unfinished`).
        let taking = &self.raw.member(u32::from(self.me - 1)).taking;
        taking.fetch_add(1, SeqCst);
        let r = self.get_one(out, fds, wait);
        taking.fetch_sub(1, SeqCst);
        self.notify(&c.joined);
        r
    }

    fn get_one(
        &self,
        out: &mut Vec<u8>,
        mut fds: Option<&mut Vec<OwnedFd>>,
        wait: Wait,
    ) -> Result<(), Fail> {
        loop {
            out.clear();
            let pos = self.take(wait)?;
            fault::point(fault::AFTER_TAKE);
            let slot = self.raw.slot(pos);
            let kind = slot.kind.load(Relaxed);
            // The descriptors of a small message are taken while its slot is still ours, so
            // that a death meanwhile hands the message back (a large one's slot is freed
            // early: they are taken once its bytes are in).
            let mut attached = None;
            let delivered = match kind & !KIND_FDS {
                KIND_INLINE => {
                    let len = slot.len.load(Relaxed) as usize;
                    if self.too_large(len as u64) {
                        self.free(pos);
                        return Err(self.rejected(len as u64));
                    }
                    let ok = len <= self.raw.payload_size();
                    if ok {
                        self.raw.read_payload(pos, 0, len, out);
                        if kind & KIND_FDS != 0 {
                            attached = Some(self.attach_fds(out, fds.as_deref_mut()));
                        }
                    }
                    self.free(pos);
                    ok
                }
                KIND_LARGE => {
                    let len = self.large_ref(pos).len;
                    if self.too_large(len) {
                        self.reject_large(pos);
                        return Err(self.rejected(len));
                    }
                    self.get_large(pos, out)
                }
                _ => {
                    self.free(pos);
                    false
                }
            };
            if delivered {
                self.raw
                    .member(u32::from(self.me - 1))
                    .got
                    .fetch_add(1, SeqCst);
                return match attached {
                    Some(r) => r,
                    None if kind & KIND_FDS != 0 => self.attach_fds(out, fds),
                    None => Ok(()),
                };
            }
            // Nothing to deliver at that position (a large message whose writer died or gave
            // up, or a corrupt slot): take the next one.
        }
    }

    /// Counts a message refused for its size.
    fn rejected(&self, len: u64) -> Fail {
        self.raw.control().counters.rejected.fetch_add(1, Relaxed);
        Fail::TooLarge(len)
    }

    /// Moves the head past slots skipped after their producer died, so that they no longer
    /// count as messages for `join`.
    pub(super) fn skip_abandoned(&self) {
        let c = self.raw.control();
        let cap = self.slots();
        loop {
            let h = c.head.0.load(Acquire);
            let s = Stamp(self.raw.slot(h).stamp.load(Acquire));
            if s != Stamp::new(h + cap, State::Empty, 0)
                || c.head
                    .0
                    .compare_exchange(h, h + 1, Release, Relaxed)
                    .is_err()
            {
                return;
            }
        }
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Ring>();
};
