//! Termination signals taken synchronously, for servers that stop cleanly on `SIGTERM`.
//!
//! # References
//! - [`pthread_sigmask(3)`](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
//! - [`sigwait(3)`](https://man7.org/linux/man-pages/man3/sigwait.3.html)
#![allow(unsafe_code)]

use std::io;

/// `SIGTERM` and `SIGINT`, blocked so that a thread can take them with [`wait`](Self::wait).
pub(crate) struct Termination {
    set: libc::sigset_t,
}

// SAFETY: a `sigset_t` is plain data (a bit mask); `sigwait` only reads it.
unsafe impl Send for Termination {}

impl Termination {
    /// Blocks `SIGTERM` and `SIGINT` in the calling thread, and so in every thread it starts
    /// afterwards. Call it before starting threads: a thread started earlier keeps its mask,
    /// and the default action (ending the process) could still hit it.
    pub fn block() -> io::Result<Self> {
        // SAFETY: `set` is initialised by `sigemptyset` before use; `sigaddset` and
        // `pthread_sigmask` read and write only `set` and this thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Termination { set })
        }
    }

    /// Waits for one of the signals and returns its number.
    pub fn wait(&self) -> io::Result<i32> {
        let mut sig = 0;
        // SAFETY: `self.set` is an initialised signal set and `sig` a valid place for the
        // result; `sigwait` touches nothing else.
        let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}
