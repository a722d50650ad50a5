//! Helpers shared by the benches: CPU placement and a raw-socket echo peer.
// Each bench uses the part it needs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use multiproc::Descriptor;

/// The CPUs this program may use, read before any pinning (the count follows the mask).
static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

pub fn cpus() -> usize {
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Pins this thread (and the children it starts afterwards) to `cpu`, or to every CPU.
pub fn pin_to(cpu: Option<usize>) {
    let mut set = rustix::thread::CpuSet::new();
    match cpu {
        Some(cpu) => set.set(cpu),
        None => (0..cpus()).for_each(|c| set.set(c)),
    }
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("cannot set CPU affinity: {e}");
    }
}

/// Echoes 64-byte blocks on a raw socket until the peer closes.
pub fn echo_raw(fd: Descriptor) {
    let mut s = UnixStream::from(fd.into_owned_fd());
    let mut buf = [0u8; 64];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            break;
        }
    }
}
