//! Large messages: the stream lanes and their tokens, and spilling to the segment's file.
//!
//! A message larger than a slot's payload keeps its place in the queue's order with a slot that
//! refers to it (its lane and number there, its length, and an extent of the segment's file
//! reserved for it). Its bytes go one of two ways:
//!
//! - **streamed** through a stream lane, while the consumer that took the slot copies them
//!   out. Each lane carries one message at a time. This is the fast path: no system call, the
//!   bytes pass through memory that stays in the caches.
//! - **spilled** to its extent of the file, beyond the mapped part (`pwrite`), when no lane is
//!   free, or when the lane is full and no consumer has come to read it. The consumer reads
//!   them with `pread` and frees their memory (`fallocate(PUNCH_HOLE)`). A spilled message
//!   needs no reader to complete its `put`: any number of large messages can be unread.
//!
//! The extent ends with a mark, written after the bytes: a consumer that finds the lane gone
//! (its token moved on) reads the message from the extent if the mark is there, and counts it
//! abandoned otherwise. Nothing of the slot is written after it is published.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::fence;

use super::raw::{LANES, SPILL_ALIGN, StreamCtl};
use super::ring::{Backoff, Fail, KIND_CONSUMED, KIND_LARGE, Ring, Wait, fault};
use crate::sys::{memfd, process, vm};

/// Messages this large or larger are offered for their reader to copy straight from the
/// producer's memory: below, the cost of checking the producer's identity is not repaid.
const DIRECT_MIN: u64 = 1 << 20;

/// How a direct copy went.
enum Direct {
    /// All of the message is in the output.
    Done,
    /// The producer ended before the copy was known to be good: the message is lost.
    WriterDied,
    /// Not possible (not offered, refused, or the producer is not the process it says): the
    /// first this many bytes are in the output, the rest comes through the lane.
    Refused(u64),
}

const SEQ_MASK: u32 = (1 << 31) - 1;
/// The writer field of a stream token whose writer died mid-message.
pub(super) const WRITER_DEAD: u16 = u16::MAX;

/// The stream token: `seq << 33 | active << 32 | writer << 16 | reader`.
///
/// | token | meaning |
/// |---|---|
/// | idle(seq) | no large message in flight; the next one gets number `seq` |
/// | active(seq, w, 0) | message `seq` is being written by `w` (0: written), no reader yet |
/// | active(seq, w, r) | reader `r` is copying it out while `w` writes (0: done, `WRITER_DEAD`: died) |
///
/// The reader ends the message (`idle(seq + 1)`); the reaper does when the reader dies, or
/// the writer dies before a reader came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token(u64);

impl Token {
    fn idle(seq: u32) -> Token {
        Token(u64::from(seq & SEQ_MASK) << 33)
    }
    fn active(seq: u32, writer: u16, reader: u16) -> Token {
        Token(
            (u64::from(seq & SEQ_MASK) << 33)
                | (1 << 32)
                | (u64::from(writer) << 16)
                | u64::from(reader),
        )
    }
    fn seq(self) -> u32 {
        (self.0 >> 33) as u32
    }
    fn is_active(self) -> bool {
        self.0 & (1 << 32) != 0
    }
    fn writer(self) -> u16 {
        (self.0 >> 16) as u16
    }
    fn reader(self) -> u16 {
        self.0 as u16
    }
    fn next(self) -> Token {
        Token::idle(self.seq().wrapping_add(1))
    }
}

/// Bytes streamed between two publications of the written position: small enough for the
/// reader to copy one while the writer fills the next (four per lane by default).
const CHUNK: u64 = 64 * 1024;

/// How long a producer whose lane is full waits for a reader to attach before it spills the
/// message: about the time the message takes to stream at 4 GB/s (between 20 µs and 5 ms), so
/// that a consumer busy with the previous message, or briefly descheduled, still gets the fast
/// path, while a `put` nobody reads is not held up for long.
fn spill_grace(len: u64) -> Duration {
    Duration::from_nanos((len / 4).clamp(20_000, 5_000_000))
}

/// The lane field of a large message's reference when it was spilled at once.
const NO_LANE: u32 = u32::MAX;
/// The mark after a spilled message's bytes, once they are all written.
const SPILL_MARK: u64 = u64::from_le_bytes(*b"SPILLED!");

/// What a large message's slot refers to (payload words 0 and 1; word 2 is its extent).
#[derive(Clone, Copy, Debug)]
pub(super) struct LargeRef {
    /// Its stream lane (`None`: spilled when put).
    pub(super) lane: Option<usize>,
    /// Its number in the lane.
    pub(super) seq: u32,
    /// Its length in bytes.
    pub(super) len: u64,
}

impl Ring {
    /// Undoes the stream tokens of dead member `owner`: a message it was reading is lost
    /// (counted as dropped; its number is returned, per lane), one it was writing is left to
    /// its reader, or ended if it has none.
    pub(super) fn reap_stream(&self, owner: u16) -> [Option<u32>; LANES] {
        let c = self.raw.control();
        let mut dropped = [None; LANES];
        for (lane, st) in c.stream.iter().enumerate() {
            loop {
                let t = Token(st.token.load(Acquire));
                if !t.is_active() {
                    break;
                }
                let new = if t.reader() == owner {
                    t.next()
                } else if t.writer() == owner {
                    if t.reader() == 0 {
                        t.next()
                    } else {
                        Token::active(t.seq(), WRITER_DEAD, t.reader())
                    }
                } else {
                    break;
                };
                if st
                    .token
                    .compare_exchange(t.0, new.0, AcqRel, Relaxed)
                    .is_ok()
                {
                    if t.reader() == owner {
                        c.counters.dropped.fetch_add(1, Relaxed);
                        dropped[lane] = Some(t.seq());
                    }
                    self.notify(&c.stream_wait);
                    break;
                }
            }
        }
        dropped
    }

    /// What the large message in the slot of `pos` refers to.
    pub(super) fn large_ref(&self, pos: u64) -> LargeRef {
        let word = self.raw.payload_word(pos, 0).load(Acquire);
        let len = self.raw.payload_word(pos, 1).load(Acquire);
        let lane = (word >> 32) as u32;
        // A lane number out of range (written by someone else than this crate) is clamped: the
        // message number then does not match and the message is skipped.
        LargeRef {
            lane: (lane != NO_LANE).then(|| (lane as usize).min(LANES - 1)),
            seq: word as u32,
            len,
        }
    }

    fn write_large_ref(&self, pos: u64, r: LargeRef, extent: u64, flags: u32) {
        let lane = r.lane.map_or(NO_LANE, |l| l as u32);
        let slot = self.raw.slot(pos);
        self.raw
            .payload_word(pos, 0)
            .store(u64::from(lane) << 32 | u64::from(r.seq), Relaxed);
        self.raw.payload_word(pos, 1).store(r.len, Relaxed);
        self.raw.payload_word(pos, 2).store(extent, Relaxed);
        slot.len.store(24, Relaxed);
        slot.kind.store(KIND_LARGE | flags, Release);
    }

    /// Reserves an extent of the file for a spilled message of `len` bytes: address space
    /// only, which costs nothing until written.
    fn reserve_extent(&self, len: u64) -> u64 {
        let size = len.saturating_add(8).next_multiple_of(SPILL_ALIGN);
        self.raw.control().spill_end.0.fetch_add(size, Relaxed)
    }

    /// The extent of the large message in the slot of `pos`, if it is a valid one.
    pub(super) fn extent(&self, pos: u64, len: u64) -> Option<u64> {
        let off = self.raw.payload_word(pos, 2).load(Acquire);
        let end = off.checked_add(len)?.checked_add(8)?;
        (off >= self.raw.spill_base() && off.is_multiple_of(SPILL_ALIGN) && end <= i64::MAX as u64)
            .then_some(off)
    }

    /// Frees the memory of the extent `off` of a message of `len` bytes.
    pub(super) fn punch(&self, off: u64, len: u64) {
        let size = len.saturating_add(8).next_multiple_of(SPILL_ALIGN);
        let _ = memfd::punch_hole(&self.fd, off, size);
    }

    /// Writes a message's bytes and then the mark to its extent; `false` if the system
    /// refused (out of memory, or a file sealed against growing).
    fn spill(&self, off: u64, bytes: &[u8]) -> bool {
        let len = bytes.len() as u64;
        let ok = memfd::write_all_at(&self.fd, bytes, off).is_ok()
            && memfd::write_all_at(&self.fd, &SPILL_MARK.to_le_bytes(), off + len).is_ok();
        if !ok {
            self.punch(off, len);
        }
        ok
    }

    /// Whether the extent at `off` holds a complete message of `len` bytes.
    fn spilled(&self, off: u64, len: u64) -> bool {
        let mut mark = [0u8; 8];
        memfd::read_exact_at(&self.fd, &mut mark, off + len).unwrap_or(false)
            && u64::from_le_bytes(mark) == SPILL_MARK
    }

    /// Puts a large message by spilling it at once (no stream lane is free). `None` if the
    /// system refused: the caller waits for a lane instead.
    fn put_spilled(&self, bytes: &[u8], flags: u32, wait: Wait) -> Option<Result<(), Fail>> {
        let len = bytes.len() as u64;
        let pos = match self.claim(wait) {
            Ok(pos) => pos,
            Err(e) => return Some(Err(e)),
        };
        let off = self.reserve_extent(len);
        let r = LargeRef {
            lane: None,
            seq: 0,
            len,
        };
        self.write_large_ref(pos, r, off, flags);
        if self.extent(pos, len).is_none() || !self.spill(off, bytes) {
            self.unclaim(pos);
            return None;
        }
        fault::point(fault::SPILLED);
        self.publish(pos);
        Some(Ok(()))
    }

    pub(super) fn put_large(&self, bytes: &[u8], flags: u32, wait: Wait) -> Result<(), Fail> {
        let c = self.raw.control();
        let deadline = wait.deadline();
        let len = bytes.len() as u64;
        // 1. A free stream lane, or else a spill.
        let mut backoff = Backoff::new();
        let mut spill = true;
        let (lane, seq) = 'found: loop {
            let mut seen = [0u64; LANES];
            for (lane, st) in c.stream.iter().enumerate() {
                let t = Token(st.token.load(Acquire));
                seen[lane] = t.0;
                if !t.is_active()
                    && st
                        .token
                        .compare_exchange(
                            t.0,
                            Token::active(t.seq(), self.me, 0).0,
                            AcqRel,
                            Relaxed,
                        )
                        .is_ok()
                {
                    break 'found (lane, t.seq());
                }
            }
            if spill {
                match self.put_spilled(bytes, flags, wait) {
                    Some(r) => return r,
                    None => spill = false,
                }
            }
            if matches!(wait, Wait::No) {
                return Err(Fail::WouldBlock);
            }
            if backoff.snooze() {
                for &t in &seen {
                    let t = Token(t);
                    for who in [t.reader(), t.writer()] {
                        if who != 0 && !self.alive(who) {
                            self.try_reap(who);
                        }
                    }
                }
                let unchanged = || {
                    c.stream
                        .iter()
                        .zip(seen)
                        .all(|(st, t)| st.token.load(Acquire) == t)
                };
                if !self.sleep(&c.stream_wait, deadline, unchanged) {
                    return Err(Fail::TimedOut);
                }
            }
        };
        let st = &c.stream[lane];
        st.written.store(0, Relaxed);
        st.read.store(0, Relaxed);
        self.offer(st, bytes);
        fault::point(fault::AFTER_TOKEN);
        // 2. A slot in the ring, which keeps the message's place in the queue's order.
        let pos = match self.claim(wait) {
            Ok(pos) => pos,
            Err(e) => {
                let _ = st.token.compare_exchange(
                    Token::active(seq, self.me, 0).0,
                    Token::idle(seq.wrapping_add(1)).0,
                    AcqRel,
                    Relaxed,
                );
                self.notify(&c.stream_wait);
                return Err(e);
            }
        };
        let r = LargeRef {
            lane: Some(lane),
            seq,
            len,
        };
        let extent = self.reserve_extent(len);
        self.write_large_ref(pos, r, extent, flags);
        self.publish(pos);
        // 3. The bytes, through the stream area.
        let size = self.raw.lane_size();
        let mut done = 0u64;
        let mut backoff = Backoff::new();
        // Since when the lane has been full with no reader attached.
        let mut stuck: Option<Instant> = None;
        loop {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq & SEQ_MASK {
                // The reader ended the message (it copied the rest from `bytes`), or it died
                // and was reaped: the message is lost and counted as dropped.
                return Ok(());
            }
            if st.direct.load(SeqCst) != 0 {
                // The reader copies the rest straight from `bytes`, which must stay as they
                // are until it ends the message, or dies.
                fault::point(fault::DIRECT_WAIT);
                if backoff.snooze() {
                    if !self.alive(t.reader()) {
                        self.try_reap(t.reader());
                        continue;
                    }
                    let unchanged =
                        || st.token.load(Acquire) == t.0 && st.direct.load(Acquire) != 0;
                    self.sleep(&c.stream_wait, None, unchanged);
                }
                continue;
            }
            if done >= len {
                break;
            }
            let read = st.read.load(Acquire);
            let free = size.saturating_sub(done.saturating_sub(read));
            if free > 0 {
                let n = free.min(len - done).min(CHUNK);
                self.raw
                    .stream_write(lane, done, &bytes[done as usize..(done + n) as usize]);
                done += n;
                st.written.store(done, Release);
                fault::point(fault::MID_STREAM_WRITE);
                self.notify(&c.stream_wait);
                backoff = Backoff::new();
                continue;
            }
            if backoff.snooze() {
                let now = Instant::now();
                let stuck_since = *stuck.get_or_insert(now);
                let spill_at = stuck_since + spill_grace(len);
                let late = deadline.is_some_and(|d| now >= d);
                if t.reader() == 0 && spill && (now >= spill_at || late) {
                    // Nobody came to read it: spill it, and let the lane go. If a reader
                    // attaches meanwhile, it streams after all.
                    spill = false;
                    if self.extent(pos, len) == Some(extent) && self.spill(extent, bytes) {
                        fault::point(fault::SPILLED);
                        if st
                            .token
                            .compare_exchange(t.0, t.next().0, AcqRel, Relaxed)
                            .is_ok()
                        {
                            self.notify(&c.stream_wait);
                            return Ok(());
                        }
                        self.punch(extent, len);
                    }
                    continue;
                }
                if t.reader() == 0 && late {
                    // No reader came in time: take the message back. Its slot is skipped.
                    if st
                        .token
                        .compare_exchange(t.0, t.next().0, AcqRel, Relaxed)
                        .is_ok()
                    {
                        self.notify(&c.stream_wait);
                        return Err(if matches!(wait, Wait::No) {
                            Fail::WouldBlock
                        } else {
                            Fail::TimedOut
                        });
                    }
                    continue;
                }
                if t.reader() != 0 && !self.alive(t.reader()) {
                    self.try_reap(t.reader());
                    continue;
                }
                let unchanged = || {
                    st.token.load(Acquire) == t.0
                        && st.read.load(Acquire) == read
                        && st.direct.load(Acquire) == 0
                };
                // Once a reader is attached the message is committed: no deadline applies.
                let until = if t.reader() != 0 {
                    None
                } else if spill {
                    Some(deadline.map_or(spill_at, |d| d.min(spill_at)))
                } else {
                    deadline
                };
                self.sleep(&c.stream_wait, until, unchanged);
            }
        }
        // 4. Written: leave the rest to the reader.
        loop {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq & SEQ_MASK || t.writer() != self.me {
                break;
            }
            let done = Token::active(t.seq(), 0, t.reader());
            if st
                .token
                .compare_exchange(t.0, done.0, AcqRel, Relaxed)
                .is_ok()
            {
                break;
            }
        }
        self.notify(&c.stream_wait);
        Ok(())
    }

    /// Refuses the large message whose slot (at `pos`, held by us) refers to the stream: ends
    /// it in its lane (its producer stops writing) and frees the slot.
    pub(super) fn reject_large(&self, pos: u64) {
        let c = self.raw.control();
        let r = self.large_ref(pos);
        if let Some(off) = self.extent(pos, r.len) {
            self.punch(off, r.len);
        }
        let Some(lane) = r.lane else {
            self.free(pos);
            return;
        };
        let st = &c.stream[lane];
        let seq = r.seq & SEQ_MASK;
        loop {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq || t.reader() != 0 {
                break;
            }
            if st
                .token
                .compare_exchange(t.0, t.next().0, AcqRel, Relaxed)
                .is_ok()
            {
                self.notify(&c.stream_wait);
                break;
            }
        }
        self.free(pos);
    }

    /// Reads the large message whose slot (at `pos`, held by us) refers to, from its stream
    /// lane or its extent. Frees the slot. `false` if the message is gone.
    pub(super) fn get_large(&self, pos: u64, out: &mut Vec<u8>) -> bool {
        let c = self.raw.control();
        let r = self.large_ref(pos);
        let len = r.len;
        let Some(lane) = r.lane else {
            return self.get_spilled(pos, len, out);
        };
        let st = &c.stream[lane];
        let seq = r.seq & SEQ_MASK;
        loop {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq || t.reader() != 0 {
                // Its producer let the lane go: spilled, or abandoned.
                return self.get_spilled(pos, len, out);
            }
            let mine = Token::active(seq, t.writer(), self.me);
            if st
                .token
                .compare_exchange(t.0, mine.0, AcqRel, Relaxed)
                .is_ok()
            {
                break;
            }
        }
        let extent = self.extent(pos, len);
        self.free(pos);
        let size = self.raw.lane_size();
        // At most 64 MiB ahead of the bytes that come (a length is only a claim of the peer).
        out.reserve(len.min(1 << 26) as usize);
        let mut done = 0u64;
        match self.read_direct(lane, len, out) {
            Direct::Done => {
                done = len;
                self.raw
                    .member(u32::from(self.me - 1))
                    .direct
                    .fetch_add(1, Relaxed);
            }
            Direct::WriterDied => {
                self.end_message(st, seq);
                if let Some(off) = extent {
                    self.punch(off, len);
                }
                out.clear();
                c.counters.abandoned.fetch_add(1, Relaxed);
                return false;
            }
            Direct::Refused(n) => {
                if n > 0 {
                    done = n;
                    st.read.store(done, Release);
                    self.notify(&c.stream_wait);
                }
            }
        }
        let mut backoff = Backoff::new();
        while done < len {
            let written = st.written.load(Acquire);
            if written > done {
                let n = (written - done).min(len - done).min(size);
                self.raw.stream_read(lane, done, n as usize, out);
                done += n;
                st.read.store(done, Release);
                fault::point(fault::MID_STREAM_READ);
                self.notify(&c.stream_wait);
                backoff = Backoff::new();
                continue;
            }
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq || t.reader() != self.me {
                c.counters.abandoned.fetch_add(1, Relaxed);
                return false;
            }
            let w = t.writer();
            if w == WRITER_DEAD || (w == 0 && st.written.load(Acquire) < len) {
                // The writer died half-way (or left without finishing): the message is torn,
                // unless the writer had spilled it whole just before.
                if st
                    .token
                    .compare_exchange(t.0, t.next().0, AcqRel, Relaxed)
                    .is_ok()
                {
                    self.notify(&c.stream_wait);
                    let whole = extent.is_some_and(|off| self.read_spilled(off, len, out));
                    if let Some(off) = extent {
                        self.punch(off, len);
                    }
                    if !whole {
                        c.counters.abandoned.fetch_add(1, Relaxed);
                    }
                    return whole;
                }
                continue;
            }
            if backoff.snooze() {
                if w != 0 && !self.alive(w) {
                    self.try_reap(w);
                    continue;
                }
                let unchanged =
                    || st.token.load(Acquire) == t.0 && st.written.load(Acquire) == written;
                self.sleep(&c.stream_wait, None, unchanged);
            }
        }
        self.end_message(st, seq);
        true
    }

    /// Ends message `seq` of lane `st` (we are its reader): the lane is free for the next one.
    fn end_message(&self, st: &StreamCtl, seq: u32) {
        loop {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq {
                break;
            }
            if st
                .token
                .compare_exchange(t.0, t.next().0, AcqRel, Relaxed)
                .is_ok()
            {
                break;
            }
        }
        self.notify(&self.raw.control().stream_wait);
    }

    /// Offers the bytes of the large message being put through lane `st` for its reader to
    /// copy straight from this process's memory (see [`Ring::read_direct`]), if it is large
    /// enough to be worth it.
    fn offer(&self, st: &StreamCtl, bytes: &[u8]) {
        st.direct.store(0, Relaxed);
        let on = self.raw.control().direct_copy.0.load(Relaxed) != 0;
        let me = if on && bytes.len() as u64 >= DIRECT_MIN {
            vm::identity().ok()
        } else {
            None
        };
        let Some(me) = me else {
            st.src_addr.store(0, Relaxed);
            return;
        };
        st.src_pid.store(u64::from(me.pid), Relaxed);
        st.src_start.store(me.start, Relaxed);
        st.src_ns.store(me.ns, Relaxed);
        st.src_addr.store(bytes.as_ptr() as u64, Relaxed);
    }

    /// Copies the large message of `len` bytes in lane `lane` (we are its reader, nothing of
    /// it read yet) into `out`: what is already in the lane, then the rest straight from the
    /// memory of its producer, which waits meanwhile (one copy instead of two).
    ///
    /// The producer is named by pid, and a pid can be reused once its process is gone: the
    /// bytes are taken only from the process whose start time and pid namespace the producer
    /// published, held by a pidfd from before the check until after the copy, and kept only
    /// if that process is still running after the copy. Until then the producer cannot
    /// return from its `put` (it waits for the reader to end the message), so the bytes stay
    /// valid.
    fn read_direct(&self, lane: usize, len: u64, out: &mut Vec<u8>) -> Direct {
        let c = self.raw.control();
        let st = &c.stream[lane];
        let addr = st.src_addr.load(Relaxed);
        if addr == 0 || len < DIRECT_MIN {
            return Direct::Refused(0);
        }
        let Ok(pid) = u32::try_from(st.src_pid.load(Relaxed)) else {
            return Direct::Refused(0);
        };
        let them = vm::Identity {
            pid,
            start: st.src_start.load(Relaxed),
            ns: st.src_ns.load(Relaxed),
        };
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            == Some(&them);
        if refused || vm::identity().map_or(true, |me| me.ns != them.ns) {
            return Direct::Refused(0);
        }
        let Ok(pidfd) = process::pidfd_open(pid) else {
            return Direct::Refused(0);
        };
        if vm::start_time(pid).ok() != Some(them.start) {
            return Direct::Refused(0);
        }
        st.direct.store(1, SeqCst);
        fence(SeqCst);
        // What the producer streamed before it saw the flag is in the lane (at most a lane's
        // worth: it writes only where we have read); once it sees the flag it writes no more.
        let w = st.written.load(Acquire).min(len).min(self.raw.lane_size());
        self.raw.stream_read(lane, 0, w as usize, out);
        self.notify(&c.stream_wait);
        if w == len {
            return Direct::Done;
        }
        fault::point(fault::DIRECT_STALL);
        let r = vm::read_remote(pid, addr.wrapping_add(w), (len - w) as usize, out);
        fault::point(fault::DIRECT_READ);
        if vm::has_exited(&pidfd) {
            return Direct::WriterDied;
        }
        match r {
            Ok(()) => Direct::Done,
            Err(e) => {
                if vm::is_refusal(&e) {
                    *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(them);
                }
                out.truncate(w as usize);
                st.direct.store(0, SeqCst);
                self.notify(&c.stream_wait);
                Direct::Refused(w)
            }
        }
    }

    /// Reads the message of `len` bytes spilled at `off` into `out`, if it is complete.
    fn read_spilled(&self, off: u64, len: u64, out: &mut Vec<u8>) -> bool {
        if !self.spilled(off, len) {
            return false;
        }
        out.clear();
        // The length is a claim of the producer: refuse what cannot be allocated.
        if usize::try_from(len).map_or(true, |n| out.try_reserve_exact(n).is_err()) {
            return false;
        }
        out.resize(len as usize, 0);
        // The mark again: had the extent been freed meanwhile (by a reaper that found a stale
        // reference to it), the bytes read may be holes.
        memfd::read_exact_at(&self.fd, out, off).unwrap_or(false) && self.spilled(off, len)
    }

    /// Reads the spilled message of `len` bytes whose slot (at `pos`, held by us) refers to,
    /// frees its memory and the slot. `false` (and counted abandoned) if it is not complete.
    fn get_spilled(&self, pos: u64, len: u64, out: &mut Vec<u8>) -> bool {
        let c = self.raw.control();
        let extent = self.extent(pos, len);
        let complete = extent.is_some_and(|off| self.read_spilled(off, len, out));
        if complete {
            // Copied out: from here, a reaper frees it instead of delivering it again.
            self.raw.slot(pos).kind.store(KIND_CONSUMED, Release);
            fault::point(fault::SPILL_READ);
        } else {
            out.clear();
            c.counters.abandoned.fetch_add(1, Relaxed);
        }
        if let Some(off) = extent {
            self.punch(off, len);
        }
        self.free(pos);
        complete
    }
}
