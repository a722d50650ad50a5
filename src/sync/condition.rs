//! [`Condition`]: wait for a change announced by another process, under a robust lock.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::{
    CONDITION_SLOTS, RawCondition, RawGuard, SLOT_FREE, SLOT_NOTIFIED, SLOT_WAITING, Wait, WaitSlot,
};
use crate::sync::{LockResult, OwnerDied, TryLockError, blocking, wrap};
use crate::sys::futex;

type Seg = Segment<RawCondition, ()>;

/// Why a slot waiter stopped sleeping.
enum Woke {
    /// Its slot was notified.
    Notified,
    /// The deadline passed.
    TimedOut,
    /// Another waiter died holding a notification, to be handed on.
    Recover,
}

/// The longest a waiter sleeps before it looks for a notification that a dead waiter was given.
const RECHECK: Duration = Duration::from_millis(50);

/// The end of the next sleep: one [`RECHECK`] from now, or the deadline if that is sooner.
fn slice_end(deadline: Option<Instant>) -> Option<Instant> {
    let slice = Instant::now().checked_add(RECHECK);
    match (deadline, slice) {
        (Some(d), Some(s)) => Some(d.min(s)),
        (d, s) => d.or(s),
    }
}

/// A condition variable with its own robust lock, shared between processes and threads, like
/// Python's `multiprocessing.Condition()`.
///
/// Lock it with [`lock`](Condition::lock); [`wait`](Condition::wait) releases the lock while it
/// sleeps and takes it again before returning; [`notify`](Condition::notify) and
/// [`notify_all`](Condition::notify_all) require the lock (they take the guard). The shared
/// state that the waiters test lives elsewhere, for example in a
/// [`RawValue`](crate::shm::RawValue) changed only under this lock.
///
/// [`notify_n(n)`](Condition::notify_n) wakes exactly `n` of the waiters (or all, if fewer
/// wait), those that have waited longest first, as Python's `notify(n)` does: the others sleep
/// on. Each of the first 64 concurrent waiters sleeps in a slot of its own; beyond 64 waiters at
/// once, the extra ones share one word, and a notification that reaches them may wake them all
/// (a spurious wake-up). As with every condition variable, test the condition in a loop, or use
/// [`wait_while`](Condition::wait_while), as Python's `wait_for` does.
///
/// A process killed while holding the lock: the next locker gets [`OwnerDied`], as with
/// [`Lock`](crate::sync::Lock). A waiter holds a robust lock of its slot while it waits, so the
/// kernel reports its death: a waiter killed while it sleeps is skipped by later notifications
/// (they go to live waiters), and a waiter killed after a notification chose it, but before it
/// returned, does not swallow it: the other waiters look for such a notification every 50 ms
/// while they sleep, and hand it on to the longest-waiting live waiter.
///
/// # Examples
///
/// ```
/// use multiproc::shm::RawValue;
/// use multiproc::sync::Condition;
///
/// let cond = Condition::new().unwrap();
/// let ready = RawValue::new(0u8).unwrap();
/// let (c2, r2) = (cond.clone(), ready.clone());
/// let t = std::thread::spawn(move || {
///     let g = c2.lock().unwrap();
///     r2.store(1);
///     c2.notify_all(&g);
/// });
/// let g = cond.lock().unwrap();
/// let g = cond.wait_while(g, || ready.load() == 0).unwrap();
/// drop(g);
/// t.join().unwrap();
/// ```
#[derive(Clone)]
pub struct Condition {
    seg: Arc<Seg>,
}

/// Holds the lock of a [`Condition`]. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    raw: RawGuard<'a>,
}

impl ConditionGuard<'_> {
    /// Declares the protected state repaired after an [`OwnerDied`] report.
    pub fn clear_poison(&self) {
        self.raw.lock().clear_poison();
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

impl Condition {
    /// A new condition variable and its lock.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new() -> Result<Self, CreateError> {
        let seg = Seg::create(Tag::Condition, 0)?;
        seg.state().init().map_err(CreateError::Os)?;
        Ok(Condition { seg: Arc::new(seg) })
    }

    /// Takes the lock, blocking.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (holding the guard) when a previous holder died holding it.
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock.
    pub fn lock(&self) -> LockResult<ConditionGuard<'_>> {
        blocking(self.lock_with(Wait::Forever))
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`], or [`TryLockError::OwnerDied`].
    pub fn try_lock(&self) -> Result<ConditionGuard<'_>, TryLockError<ConditionGuard<'_>>> {
        self.lock_with(Wait::No)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`TryLockError::TimedOut`], or [`TryLockError::OwnerDied`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_>, TryLockError<ConditionGuard<'_>>> {
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.lock_with(wait)
    }

    fn lock_with(
        &self,
        wait: Wait,
    ) -> Result<ConditionGuard<'_>, TryLockError<ConditionGuard<'_>>> {
        wrap(
            self.seg.state().lock.acquire(self.seg.local(), wait),
            "this thread already holds this `Condition`'s lock (a `ConditionGuard` is alive), \
             which is not re-entrant: use the guard you hold",
            |raw| ConditionGuard { raw },
        )
    }

    fn check(&self, guard: &ConditionGuard<'_>) {
        assert!(
            // By segment, not by address: another mapping of this condition is the same one.
            guard.raw.local().same_segment(self.seg.local()),
            "the guard belongs to another Condition"
        );
    }

    /// Sleeps until notified (or, beyond 64 concurrent waiters, spuriously woken), with the lock
    /// released meanwhile; returns the guard with the lock held again.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`] (holding the guard) when a holder died while this thread slept.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another condition.
    pub fn wait<'a>(&'a self, guard: ConditionGuard<'a>) -> LockResult<ConditionGuard<'a>> {
        self.wait_until(guard, None).map(|(g, _)| g).map_err(|e| {
            let (g, _) = e.into_inner();
            OwnerDied::new(g)
        })
    }

    /// As [`wait`](Self::wait), for at most `timeout`; the `bool` is `true` if a notification
    /// woke this waiter, `false` if the time ran out first.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Self::wait).
    #[allow(clippy::type_complexity)]
    pub fn wait_timeout<'a>(
        &'a self,
        guard: ConditionGuard<'a>,
        timeout: Duration,
    ) -> Result<(ConditionGuard<'a>, bool), OwnerDied<(ConditionGuard<'a>, bool)>> {
        self.wait_until(guard, Instant::now().checked_add(timeout))
    }

    /// Waits while `condition` returns `true` (Python's `wait_for(lambda: not condition())`).
    ///
    /// # Errors
    ///
    /// As for [`wait`](Self::wait).
    pub fn wait_while<'a>(
        &'a self,
        mut guard: ConditionGuard<'a>,
        mut condition: impl FnMut() -> bool,
    ) -> LockResult<ConditionGuard<'a>> {
        while condition() {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`wait_while`](Self::wait_while), for at most `timeout`; the `bool` is `false` if the
    /// time ran out with `condition` still true.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Self::wait).
    #[allow(clippy::type_complexity)]
    pub fn wait_while_timeout<'a>(
        &'a self,
        mut guard: ConditionGuard<'a>,
        timeout: Duration,
        mut condition: impl FnMut() -> bool,
    ) -> Result<(ConditionGuard<'a>, bool), OwnerDied<(ConditionGuard<'a>, bool)>> {
        let deadline = Instant::now().checked_add(timeout);
        while condition() {
            let (g, in_time) = self.wait_until(guard, deadline)?;
            guard = g;
            if !in_time {
                let ok = !condition();
                return Ok((guard, ok));
            }
        }
        Ok((guard, true))
    }

    #[allow(clippy::type_complexity)]
    fn wait_until<'a>(
        &'a self,
        mut guard: ConditionGuard<'a>,
        deadline: Option<Instant>,
    ) -> Result<(ConditionGuard<'a>, bool), OwnerDied<(ConditionGuard<'a>, bool)>> {
        self.check(&guard);
        let (notified, poisoned) = match self.claim_slot() {
            Some((slot, owner)) => {
                let r = self.wait_in_slot(&mut guard, slot, deadline);
                // The lock is held again: nobody else can touch the slot now.
                slot.state.store(SLOT_FREE, SeqCst);
                drop(owner);
                r
            }
            None => self.wait_overflow(&mut guard, deadline),
        };
        if poisoned {
            Err(OwnerDied::new((guard, notified)))
        } else {
            Ok((guard, notified))
        }
    }

    /// Claims a free slot for this waiter (the lock is held): returns it with its liveness lock
    /// held, or `None` when every slot is taken by a live waiter.
    fn claim_slot(&self) -> Option<(&WaitSlot, RawGuard<'_>)> {
        let st = self.seg.state();
        self.hand_on_lost();
        for slot in &st.slots {
            if slot.state.load(SeqCst) != SLOT_FREE {
                continue;
            }
            // A free slot's liveness lock is unlocked, or marked as left by a waiter that died
            // after freeing the slot: either way this takes it at once.
            if let Ok((owner, poisoned)) = slot.owner.acquire(self.seg.local(), Wait::No) {
                if poisoned {
                    slot.owner.clear_poison();
                }
                slot.ticket
                    .store(st.next_ticket.fetch_add(1, SeqCst), SeqCst);
                slot.state.store(SLOT_WAITING, SeqCst);
                return Some((slot, owner));
            }
        }
        None
    }

    /// Sleeps in `slot` until it is notified or the deadline passes, with the lock released
    /// meanwhile and held again on return: returns whether it was notified and whether the lock
    /// is poisoned.
    fn wait_in_slot(
        &self,
        guard: &mut ConditionGuard<'_>,
        slot: &WaitSlot,
        deadline: Option<Instant>,
    ) -> (bool, bool) {
        let mut poisoned = false;
        loop {
            let (woke, p) = guard.raw.unlocked(|| {
                loop {
                    // Sleep in slices of RECHECK, to notice a waiter that died with a
                    // notification it could not take (see `hand_on_lost`).
                    futex::wait(&slot.state, SLOT_WAITING, slice_end(deadline));
                    if slot.state.load(SeqCst) != SLOT_WAITING {
                        return Woke::Notified;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Woke::TimedOut;
                    }
                    if self.lost_notification() {
                        return Woke::Recover;
                    }
                }
            });
            poisoned |= p;
            // With the lock held: a notification that arrived meanwhile counts, even after
            // the deadline (the notifier counted this waiter as woken).
            match woke {
                Woke::Recover => {
                    self.hand_on_lost();
                    if slot.state.load(SeqCst) == SLOT_NOTIFIED {
                        return (true, poisoned);
                    }
                }
                Woke::Notified | Woke::TimedOut => {
                    return (slot.state.load(SeqCst) == SLOT_NOTIFIED, poisoned);
                }
            }
        }
    }

    /// Waits without a slot (every slot is taken): returns once a notification reached the
    /// waiters without a slot, or at the deadline; then as [`wait_in_slot`](Self::wait_in_slot).
    fn wait_overflow(
        &self,
        guard: &mut ConditionGuard<'_>,
        deadline: Option<Instant>,
    ) -> (bool, bool) {
        let st = self.seg.state();
        let seq = st.overflow_seq.load(SeqCst);
        st.overflow.fetch_add(1, SeqCst);
        let (notified, poisoned) = guard.raw.unlocked(|| {
            loop {
                // In slices, like a slot waiter: a woken overflow waiter that dies swallows its
                // wake-up; the others see the changed word within a slice.
                futex::wait(&st.overflow_seq, seq, slice_end(deadline));
                if st.overflow_seq.load(SeqCst) != seq {
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
            }
        });
        st.overflow.fetch_sub(1, SeqCst);
        (notified, poisoned)
    }

    /// Whether a waiter died holding a notification (a hint, read without the lock).
    fn lost_notification(&self) -> bool {
        self.seg
            .state()
            .slots
            .iter()
            .any(|s| s.state.load(SeqCst) == SLOT_NOTIFIED && s.owner.holder_looks_dead())
    }

    /// Frees the slots of waiters that died (the lock is held), and hands each notification
    /// such a waiter had been given, but could not take, to a live waiter.
    fn hand_on_lost(&self) {
        let mut lost = 0;
        for slot in &self.seg.state().slots {
            if slot.state.load(SeqCst) != SLOT_FREE && slot.owner.holder_looks_dead() {
                lost += u32::from(self.reap(slot) == Some(SLOT_NOTIFIED));
            }
        }
        if lost > 0 {
            self.deliver(lost);
        }
    }

    /// If the waiter of `slot` died (or is gone), frees the slot (the lock is held) and returns
    /// the state it left; `None` if it lives.
    fn reap(&self, slot: &WaitSlot) -> Option<u32> {
        // A live waiter holds `owner`: the attempt fails (this thread is no waiter: it holds the
        // condition's lock outside `wait`, or it is the waiter of another slot).
        let (owner, poisoned) = slot.owner.acquire(self.seg.local(), Wait::No).ok()?;
        if poisoned {
            slot.owner.clear_poison();
        }
        let was = slot.state.swap(SLOT_FREE, SeqCst);
        drop(owner);
        Some(was)
    }

    /// Notifies up to `n` live slot waiters, the longest waiting first (the lock is held), then,
    /// for what is left of `n`, the waiters without a slot.
    fn deliver(&self, n: u32) {
        let st = self.seg.state();
        let next = st.next_ticket.load(SeqCst);
        // (how long it has waited, in tickets; slot index), for the waiting slots.
        let mut waiting = [(0u32, 0usize); CONDITION_SLOTS];
        let mut count = 0;
        for (i, s) in st.slots.iter().enumerate() {
            if s.state.load(SeqCst) == SLOT_WAITING {
                waiting[count] = (next.wrapping_sub(s.ticket.load(SeqCst)), i);
                count += 1;
            }
        }
        let waiting = &mut waiting[..count];
        waiting.sort_unstable_by(|a, b| b.cmp(a));
        let mut left = n;
        for &mut (_, i) in waiting {
            if left == 0 {
                break;
            }
            let slot = &st.slots[i];
            if self.reap(slot).is_some() {
                continue; // its waiter died before it was notified
            }
            slot.state.store(SLOT_NOTIFIED, SeqCst);
            futex::wake(&slot.state, 1);
            left -= 1;
        }
        if left > 0 && st.overflow.load(SeqCst) > 0 {
            st.overflow_seq.fetch_add(1, SeqCst);
            futex::wake(&st.overflow_seq, left);
        }
    }

    /// Wakes up to `n` waiters, those waiting longest first. Requires the lock (Python raises
    /// `RuntimeError` otherwise).
    ///
    /// Exactly `min(n, waiting)` waiters return from their `wait` for this call (while at most
    /// 64 wait at once; see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::shm::RawValue;
    /// use multiproc::sync::Condition;
    ///
    /// let cond = Condition::new().unwrap();
    /// let waiting = RawValue::new(0u32).unwrap();
    /// let threads: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let (c, w) = (cond.clone(), waiting.clone());
    ///         std::thread::spawn(move || {
    ///             let g = c.lock().unwrap();
    ///             w.store(w.load() + 1); // counted under the lock, which `wait` releases
    ///             drop(c.wait(g).unwrap());
    ///         })
    ///     })
    ///     .collect();
    /// loop {
    ///     let g = cond.lock().unwrap();
    ///     if waiting.load() == 2 {
    ///         cond.notify_n(&g, 2); // both are waiting: both wake
    ///         break;
    ///     }
    /// }
    /// for t in threads {
    ///     t.join().unwrap();
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another condition.
    pub fn notify_n(&self, guard: &ConditionGuard<'_>, n: u32) {
        self.check(guard);
        self.hand_on_lost();
        if n > 0 {
            self.deliver(n);
        }
    }

    /// Wakes one waiter (Python's `notify()`).
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another condition.
    pub fn notify(&self, guard: &ConditionGuard<'_>) {
        self.notify_n(guard, 1);
    }

    /// Wakes every waiter.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another condition.
    pub fn notify_all(&self, guard: &ConditionGuard<'_>) {
        self.notify_n(guard, u32::MAX);
    }

    /// A new descriptor for the condition's segment.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens a condition from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError`] when the segment holds something else.
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        Ok(Condition {
            seg: Arc::new(Seg::attach(Tag::Condition, fd.into_owned_fd())?),
        })
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Condition {
            seg: Arc::new(crate::shm::deserialize_segment(Tag::Condition, d)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_times_out_and_reacquires() {
        let c = Condition::new().unwrap();
        let g = c.lock().unwrap();
        let t = Instant::now();
        let (g, in_time) = c.wait_timeout(g, Duration::from_millis(30)).unwrap();
        assert!(!in_time);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // Still held by us.
        let c2 = c.clone();
        std::thread::spawn(move || assert!(c2.try_lock().is_err()))
            .join()
            .unwrap();
        drop(g);
    }

    #[test]
    #[should_panic(expected = "another Condition")]
    fn foreign_guard_is_refused() {
        let a = Condition::new().unwrap();
        let b = Condition::new().unwrap();
        let g = a.lock().unwrap();
        b.notify(&g);
    }
}
