//! Process-shared robust mutexes (`pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` and
//! `PTHREAD_MUTEX_ROBUST`): the one place where the crate uses `libc` for locking, because the
//! C library owns each thread's robust-futex list (`set_robust_list(2)`), through which the kernel
//! marks a mutex `FUTEX_OWNER_DIED` when its holder dies.
//!
//! # References
//! - [`pthread_mutexattr_setrobust(3)`](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html)
//! - [`pthread_mutex_consistent(3)`](https://man7.org/linux/man-pages/man3/pthread_mutex_consistent.3.html)
//! - [`get_robust_list(2)`](https://man7.org/linux/man-pages/man2/get_robust_list.2.html)
#![allow(unsafe_code)]

use std::io;
use std::time::Instant;

pub(crate) use libc::pthread_mutex_t as Mutex;

/// The outcome of a lock attempt, from the error number the C library returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The mutex is ours.
    Acquired,
    /// The mutex is ours, but its previous holder died holding it (`EOWNERDEAD`); it must be
    /// marked consistent before it is unlocked.
    OwnerDied,
    /// Held by someone else (`EBUSY` from trylock).
    Busy,
    /// The deadline passed (`ETIMEDOUT`).
    TimedOut,
    /// This thread already holds this non-recursive mutex (`EDEADLK`).
    Deadlock,
    /// A recursive mutex reached its maximum count (`EAGAIN`).
    TooDeep,
    /// Another error number (`ENOTRECOVERABLE`, `EINVAL`): the mutex is unusable.
    Failed(i32),
}

fn status(rc: libc::c_int) -> Status {
    match rc {
        0 => Status::Acquired,
        libc::EOWNERDEAD => Status::OwnerDied,
        libc::EBUSY => Status::Busy,
        libc::ETIMEDOUT => Status::TimedOut,
        libc::EDEADLK => Status::Deadlock,
        libc::EAGAIN => Status::TooDeep,
        e => Status::Failed(e),
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Initialises a process-shared robust mutex at `m`: error-checking, or recursive.
///
/// # Safety
///
/// `m` must be valid for writes, suitably aligned, and not in use by anyone.
pub(crate) unsafe fn init(m: *mut Mutex, recursive: bool) -> io::Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is valid for writes; it is destroyed below on every path once initialised.
    unsafe { check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))? };
    let attr = attr.as_mut_ptr();
    let kind = if recursive {
        libc::PTHREAD_MUTEX_RECURSIVE
    } else {
        libc::PTHREAD_MUTEX_ERRORCHECK
    };
    // SAFETY: `attr` was initialised above; `m` is valid for writes by the caller's contract.
    let res = unsafe {
        check(libc::pthread_mutexattr_setpshared(
            attr,
            libc::PTHREAD_PROCESS_SHARED,
        ))
        .and_then(|()| {
            check(libc::pthread_mutexattr_setrobust(
                attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))
        })
        .and_then(|()| check(libc::pthread_mutexattr_settype(attr, kind)))
        .and_then(|()| check(libc::pthread_mutex_init(m, attr)))
    };
    // SAFETY: `attr` is initialised and no longer needed (a mutex does not keep its attributes).
    unsafe { libc::pthread_mutexattr_destroy(attr) };
    res
}

/// Offset of glibc's `__kind` in `pthread_mutex_t`: after `__lock`, `__count`, `__owner` (and,
/// on 64-bit targets, `__nusers`).
#[cfg(target_env = "gnu")]
const KIND_OFFSET: usize = if cfg!(target_pointer_width = "64") {
    16
} else {
    12
};

/// Bits of glibc's `__kind` that lock elision may change at run time (not used for robust
/// mutexes, masked all the same).
#[cfg(target_env = "gnu")]
const KIND_ELISION_BITS: i32 = 0x300;

/// Reads the `__kind` word of `m` (atomically: glibc writes it only at initialisation).
///
/// # Safety
///
/// `m` must be valid for reads and aligned.
#[cfg(target_env = "gnu")]
unsafe fn kind_of(m: *const Mutex) -> i32 {
    // SAFETY: `__kind` is an aligned `int` inside the mutex, by the caller's contract; other
    // processes may use the mutex concurrently, hence the atomic read.
    let word = unsafe {
        std::sync::atomic::AtomicI32::from_ptr(m.cast::<u8>().add(KIND_OFFSET).cast_mut().cast())
    };
    word.load(std::sync::atomic::Ordering::Relaxed) & !KIND_ELISION_BITS
}

/// Whether the mutex at `m` has the type [`init`] gives it (robust, process-shared,
/// error-checking or recursive), judged by glibc's `__kind` word: a zeroed or crafted mutex is
/// refused. Other C libraries: always `true`.
///
/// # Safety
///
/// `m` must be valid for reads and aligned.
pub(crate) unsafe fn kind_matches(m: *const Mutex, recursive: bool) -> bool {
    #[cfg(target_env = "gnu")]
    {
        let mut template = std::mem::MaybeUninit::<Mutex>::zeroed();
        // SAFETY: `template` is our own, valid for writes, aligned and unused.
        if unsafe { init(template.as_mut_ptr(), recursive) }.is_err() {
            return false;
        }
        // SAFETY: both point to aligned, readable mutexes (`m` by the caller's contract).
        let same = unsafe { kind_of(template.as_ptr()) == kind_of(m) };
        // SAFETY: the template was initialised above, is unlocked and no longer used.
        unsafe { libc::pthread_mutex_destroy(template.as_mut_ptr()) };
        same
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = (m, recursive);
        true
    }
}

/// Locks `m`, blocking.
///
/// # Safety
///
/// `m` must point to a mutex initialised by [`init`] that stays mapped until it is unlocked.
pub(crate) unsafe fn lock(m: *mut Mutex) -> Status {
    // SAFETY: by the caller's contract.
    status(unsafe { libc::pthread_mutex_lock(m) })
}

/// Locks `m` if it is free.
///
/// # Safety
///
/// As for [`lock`].
pub(crate) unsafe fn try_lock(m: *mut Mutex) -> Status {
    // SAFETY: by the caller's contract.
    status(unsafe { libc::pthread_mutex_trylock(m) })
}

#[cfg(target_env = "gnu")]
unsafe extern "C" {
    // glibc 2.30 and later; not bound by the `libc` crate.
    fn pthread_mutex_clocklock(
        m: *mut Mutex,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Converts `deadline` to an absolute time on `clock` (`CLOCK_MONOTONIC` or `CLOCK_REALTIME`).
fn abs_time(clock: rustix::time::ClockId, deadline: Instant) -> libc::timespec {
    let now = rustix::time::clock_gettime(clock);
    let left = deadline.saturating_duration_since(Instant::now());
    let mut sec = now.tv_sec.saturating_add(left.as_secs() as i64);
    let mut nsec = now.tv_nsec as i64 + i64::from(left.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// Locks `m`, giving up at `deadline` ([`Status::TimedOut`]).
///
/// # Safety
///
/// As for [`lock`].
pub(crate) unsafe fn lock_until(m: *mut Mutex, deadline: Instant) -> Status {
    #[cfg(target_env = "gnu")]
    {
        let ts = abs_time(rustix::time::ClockId::Monotonic, deadline);
        // SAFETY: by the caller's contract; `ts` lives across the call.
        status(unsafe { pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &ts) })
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let ts = abs_time(rustix::time::ClockId::Realtime, deadline);
        // SAFETY: by the caller's contract; `ts` lives across the call.
        status(unsafe { libc::pthread_mutex_timedlock(m, &ts) })
    }
}

/// Marks a mutex whose previous holder died as consistent again.
///
/// # Safety
///
/// The calling thread must hold `m`, acquired with [`Status::OwnerDied`].
pub(crate) unsafe fn make_consistent(m: *mut Mutex) -> io::Result<()> {
    // SAFETY: by the caller's contract.
    check(unsafe { libc::pthread_mutex_consistent(m) })
}

/// Unlocks `m`.
///
/// # Safety
///
/// The calling thread must hold `m`.
pub(crate) unsafe fn unlock(m: *mut Mutex) {
    // SAFETY: by the caller's contract. Unlocking a held mutex cannot fail.
    let rc = unsafe { libc::pthread_mutex_unlock(m) };
    // While unwinding from a failed recovery (see `RawLock::finish`), a guard may unlock a
    // mutex that was already released: `EPERM`, harmless.
    debug_assert!(
        rc == 0 || std::thread::panicking(),
        "unlocking a held mutex failed"
    );
}
