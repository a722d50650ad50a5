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
//! | [`process`] | re-executing the current binary with one inherited descriptor, `fork`, pidfd wait/signal, parent-death handling |
//! | [`entry`] | child entry points as ASLR-independent offsets of functions in the executable |
//! | [`memfd`] | anonymous sealed `memfd` segments, named `shm_open` segments, shared mappings (pre-faulted when large) |
//! | [`pthread`] | process-shared robust mutexes (the kernel reports a dead holder) |
//! | [`futex`] | waiting on and waking a shared 32-bit word |

pub(crate) mod entry;
pub(crate) mod futex;
pub(crate) mod memfd;
pub(crate) mod net;
pub(crate) mod process;
pub(crate) mod pthread;
pub(crate) mod socket;

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Duplicates a descriptor with `FD_CLOEXEC` set (`fcntl(F_DUPFD_CLOEXEC)`).
pub(crate) fn dup<Fd: AsFd>(fd: Fd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}
