//! Which CPU the calling thread runs on (`getcpu(2)`, through the vDSO where there is one).
//!
//! # References
//! - [`getcpu(2)`](https://man7.org/linux/man-pages/man2/getcpu.2.html)

/// The CPU the calling thread is running on (it may move at any moment: a hint).
pub(crate) fn current() -> u32 {
    rustix::thread::sched_getcpu() as u32
}
