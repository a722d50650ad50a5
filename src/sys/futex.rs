//! Waiting on a 32-bit word in shared memory (`FUTEX_WAIT`/`FUTEX_WAKE`, not private, so that
//! processes mapping the same segment at different addresses meet on the same word).
//!
//! # References
//! - [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html)

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use rustix::io::Errno;
use rustix::thread::futex;

/// Sleeps while `*word == expected`, at most until `deadline`. Returns `false` if the deadline
/// passed; `true` on a wake-up, a changed word or an interruption (the caller re-checks).
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    let timeout = match deadline {
        None => None,
        Some(d) => {
            if d <= Instant::now() {
                return false;
            }
            Some(super::timespec_until(d))
        }
    };
    !matches!(
        futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()),
        Err(Errno::TIMEDOUT)
    )
}

/// Wakes up to `n` sleepers on `word` (`u32::MAX`: all); returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    // The kernel reads the count as a signed int: u32::MAX would be -1 and wake only one.
    let n = n.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}
