//! Every system call the crate makes, behind one seam.
//!
//! The rest of the crate is `#![deny(unsafe_code)]`; the few `unsafe` blocks that talking to the
//! kernel needs live here, each with a `// SAFETY:` line. Linux is the only backend today; the
//! items below are what another backend (macOS, Windows) would have to provide:
//!
//! | module | provides |
//! |---|---|
//! | [`socket`] | `socketpair`, whole-buffer `send`/`recv` on stream sockets with descriptors (`SCM_RIGHTS`) attached |
//! | [`net`] | Unix (path, abstract) and TCP listeners and connectors, `pipe2`, single-call reads and writes, `poll` over many descriptors, `getrandom` |
//! | [`process`] | re-executing the current binary (`clone` with `CLONE_PIDFD`, then `execve`) with one inherited descriptor and a secret-bearing child marker, `fork`, pidfd wait/signal, parent-death handling |
//! | [`entry`] | child entry points as ASLR-independent offsets of functions in the executable |
//! | [`memfd`] | anonymous sealed `memfd` segments, named `shm_open` segments, shared mappings (pre-faulted when large) |
//! | [`poller`] | `epoll` readiness sets and an `eventfd` waker, for servers; sends that do not wait |
//! | [`pthread`] | process-shared robust mutexes (the kernel reports a dead holder) |
//! | [`signal`] | `SIGTERM`/`SIGINT` blocked and taken by a waiting thread |
//! | [`futex`] | waiting on and waking a shared 32-bit word |
//! | [`cpu`] | the CPU the calling thread runs on |
//! | [`ofd`] | liveness locks: open-file-description byte locks on a private description of a segment |
//! | [`vm`] | `process_vm_readv` from another process, and a process's identity (pid, start time, pid namespace) that survives pid reuse |

pub(crate) mod cpu;
pub(crate) mod entry;
pub(crate) mod futex;
pub(crate) mod memfd;
pub(crate) mod net;
pub(crate) mod ofd;
pub(crate) mod poller;
pub(crate) mod process;
pub(crate) mod pthread;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod vm;

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Duplicates a descriptor with `FD_CLOEXEC` set (`fcntl(F_DUPFD_CLOEXEC)`).
pub(crate) fn dup<Fd: AsFd>(fd: Fd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// The time left until `deadline`, as the `timespec` that `poll(2)` and `futex(2)` take (zero once
/// it has passed).
pub(crate) fn timespec_until(deadline: std::time::Instant) -> rustix::time::Timespec {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    rustix::time::Timespec {
        tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    }
}

/// `Instant::now() + timeout`, where a time-out too long to represent means no deadline.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(timeout)
}
