//! Large messages: the stream lanes and their tokens.
//!
//! A message larger than a slot's payload keeps its place in the queue's order with a slot that
//! refers to a stream lane (the lane, the message's number in it, its length); its bytes go
//! through that lane, while the consumer that took the slot copies them out. Each lane carries
//! one message at a time, so as many large messages as there are lanes can be in flight.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Instant;

use super::raw::LANES;
use super::ring::{Backoff, Fail, KIND_LARGE, Ring, Wait, fault};

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
/// reader to copy while the writer fills the next chunk.
const CHUNK: u64 = 256 * 1024;

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

    /// The stream lane, message number and length a large message's slot refers to.
    pub(super) fn large_ref(&self, pos: u64) -> (usize, u32, u64) {
        let mut b = Vec::with_capacity(16);
        self.raw.read_payload(pos, 0, 16, &mut b);
        let word = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
        // A lane number out of range (written by someone else than this crate) is clamped: the
        // message number then does not match and the message is skipped.
        let lane = ((word >> 32) as usize).min(LANES - 1);
        (lane, word as u32, len)
    }

    pub(super) fn put_large(&self, bytes: &[u8], wait: Wait) -> Result<(), Fail> {
        let c = self.raw.control();
        let deadline = wait.deadline();
        let len = bytes.len() as u64;
        // 1. A free stream lane.
        let mut backoff = Backoff::new();
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
        let slot = self.raw.slot(pos);
        slot.kind.store(KIND_LARGE, Relaxed);
        slot.len.store(16, Relaxed);
        let word = (lane as u64) << 32 | u64::from(seq);
        self.raw.write_payload(pos, 0, &word.to_le_bytes());
        self.raw.write_payload(pos, 8, &len.to_le_bytes());
        self.publish(pos);
        // 3. The bytes, through the stream area.
        let size = self.raw.lane_size();
        let mut done = 0u64;
        let mut backoff = Backoff::new();
        while done < len {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq & SEQ_MASK {
                // The reader died and was reaped: the message is lost and counted as dropped.
                return Ok(());
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
                if t.reader() == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
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
                let unchanged = || st.token.load(Acquire) == t.0 && st.read.load(Acquire) == read;
                // Once a reader is attached the message is committed: no deadline applies.
                let until = if t.reader() == 0 { deadline } else { None };
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
        let (lane, seq, _) = self.large_ref(pos);
        let st = &c.stream[lane];
        let seq = seq & SEQ_MASK;
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

    /// Reads the large message whose slot (at `pos`, held by us) refers to the stream.
    /// Frees the slot. `false` if the message is gone.
    pub(super) fn get_large(&self, pos: u64, out: &mut Vec<u8>) -> bool {
        let c = self.raw.control();
        let (lane, seq, len) = self.large_ref(pos);
        let st = &c.stream[lane];
        let seq = seq & SEQ_MASK;
        loop {
            let t = Token(st.token.load(Acquire));
            if !t.is_active() || t.seq() != seq || t.reader() != 0 {
                self.free(pos);
                c.counters.abandoned.fetch_add(1, Relaxed);
                return false;
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
        self.free(pos);
        let size = self.raw.lane_size();
        // At most 64 MiB ahead of the bytes that come (a length is only a claim of the peer).
        out.reserve(len.min(1 << 26) as usize);
        let mut done = 0u64;
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
                // The writer died half-way (or left without finishing): the message is torn.
                if st
                    .token
                    .compare_exchange(t.0, t.next().0, AcqRel, Relaxed)
                    .is_ok()
                {
                    c.counters.abandoned.fetch_add(1, Relaxed);
                    self.notify(&c.stream_wait);
                    return false;
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
        self.notify(&c.stream_wait);
        true
    }
}
