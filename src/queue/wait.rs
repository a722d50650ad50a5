//! Waiting: spin, yield, then sleep on a futex word of the segment, waking periodically to
//! check the liveness of the processes waited on.

use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::sync::atomic::fence;
use std::time::{Duration, Instant};

use super::raw::WaitWord;
use super::ring::Ring;
use crate::sys::futex;

/// Polls before the first yield (with 1, 2, 4, 8, then 16 pause instructions between polls):
/// about a microsecond, enough for a peer on another CPU that is about to answer.
const SPINS: u32 = 8;
/// Then this many rounds of a yield (which lets a peer on the same CPU run) followed by a
/// longer spin (which catches a peer on another CPU), before sleeping.
const YIELDS: u32 = 6;
/// Pause instructions in each of those longer spins.
const LONG_SPIN: u32 = 128;
/// The longest a waiter sleeps before it re-checks the liveness of the processes it waits on.
const SWEEP: Duration = Duration::from_millis(50);

/// Spins, then yields, then says it is time to sleep.
pub(super) struct Backoff {
    step: u32,
    peer: Peer,
}

/// Where the process we wait for runs, when we know.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Peer {
    /// Unknown (many producers or consumers): spin briefly, then alternate yields and spins.
    Unknown,
    /// On another CPU: spin longer before sleeping.
    Elsewhere,
    /// On our CPU: yield at once (spinning would only delay it).
    Here,
}

/// Rounds of 16 pauses a waiter spins when it knows its peer runs on another CPU (a few tens
/// of microseconds), before it sleeps.
const FAR_SPINS: u32 = 300;

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff::with_peer(Peer::Unknown)
    }

    pub(super) fn with_peer(peer: Peer) -> Self {
        Backoff { step: 0, peer }
    }

    /// `true` once spinning and yielding are over: the caller should sleep.
    pub(super) fn snooze(&mut self) -> bool {
        let n = self.step;
        match self.peer {
            Peer::Here if n < YIELDS => std::thread::yield_now(),
            Peer::Elsewhere if n < FAR_SPINS => {
                if n % 64 == 63 {
                    // In case the peer moved to our CPU since it said where it was.
                    std::thread::yield_now();
                } else {
                    for _ in 0..16 {
                        std::hint::spin_loop();
                    }
                }
            }
            Peer::Unknown if n < SPINS => {
                for _ in 0..(1u32 << n.min(4)) {
                    std::hint::spin_loop();
                }
            }
            Peer::Unknown if n < SPINS + 2 * YIELDS => {
                if (n - SPINS).is_multiple_of(2) {
                    std::thread::yield_now();
                } else {
                    for _ in 0..LONG_SPIN {
                        std::hint::spin_loop();
                    }
                }
            }
            _ => return true,
        }
        self.step += 1;
        false
    }
}

impl Ring {
    /// Wakes the sleepers of `w`, if any. Called after the change they wait for is visible.
    /// Wakes everyone sleeping for messages (they re-check whatever they wait for).
    pub(super) fn wake_consumers(&self) {
        let w = &self.raw.control().items;
        w.seq.fetch_add(1, SeqCst);
        futex::wake(&w.seq, u32::MAX);
    }

    pub(super) fn notify(&self, w: &WaitWord) {
        fence(SeqCst);
        if w.waiters.load(Relaxed) > 0 {
            w.seq.fetch_add(1, Release);
            futex::wake(&w.seq, u32::MAX);
        }
    }

    /// Sleeps on `w` while `unchanged()` holds, until `deadline` or for at most [`SWEEP`].
    /// Returns `false` once the deadline has passed.
    pub(super) fn sleep(
        &self,
        w: &WaitWord,
        deadline: Option<Instant>,
        unchanged: impl Fn() -> bool,
    ) -> bool {
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return false;
        }
        let wake = now + SWEEP;
        let until = deadline.map_or(wake, |d| d.min(wake));
        w.waiters.fetch_add(1, SeqCst);
        fence(SeqCst);
        let seq = w.seq.load(SeqCst);
        let timed_out = if unchanged() {
            !futex::wait(&w.seq, seq, Some(until))
        } else {
            false
        };
        w.waiters.fetch_sub(1, SeqCst);
        if timed_out && until == wake {
            // The periodic re-check: a process we wait for may have died.
            self.sweep();
        }
        deadline.is_none_or(|d| Instant::now() < d)
    }
}
