//! The bytes of a segment: the header, the state of its lock (or other primitive), its data.
//!
//! Every segment this crate creates is laid out as
//!
//! ```text
//! offset 0            Header (64 bytes): magic, layout version, object tag, fingerprints
//! align(64, S)        S: the shared state (a lock, a semaphore, ...), or nothing
//! align(.., T)        len × T: the data
//! ```
//!
//! A segment is created zero-filled (a fresh `memfd`), its state and data are initialised, and
//! only then is it handed to anyone; a receiver maps it and checks the header before it forms
//! any reference into it. The `memfd` is sealed against shrinking, so the checked length holds
//! for the life of every mapping.
//!
//! Other threads and processes can write this memory at any time. References into it are only
//! formed to types made for that (`Sync` states of atomics and `UnsafeCell`s), or to data while
//! this process holds the segment's lock; the data of a segment without a lock is copied in
//! and out with relaxed atomic accesses of one unit size per type (see `__copy`), so that no
//! access is a data race.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::shm::{AttachError, CreateError};
use crate::sys::memfd::{self, Mapping};

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
/// is an [`AttachError`], while the same struct declared in another module or program
/// attaches.
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

/// The shared state at the start of a segment (a lock, a semaphore, ...).
///
/// # Safety
///
/// As for [`ShmSafe`], and every access through `&Self` must be sound while other processes
/// access the same bytes (atomics, or `UnsafeCell`s used under a lock).
pub(crate) unsafe trait State: Sync + 'static {
    /// Whether the state a receiver finds in a segment of kind `tag` is plausible: the locks
    /// in it are robust, process-shared mutexes of the expected type.
    fn is_valid(&self, tag: Tag) -> bool {
        let _ = tag;
        true
    }
}

// SAFETY: no bytes at all.
unsafe impl State for () {}

/// The magic bytes at offset 0 of every segment.
const MAGIC: [u8; 8] = *b"MPROCSHM";
/// The version of this layout; bumped whenever a header or state changes shape.
const VERSION: u32 = 3;
/// Bytes reserved for the header.
const HEADER_SIZE: usize = 64;
/// The largest alignment a state or element may ask for (the mapping is page-aligned).
const MAX_ALIGN: usize = 4096;

/// Describes a segment; written once by its creator, checked by everyone who attaches.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    /// [`MAGIC`]: this is a segment of this crate.
    magic: [u8; 8],
    /// [`VERSION`]: the layout below is the one this build understands.
    version: u32,
    /// What object the segment holds ([`Tag`]).
    tag: u32,
    /// Size of the shared state `S`.
    state_size: u32,
    /// Alignment of the shared state `S`.
    state_align: u32,
    /// Size of one element `T`.
    elem_size: u64,
    /// Alignment of `T`.
    elem_align: u64,
    /// `T`'s layout fingerprint ([`ShmSafe::FINGERPRINT`]).
    elem_hash: u64,
    /// Number of elements.
    len: u64,
    /// Offset of the first element from the start of the segment.
    data_offset: u64,
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

/// What kind of object a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Tag {
    Value = 1,
    Array = 2,
    RawValue = 3,
    RawArray = 4,
    Lock = 5,
    RLock = 6,
    Semaphore = 7,
    Event = 8,
    Condition = 9,
    Barrier = 10,
    BoundedSemaphore = 11,
}

impl Tag {
    pub(crate) fn name(raw: u32) -> &'static str {
        match raw {
            1 => "Value",
            2 => "Array",
            3 => "RawValue",
            4 => "RawArray",
            5 => "Lock",
            6 => "RLock",
            7 => "Semaphore",
            8 => "Event",
            9 => "Condition",
            10 => "Barrier",
            11 => "BoundedSemaphore",
            _ => "unknown object",
        }
    }
}

fn align_up(x: usize, a: usize) -> Option<usize> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}

/// Offsets of the state and the data, and the total size, for `len` elements.
fn offsets<S, T>(len: usize) -> Option<(usize, usize, usize)> {
    if align_of::<S>() > MAX_ALIGN || align_of::<T>() > MAX_ALIGN {
        return None;
    }
    let state = align_up(HEADER_SIZE, align_of::<S>())?;
    let data = align_up(state + size_of::<S>(), align_of::<T>())?;
    let total = size_of::<T>().checked_mul(len)?.checked_add(data)?;
    // A mapping needs at least one byte; keep sizes within what `isize` offsets allow.
    (total <= isize::MAX as usize).then_some((state, data, total))
}

/// The header a segment of `tag`, `S` and `len` × `T` must carry.
fn expected_header<S, T: ShmSafe>(tag: Tag, len: usize, data_offset: usize) -> Header {
    Header {
        magic: MAGIC,
        version: VERSION,
        tag: tag as u32,
        state_size: size_of::<S>() as u32,
        state_align: align_of::<S>() as u32,
        elem_size: size_of::<T>() as u64,
        elem_align: align_of::<T>() as u64,
        elem_hash: T::FINGERPRINT,
        len: len as u64,
        data_offset: data_offset as u64,
    }
}

/// Ties a segment to its state and element types without owning either.
type Marker<S, T> = PhantomData<(fn() -> S, fn() -> T)>;

/// What this process keeps about one mapping of a segment, beside it in process memory.
#[derive(Debug)]
pub(crate) struct Local {
    /// The segment's device and inode numbers: the same for every mapping of it, in every
    /// process, and never those of another live segment. Compared to tell whether a guard
    /// belongs to a segment (a second mapping of the same segment has another address).
    id: (u64, u64),
    /// Guards of this mapping's lock that this process acquired and has not dropped. A guard
    /// passed to `mem::forget` keeps it above zero for good: the mutex may then still be linked
    /// in the C library's per-thread list of held robust mutexes, which the C library (on every
    /// later lock and unlock of any robust mutex by that thread) and the kernel (when the thread
    /// exits) write through, so the memory must stay mapped.
    held: AtomicUsize,
}

impl Local {
    fn new(fd: &OwnedFd) -> std::io::Result<Local> {
        Ok(Local {
            id: memfd::identity(fd)?,
            held: AtomicUsize::new(0),
        })
    }

    /// Whether `self` and `other` are mappings of the same segment.
    pub(crate) fn same_segment(&self, other: &Local) -> bool {
        self.id == other.id
    }

    /// Counts a guard acquired through this mapping.
    #[inline]
    pub(crate) fn hold(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a guard dropped (its mutex unlocked).
    #[inline]
    pub(crate) fn release(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A mapped segment holding a state `S` and `len` elements of `T`.
///
/// Dropped while a guard of its lock was forgotten ([`Local`]), it closes its descriptor but
/// leaves the memory mapped until the process exits.
pub(crate) struct Segment<S, T> {
    fd: OwnedFd,
    map: Mapping,
    local: Local,
    state_offset: usize,
    data_offset: usize,
    len: usize,
    _marker: Marker<S, T>,
}

impl<S, T> std::fmt::Debug for Segment<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("fd", &self.fd)
            .field("size", &self.map.len())
            .field("len", &self.len)
            .finish()
    }
}

impl<S, T> Drop for Segment<S, T> {
    fn drop(&mut self) {
        // Every guard borrows the segment, so a count above zero here means a forgotten guard.
        if *self.local.held.get_mut() != 0 {
            self.map.leak_on_drop();
        }
    }
}

impl<S: State, T: ShmSafe> Segment<S, T> {
    /// Creates a zero-filled segment for `len` elements. The caller initialises the state and
    /// data before sharing it.
    pub(crate) fn create(tag: Tag, len: usize) -> Result<Self, CreateError> {
        let (state_offset, data_offset, total) =
            offsets::<S, T>(len).ok_or(CreateError::TooLarge { len })?;
        let fd = memfd::memfd(Tag::name(tag as u32), total as u64).map_err(CreateError::Os)?;
        let map = Mapping::new(&fd, total).map_err(CreateError::Os)?;
        let local = Local::new(&fd).map_err(CreateError::Os)?;
        let header = expected_header::<S, T>(tag, len, data_offset);
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page-aligned, and not yet shared.
        unsafe { ptr::write(map.ptr().cast::<Header>(), header) };
        Ok(Segment {
            fd,
            map,
            state_offset,
            data_offset,
            len,
            local,
            _marker: PhantomData,
        })
    }

    /// Checks that the segment behind `fd` holds a `tag` object of `S` and `T`, then maps it.
    ///
    /// The header is read with `pread` before anything is mapped; the file must be sealed
    /// against shrinking and growing and be exactly as large as the header says, and only
    /// that is mapped, without pre-faulting: a peer cannot make us map or commit more memory
    /// than the object needs.
    pub(crate) fn attach(tag: Tag, fd: OwnedFd) -> Result<Self, AttachError> {
        if !memfd::is_sealed(&fd) {
            return Err(AttachError::NotASegment);
        }
        let mut raw = [0u8; HEADER_SIZE];
        if !memfd::read_exact_at(&fd, &mut raw, 0).map_err(AttachError::Os)? {
            return Err(AttachError::NotASegment);
        }
        // SAFETY: `raw` holds HEADER_SIZE = size_of::<Header>() bytes; a header is plain
        // integers and byte arrays, so any bytes are a valid `Header`; the read is unaligned.
        let found = unsafe { ptr::read_unaligned(raw.as_ptr().cast::<Header>()) };
        if found.magic != MAGIC {
            return Err(AttachError::NotASegment);
        }
        if found.version != VERSION {
            return Err(AttachError::VersionMismatch {
                expected: VERSION,
                found: found.version,
            });
        }
        let len = usize::try_from(found.len).map_err(|_| AttachError::NotASegment)?;
        let (state_offset, data_offset, total) =
            offsets::<S, T>(len).ok_or(AttachError::NotASegment)?;
        let want = expected_header::<S, T>(tag, len, data_offset);
        if found != want {
            return Err(AttachError::WrongType {
                expected: format!("{} of {}", Tag::name(want.tag), std::any::type_name::<T>()),
                found: Tag::name(found.tag),
            });
        }
        let size = memfd::size_of(&fd).map_err(AttachError::Os)?;
        if size != total as u64 {
            return Err(AttachError::NotASegment);
        }
        let map = Mapping::attach(&fd, total).map_err(AttachError::Os)?;
        let local = Local::new(&fd).map_err(AttachError::Os)?;
        let seg = Segment::<S, T> {
            fd,
            map,
            state_offset,
            data_offset,
            len,
            local,
            _marker: PhantomData,
        };
        if !seg.state().is_valid(tag) {
            return Err(AttachError::BadState);
        }
        Ok(seg)
    }

    /// The shared state.
    pub(crate) fn state(&self) -> &S {
        // SAFETY: the offset is in bounds and aligned for `S` (checked by `offsets`), the bytes
        // were zeroed or initialised by the creator, and `S: State` is sound to share.
        unsafe { &*self.map.ptr().add(self.state_offset).cast::<S>() }
    }

    /// This process's record of the mapping, which guards of its lock keep up to date.
    pub(crate) fn local(&self) -> &Local {
        &self.local
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The segment's descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn data(&self) -> *mut T {
        // SAFETY: `data_offset` + len × size_of T lies within the mapping (checked by `offsets`).
        unsafe { self.map.ptr().add(self.data_offset).cast::<T>() }
    }

    /// Reads element `i`, unit by unit with relaxed atomic loads (see [`__copy`]): another
    /// thread or process may be writing it; a racing write can tear a `T` of several units.
    pub(crate) fn read(&self, i: usize) -> Option<T>
    where
        T: Copy,
    {
        if i >= self.len {
            return None;
        }
        let mut out = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: element `i` is in bounds and aligned; `out` is process memory for one `T`,
        // which the copy fills completely. Any bytes another process leaves there were written
        // as a `T` by this binary (the header's type check), or are zero, or are some mix of
        // units of those; `ShmSafe` makes each of them a valid `T`.
        unsafe {
            __copy::<T>(
                self.data().add(i).cast(),
                out.as_mut_ptr().cast(),
                1,
                __Dir::Load,
            );
            Some(out.assume_init())
        }
    }

    /// Writes element `i` (relaxed atomic stores, unit by unit); returns `false` when out of
    /// bounds.
    pub(crate) fn write(&self, i: usize, value: T) -> bool
    where
        T: Copy,
    {
        if i >= self.len {
            return false;
        }
        // SAFETY: in bounds and aligned; every access of this process to the data of a segment
        // without a lock is such an atomic copy, of the same units, so none is a data race (the
        // `unsafe` slices of `RawArray` promise no concurrent access).
        unsafe {
            __copy::<T>(
                (&raw const value).cast(),
                self.data().add(i).cast(),
                1,
                __Dir::Store,
            )
        };
        true
    }

    /// Copies elements `start..start + out.len()` into `out` (relaxed atomic loads, unit by
    /// unit); `false` when out of bounds.
    pub(crate) fn read_slice(&self, start: usize, out: &mut [T]) -> bool
    where
        T: Copy,
    {
        if start
            .checked_add(out.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the source range is in bounds and cannot overlap `out` (process memory); the
        // bytes are valid `T`s as in `read`.
        unsafe {
            __copy::<T>(
                self.data().add(start).cast(),
                out.as_mut_ptr().cast(),
                out.len(),
                __Dir::Load,
            )
        };
        true
    }

    /// Copies `src` into elements `start..start + src.len()` (relaxed atomic stores, unit by
    /// unit); `false` when out of bounds.
    pub(crate) fn write_slice(&self, start: usize, src: &[T]) -> bool
    where
        T: Copy,
    {
        if start
            .checked_add(src.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the target range is in bounds and cannot overlap `src`; atomic as in `write`.
        unsafe {
            __copy::<T>(
                src.as_ptr().cast(),
                self.data().add(start).cast(),
                src.len(),
                __Dir::Store,
            )
        };
        true
    }

    /// A copy of every element (relaxed atomic loads, unit by unit).
    pub(crate) fn to_vec(&self) -> Vec<T>
    where
        T: Copy,
    {
        let mut v = Vec::<T>::with_capacity(self.len);
        // SAFETY: the source range is in bounds; the destination is the vector's own spare
        // capacity of `len` elements, all of which the copy initialises before `set_len`; the
        // bytes are valid `T`s as in `read`.
        unsafe {
            __copy::<T>(
                self.data().cast(),
                v.as_mut_ptr().cast(),
                self.len,
                __Dir::Load,
            );
            v.set_len(self.len);
        }
        v
    }

    /// The raw address of the data.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.data()
    }

    /// Moves `value` into element `i` of a segment nobody else can see yet.
    pub(crate) fn init(&mut self, i: usize, value: T) {
        assert!(i < self.len, "initialising element {i} of {}", self.len);
        // SAFETY: in bounds; `&mut self` on a fresh segment: no other access exists.
        unsafe { ptr::write(self.data().add(i), value) };
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

/// A held lock that guards the data of the segment it lies in.
///
/// The sync layer implements it for its lock guard; this module only needs to know which
/// segment a guard belongs to, so it names no lock type (the segment layout sits below the
/// locks built on it).
///
/// # Safety
///
/// While a value of the implementing type lives, this thread holds, non-recursively, the lock
/// that guards the data of the segment [`local`](HeldLock::local) belongs to, and every
/// process writes that data only while holding that lock.
pub(crate) unsafe trait HeldLock {
    /// The record of the mapping the lock was acquired through.
    fn local(&self) -> &Local;
}

impl<S: State, T: ShmSafe> Segment<S, T> {
    fn check_guard(&self, guard: &impl HeldLock) {
        // By segment, not by address: a guard taken through another mapping of this segment
        // holds this very lock.
        assert!(
            guard.local().same_segment(&self.local),
            "a guard of another lock was used"
        );
    }

    /// The data, shared, while `guard` (a guard of this segment's lock) is held.
    pub(crate) fn data_ref<'g>(&'g self, guard: &'g impl HeldLock) -> &'g [T] {
        self.check_guard(guard);
        // SAFETY: this segment's lock is held for 'g (the guard is borrowed for it, and
        // `HeldLock` promises it guards this segment's data), and every process writes the data
        // only under that lock; in bounds and aligned.
        unsafe { std::slice::from_raw_parts(self.data(), self.len) }
    }

    /// The data, exclusive, while `guard` (a guard of this segment's lock) is held.
    pub(crate) fn data_mut<'g>(&'g self, guard: &'g mut impl HeldLock) -> &'g mut [T] {
        self.check_guard(guard);
        // SAFETY: this segment's lock is held for 'g and is not recursive (`HeldLock`), so this
        // guard is the only one; borrowing it mutably makes this the only reference formed
        // through it.
        unsafe { std::slice::from_raw_parts_mut(self.data(), self.len) }
    }
}

/// `RawArray`'s and `RawValue`'s unchecked views: declared here, where `unsafe` is allowed.
impl<T: ShmSafe> crate::shm::RawArray<T> {
    /// The elements as a shared slice.
    ///
    /// # Safety
    ///
    /// No process (this one included) may write the elements while the slice is alive.
    pub unsafe fn as_slice(&self) -> &[T] {
        let seg = self.segment();
        // SAFETY: in bounds and aligned; the caller promises there is no concurrent writer.
        unsafe { std::slice::from_raw_parts(seg.data(), seg.len()) }
    }

    /// The elements as an exclusive slice.
    ///
    /// # Safety
    ///
    /// No process (this one included) may read or write the elements while the slice is alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        let seg = self.segment();
        // SAFETY: in bounds and aligned; the caller promises exclusive access.
        unsafe { std::slice::from_raw_parts_mut(seg.data(), seg.len()) }
    }
}

/// `SharedMemory`'s unchecked views: declared here, where `unsafe` is allowed.
impl crate::shm::SharedMemory {
    /// The bytes as a shared slice (Python's `buf`, read-only).
    ///
    /// # Safety
    ///
    /// No process (this one included) may write the segment while the slice is alive, nor
    /// shrink it (`ftruncate`): a named segment cannot be sealed, and touching a page past its
    /// end faults with `SIGBUS`.
    pub unsafe fn as_slice(&self) -> &[u8] {
        let map = self.map();
        // SAFETY: the mapping is `len` bytes; the caller promises there is no concurrent writer.
        unsafe { std::slice::from_raw_parts(map.ptr(), map.len()) }
    }

    /// The bytes as an exclusive slice (Python's `buf`).
    ///
    /// # Safety
    ///
    /// No process (this one included) may read or write the segment while the slice is alive,
    /// nor shrink it (see [`as_slice`](Self::as_slice)).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        let map = self.map();
        // SAFETY: the mapping is `len` bytes; the caller promises exclusive access.
        unsafe { std::slice::from_raw_parts_mut(map.ptr(), map.len()) }
    }
}
