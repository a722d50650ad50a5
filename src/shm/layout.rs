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
//! and out with relaxed atomic accesses of one unit size per type (see `element.rs`), so that no
//! access is a data race.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use crate::shm::element::ShmSafe;
use crate::shm::element::{__Dir, __copy};
use crate::shm::{AttachError, CreateError};
use crate::sys::memfd::{self, Mapping};

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
