//! `JoinableQueue`'s tasks, counted from what the process table already holds (see
//! [`JoinableQueue`](super::JoinableQueue) for the definition): nothing to undo when a process
//! dies.

use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::time::Instant;

use super::raw::WaitWord;
use super::ring::Ring;

impl Ring {
    /// Makes this queue count tasks: set by its creator before anyone else has it.
    pub(crate) fn set_joinable(&self) {
        self.raw.control().counters.joinable.store(1, SeqCst);
    }

    /// Marks one task done: one of ours (got by this process and not yet marked done), or
    /// else one of another live member's. `false` if no live member holds one.
    pub(crate) fn task_done(&self) -> bool {
        let me = self.me;
        let found = self.mark_done(me)
            || (1..=self.raw.geometry().members as u16)
                .filter(|&o| o != me && self.raw.member(u32::from(o - 1)).state.load(Acquire) != 0)
                .any(|o| self.alive(o) && self.mark_done(o));
        if found {
            self.notify(&self.raw.control().joined);
        }
        found
    }

    /// Counts one task of member `owner` done, if it holds one.
    fn mark_done(&self, owner: u16) -> bool {
        let m = self.raw.member(u32::from(owner - 1));
        let mut d = m.done.load(SeqCst);
        loop {
            if d >= m.got.load(SeqCst) {
                return false;
            }
            match m.done.compare_exchange_weak(d, d + 1, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => d = now,
            }
        }
    }

    /// Tasks not yet done: messages in the queue, gets in progress, and messages got and not
    /// marked done, by the members alive (or not yet found dead).
    ///
    /// The reads are ordered against a consumer's (`taking` up, slot taken, head moved, `got`
    /// up, `taking` down, all sequentially consistent): whoever sees the head moved past a
    /// message then sees the consumer taking it, or its `got` counted.
    pub(crate) fn unfinished(&self) -> u64 {
        self.skip_abandoned();
        let mut n = self.len();
        for i in 0..self.raw.geometry().members {
            let m = self.raw.member(i);
            if m.state.load(SeqCst) == 0 {
                continue;
            }
            let taking = m.taking.load(SeqCst);
            let got = m.got.load(SeqCst);
            let done = m.done.load(SeqCst);
            n = n
                .saturating_add(taking)
                .saturating_add(got.saturating_sub(done));
        }
        n
    }

    /// Waits until no task is unfinished; `false` at the deadline.
    pub(crate) fn join(&self, deadline: Option<Instant>) -> bool {
        let w: &WaitWord = &self.raw.control().joined;
        loop {
            if self.unfinished() == 0 {
                return true;
            }
            if !self.sleep(w, deadline, || self.unfinished() != 0) {
                return self.unfinished() == 0;
            }
        }
    }
}
