//! The shared states of the synchronisation primitives, as they lie in a segment.
//!
//! `RawLock` wraps a process-shared robust `pthread_mutex_t` (see [`crate::sys::pthread`]) plus
//! a poison word; the others are built from 32-bit atomics and shared futexes.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::shm::layout::{HeldLock, Local, State, Tag};
use crate::sys::pthread::{self, Status};

/// Polls of the lock word before blocking. With exponential back-off (1, 2, 4, ... 32 pause
/// instructions) this waits a few microseconds: long enough to catch a holder on another CPU
/// releasing, short enough not to burn a time slice when the holder shares our CPU.
const SPIN_ROUNDS: u32 = 12;

/// How to wait for a lock.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Do not wait.
    No,
    /// Wait as long as it takes.
    Forever,
    /// Wait until the deadline.
    Until(Instant),
}

/// Why a lock was not acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Held by someone else ([`Wait::No`]).
    WouldBlock,
    /// Still held at the deadline.
    TimedOut,
    /// A blocking acquire of a non-recursive lock this very thread holds (it would never
    /// return); the caller names the handle in its panic message.
    Reentered,
}

/// A robust, process-shared mutex and its poison word.
///
/// | `poisoned` | meaning |
/// |---|---|
/// | 0 | the data is as the last holder left it |
/// | 1 | a holder died (or panicked) holding the lock; stays set until cleared |
///
/// The mutex itself is always consistent: the acquirer that receives `EOWNERDEAD` marks it
/// consistent at once and records the death in `poisoned` instead, so a lock is never left
/// unusable (`ENOTRECOVERABLE`) and every later acquirer is told, as with `std`'s poisoning.
#[repr(C)]
pub(crate) struct RawLock {
    mutex: UnsafeCell<pthread::Mutex>,
    poisoned: AtomicU32,
}

// SAFETY: the mutex is only used through the C library's lock calls, which are made for
// concurrent use (process-shared); `poisoned` is atomic.
unsafe impl Sync for RawLock {}
// SAFETY: `repr(C)`, zero bytes are a valid (uninitialised) state that `init` turns into a
// mutex before the segment is shared; no pointers.
unsafe impl State for RawLock {
    fn is_valid(&self, tag: Tag) -> bool {
        self.is_robust_shared(tag == Tag::RLock)
    }
}

impl RawLock {
    /// Initialises the mutex of a segment nobody else can see yet.
    pub(crate) fn init(&self, recursive: bool) -> std::io::Result<()> {
        // SAFETY: the segment is fresh: nobody uses the mutex yet; the pointer is valid and aligned.
        unsafe { pthread::init(self.mutex.get(), recursive) }
    }

    /// Whether the mutex is a robust, process-shared one of the type `init(recursive)` makes.
    pub(crate) fn is_robust_shared(&self, recursive: bool) -> bool {
        // SAFETY: the pointer is valid and aligned for as long as `self` is borrowed.
        unsafe { pthread::kind_matches(self.mutex.get(), recursive) }
    }

    /// A hint that the lock is free, read without writing the cache line.
    #[inline]
    fn looks_free(&self) -> bool {
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: glibc's `pthread_mutex_t` begins with its 32-bit lock word (`__lock`) on
            // every architecture, which glibc only changes atomically; the pointer is aligned.
            // The value is a hint: correctness rests on the trylock that follows.
            let word = unsafe { std::sync::atomic::AtomicI32::from_ptr(self.mutex.get().cast()) };
            let w = word.load(Ordering::Relaxed);
            w == 0 || w & (rustix::thread::futex::OWNER_DIED as i32) != 0
        }
        #[cfg(not(target_env = "gnu"))]
        true
    }

    /// A hint that the holder died holding the lock, and nobody took it since (the kernel
    /// marked the lock word `FUTEX_OWNER_DIED`), read without writing the cache line. Where the
    /// word cannot be read, `true`: then a `try_acquire` decides.
    #[inline]
    pub(crate) fn holder_looks_dead(&self) -> bool {
        #[cfg(target_env = "gnu")]
        {
            // SAFETY: as in `looks_free`.
            let word = unsafe { std::sync::atomic::AtomicI32::from_ptr(self.mutex.get().cast()) };
            word.load(Ordering::Relaxed) & (rustix::thread::futex::OWNER_DIED as i32) != 0
        }
        #[cfg(not(target_env = "gnu"))]
        true
    }

    /// Acquires the lock: returns the guard and whether the lock is poisoned. `local` is the
    /// record of the mapping `self` lies in, which counts the guards alive.
    ///
    /// # Panics
    ///
    /// If the bytes of the mutex were overwritten (then without holding it). The blocking
    /// acquires of the public API have no error to report this with; it takes a process that
    /// writes the segment behind the crate's back. (A blocking acquire by the thread that holds
    /// the lock already returns [`Fail::Reentered`], for the caller to report.)
    #[inline]
    pub(crate) fn acquire<'a>(
        &'a self,
        local: &'a Local,
        wait: Wait,
    ) -> Result<(RawGuard<'a>, bool), Fail> {
        // SAFETY: the mutex was initialised before the segment was shared, and `self` keeps
        // the mapping alive for as long as the guard that unlocks it.
        let mut st = unsafe { pthread::try_lock(self.mutex.get()) };
        if st == Status::Busy {
            st = match wait {
                Wait::No => return Err(Fail::WouldBlock),
                Wait::Forever | Wait::Until(_) => self.acquire_slow(wait),
            };
        }
        let poisoned = self.finish(st, wait)?;
        local.hold();
        Ok((
            RawGuard {
                lock: self,
                local,
                panicking: std::thread::panicking(),
                _not_send: PhantomData,
            },
            poisoned,
        ))
    }

    #[cold]
    fn acquire_slow(&self, wait: Wait) -> Status {
        for round in 0..SPIN_ROUNDS {
            for _ in 0..(1u32 << round.min(5)) {
                std::hint::spin_loop();
            }
            if self.looks_free() {
                // SAFETY: as in `acquire`.
                let st = unsafe { pthread::try_lock(self.mutex.get()) };
                if st != Status::Busy {
                    return st;
                }
            }
        }
        match wait {
            // SAFETY: as in `acquire`.
            Wait::Forever => unsafe { pthread::lock(self.mutex.get()) },
            // SAFETY: as in `acquire`.
            Wait::Until(deadline) => unsafe { pthread::lock_until(self.mutex.get(), deadline) },
            Wait::No => Status::Busy,
        }
    }

    /// Turns the outcome of a lock attempt into whether the (now held) lock is poisoned.
    fn finish(&self, st: Status, wait: Wait) -> Result<bool, Fail> {
        match st {
            Status::Acquired => Ok(self.poisoned.load(Ordering::Relaxed) != 0),
            Status::OwnerDied => {
                // SAFETY: we hold the mutex, acquired with EOWNERDEAD.
                if let Err(e) = unsafe { pthread::make_consistent(self.mutex.get()) } {
                    // Only possible if the mutex bytes were overwritten (see the `shm` trust
                    // model). Release it before unwinding, so that no guard-less panic leaves
                    // it locked and linked in this thread's robust list; unlocked while
                    // inconsistent, it becomes unusable for everyone, who then panic too.
                    // SAFETY: we hold the mutex.
                    unsafe { pthread::unlock(self.mutex.get()) };
                    panic!(
                        "the lock in shared memory is unusable: cannot recover it after its holder died: {e}"
                    );
                }
                self.poisoned.store(1, Ordering::Relaxed);
                Ok(true)
            }
            Status::Busy => Err(Fail::WouldBlock),
            Status::TimedOut => Err(Fail::TimedOut),
            // Held by this very thread: a non-blocking or timed attempt fails like any other
            // (without waiting, since nobody else can release it).
            Status::Deadlock if matches!(wait, Wait::No) => Err(Fail::WouldBlock),
            Status::Deadlock if matches!(wait, Wait::Until(_)) => Err(Fail::TimedOut),
            Status::Deadlock => Err(Fail::Reentered),
            Status::TooDeep => panic!("an RLock was acquired too many times by one thread"),
            Status::Failed(e) => panic!(
                "the lock in shared memory is unusable: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }

    /// Whether a holder died (or panicked) holding the lock since the poison was last cleared.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed) != 0
    }

    /// Clears the poison (the data has been repaired).
    pub(crate) fn clear_poison(&self) {
        self.poisoned.store(0, Ordering::Relaxed);
    }
}

/// Holds a [`RawLock`]; unlocks it on drop. Not `Send`: the C library ties a mutex to the
/// thread that locked it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub(crate) struct RawGuard<'a> {
    lock: &'a RawLock,
    local: &'a Local,
    /// Whether the thread was already panicking when it acquired the lock (a guard taken in a
    /// `Drop` during unwinding): only a panic that starts while the lock is held poisons it,
    /// as with `std::sync::Mutex`.
    panicking: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RawGuard<'a> {
    /// The lock this guard holds.
    pub(crate) fn lock(&self) -> &'a RawLock {
        self.lock
    }

    /// The record of the mapping the lock was acquired through.
    pub(crate) fn local(&self) -> &'a Local {
        self.local
    }

    /// Releases the lock, runs `f`, and takes the lock again (blocking). Returns `f`'s result
    /// and whether the lock is poisoned after re-acquiring it.
    pub(crate) fn unlocked<R>(&mut self, f: impl FnOnce() -> R) -> (R, bool) {
        // SAFETY: this guard holds the mutex.
        unsafe { pthread::unlock(self.lock.mutex.get()) };
        let r = f();
        let lock = self.lock;
        // SAFETY: as in `RawLock::acquire`.
        let st = unsafe { pthread::try_lock(lock.mutex.get()) };
        let st = if st == Status::Busy {
            lock.acquire_slow(Wait::Forever)
        } else {
            st
        };
        match lock.finish(st, Wait::Forever) {
            // The lock is held again, by this guard (still counted in `local`).
            Ok(poisoned) => (r, poisoned),
            Err(_) => unreachable!("blocking acquire cannot fail"),
        }
    }
}

// SAFETY: a `RawGuard` exists only while its thread holds the lock (acquired in `acquire`, and
// held again when `unlocked` returns); the crate's error-checking locks are not recursive, and
// every data access of a locked segment goes through a guard (`Segment::data_ref`/`data_mut`).
// A recursive `RLock` segment holds no data, so no two guards of one thread can reach the same
// data.
unsafe impl HeldLock for RawGuard<'_> {
    fn local(&self) -> &Local {
        self.local
    }
}

impl Drop for RawGuard<'_> {
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.lock.poisoned.store(1, Ordering::Relaxed);
        }
        // SAFETY: this guard holds the mutex, and it is unlocked exactly once, here.
        unsafe { pthread::unlock(self.lock.mutex.get()) };
        self.local.release();
    }
}

/// A counting semaphore: `value` is the count and the futex word.
#[repr(C)]
pub(crate) struct RawSemaphore {
    /// Permits available.
    pub(crate) value: AtomicU32,
    /// Processes or threads sleeping (or about to) in `acquire`; a dead one only costs a
    /// spare wake-up.
    pub(crate) waiters: AtomicU32,
    /// The most permits `release` may create (`u32::MAX`: unbounded).
    pub(crate) max: AtomicU32,
}

// SAFETY: `repr(C)` atomics; zero is a valid (empty) semaphore.
unsafe impl State for RawSemaphore {}

/// An event: `word` = generation << 1 | flag, the futex word.
///
/// | transition | `word` |
/// |---|---|
/// | `set` of a clear event | generation + 1, flag 1 (wakes the sleepers) |
/// | `set` of a set event | unchanged |
/// | `clear` | flag 0, generation kept |
///
/// A waiter that found the event clear returns once the flag is set *or* the generation moved
/// on, so a `set` immediately followed by `clear` still releases everyone who was waiting
/// (Python's `Event` has the same guarantee).
#[repr(C)]
pub(crate) struct RawEvent {
    /// Generation << 1 | flag.
    pub(crate) word: AtomicU32,
    /// Sleepers (or about to sleep) in `wait`; one left high by a killed waiter only costs a
    /// spare `FUTEX_WAKE` per `set`.
    pub(crate) waiters: AtomicU32,
}

// SAFETY: `repr(C)` atomics; zero is a valid (clear) event.
unsafe impl State for RawEvent {}

/// How many waiters a [`RawCondition`] tracks one by one (and so wakes exactly).
pub(crate) const CONDITION_SLOTS: usize = 64;

/// [`WaitSlot::state`]: nobody waits in the slot.
pub(crate) const SLOT_FREE: u32 = 0;
/// [`WaitSlot::state`]: a waiter sleeps in the slot, not yet notified.
pub(crate) const SLOT_WAITING: u32 = 1;
/// [`WaitSlot::state`]: a notification was handed to the slot's waiter, which has not yet
/// taken the condition's lock again to return.
pub(crate) const SLOT_NOTIFIED: u32 = 2;

/// The place of one waiter of a [`RawCondition`].
///
/// | `state` | meaning | who moves it on |
/// |---|---|---|
/// | `SLOT_FREE` | unused; `owner` unlocked | a waiter claims it: `WAITING` |
/// | `SLOT_WAITING` | a waiter (holding `owner`) sleeps on `state` | `notify`: `NOTIFIED`; the waiter on time-out: `FREE` |
/// | `SLOT_NOTIFIED` | that waiter was chosen by a notification | the waiter, once it holds the lock again: `FREE` |
///
/// Every transition happens under the condition's lock. The waiter holds `owner` (a robust
/// mutex) from claiming the slot until it frees it, so a waiter that dies leaves `owner` marked
/// by the kernel: a notifier skips it (and frees the slot), and a notification it was handed
/// but could not take is handed on to a live waiter.
#[repr(C)]
pub(crate) struct WaitSlot {
    /// Held by the slot's waiter: its liveness, which the kernel reports when it dies.
    pub(crate) owner: RawLock,
    /// `SLOT_FREE`, `SLOT_WAITING` or `SLOT_NOTIFIED`; the futex word the waiter sleeps on.
    pub(crate) state: AtomicU32,
    /// The waiter's ticket (from [`RawCondition::next_ticket`]): notifications go to the
    /// oldest waiters first.
    pub(crate) ticket: AtomicU32,
}

/// A condition variable with its own lock.
///
/// Up to [`CONDITION_SLOTS`] waiters at once each have a [`WaitSlot`], so that `notify(n)` wakes
/// exactly `n` of them (the longest waiting), each on its own futex word. Further waiters wait
/// on `overflow_seq`, as a plain sequence word: a notification that finds fewer slot waiters
/// than it may wake bumps it, and they all return (spuriously, for all but the ones counted).
#[repr(C)]
pub(crate) struct RawCondition {
    /// The lock that callers hold around `wait` and `notify`.
    pub(crate) lock: RawLock,
    /// The ticket of the next waiter to claim a slot (wrapping); changed under `lock`.
    pub(crate) next_ticket: AtomicU32,
    /// Waiters without a slot (all taken), sleeping on `overflow_seq`; changed under `lock`.
    /// One left high by a killed waiter only costs a spare `FUTEX_WAKE`.
    pub(crate) overflow: AtomicU32,
    /// Bumped by a notification that reaches the waiters without a slot; their futex word.
    pub(crate) overflow_seq: AtomicU32,
    /// One per waiter.
    pub(crate) slots: [WaitSlot; CONDITION_SLOTS],
}

// SAFETY: `repr(C)`; every lock is initialised (by `init`) before sharing; the rest are atomics,
// for which zero is a valid value (no waiter, empty slots).
unsafe impl State for RawCondition {
    fn is_valid(&self, _: Tag) -> bool {
        self.lock.is_robust_shared(false)
            && self.slots.iter().all(|s| {
                s.owner.is_robust_shared(false) && s.state.load(Ordering::Relaxed) <= SLOT_NOTIFIED
            })
    }
}

impl RawCondition {
    /// Initialises the lock and every slot's liveness lock of a segment nobody else can see yet.
    pub(crate) fn init(&self) -> std::io::Result<()> {
        self.lock.init(false)?;
        self.slots.iter().try_for_each(|s| s.owner.init(false))
    }
}

/// A barrier's state.
///
/// `word` = generation << 1 | broken. A waiter sleeps on `word` while it is unchanged, so both
/// a release (the generation moves on) and breaking (the low bit) wake it. `history` has bit
/// `generation % 64` set when that generation ended broken (by `reset` or `abort`), for waiters
/// that wake after a new generation started. `reset` of a barrier in its initial state does not
/// start a generation, so only 64 generations that actually ran can overwrite a mark: a waiter
/// stopped (not killed) for that long could then see its broken generation as released.
#[repr(C)]
pub(crate) struct RawBarrier {
    /// Guards `count` and the transitions of `word`.
    pub(crate) lock: RawLock,
    /// Generation and broken bit; the futex word.
    pub(crate) word: AtomicU32,
    /// Parties that arrived in the current generation.
    pub(crate) count: AtomicU32,
    /// Parties needed to release.
    pub(crate) parties: AtomicU32,
    /// Generations that ended broken (one bit per generation, modulo 64).
    pub(crate) history: std::sync::atomic::AtomicU64,
}

// SAFETY: `repr(C)`; the lock is initialised before sharing; the rest are atomics.
unsafe impl State for RawBarrier {
    fn is_valid(&self, _: Tag) -> bool {
        self.lock.is_robust_shared(false) && self.parties.load(Ordering::Relaxed) > 0
    }
}
