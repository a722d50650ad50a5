//! [`Semaphore`] and [`BoundedSemaphore`]: counters of permits shared between processes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::RawSemaphore;
use crate::sys::futex;

/// Why a release was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A [`BoundedSemaphore`] would exceed its initial value, or a [`Semaphore`] its maximum
    /// (`u32::MAX`). Python: `ValueError: semaphore or lock released too many times`.
    #[error("semaphore released too many times")]
    TooManyReleases,
}

/// Polls before sleeping: covers a release racing on another CPU without burning a time slice.
const SPINS: u32 = 64;

type Seg = Segment<RawSemaphore, ()>;

fn create(tag: Tag, value: u32, max: u32) -> Result<Arc<Seg>, CreateError> {
    let seg = Seg::create(tag, 0)?;
    let st = seg.state();
    st.value.store(value, Relaxed);
    st.max.store(max, Relaxed);
    Ok(Arc::new(seg))
}

fn try_take(st: &RawSemaphore) -> bool {
    let mut v = st.value.load(Relaxed);
    while v > 0 {
        match st.value.compare_exchange_weak(v, v - 1, SeqCst, Relaxed) {
            Ok(_) => return true,
            Err(now) => v = now,
        }
    }
    false
}

/// Takes a permit, waiting until `deadline` (`None`: forever). `false` on timeout.
fn take(st: &RawSemaphore, deadline: Option<Instant>) -> bool {
    for _ in 0..SPINS {
        if try_take(st) {
            return true;
        }
        std::hint::spin_loop();
    }
    loop {
        if try_take(st) {
            return true;
        }
        st.waiters.fetch_add(1, SeqCst);
        // Sleep only while the count is still 0; a release in between changes the word.
        let woke = futex::wait(&st.value, 0, deadline);
        st.waiters.fetch_sub(1, SeqCst);
        if !woke {
            return try_take(st);
        }
    }
}

fn give(st: &RawSemaphore, n: u32) -> Result<(), ReleaseError> {
    let max = st.max.load(Relaxed);
    let mut v = st.value.load(Relaxed);
    loop {
        let new = v
            .checked_add(n)
            .filter(|&new| new <= max)
            .ok_or(ReleaseError::TooManyReleases)?;
        match st.value.compare_exchange_weak(v, new, SeqCst, Relaxed) {
            Ok(_) => break,
            Err(now) => v = now,
        }
    }
    // Wake every sleeper, not `n`: a woken waiter killed before it takes the permit would
    // otherwise swallow the wake-up, leaving a permit free and a live waiter asleep. The losers
    // re-check and sleep again. Measured with `cargo bench --bench shm -- semaphore_contended`
    // (2, 4 and 16 threads through a Semaphore(1)), waking all is no slower than waking one.
    // `waiters` left high by a killed waiter only costs a spare `FUTEX_WAKE` per release.
    if st.waiters.load(SeqCst) > 0 {
        futex::wake(&st.value, u32::MAX);
    }
    Ok(())
}

macro_rules! semaphore {
    ($(#[$doc:meta])* $ty:ident, $tag:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            seg: Arc<Seg>,
        }

        impl $ty {
            /// Takes a permit, blocking until one is available.
            pub fn acquire(&self) {
                take(self.seg.state(), None);
            }

            /// Takes a permit if one is available now; `false` otherwise.
            pub fn try_acquire(&self) -> bool {
                try_take(self.seg.state())
            }

            /// Takes a permit, waiting at most `timeout`; `false` if none came.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                take(self.seg.state(), Instant::now().checked_add(timeout))
            }

            /// Takes a permit, waiting at most until `deadline`; `false` if none came.
            pub fn acquire_deadline(&self, deadline: Instant) -> bool {
                take(self.seg.state(), Some(deadline))
            }

            /// The number of permits available now (Python's `get_value`).
            #[doc(alias = "get_value")]
            pub fn value(&self) -> u32 {
                self.seg.state().value.load(Relaxed)
            }

            /// A new descriptor for the semaphore's segment.
            ///
            /// # Errors
            ///
            /// When the process is out of descriptors.
            pub fn descriptor(&self) -> std::io::Result<Descriptor> {
                crate::sys::dup(self.seg.fd()).map(Descriptor::new)
            }

            /// Opens a semaphore from a descriptor made by [`descriptor`](Self::descriptor).
            ///
            /// # Errors
            ///
            /// [`AttachError`] when the segment holds something else.
            pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
                Ok($ty { seg: Arc::new(Seg::attach($tag, fd.into_owned_fd())?) })
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).field("value", &self.value()).finish()
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::shm::serialize_segment(&self.seg, s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty { seg: Arc::new(crate::shm::deserialize_segment($tag, d)?) })
            }
        }
    };
}

semaphore! {
    /// A counting semaphore shared between processes and threads, like Python's
    /// `multiprocessing.Semaphore`.
    ///
    /// A semaphore has no owner: a process killed while it holds a permit does not give it
    /// back. Waiters are unaffected by the death of other waiters: a release wakes every
    /// sleeping waiter (the ones that do not get a permit sleep again), so a waiter killed
    /// between its wake-up and taking the permit cannot leave the permit unclaimed.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(2).unwrap();
    /// sem.acquire();
    /// assert!(sem.try_acquire());
    /// assert!(!sem.try_acquire());
    /// sem.release().unwrap();
    /// assert_eq!(sem.value(), 1);
    /// ```
    Semaphore, Tag::Semaphore
}

semaphore! {
    /// A semaphore that refuses to be released above its initial value, like Python's
    /// `multiprocessing.BoundedSemaphore`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::sync::{BoundedSemaphore, ReleaseError};
    ///
    /// let sem = BoundedSemaphore::new(1).unwrap();
    /// assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases));
    /// sem.acquire();
    /// sem.release().unwrap();
    /// ```
    BoundedSemaphore, Tag::BoundedSemaphore
}

impl Semaphore {
    /// A semaphore holding `value` permits.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new(value: u32) -> Result<Self, CreateError> {
        Ok(Semaphore {
            seg: create(Tag::Semaphore, value, u32::MAX)?,
        })
    }

    /// Returns a permit, waking the waiters (one of them takes it).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::TooManyReleases`] if the count would pass `u32::MAX`.
    pub fn release(&self) -> Result<(), ReleaseError> {
        give(self.seg.state(), 1)
    }

    /// Returns `n` permits at once, waking the waiters.
    ///
    /// # Errors
    ///
    /// As for [`release`](Self::release).
    pub fn release_many(&self, n: u32) -> Result<(), ReleaseError> {
        give(self.seg.state(), n)
    }
}

impl BoundedSemaphore {
    /// A semaphore holding `value` permits, which is also its maximum.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new(value: u32) -> Result<Self, CreateError> {
        Ok(BoundedSemaphore {
            seg: create(Tag::BoundedSemaphore, value, value)?,
        })
    }

    /// Returns a permit, waking the waiters (one of them takes it).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::TooManyReleases`] if that would exceed the initial value.
    pub fn release(&self) -> Result<(), ReleaseError> {
        give(self.seg.state(), 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_and_wakeup() {
        let sem = Semaphore::new(0).unwrap();
        let t = Instant::now();
        assert!(!sem.acquire_timeout(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        let other = sem.clone();
        let h = std::thread::spawn(move || other.acquire_timeout(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        sem.release().unwrap();
        assert!(h.join().unwrap());
        assert_eq!(sem.value(), 0);
    }

    #[test]
    fn bounded_and_kinds() {
        let b = BoundedSemaphore::new(2).unwrap();
        assert!(b.release().is_err());
        assert!(Semaphore::from_descriptor(b.descriptor().unwrap()).is_err());
        let s = Semaphore::new(u32::MAX).unwrap();
        assert_eq!(s.release(), Err(ReleaseError::TooManyReleases));
        s.release_many(0).unwrap();
    }
}
