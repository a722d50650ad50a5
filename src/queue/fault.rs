//! Places where a test can make this process die with `SIGKILL`, or pause, to check recovery
//! at each step (debug builds only; in release builds [`point`] does nothing).

pub(crate) const AFTER_CLAIM: u32 = 1;
pub(crate) const AFTER_TAKE: u32 = 2;
pub(crate) const AFTER_TOKEN: u32 = 3;
pub(crate) const MID_STREAM_WRITE: u32 = 4;
pub(crate) const MID_STREAM_READ: u32 = 5;
pub(crate) const BEFORE_HEAD: u32 = 6;
pub(crate) const SPILLED: u32 = 7;
pub(crate) const SPILL_READ: u32 = 8;
pub(crate) const SIDE_LOCKED: u32 = 9;
pub(crate) const SIDE_SENT: u32 = 10;
pub(crate) const SIDE_PASSING: u32 = 11;
pub(crate) const DIRECT_READ: u32 = 12;
pub(crate) const DIRECT_WAIT: u32 = 13;
pub(crate) const DIRECT_STALL: u32 = 14;

#[cfg(debug_assertions)]
static AT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Makes this process kill itself when it reaches one of the points of the set `points`
/// (bit `p` for point `p`; 0: never).
#[cfg(debug_assertions)]
pub(crate) fn die_at(points: u32) {
    AT.store(points, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(debug_assertions)]
static STALL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Makes this process sleep for a third of a second whenever it reaches one of the points of
/// the set `points` (as for [`die_at`]).
#[cfg(debug_assertions)]
pub(crate) fn stall_at(points: u32) {
    STALL.store(points, std::sync::atomic::Ordering::Relaxed);
}

#[inline]
pub(crate) fn point(point: u32) {
    #[cfg(debug_assertions)]
    if STALL.load(std::sync::atomic::Ordering::Relaxed) & (1 << point) != 0 {
        std::thread::sleep(std::time::Duration::from_millis(333));
    }
    #[cfg(debug_assertions)]
    if AT.load(std::sync::atomic::Ordering::Relaxed) & (1 << point) != 0 {
        use crate::sys::process as os;
        if let Ok(me) = os::pidfd_open(os::getpid()) {
            let _ = os::pidfd_signal(std::os::fd::AsFd::as_fd(&me), libc::SIGKILL);
        }
        loop {
            std::thread::park();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
