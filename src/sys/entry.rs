//! Entry points of child processes, as offsets that mean the same in every process running this
//! executable.
//!
//! A child started by re-executing the current binary has the same code at a different base
//! address (ASLR). The distance between a function and a fixed anchor function of this crate is
//! the same in both processes, so the parent sends that distance and the child adds its own
//! anchor address back. This holds for code linked into the executable itself (the executable is
//! re-executed through `/proc/self/exe`, so it is the very same file); it does not hold for
//! functions living in a shared library loaded at an independent address.
//!
//! An [`Entry`] names two functions: the target `fn(A) -> R` the user gave, and a trampoline
//! instantiated for `(A, R)` that decodes the arguments, calls the target and encodes the result.
#![allow(unsafe_code)]

use std::mem::size_of;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::process::Outcome;

/// The fixed point offsets are measured from.
#[inline(never)]
fn anchor() {}

fn offset_of(addr: usize) -> i64 {
    (addr as i64).wrapping_sub(anchor as fn() as usize as i64)
}

fn addr_of(offset: i64) -> usize {
    (anchor as fn() as usize as i64).wrapping_add(offset) as usize
}

/// The type of every trampoline: target address, signature, encoded arguments, descriptors.
type Trampoline = fn(usize, u64, &[u8], Vec<OwnedFd>) -> Outcome;

/// A child's entry point, in a form that can be sent to a re-executed copy of this program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    trampoline: i64,
    target: i64,
    signature: u64,
}

/// FNV-1a of the function type's name: ties the target to the trampoline's instantiation.
fn signature<A, R>() -> u64 {
    std::any::type_name::<fn(A) -> R>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

fn trampoline<A: DeserializeOwned, R: Serialize>(
    target: usize,
    sig: u64,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> Outcome {
    if sig != signature::<A, R>() {
        return Outcome::Failed("entry point type mismatch between parent and child".into());
    }
    const { assert!(size_of::<fn(A) -> R>() == size_of::<usize>()) };
    // SAFETY: `target` was computed by `Entry::of::<A, R>` from a `fn(A) -> R` of this same
    // executable (the signature check above confirms the types), and mapped back to this
    // process's address of that function by `addr_of`.
    let f: fn(A) -> R = unsafe { std::mem::transmute_copy::<usize, fn(A) -> R>(&target) };
    crate::process::invoke(f, args, fds)
}

impl Entry {
    /// The entry point that runs `f`.
    pub(crate) fn of<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Entry {
        let t: Trampoline = trampoline::<A, R>;
        Entry {
            trampoline: offset_of(t as usize),
            target: offset_of(f as usize),
            signature: signature::<A, R>(),
        }
    }

    /// Runs the entry point in this process: decodes the arguments, calls the target, encodes
    /// what it returned (or reports its panic).
    ///
    /// The entry must have been made by [`Entry::of`] in a process running this same executable
    /// (the parent that re-executed it); it is only ever received over the child's private
    /// bootstrap socket.
    pub(crate) fn run(&self, args: &[u8], fds: Vec<OwnedFd>) -> Outcome {
        // SAFETY: `trampoline` is the offset of a `Trampoline` of this executable, computed by
        // `Entry::of` in the parent (see above), and `addr_of` maps it to its address here.
        let t: Trampoline =
            unsafe { std::mem::transmute_copy::<usize, Trampoline>(&addr_of(self.trampoline)) };
        t(addr_of(self.target), self.signature, args, fds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u32 {
        x * 2
    }

    #[test]
    fn entries_run_in_process() {
        let e = Entry::of(double);
        let mut buf = Vec::new();
        let fds = crate::codec::encode_into(&21u32, &mut buf).unwrap();
        match e.run(&buf, fds) {
            Outcome::Returned(bytes, fds) => {
                assert_eq!(crate::codec::decode::<u32>(&bytes, fds).unwrap(), 42)
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    #[test]
    fn signatures_differ_by_type() {
        assert_ne!(signature::<u32, u32>(), signature::<u32, u64>());
        assert_eq!(signature::<u32, u32>(), signature::<u32, u32>());
    }
}
