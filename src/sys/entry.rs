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

use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a child does with its entry point: decode the arguments, call the target, encode the
/// result. Implemented above this layer (by the process module), so that this module needs
/// nothing from it.
pub(crate) trait Invoke: 'static {
    /// The report of one run.
    type Outcome;
    /// Runs `f` on the encoded `args`.
    fn invoke<A: DeserializeOwned, R: Serialize>(
        f: fn(A) -> R,
        args: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Self::Outcome;
    /// The report when the parent's and the child's ideas of the target's type differ.
    fn mismatch() -> Self::Outcome;
}

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
type Trampoline<O> = fn(usize, u64, &[u8], Vec<OwnedFd>) -> O;

/// A child's entry point, in a form that can be sent to a re-executed copy of this program.
///
/// The invoker `I` is part of the type, so the trampoline's type at [`run`](Entry::run) is the
/// one [`of`](Entry::of) measured.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Entry<I> {
    trampoline: i64,
    target: i64,
    signature: u64,
    #[serde(skip)]
    invoker: PhantomData<fn() -> I>,
}

impl<I> Clone for Entry<I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I> Copy for Entry<I> {}

impl<I> std::fmt::Debug for Entry<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("trampoline", &self.trampoline)
            .field("target", &self.target)
            .field("signature", &self.signature)
            .finish()
    }
}

/// FNV-1a of the function type's name: ties the target to the trampoline's instantiation.
fn signature<A, R>() -> u64 {
    std::any::type_name::<fn(A) -> R>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

fn trampoline<I: Invoke, A: DeserializeOwned, R: Serialize>(
    target: usize,
    sig: u64,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> I::Outcome {
    if sig != signature::<A, R>() {
        return I::mismatch();
    }
    const { assert!(size_of::<fn(A) -> R>() == size_of::<usize>()) };
    // SAFETY: `target` was computed by `Entry::of::<A, R>` from a `fn(A) -> R` of this same
    // executable (the signature check above confirms the types), and mapped back to this
    // process's address of that function by `addr_of`.
    let f: fn(A) -> R = unsafe { std::mem::transmute_copy::<usize, fn(A) -> R>(&target) };
    I::invoke(f, args, fds)
}

impl<I: Invoke> Entry<I> {
    /// The entry point that runs `f`.
    pub(crate) fn of<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Self {
        let t: Trampoline<I::Outcome> = trampoline::<I, A, R>;
        Entry {
            trampoline: offset_of(t as usize),
            target: offset_of(f as usize),
            signature: signature::<A, R>(),
            invoker: PhantomData,
        }
    }

    /// Whether the target, its trampoline and this crate live in one loaded object (the
    /// executable), as re-executing the program requires: a function in a shared library
    /// loaded at its own address has no fixed offset from the executable's code.
    pub(crate) fn same_object<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> bool {
        let t: Trampoline<I::Outcome> = trampoline::<I, A, R>;
        let base = object_base(anchor as fn() as usize);
        object_base(f as usize) == base && object_base(t as usize) == base
    }

    /// Runs an entry point received from the parent that re-executed this program: as
    /// [`run`](Entry::run), after checking, as a last line of defence against a forged entry,
    /// that both addresses lie inside this executable's mapping. An entry pointing elsewhere is
    /// refused as a mismatch without a call. (Inside the executable, the signature check in the
    /// trampoline is what remains.)
    pub(crate) fn run_received(&self, args: &[u8], fds: Vec<OwnedFd>) -> I::Outcome {
        let base = object_base(anchor as fn() as usize);
        if base == 0
            || object_base(addr_of(self.trampoline)) != base
            || object_base(addr_of(self.target)) != base
        {
            return I::mismatch();
        }
        self.run(args, fds)
    }

    /// Runs the entry point in this process: decodes the arguments, calls the target, encodes
    /// what it returned (or reports its panic), as `I` does it.
    ///
    /// The entry must have been made by [`Entry::of`] in this process, in a process it was forked
    /// from, or in a process running this same executable (the parent that re-executed it; then
    /// use [`run_received`](Entry::run_received)), which sends it only over the child's private
    /// bootstrap socket, after the child has checked that the socket is its parent's.
    pub(crate) fn run(&self, args: &[u8], fds: Vec<OwnedFd>) -> I::Outcome {
        // SAFETY: `trampoline` is the offset of a `Trampoline<I::Outcome>`, computed by
        // `Entry::<I>::of` (the same `I`: it is part of the type) in this process, in the one it
        // was forked from (same mappings), or in the parent running this same executable
        // (same offsets from `anchor`), and `addr_of` maps it to its address here.
        let t: Trampoline<I::Outcome> = unsafe {
            std::mem::transmute_copy::<usize, Trampoline<I::Outcome>>(&addr_of(self.trampoline))
        };
        t(addr_of(self.target), self.signature, args, fds)
    }
}

/// A plain function `fn(A) -> R` in a form that can be sent to a re-executed copy of this
/// program, as [`Entry`] sends a child's target: the distance from the anchor, and the
/// function type's signature. For functions a child needs beside its target (the factories of
/// a server's custom types, say).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct FnRef<A, R> {
    offset: i64,
    signature: u64,
    #[serde(skip)]
    kind: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for FnRef<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for FnRef<A, R> {}

impl<A, R> std::fmt::Debug for FnRef<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnRef")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl<A, R> FnRef<A, R> {
    /// The reference to `f`; `None` when `f` is not in the executable (a function of a shared
    /// library loaded at its own address has no fixed offset from it).
    pub(crate) fn of(f: fn(A) -> R) -> Option<Self> {
        let base = object_base(anchor as fn() as usize);
        if base == 0 || object_base(f as usize) != base {
            return None;
        }
        Some(FnRef {
            offset: offset_of(f as usize),
            signature: signature::<A, R>(),
            kind: PhantomData,
        })
    }

    /// The function in this process; `None` when the reference was made for another function
    /// type or points outside this executable (never called, then).
    ///
    /// The reference must have been made by [`of`](Self::of) in this process, in the one it was
    /// forked from, or in the parent that re-executed this same executable and sent it over the
    /// child's private bootstrap socket, as an [`Entry`] is sent.
    pub(crate) fn get(&self) -> Option<fn(A) -> R> {
        let addr = addr_of(self.offset);
        let base = object_base(anchor as fn() as usize);
        if self.signature != signature::<A, R>() || base == 0 || object_base(addr) != base {
            return None;
        }
        const { assert!(size_of::<fn(A) -> R>() == size_of::<usize>()) };
        // SAFETY: `offset` was measured by `FnRef::<A, R>::of` from a `fn(A) -> R` of this same
        // executable (the signature check above confirms the type), in this process, the one
        // it was forked from, or the parent that re-executed this executable (same offsets from
        // `anchor`); `addr_of` maps it to this process's address of that function, which lies
        // inside the executable's mapping (checked above).
        Some(unsafe { std::mem::transmute_copy::<usize, fn(A) -> R>(&addr) })
    }
}

/// The load address of the object (executable or shared library) containing `addr`, as
/// `dladdr(3)` reports it; 0 when it cannot tell.
fn object_base(addr: usize) -> usize {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: `dladdr` only reads its address argument and fills `info`, which is valid for
    // writes; the result is read only when `dladdr` reports success.
    unsafe {
        if libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) == 0 {
            return 0;
        }
        info.assume_init().dli_fbase as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An invoker that decodes and encodes with plain postcard.
    struct Plain;

    impl Invoke for Plain {
        type Outcome = Result<Vec<u8>, String>;
        fn invoke<A: DeserializeOwned, R: Serialize>(
            f: fn(A) -> R,
            args: &[u8],
            _fds: Vec<OwnedFd>,
        ) -> Self::Outcome {
            let a: A = postcard::from_bytes(args).map_err(|e| e.to_string())?;
            postcard::to_allocvec(&f(a)).map_err(|e| e.to_string())
        }
        fn mismatch() -> Self::Outcome {
            Err("mismatch".into())
        }
    }

    fn double(x: u32) -> u32 {
        x * 2
    }

    #[test]
    fn entries_run_in_process() {
        let e = Entry::<Plain>::of(double);
        let args = postcard::to_allocvec(&21u32).unwrap();
        let out = e.run(&args, Vec::new()).unwrap();
        assert_eq!(postcard::from_bytes::<u32>(&out).unwrap(), 42);
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let mut e = Entry::<Plain>::of(double);
        e.signature ^= 1;
        assert_eq!(e.run(&[], Vec::new()), Err("mismatch".into()));
    }

    #[test]
    fn an_entry_outside_the_executable_is_refused() {
        let mut e = Entry::<Plain>::of(double);
        // Far outside any mapping of the executable.
        e.trampoline = e.trampoline.wrapping_add(1 << 46);
        assert_eq!(e.run_received(&[], Vec::new()), Err("mismatch".into()));
        let mut e = Entry::<Plain>::of(double);
        e.target = e.target.wrapping_add(1 << 46);
        assert_eq!(e.run_received(&[], Vec::new()), Err("mismatch".into()));
        let args = postcard::to_allocvec(&4u32).unwrap();
        let e = Entry::<Plain>::of(double);
        assert_eq!(e.run_received(&args, Vec::new()), e.run(&args, Vec::new()));
    }

    #[test]
    fn targets_in_the_executable_are_in_one_object() {
        assert!(Entry::<Plain>::same_object(double));
        assert_ne!(object_base(double as fn(u32) -> u32 as usize), 0);
    }

    #[test]
    fn function_references_come_back_as_the_function() {
        let r = FnRef::of(double as fn(u32) -> u32).unwrap();
        let bytes = postcard::to_allocvec(&r).unwrap();
        let back: FnRef<u32, u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.get().unwrap()(21), 42);
        // Read as a reference to another function type: refused.
        let other: FnRef<u32, u64> = postcard::from_bytes(&bytes).unwrap();
        assert!(other.get().is_none());
        let mut far = r;
        far.offset = far.offset.wrapping_add(1 << 46);
        assert!(far.get().is_none());
    }

    #[test]
    fn signatures_differ_by_type() {
        assert_ne!(signature::<u32, u32>(), signature::<u32, u64>());
        assert_eq!(signature::<u32, u32>(), signature::<u32, u32>());
    }
}
