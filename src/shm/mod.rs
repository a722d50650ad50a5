//! Shared memory: [`Value`], [`Array`], their lock-free [`RawValue`] and [`RawArray`], your own
//! `#[repr(C)]` structs ([`shared_struct!`](crate::shared_struct)), and named
//! [`SharedMemory`] that Python can open.
//!
//! # Segments
//!
//! Every object here lives in its own anonymous segment (`memfd_create(2)`): it has no name in
//! any file system, travels to a child as a descriptor (as a [`Process`](crate::Process)
//! argument, or inside any message on a connection), and is freed by the kernel when the last
//! process holding it exits, however it exits. Nothing can leak into `/dev/shm`.
//!
//! A segment starts with a header (magic bytes, layout version, object kind, and the size,
//! alignment and layout fingerprint ([`ShmSafe::FINGERPRINT`]) of its elements). A receiver
//! checks it before touching the data: a `Value<f64>` cannot be received as a `Value<i64>` or
//! an `Array<f64>`; that is an [`AttachError`], never undefined behaviour.
//!
//! The creator of a segment of 64 KiB or more pre-faults it (`MADV_POPULATE_WRITE`), so that
//! bulk writes run at memory speed instead of taking a page fault every 4 KiB. A process that
//! receives a segment reads its header (with `pread`) before mapping anything, requires the
//! file to be exactly as large as the header says and sealed against resizing, maps only that,
//! and does not pre-fault it: a peer cannot make it map or commit more memory than the object
//! needs.
//!
//! # Examples
//!
//! A child increments a shared counter; the parent sees every increment:
//!
//! ```
//! # multiproc::init();
//! use multiproc::Process;
//! use multiproc::shm::Value;
//!
//! fn work(counter: Value<u64>) {
//!     for _ in 0..1000 {
//!         *counter.lock().unwrap() += 1;
//!     }
//! }
//!
//! let counter = Value::new(0u64).unwrap();
//! let child = Process::start(work, counter.clone()).unwrap();
//! work(counter.clone());
//! child.join().unwrap();
//! assert_eq!(counter.load(), 2000);
//! ```
//!
//! # Trust
//!
//! Whoever holds a segment's descriptor can map it and write any byte of it, at any time.
//! What that can and cannot do:
//!
//! - The data: every [`ShmSafe`] type is valid whatever its bytes are (that is why `bool` and
//!   `char` are not `ShmSafe`), so a reader never sees an invalid value; a writer that ignores
//!   the lock can tear values or break your invariants, as in any shared memory.
//! - The header and the size: checked on receipt, before anything is mapped (see above); the
//!   seals keep the size fixed afterwards.
//! - The lock: a [`Value`]'s, [`Array`]'s or [`sync`](crate::sync) primitive's lock is a
//!   process-shared robust `pthread_mutex_t` that lies in the segment, and the C library keeps
//!   the list of robust mutexes a thread holds *in the mutexes themselves* (the list pointers
//!   are in the shared bytes). A process that can write the segment can therefore make the C
//!   library of the lock holder write through pointers it planted, and read the holder's
//!   addresses. This is inherent to process-shared robust pthread mutexes, not specific to this
//!   crate: every process you give a lock's (or a `Value`'s, ...) descriptor to must be trusted
//!   not to write the lock's bytes other than through this crate. On receipt, the mutex is
//!   checked to be a robust, process-shared one of the right type (a zeroed or crafted one is
//!   an [`AttachError::BadState`]), which keeps honest mistakes out, not a hostile peer.
//! - [`RawValue`], [`RawArray`] and [`SharedMemory`] hold no lock: a peer can only write data.
//!
//! # Differences from Python multiprocessing
//!
//! - Sharing a locked object with a process means trusting it with the lock (see
//!   [Trust](#trust)); Python's locks are POSIX semaphores, which hold no pointers, and have
//!   no robustness either.
//! - `Value(typecode, v)` is [`Value::new(v)`](Value::new) with a Rust type: see the table on
//!   [`ShmSafe`].
//! - Access goes through a guard: `*v.lock()? += 1` is `with v.get_lock(): v.value += 1`.
//! - The lock of a `Value` or `Array` is not re-entrant (Python's is an `RLock`): two guards in
//!   one thread would hand out two `&mut T`.
//! - A process killed while holding the lock does not block the others: the next one gets the
//!   lock with an [`OwnerDied`](crate::sync::OwnerDied) report.

mod element;
pub(crate) mod layout;

mod array;
mod shared_memory;
mod value;

pub use array::{Array, ArrayGuard, OutOfBounds, RawArray};
pub use element::ShmSafe;
#[doc(hidden)]
pub use element::{__Dir, __copy, __fingerprint};
pub use shared_memory::{SharedMemory, SharedMemoryError, SharedMemoryOptions};
pub use value::{RawValue, Value, ValueGuard};

use std::io;
use std::os::fd::OwnedFd;

use serde::de::Error as _;
use serde::{Deserializer, Serializer};

use layout::{Segment, State, Tag};

/// Why a shared object could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The requested number of elements does not fit in memory.
    #[error("a segment of {len} elements is too large")]
    TooLarge {
        /// The number of elements asked for.
        len: usize,
    },
    /// An argument is out of range (for example a barrier of zero parties).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The system refused (out of memory, out of descriptors, ...).
    #[error("cannot create shared memory")]
    Os(#[source] io::Error),
}

/// Why a received segment could not be used as the object asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The descriptor is not a segment made by this crate.
    #[error("not a multiproc shared-memory segment")]
    NotASegment,
    /// The segment was made by a build with another layout version.
    #[error("segment layout version {found}, this build understands {expected}")]
    VersionMismatch {
        /// The version this build writes and reads.
        expected: u32,
        /// The version in the segment.
        found: u32,
    },
    /// The segment holds another kind of object, or elements of another type or number.
    #[error("segment holds a {found}, not a {expected} (or another element type or length)")]
    WrongType {
        /// What the receiver asked for.
        expected: String,
        /// What kind of object the segment holds.
        found: &'static str,
    },
    /// The shared state is not what this kind of object starts with (for a lock: not a
    /// robust, process-shared mutex of the right type).
    #[error("the segment's lock or other shared state is not valid")]
    BadState,
    /// The system refused to map it.
    #[error("cannot map shared memory")]
    Os(#[source] io::Error),
}

/// Serializes a segment as its descriptor (see [`crate::codec`]).
pub(crate) fn serialize_segment<St: State, T: ShmSafe, S: Serializer>(
    seg: &Segment<St, T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    crate::codec::serialize_fd(seg.fd(), s)
}

/// Receives a segment and checks that it holds a `tag` object of `St` and `T`.
pub(crate) fn deserialize_segment<'de, St: State, T: ShmSafe, D: Deserializer<'de>>(
    tag: Tag,
    d: D,
) -> Result<Segment<St, T>, D::Error> {
    let fd: OwnedFd = crate::codec::deserialize_fd(d)?;
    Segment::attach(tag, fd).map_err(|e| D::Error::custom(crate::codec::reason(e.to_string())))
}

/// Defines a `#[repr(C)]` struct that may live in shared memory, checking that every field
/// type is [`ShmSafe`].
///
/// This is the safe way to get [`ShmSafe`] for your own types (the equivalent of a `ctypes`
/// `Structure` for Python's `sharedctypes`).
///
/// # Examples
///
/// ```
/// use multiproc::shm::Value;
///
/// multiproc::shared_struct! {
///     /// A point in shared memory.
///     #[derive(Clone, Copy, Debug, PartialEq)]
///     pub struct Point { pub x: f64, pub y: f64, pub hits: [u32; 4] }
/// }
///
/// let p = Value::new(Point { x: 1.0, y: 2.0, hits: [0; 4] }).unwrap();
/// p.lock().unwrap().hits[2] += 1;
/// assert_eq!(p.load().hits, [0, 0, 1, 0]);
/// ```
///
/// A field that cannot live in shared memory is a compile error:
///
/// ```compile_fail
/// multiproc::shared_struct! {
///     pub struct Bad { pub name: String }
/// }
/// ```
///
/// A struct with padding bytes (here 7 after `tag`) works too; lock-free copies
/// ([`RawValue`], [`RawArray`]) then go field by field, so that no padding byte is read:
///
/// ```
/// multiproc::shared_struct! {
///     #[derive(Clone, Copy, Debug, PartialEq)]
///     pub struct Padded { pub tag: u8, pub value: u64 }
/// }
///
/// let v = multiproc::shm::RawValue::new(Padded { tag: 1, value: 2 }).unwrap();
/// v.store(Padded { tag: 3, value: 4 });
/// assert_eq!(v.load(), Padded { tag: 3, value: 4 });
/// ```
#[macro_export]
macro_rules! shared_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field : $ty ),*
        }

        // SAFETY: `repr(C)` and every field is `ShmSafe` (the fingerprint below names each
        // field's `ShmSafe::FINGERPRINT`, so it does not compile otherwise): the struct has a
        // fixed layout, any bytes are a valid value, it holds no pointers and needs no drop.
        // `__PADDED` is true when the fields do not fill it or one of them has padding, and
        // then lock-free copies go field by field (each field at its own offset, by its own
        // type's copy), never touching a padding byte.
        // The fingerprint covers its size, alignment and every field's name, offset and
        // fingerprint.
        unsafe impl $crate::shm::ShmSafe for $name {
            const FINGERPRINT: u64 = {
                use $crate::shm::__fingerprint as fp;
                let h = fp::start("struct");
                let h = fp::u64(h, ::core::mem::size_of::<$name>() as u64);
                let h = fp::u64(h, ::core::mem::align_of::<$name>() as u64);
                $(
                    let h = fp::str(h, ::core::stringify!($field));
                    let h = fp::u64(h, ::core::mem::offset_of!($name, $field) as u64);
                    let h = fp::u64(h, <$ty as $crate::shm::ShmSafe>::FINGERPRINT);
                )*
                h
            };

            const __PADDED: bool = ::core::mem::size_of::<$name>()
                != 0 $( + ::core::mem::size_of::<$ty>() )*
                $( || <$ty as $crate::shm::ShmSafe>::__PADDED )*;

            unsafe fn __copy_fields(
                from: *const u8,
                to: *mut u8,
                dir: $crate::shm::__Dir,
            ) {
                $(
                    let at = ::core::mem::offset_of!($name, $field);
                    // SAFETY: the field lies within the value the caller's contract covers, at
                    // its offset, aligned for its type; the contract carries over to it.
                    unsafe {
                        $crate::shm::__copy::<$ty>(from.add(at), to.add(at), 1, dir);
                    }
                )*
                let _ = (from, to, dir);
            }
        }
    };
}
