//! [`Barrier`]: a meeting point for a fixed number of processes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::{RawBarrier, RawGuard, Wait};
use crate::sys::futex;

type Seg = Segment<RawBarrier, ()>;

/// Why [`Barrier::wait`] did not pass the barrier. Either way the barrier is now broken for
/// everyone until [`Barrier::reset`]. Python: `threading.BrokenBarrierError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BarrierWaitError {
    /// The barrier was broken (by [`abort`](Barrier::abort), [`reset`](Barrier::reset) while
    /// this party waited, another party's timeout, a failed action, or a party that died in
    /// the barrier's critical section).
    #[error("the barrier is broken")]
    Broken,
    /// This party's own timeout ran out, which broke the barrier.
    #[error("timed out waiting at the barrier, which is now broken")]
    TimedOut,
}

/// A barrier for `parties` processes or threads, like Python's `multiprocessing.Barrier`:
/// each [`wait`](Barrier::wait) blocks until `parties` callers are waiting, then all go on.
///
/// Python's `action` is given to the wait call: [`wait_with`](Barrier::wait_with) runs it in
/// the last party to arrive, before the others are released (the closure never travels to
/// another process).
///
/// A party that dies is not counted out: the others wait until their timeout (which breaks
/// the barrier), or until someone calls [`abort`](Barrier::abort). A party killed inside the
/// barrier's own short critical section breaks it.
///
/// # Examples
///
/// ```
/// use multiproc::sync::Barrier;
///
/// let barrier = Barrier::new(2).unwrap();
/// let other = barrier.clone();
/// let t = std::thread::spawn(move || other.wait().unwrap());
/// let mine = barrier.wait().unwrap();
/// let theirs = t.join().unwrap();
/// assert_eq!(mine + theirs, 1); // arrival indices 0 and 1
/// ```
#[derive(Clone)]
pub struct Barrier {
    seg: Arc<Seg>,
}

/// `word` = generation << 1 | broken.
fn generation(word: u32) -> u32 {
    word >> 1
}

fn is_broken(word: u32) -> bool {
    word & 1 != 0
}

fn history_bit(generation: u32) -> u64 {
    1u64 << (generation % 64)
}

impl Barrier {
    /// A barrier for `parties` participants.
    ///
    /// # Errors
    ///
    /// [`CreateError::InvalidArgument`] for zero parties; otherwise when the system cannot
    /// create the segment.
    pub fn new(parties: u32) -> Result<Self, CreateError> {
        if parties == 0 {
            return Err(CreateError::InvalidArgument(
                "a barrier needs at least one party",
            ));
        }
        let seg = Seg::create(Tag::Barrier, 0)?;
        seg.state().lock.init(false).map_err(CreateError::Os)?;
        seg.state().parties.store(parties, SeqCst);
        Ok(Barrier { seg: Arc::new(seg) })
    }

    fn state(&self) -> &RawBarrier {
        self.seg.state()
    }

    /// Takes the barrier's lock; a party that died holding it broke the barrier.
    fn lock(&self) -> RawGuard<'_> {
        let st = self.state();
        match st.lock.acquire(self.seg.local(), Wait::Forever) {
            Ok((g, poisoned)) => {
                if poisoned {
                    st.lock.clear_poison();
                    self.break_locked();
                }
                g
            }
            Err(_) => unreachable!("a blocking acquire cannot fail"),
        }
    }

    /// Breaks the current generation (with the lock held) and wakes its waiters.
    fn break_locked(&self) {
        let st = self.state();
        let w = st.word.load(SeqCst);
        st.history.fetch_or(history_bit(generation(w)), SeqCst);
        st.word.store(w | 1, SeqCst);
        futex::wake(&st.word, u32::MAX);
    }

    fn wait_inner(
        &self,
        action: Option<&mut dyn FnMut()>,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierWaitError> {
        let st = self.state();
        let guard = self.lock();
        let w = st.word.load(SeqCst);
        if is_broken(w) {
            return Err(BarrierWaitError::Broken);
        }
        let this_gen = generation(w);
        let index = st.count.fetch_add(1, SeqCst);
        if index + 1 >= st.parties.load(SeqCst) {
            if let Some(action) = action {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(action));
                if let Err(panic) = ran {
                    self.break_locked();
                    drop(guard);
                    std::panic::resume_unwind(panic);
                }
            }
            let next = this_gen.wrapping_add(1) & (u32::MAX >> 1);
            st.count.store(0, SeqCst);
            st.history.fetch_and(!history_bit(next), SeqCst);
            st.word.store(next << 1, SeqCst);
            futex::wake(&st.word, u32::MAX);
            return Ok(index);
        }
        drop(guard);
        let outcome = |w: u32| {
            if generation(w) != this_gen {
                // Our generation ended: released, or broken and then reset.
                Some(if st.history.load(SeqCst) & history_bit(this_gen) != 0 {
                    Err(BarrierWaitError::Broken)
                } else {
                    Ok(index)
                })
            } else if is_broken(w) {
                Some(Err(BarrierWaitError::Broken))
            } else {
                None
            }
        };
        loop {
            let w = st.word.load(SeqCst);
            if let Some(r) = outcome(w) {
                return r;
            }
            if !futex::wait(&st.word, w, deadline) {
                let _g = self.lock();
                let w = st.word.load(SeqCst);
                if let Some(r) = outcome(w) {
                    return r;
                }
                self.break_locked();
                return Err(BarrierWaitError::TimedOut);
            }
        }
    }

    /// Waits until all parties wait; returns this party's arrival index (`0..parties`).
    ///
    /// # Errors
    ///
    /// [`BarrierWaitError::Broken`] when the barrier is or becomes broken.
    pub fn wait(&self) -> Result<u32, BarrierWaitError> {
        self.wait_inner(None, None)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; running out breaks the barrier.
    ///
    /// # Errors
    ///
    /// [`BarrierWaitError::TimedOut`], or [`BarrierWaitError::Broken`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierWaitError> {
        self.wait_inner(None, Instant::now().checked_add(timeout))
    }

    /// As [`wait`](Self::wait), until `deadline`.
    ///
    /// # Errors
    ///
    /// As for [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&self, deadline: Instant) -> Result<u32, BarrierWaitError> {
        self.wait_inner(None, Some(deadline))
    }

    /// As [`wait`](Self::wait) (with an optional `timeout`), and if this party is the last to
    /// arrive, runs `action` before the others are released (Python's `action`). If `action`
    /// panics the barrier is broken and the panic continues in this party.
    ///
    /// # Errors
    ///
    /// As for [`wait_timeout`](Self::wait_timeout).
    pub fn wait_with(
        &self,
        action: impl FnOnce(),
        timeout: Option<Duration>,
    ) -> Result<u32, BarrierWaitError> {
        let mut action = Some(action);
        let mut run = || {
            if let Some(f) = action.take() {
                f()
            }
        };
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.wait_inner(Some(&mut run), deadline)
    }

    /// Breaks the barrier: current and future waiters get [`BarrierWaitError::Broken`] until
    /// [`reset`](Self::reset).
    pub fn abort(&self) {
        let _g = self.lock();
        self.break_locked();
    }

    /// Returns the barrier to its initial state; parties waiting now get
    /// [`BarrierWaitError::Broken`]. Does nothing if nobody waits and it is not broken.
    pub fn reset(&self) {
        let st = self.state();
        let _g = self.lock();
        let w = st.word.load(SeqCst);
        let this_gen = generation(w);
        if st.count.load(SeqCst) == 0 && !is_broken(w) {
            // Already in its initial state. Moving to a new generation anyway would let
            // repeated resets walk `history` round (64 generations) and erase the broken mark
            // of a generation whose waiter has not woken up yet.
            return;
        }
        st.history.fetch_or(history_bit(this_gen), SeqCst);
        let next = this_gen.wrapping_add(1) & (u32::MAX >> 1);
        st.history.fetch_and(!history_bit(next), SeqCst);
        st.count.store(0, SeqCst);
        st.word.store(next << 1, SeqCst);
        futex::wake(&st.word, u32::MAX);
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        is_broken(self.state().word.load(SeqCst))
    }

    /// The number of parties needed to pass.
    pub fn parties(&self) -> u32 {
        self.state().parties.load(SeqCst)
    }

    /// The number of parties waiting now.
    pub fn n_waiting(&self) -> u32 {
        if self.is_broken() {
            0
        } else {
            self.state().count.load(SeqCst)
        }
    }

    /// A new descriptor for the barrier's segment.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens a barrier from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError`] when the segment holds something else.
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        Ok(Barrier {
            seg: Arc::new(Seg::attach(Tag::Barrier, fd.into_owned_fd())?),
        })
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Barrier {
            seg: Arc::new(crate::shm::deserialize_segment(Tag::Barrier, d)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_repeat_and_action_runs_once() {
        let b = Barrier::new(3).unwrap();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (b, runs) = (b.clone(), runs.clone());
                std::thread::spawn(move || {
                    let mut idx = Vec::new();
                    for _ in 0..50 {
                        let r = b.wait_with(
                            || {
                                runs.fetch_add(1, SeqCst);
                            },
                            None,
                        );
                        idx.push(r.unwrap());
                    }
                    idx
                })
            })
            .collect();
        let all: Vec<Vec<u32>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for round in 0..50 {
            let mut r: Vec<u32> = all.iter().map(|v| v[round]).collect();
            r.sort();
            assert_eq!(r, [0, 1, 2]);
        }
        assert_eq!(runs.load(SeqCst), 50);
    }

    #[test]
    fn timeout_breaks_and_reset_repairs() {
        let b = Barrier::new(2).unwrap();
        let t = Instant::now();
        assert_eq!(
            b.wait_timeout(Duration::from_millis(30)),
            Err(BarrierWaitError::TimedOut)
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(b.is_broken());
        assert_eq!(b.wait(), Err(BarrierWaitError::Broken));
        b.reset();
        assert!(!b.is_broken());
        let other = b.clone();
        let h = std::thread::spawn(move || other.wait());
        assert!(b.wait().is_ok());
        assert!(h.join().unwrap().is_ok());
    }

    #[test]
    fn abort_wakes_waiters() {
        let b = Barrier::new(2).unwrap();
        let other = b.clone();
        let h = std::thread::spawn(move || other.wait_timeout(Duration::from_secs(30)));
        while b.n_waiting() == 0 {
            std::thread::yield_now();
        }
        b.abort();
        assert_eq!(h.join().unwrap(), Err(BarrierWaitError::Broken));
        assert!(Barrier::new(0).is_err());
    }
}
