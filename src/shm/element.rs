//! What may live in shared memory ([`ShmSafe`]), its layout fingerprint, and how lock-free
//! access copies it in and out of a segment (`__copy`): relaxed atomic loads and stores in units
//! of the type's alignment, field by field for a padded struct.
#![allow(unsafe_code)]

use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering;

/// Types that may live in shared memory.
///
/// The primitive types below correspond to Python's `array`/`ctypes` typecodes:
///
/// | Python typecode | ctypes | Rust |
/// |---|---|---|
/// | `'c'` | `c_char` | `u8` |
/// | `'b'` / `'B'` | `c_byte` / `c_ubyte` | `i8` / `u8` |
/// | `'h'` / `'H'` | `c_short` / `c_ushort` | `i16` / `u16` |
/// | `'i'` / `'I'` | `c_int` / `c_uint` | `i32` / `u32` |
/// | `'l'` / `'L'` | `c_long` / `c_ulong` | `i64` / `u64` (LP64 Linux) |
/// | `'q'` / `'Q'` | `c_longlong` / `c_ulonglong` | `i64` / `u64` |
/// | `'f'` | `c_float` | `f32` |
/// | `'d'` | `c_double` | `f64` |
/// | `'?'` | `c_bool` | `u8` (0 or 1) |
///
/// Also implemented for `i128`/`u128`, the atomic integer types (for lock-free updates of a
/// [`RawValue`](crate::shm::RawValue)), fixed-size arrays of `ShmSafe` types and `()`.
/// Your own `#[repr(C)]` structs get it from [`shared_struct!`](crate::shared_struct), which checks
/// every field.
///
/// Not `bool`, `char` or `AtomicBool`: another process can write any bytes into a segment, and
/// reading a `bool` that is neither 0 nor 1 (or a `char` that is not a scalar value) is
/// undefined behaviour. Store a `u8` (or `u32`) and convert when you read it.
///
/// ```compile_fail
/// let flag = multiproc::shm::RawValue::new(true); // error: `bool` is not `ShmSafe`
/// ```
///
/// # Layout fingerprint
///
/// [`FINGERPRINT`](ShmSafe::FINGERPRINT) summarises the layout: for a primitive its name, for
/// an array its element's fingerprint and length, for a [`shared_struct!`](crate::shared_struct)
/// the size and alignment and, for each field, its name, offset and fingerprint. A segment's
/// header carries its element's fingerprint; receiving it as a type with another fingerprint
/// is an [`AttachError`](crate::shm::AttachError), while the same struct declared in another
/// module or program attaches.
///
/// # Safety
///
/// An implementing type must be
/// - `#[repr(C)]` (or a primitive), so that every process agrees on its layout;
/// - valid whatever its bytes are (segments start zero-filled, and any process that can map
///   the segment can write any bytes);
/// - free of pointers, references, descriptors and any other process-local resource;
/// - free of padding bytes (every byte belongs to a field), unless implemented by
///   [`shared_struct!`](crate::shared_struct), which copies padded structs field by field:
///   lock-free access copies a value in integer units with atomic loads and stores, and
///   padding is uninitialised memory, which no integer may be read from;
/// - fine never to be dropped (values in shared memory are not dropped);
/// - made only of fields that are themselves `ShmSafe`;
/// - given a [`FINGERPRINT`](ShmSafe::FINGERPRINT) that differs from that of every type of
///   another layout (build it with the functions of the hidden `__fingerprint` module, as
///   [`shared_struct!`](crate::shared_struct) does).
pub unsafe trait ShmSafe: Send + Sync + 'static {
    /// A hash of the type's layout (see [Layout fingerprint](ShmSafe#layout-fingerprint)).
    ///
    /// ```
    /// use multiproc::shm::ShmSafe;
    /// assert_ne!(u32::FINGERPRINT, i32::FINGERPRINT);
    /// assert_ne!(<[u8; 4]>::FINGERPRINT, <[u8; 5]>::FINGERPRINT);
    /// ```
    const FINGERPRINT: u64;

    /// Whether the type has padding bytes (then [`__copy_fields`](ShmSafe::__copy_fields)
    /// copies it field by field). Only [`shared_struct!`](crate::shared_struct) sets it.
    #[doc(hidden)]
    const __PADDED: bool = false;

    /// Copies one value between `from` and `to`, one of which is shared memory, field by field
    /// in atomic units, never touching padding: what lock-free access does for a padded type.
    /// Only [`shared_struct!`](crate::shared_struct) overrides it (through the hidden
    /// `__copy`), for a struct with padding.
    ///
    /// # Safety
    ///
    /// As for the hidden `__copy`, for one value.
    #[doc(hidden)]
    unsafe fn __copy_fields(from: *const u8, to: *mut u8, dir: __Dir)
    where
        Self: Sized,
    {
        // SAFETY: the caller's contract; without padding, the whole value is copied in units.
        unsafe { copy_whole::<Self>(from, to, 1, dir) }
    }
}

/// Building blocks of [`ShmSafe::FINGERPRINT`], for [`shared_struct!`](crate::shared_struct):
/// FNV-1a (64-bit), usable in constants.
#[doc(hidden)]
pub mod __fingerprint {
    /// The FNV-1a offset basis, mixed with `kind`.
    pub const fn start(kind: &str) -> u64 {
        str(0xcbf2_9ce4_8422_2325, kind)
    }

    /// Mixes the bytes of `s` (and its length) into `h`.
    pub const fn str(h: u64, s: &str) -> u64 {
        let b = s.as_bytes();
        let mut h = u64(h, b.len() as u64);
        let mut i = 0;
        while i < b.len() {
            h ^= b[i] as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        h
    }

    /// Mixes the eight bytes of `x` into `h`.
    pub const fn u64(h: u64, x: u64) -> u64 {
        let b = x.to_le_bytes();
        let mut h = h;
        let mut i = 0;
        while i < 8 {
            h ^= b[i] as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        h
    }
}

macro_rules! shm_safe {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive integer or float (or an atomic one): fixed layout, every bit
        // pattern is valid, no pointers, no drop glue; the fingerprint is its unique name.
        unsafe impl ShmSafe for $t {
            const FINGERPRINT: u64 = __fingerprint::start(stringify!($t));
        }
    )* };
}
shm_safe!(
    (),
    u8,
    i8,
    u16,
    i16,
    u32,
    i32,
    u64,
    i64,
    u128,
    i128,
    f32,
    f64
);
shm_safe!(
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicI64
);
// SAFETY: an array of `ShmSafe` elements has their layout, repeated, and inherits the rest;
// its fingerprint covers the element's and the length.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {
    const FINGERPRINT: u64 = __fingerprint::u64(
        __fingerprint::u64(__fingerprint::start("[T; N]"), T::FINGERPRINT),
        N as u64,
    );
    const __PADDED: bool = T::__PADDED;

    unsafe fn __copy_fields(from: *const u8, to: *mut u8, dir: __Dir) {
        // SAFETY: the caller's contract for one `[T; N]` is the contract for `N` `T`s.
        unsafe { __copy::<T>(from, to, N, dir) }
    }
}

/// Which side of a copy is shared memory (for [`shared_struct!`](crate::shared_struct)).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum __Dir {
    /// From shared memory (atomic loads) into process memory.
    Load,
    /// From process memory into shared memory (atomic stores).
    Store,
}

/// The unit of lock-free copies of `T`: its alignment, at most 8 bytes. Every element of a
/// segment without a lock is read and written in these units only (field by field for a
/// padded struct), so that two racing copies always access the same memory with the same
/// size (Rust's memory model makes racing atomic accesses of different sizes to overlapping
/// memory undefined behaviour, like plain ones).
pub(crate) const fn copy_unit<T>() -> usize {
    let a = align_of::<T>();
    if a > 8 { 8 } else { a }
}

/// Copies `n` values of `T` between `from` and `to`, one of which is shared memory: each unit
/// (see [`copy_unit`]) is a relaxed atomic load from, or store into, the shared side; a type
/// with padding is copied field by field, so that no padding byte is read.
///
/// # Safety
///
/// - `from` and `to` are valid for `n × size_of::<T>()` bytes of reading and writing
///   respectively, do not overlap, and are aligned for `T`;
/// - the side in process memory holds initialised `T`s (for a store), or may be overwritten
///   with any bytes (for a load);
/// - the shared side is accessed by every thread and process (running this binary) only
///   through this function for `T`, or under a lock, or under a promise of no concurrent access.
#[doc(hidden)]
pub unsafe fn __copy<T: ShmSafe>(from: *const u8, to: *mut u8, n: usize, dir: __Dir) {
    if T::__PADDED {
        for i in 0..n {
            let at = i * size_of::<T>();
            // SAFETY: value `i` lies within both ranges; the rest is the caller's contract.
            unsafe { T::__copy_fields(from.add(at), to.add(at), dir) };
        }
    } else {
        // SAFETY: the caller's contract; `T` has no padding, so every byte is initialised.
        unsafe { copy_whole::<T>(from, to, n, dir) }
    }
}

/// [`__copy`] for a type without padding: the whole range in units.
///
/// # Safety
///
/// As for [`__copy`], and `T` has no padding bytes.
unsafe fn copy_whole<T>(from: *const u8, to: *mut u8, n: usize, dir: __Dir) {
    macro_rules! copy {
        ($atomic:ty, $int:ty) => {{
            let units = n * (size_of::<T>() / size_of::<$int>());
            let from = from.cast::<$int>();
            let to = to.cast::<$int>();
            for k in 0..units {
                // SAFETY: unit `k` lies within both ranges (the caller's contract), aligned for
                // `$int` (the alignment of `T` is at least the unit), initialised on the side
                // read (no padding); atomics of this width exist on every Linux target.
                unsafe {
                    match dir {
                        __Dir::Load => to.add(k).write(
                            <$atomic>::from_ptr(from.add(k).cast_mut()).load(Ordering::Relaxed),
                        ),
                        __Dir::Store => <$atomic>::from_ptr(to.add(k))
                            .store(from.add(k).read(), Ordering::Relaxed),
                    }
                }
            }
        }};
    }
    use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};
    match copy_unit::<T>() {
        8 => copy!(AtomicU64, u64),
        4 => copy!(AtomicU32, u32),
        2 => copy!(AtomicU16, u16),
        _ => copy!(AtomicU8, u8),
    }
}
