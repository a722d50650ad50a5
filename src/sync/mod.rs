//! Process-shared synchronisation: [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`],
//! [`Event`], [`Condition`], [`Barrier`].
//!
//! Each lives in its own anonymous shared segment and can be handed to a child process (as a
//! [`Process`](crate::Process) argument or inside a message), or shared between threads
//! (`Send + Sync`, and `Clone` is cheap: clones share the same primitive).
//!
//! Every blocking operation comes in four forms, as crossbeam's channels do: `acquire`
//! (blocks), `try_acquire` (never blocks), `acquire_timeout` and `acquire_deadline`.
//!
//! # When a participant dies
//!
//! | primitive | a participant is killed (even with `SIGKILL`) |
//! |---|---|
//! | [`Lock`], [`RLock`], the lock of a [`Value`](crate::shm::Value)/[`Array`](crate::shm::Array) | while holding it: the kernel releases it; the next acquirer gets it at once with an [`OwnerDied`] report, and every later one too until the poison is cleared |
//! | [`Semaphore`], [`BoundedSemaphore`] | a permit it held is not returned (a semaphore has no owner); waiters are unaffected, even by a waiter killed just after a release woke it |
//! | [`Event`] | nothing changes; a dead waiter is forgotten |
//! | [`Condition`] | while holding its lock: as for `Lock`; a waiter that died is skipped by later notifications, and a notification that chose it before it died reaches another waiter within 50 ms |
//! | [`Barrier`] | the others wait until their timeout (which breaks the barrier for all), or until someone calls [`abort`](Barrier::abort); dying inside the barrier's own short critical section breaks it |
//!
//! A waiter killed while it sleeps leaves the primitive's count of sleepers one too high
//! (nobody else can tell it died); that only costs each later release, `set` or `notify` one
//! spare wake-up system call.
//!
//! # Forgetting a guard
//!
//! A guard passed to [`std::mem::forget`] keeps its lock held (until the thread exits, when the
//! next acquirer is told [`OwnerDied`]). The C library keeps a held robust mutex in a per-thread
//! list that it and the kernel write through, so the segment of such a lock is never unmapped:
//! dropping its last handle closes the descriptor but leaves the memory mapped until the
//! process exits.
//!
//! # Differences from Python multiprocessing
//!
//! - Every process given a lock (or any primitive built on one: [`Condition`], [`Barrier`], a
//!   `Value`'s or `Array`'s lock) is trusted with it: the robust `pthread_mutex_t` lies in
//!   shared memory together with the C library's list pointers of the thread holding it, so a
//!   process that writes those bytes behind the crate's back can make the holder's C library
//!   write through pointers it chose. See the [`shm` trust model](crate::shm#trust).
//! - A [`Lock`] or [`RLock`] is released by dropping its guard, in the thread that acquired it
//!   (Python's `Lock` may be released by another process; a robust lock has an owner).
//! - A holder that dies does not block everybody forever: see the table above.
//! - [`Condition`] owns its lock, which is not re-entrant (Python's default is an `RLock`),
//!   and `notify` takes the guard, so notifying without the lock cannot compile.
//! - [`Barrier`]'s action is given to [`wait_with`](Barrier::wait_with) rather than to the
//!   constructor: a closure cannot travel to another process.
//! - Semaphore counts are `u32`; `Semaphore::value` works on every platform (Python's
//!   `get_value` is missing on macOS).

mod barrier;
mod condition;
mod event;
mod lock;
pub(crate) mod raw;
mod semaphore;

pub use barrier::{Barrier, BarrierWaitError};
pub use condition::{Condition, ConditionGuard};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, ReleaseError, Semaphore};

use std::fmt;

/// The lock was acquired, but a previous holder died (or panicked) while holding it, so the data
/// it protects may be half-updated. In the spirit of [`std::sync::PoisonError`].
///
/// The guard inside still holds the lock: repair the data through it, then call the guard's
/// `clear_poison` so that later acquirers are not told again; or take it with
/// [`into_inner`](OwnerDied::into_inner) and carry on.
///
/// # Examples
///
/// ```
/// use multiproc::shm::Value;
///
/// let v = Value::new(0u64).unwrap();
/// let guard = v.lock().unwrap_or_else(|died| died.into_inner());
/// assert_eq!(*guard, 0);
/// ```
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied { guard }
    }

    /// The guard: the lock is held.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard, to repair the data.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a previous holder of the lock died while holding it")
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// The result of a blocking acquire: the guard, or the guard wrapped in [`OwnerDied`].
pub type LockResult<G> = Result<G, OwnerDied<G>>;

/// Why a non-blocking or timed acquire did not simply succeed.
pub enum TryLockError<G> {
    /// Held by someone else (from `try_*`).
    WouldBlock,
    /// Still held when the time ran out (from `*_timeout` and `*_deadline`).
    TimedOut,
    /// Acquired, but a previous holder died holding it.
    OwnerDied(OwnerDied<G>),
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::TimedOut => f.write_str("TimedOut"),
            TryLockError::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by someone else"),
            TryLockError::TimedOut => f.write_str("timed out waiting for the lock"),
            TryLockError::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        TryLockError::OwnerDied(e)
    }
}

/// Turns a raw acquire result into the public forms.
///
/// # Panics
///
/// With the message `reentered` when this thread already holds the (non-recursive) lock and
/// asked to block for it: it would wait for itself forever. The message names the handle the
/// user holds and what to do instead.
pub(crate) fn wrap<'a, G>(
    res: Result<(raw::RawGuard<'a>, bool), raw::Fail>,
    reentered: &'static str,
    make: impl FnOnce(raw::RawGuard<'a>) -> G,
) -> Result<G, TryLockError<G>> {
    match res {
        Err(raw::Fail::Reentered) => panic!("{reentered}"),
        Ok((g, false)) => Ok(make(g)),
        Ok((g, true)) => Err(TryLockError::OwnerDied(OwnerDied::new(make(g)))),
        Err(raw::Fail::WouldBlock) => Err(TryLockError::WouldBlock),
        Err(raw::Fail::TimedOut) => Err(TryLockError::TimedOut),
    }
}

/// For blocking acquires, which cannot time out.
pub(crate) fn blocking<G>(res: Result<G, TryLockError<G>>) -> LockResult<G> {
    match res {
        Ok(g) => Ok(g),
        Err(TryLockError::OwnerDied(e)) => Err(e),
        Err(TryLockError::WouldBlock | TryLockError::TimedOut) => {
            unreachable!("a blocking acquire neither fails nor times out")
        }
    }
}
