//! [`Lock`] and [`RLock`]: robust, process-shared mutual exclusion.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::{RawGuard, RawLock, Wait};
use crate::sync::{LockResult, TryLockError, blocking, wrap};

type Seg = Segment<RawLock, ()>;

fn new_segment(tag: Tag, recursive: bool) -> Result<Arc<Seg>, CreateError> {
    let seg = Seg::create(tag, 0)?;
    seg.state().init(recursive).map_err(CreateError::Os)?;
    Ok(Arc::new(seg))
}

fn deadline(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

macro_rules! lock_common {
    ($ty:ident, $guard:ident, $tag:expr, $recursive:expr) => {
        impl $ty {
            /// Creates a lock, unlocked, in a new shared segment.
            ///
            /// # Errors
            ///
            /// When the system cannot create the segment.
            pub fn new() -> Result<Self, CreateError> {
                Ok($ty {
                    seg: new_segment($tag, $recursive)?,
                })
            }

            /// Acquires the lock, blocking until it is free.
            ///
            /// # Errors
            ///
            /// [`OwnerDied`](crate::sync::OwnerDied) (holding the guard) when a previous holder
            /// died holding the lock and the poison was not cleared since.
            ///
            /// # Panics
            ///
            /// For a [`Lock`], if this thread already holds it (a [`LockGuard`] is alive): it is
            /// not re-entrant, and waiting would never end. An [`RLock`] is re-entrant.
            #[doc(alias = "lock")]
            pub fn acquire(&self) -> LockResult<$guard<'_>> {
                blocking(self.acquire_with(Wait::Forever))
            }

            /// Acquires the lock if it is free now.
            ///
            /// # Errors
            ///
            /// [`TryLockError::WouldBlock`] when it is held; [`TryLockError::OwnerDied`] as for
            /// [`acquire`](Self::acquire).
            pub fn try_acquire(&self) -> Result<$guard<'_>, TryLockError<$guard<'_>>> {
                self.acquire_with(Wait::No)
            }

            /// Acquires the lock, waiting at most `timeout`.
            ///
            /// # Errors
            ///
            /// [`TryLockError::TimedOut`] when it is still held after `timeout`;
            /// [`TryLockError::OwnerDied`] as for [`acquire`](Self::acquire).
            pub fn acquire_timeout(
                &self,
                timeout: Duration,
            ) -> Result<$guard<'_>, TryLockError<$guard<'_>>> {
                self.acquire_with(deadline(timeout))
            }

            /// Acquires the lock, waiting at most until `deadline`.
            ///
            /// # Errors
            ///
            /// As for [`acquire_timeout`](Self::acquire_timeout).
            pub fn acquire_deadline(
                &self,
                deadline: Instant,
            ) -> Result<$guard<'_>, TryLockError<$guard<'_>>> {
                self.acquire_with(Wait::Until(deadline))
            }

            fn acquire_with(&self, wait: Wait) -> Result<$guard<'_>, TryLockError<$guard<'_>>> {
                const REENTERED: &str = concat!(
                    "this thread already holds this `",
                    stringify!($ty),
                    "` (a `",
                    stringify!($guard),
                    "` is alive), which is not re-entrant: drop the guard first, or use an `RLock`"
                );
                wrap(
                    self.seg.state().acquire(self.seg.local(), wait),
                    REENTERED,
                    |raw| $guard { raw },
                )
            }

            /// Whether a holder died (or panicked) holding the lock since the poison was last
            /// cleared.
            pub fn is_poisoned(&self) -> bool {
                self.seg.state().is_poisoned()
            }

            /// A new descriptor for the lock's segment, to pass it by means of your own.
            ///
            /// # Errors
            ///
            /// When the process is out of descriptors.
            pub fn descriptor(&self) -> std::io::Result<Descriptor> {
                crate::sys::dup(self.seg.fd()).map(Descriptor::new)
            }

            /// Opens a lock from a descriptor made by [`descriptor`](Self::descriptor), in
            /// this process or another.
            ///
            /// # Errors
            ///
            /// [`AttachError`] when the descriptor is not a segment holding this kind of lock.
            pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
                Ok($ty {
                    seg: Arc::new(Seg::attach($tag, fd.into_owned_fd())?),
                })
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("poisoned", &self.is_poisoned())
                    .finish_non_exhaustive()
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::shm::serialize_segment(&self.seg, s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty {
                    seg: Arc::new(crate::shm::deserialize_segment($tag, d)?),
                })
            }
        }

        impl<'a> $guard<'a> {
            /// Declares the protected state repaired after an
            /// [`OwnerDied`](crate::sync::OwnerDied) report: later acquirers are not told again.
            pub fn clear_poison(&self) {
                self.raw.lock().clear_poison();
            }
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard)).finish_non_exhaustive()
            }
        }
    };
}

/// A robust lock shared between processes and threads, like Python's
/// `multiprocessing.Lock`, except that a holder killed while holding it does not block the
/// others: the next acquirer gets the lock and an [`OwnerDied`](crate::sync::OwnerDied) report.
///
/// Not re-entrant: a blocking [`acquire`](Lock::acquire) in the thread that holds it panics
/// (use [`RLock`]); `try_acquire` and the timed forms fail at once.
///
/// The lock is a process-shared robust `pthread_mutex_t`: uncontended, an acquire is one
/// compare-and-swap; contended, it polls briefly (a few microseconds, with back-off) before
/// sleeping in the kernel.
/// `Clone` shares the same lock; serializing it (as a process argument) sends its segment.
///
/// # Examples
///
/// ```
/// use multiproc::sync::Lock;
///
/// let lock = Lock::new().unwrap();
/// {
///     let _guard = lock.acquire().unwrap();
///     assert!(lock.try_acquire().is_err()); // held (by us)
/// }
/// assert!(lock.try_acquire().is_ok());
/// ```
#[derive(Clone)]
pub struct Lock {
    seg: Arc<Seg>,
}

/// Holds a [`Lock`]; dropping it releases the lock. Not `Send`: a lock is released by the
/// thread that acquired it.
///
/// ```compile_fail
/// let lock = multiproc::sync::Lock::new().unwrap();
/// let guard = lock.acquire().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: the guard cannot move to another thread
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    raw: RawGuard<'a>,
}

lock_common!(Lock, LockGuard, Tag::Lock, false);

/// A re-entrant robust lock shared between processes and threads, like Python's
/// `multiprocessing.RLock`: the thread that holds it may acquire it again, and it is released
/// when every guard is dropped. A holder killed while holding it is reported to the next
/// acquirer, as for [`Lock`].
///
/// # Examples
///
/// ```
/// use multiproc::sync::RLock;
///
/// let lock = RLock::new().unwrap();
/// let outer = lock.acquire().unwrap();
/// let inner = lock.acquire().unwrap(); // same thread: fine
/// drop(inner);
/// drop(outer);
/// ```
#[derive(Clone)]
pub struct RLock {
    seg: Arc<Seg>,
}

/// Holds one level of an [`RLock`]. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    raw: RawGuard<'a>,
}

lock_common!(RLock, RLockGuard, Tag::RLock, true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_acquire_sees_holder() {
        let lock = Lock::new().unwrap();
        let g = lock.acquire().unwrap();
        let other = lock.clone();
        let t = std::thread::spawn(move || {
            assert!(matches!(other.try_acquire(), Err(TryLockError::WouldBlock)));
            assert!(matches!(
                other.acquire_timeout(Duration::from_millis(20)),
                Err(TryLockError::TimedOut)
            ));
        });
        t.join().unwrap();
        drop(g);
        assert!(lock.try_acquire().is_ok());
    }

    #[test]
    fn rlock_is_reentrant() {
        let lock = RLock::new().unwrap();
        let a = lock.acquire().unwrap();
        let b = lock.try_acquire().unwrap();
        let other = lock.clone();
        std::thread::spawn(move || assert!(other.try_acquire().is_err()))
            .join()
            .unwrap();
        drop(b);
        drop(a);
        let other = lock.clone();
        std::thread::spawn(move || assert!(other.try_acquire().is_ok()))
            .join()
            .unwrap();
    }

    #[test]
    fn thread_exit_while_holding_is_reported() {
        let lock = Lock::new().unwrap();
        let other = lock.clone();
        std::thread::spawn(move || std::mem::forget(other.acquire().unwrap()))
            .join()
            .unwrap();
        let err = lock.acquire().unwrap_err();
        assert!(lock.is_poisoned());
        let g = err.into_inner();
        g.clear_poison();
        drop(g);
        assert!(!lock.is_poisoned());
        assert!(lock.acquire().is_ok());
    }

    #[test]
    fn panic_while_holding_poisons() {
        let lock = Lock::new().unwrap();
        let other = lock.clone();
        let r = std::thread::spawn(move || {
            let _g = other.acquire().unwrap();
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert!(matches!(
            lock.try_acquire(),
            Err(TryLockError::OwnerDied(_))
        ));
    }

    #[test]
    fn wrong_kind_is_refused() {
        let lock = Lock::new().unwrap();
        let err = RLock::from_descriptor(lock.descriptor().unwrap()).unwrap_err();
        assert!(matches!(err, AttachError::WrongType { .. }), "{err}");
        let same = Lock::from_descriptor(lock.descriptor().unwrap()).unwrap();
        let _g = lock.acquire().unwrap();
        assert!(same.try_acquire().is_err());
    }

    #[test]
    fn counts_exactly_across_threads() {
        let lock = Lock::new().unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, count) = (lock.clone(), count.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _g = lock.acquire().unwrap();
                        let v = count.load(std::sync::atomic::Ordering::Relaxed);
                        count.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 40_000);
    }
}
