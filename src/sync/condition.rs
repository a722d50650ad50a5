//! [`Condition`]: wait for a change announced by another process, under a robust lock.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::{RawCondition, RawGuard, Wait};
use crate::sync::{LockResult, OwnerDied, TryLockError, blocking, wrap};
use crate::sys::futex;

type Seg = Segment<RawCondition, ()>;

/// The longest a waiter sleeps before it checks for a notification it was not woken for.
const RECHECK: Duration = Duration::from_millis(50);

/// A condition variable with its own robust lock, shared between processes and threads, like
/// Python's `multiprocessing.Condition()`.
///
/// Lock it with [`lock`](Condition::lock); [`wait`](Condition::wait) releases the lock while it
/// sleeps and takes it again before returning; [`notify`](Condition::notify) and
/// [`notify_all`](Condition::notify_all) require the lock (they take the guard). The shared
/// state that the waiters test lives elsewhere, for example in a
/// [`RawValue`](crate::shm::RawValue) changed only under this lock.
///
/// Wake-ups can be spurious (a waiter may return without a notification, and `notify(1)` may
/// wake more than one waiter), so test the condition in a loop, or use
/// [`wait_while`](Condition::wait_while), as Python's `wait_for` does.
///
/// A process killed while holding the lock: the next locker gets
/// [`OwnerDied`], as with [`Lock`](crate::sync::Lock). A killed waiter is forgotten; if it was
/// killed after a `notify` woke it and before it returned, the notification is not lost: the
/// other waiters sleep in slices of 50 ms and return (as on a spurious wake-up) once they see
/// that a notification happened, so it reaches them within 50 ms. (Waking every waiter on each
/// `notify` would avoid the delay, but costs every waiter a trip through the lock for each
/// notification.)
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
        seg.state().lock.init(false).map_err(CreateError::Os)?;
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

    /// Sleeps until notified (or spuriously woken), with the lock released meanwhile; returns
    /// the guard with the lock held again.
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

    /// As [`wait`](Self::wait), for at most `timeout`; the `bool` is `false` if the time ran out.
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
        let st = self.seg.state();
        let seq = st.seq.load(SeqCst);
        st.waiters.fetch_add(1, SeqCst);
        let (in_time, poisoned) = guard.raw.unlocked(|| {
            loop {
                // Sleep in slices of RECHECK: a waiter woken by `notify` but killed before it
                // returns swallows that wake-up; the others notice the notification (a changed
                // `seq`) within one slice and return, as a spurious wake-up would.
                let slice = Instant::now().checked_add(RECHECK);
                let until = match (deadline, slice) {
                    (Some(d), Some(s)) => Some(d.min(s)),
                    (d, s) => d.or(s),
                };
                let woke = futex::wait(&st.seq, seq, until);
                if woke || st.seq.load(SeqCst) != seq {
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
            }
        });
        st.waiters.fetch_sub(1, SeqCst);
        if poisoned {
            Err(OwnerDied::new((guard, in_time)))
        } else {
            Ok((guard, in_time))
        }
    }

    /// Wakes up to `n` waiters. Requires the lock (Python raises `RuntimeError` otherwise).
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another condition.
    pub fn notify_n(&self, guard: &ConditionGuard<'_>, n: u32) {
        self.check(guard);
        let st = self.seg.state();
        st.seq.fetch_add(1, SeqCst);
        if st.waiters.load(SeqCst) > 0 {
            futex::wake(&st.seq, n);
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
