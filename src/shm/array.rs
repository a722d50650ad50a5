//! [`Array`] (with a lock) and [`RawArray`] (without).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, ShmSafe, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::{RawGuard, RawLock, Wait};
use crate::sync::{LockResult, TryLockError, blocking, wrap};

/// An index past the end of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("index {index} out of range for an array of {len}")]
pub struct OutOfBounds {
    /// The index (or the end of the range) asked for.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

/// A fixed-length array of `T` in shared memory with a robust lock, like Python's
/// `multiprocessing.Array`.
///
/// [`lock`](Array::lock) gives a guard that dereferences to `[T]`: slice methods, indexing and
/// bulk copies (`copy_from_slice`) run at memory speed. [`get`](Array::get),
/// [`set`](Array::set) and [`to_vec`](Array::to_vec) lock for one operation.
///
/// # Examples
///
/// ```
/// use multiproc::shm::Array;
///
/// let arr = Array::from_values(0..10i32).unwrap();   // Array('i', range(10))
/// for x in arr.lock().unwrap().iter_mut() {
///     *x = -*x;
/// }
/// assert_eq!(arr.to_vec(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
/// ```
pub struct Array<T: ShmSafe> {
    seg: Arc<Segment<RawLock, T>>,
}

impl<T: ShmSafe> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            seg: Arc::clone(&self.seg),
        }
    }
}

/// The panic of a blocking `lock`, `get`, `set` or `to_vec` by the thread that holds the lock.
const REENTERED: &str = "this thread already holds this `Array`'s lock (an `ArrayGuard` is alive): \
    `Array::lock`, `get`, `set` and `to_vec` take that lock, which is not re-entrant; \
    use the guard (`guard[i]`, `guard.to_vec()`) instead, or drop the guard first";

fn deadline(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

impl<T: ShmSafe> Array<T> {
    /// An array of `len` zero-valued elements (`Array('d', 10)` in Python).
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment, or `len` elements do not fit in memory.
    pub fn new(len: usize) -> Result<Self, CreateError> {
        let seg = Segment::<RawLock, T>::create(Tag::Array, len)?;
        seg.state().init(false).map_err(CreateError::Os)?;
        Ok(Array { seg: Arc::new(seg) })
    }

    /// An array holding `values` (`Array('i', range(10))` in Python).
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn from_values(values: impl IntoIterator<Item = T>) -> Result<Self, CreateError> {
        let values: Vec<T> = values.into_iter().collect();
        let mut seg = Segment::<RawLock, T>::create(Tag::Array, values.len())?;
        seg.state().init(false).map_err(CreateError::Os)?;
        for (i, v) in values.into_iter().enumerate() {
            seg.init(i, v);
        }
        Ok(Array { seg: Arc::new(seg) })
    }

    /// An array holding a copy of `values`, copied in one block.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn from_slice(values: &[T]) -> Result<Self, CreateError>
    where
        T: Copy,
    {
        let seg = Segment::<RawLock, T>::create(Tag::Array, values.len())?;
        seg.state().init(false).map_err(CreateError::Os)?;
        seg.write_slice(0, values);
        Ok(Array { seg: Arc::new(seg) })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.seg.len() == 0
    }

    /// Locks the array, blocking until the lock is free. Python: `get_lock()`.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`](crate::sync::OwnerDied), holding the guard, when a previous holder died
    /// while holding the lock (and the poison was not cleared since).
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock (an [`ArrayGuard`] is alive): the lock is not
    /// re-entrant, and waiting for it would wait forever. Use the guard you hold. The same holds
    /// for [`get`](Self::get), [`set`](Self::set) and [`to_vec`](Self::to_vec).
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        blocking(self.lock_with(Wait::Forever))
    }

    /// Locks the array if the lock is free now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] when it is held; [`TryLockError::OwnerDied`] as for
    /// [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.lock_with(Wait::No)
    }

    /// Locks the array, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`TryLockError::TimedOut`]; [`TryLockError::OwnerDied`] as for [`lock`](Self::lock).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.lock_with(deadline(timeout))
    }

    /// Locks the array, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout).
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.lock_with(Wait::Until(deadline))
    }

    fn lock_with(&self, wait: Wait) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        let seg = &*self.seg;
        wrap(seg.state().acquire(seg.local(), wait), REENTERED, |raw| {
            ArrayGuard { seg, raw }
        })
    }

    fn lock_anyway(&self) -> ArrayGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of element `index`, read under the lock (`arr[i]`). A dead previous holder is not
    /// reported here.
    pub fn get(&self, index: usize) -> Option<T>
    where
        T: Copy,
    {
        self.lock_anyway().get(index).copied()
    }

    /// Sets element `index` under the lock (`arr[i] = v`). A dead previous holder is not
    /// reported here.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] when `index >= len`.
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds> {
        let len = self.len();
        let mut g = self.lock_anyway();
        let slot = g.get_mut(index).ok_or(OutOfBounds { index, len })?;
        *slot = value;
        Ok(())
    }

    /// A copy of every element, read under the lock (`arr[:]`).
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Copy,
    {
        self.lock_anyway().to_vec()
    }

    /// Whether a holder died (or panicked) holding the lock since the poison was last cleared.
    pub fn is_poisoned(&self) -> bool {
        self.seg.state().is_poisoned()
    }

    /// A new descriptor for the array's segment.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens an array from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError::WrongType`] when the segment is not an `Array<T>`.
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        let seg = Segment::attach(Tag::Array, fd.into_owned_fd())?;
        Ok(Array { seg: Arc::new(seg) })
    }
}

impl<T: ShmSafe + Copy + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Ok(g) => f.debug_tuple("Array").field(&&*g).finish(),
            Err(_) => write!(f, "Array(<locked>, len {})", self.len()),
        }
    }
}

impl<T: ShmSafe> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seg = crate::shm::deserialize_segment(Tag::Array, d)?;
        Ok(Array { seg: Arc::new(seg) })
    }
}

/// Holds the lock of an [`Array`] and dereferences to its `[T]`. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: ShmSafe> {
    seg: &'a Segment<RawLock, T>,
    raw: RawGuard<'a>,
}

impl<T: ShmSafe> ArrayGuard<'_, T> {
    /// Declares the array repaired after an [`OwnerDied`](crate::sync::OwnerDied) report.
    pub fn clear_poison(&self) {
        self.raw.lock().clear_poison();
    }
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.seg.data_ref(&self.raw)
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.seg.data_mut(&mut self.raw)
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

/// A fixed-length array of `T` in shared memory without a lock, like Python's
/// `multiprocessing.RawArray`.
///
/// Every access ([`get`](RawArray::get), [`set`](RawArray::set), bulk
/// [`read`](RawArray::read), [`write`](RawArray::write) and [`to_vec`](RawArray::to_vec))
/// copies in units of the element's alignment (at most 8 bytes), each a relaxed atomic access,
/// so several threads and processes may use one array at once without a data race. What a
/// read racing with a write elsewhere gets: each unit is whole, old or new; an element of one
/// unit (`u64`, `f64`, `i32`, ...) is never torn, a wider one may mix units of the two, and a
/// bulk copy may see some elements before a write and others after. Nothing orders these
/// accesses against other processes: coordinate with a [`Lock`](crate::sync::Lock), an
/// [`Event`](crate::sync::Event) or a [`Barrier`](crate::sync::Barrier), or use [`Array`],
/// whose guard gives plain slices at full memory speed.
///
/// Bulk copies of 8-byte elements run near memory speed; elements of 1, 2 or 4 bytes are
/// copied one unit at a time, which is slower (`cargo bench --bench shm`, group `raw_array`;
/// on a 2-vCPU VM, 2026-12-01: 10M `f64` written at 11 GiB/s and read at 6.7 GiB/s, 80M `u8`
/// at 2.4–2.7 GiB/s, where a plain copy ran at 9.6 GiB/s). The `unsafe` [`as_slice`](RawArray::as_slice) and
/// [`as_mut_slice`](RawArray::as_mut_slice) give plain slices for callers that can promise no
/// concurrent access.
///
/// # Examples
///
/// ```
/// use multiproc::shm::RawArray;
///
/// let arr = RawArray::<f64>::new(4).unwrap();
/// arr.write(1, &[1.0, 2.0]).unwrap();
/// assert_eq!(arr.to_vec(), [0.0, 1.0, 2.0, 0.0]);
/// assert_eq!(arr.get(2), Some(2.0));
/// ```
pub struct RawArray<T: ShmSafe> {
    seg: Arc<Segment<(), T>>,
}

impl<T: ShmSafe> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            seg: Arc::clone(&self.seg),
        }
    }
}

impl<T: ShmSafe> RawArray<T> {
    /// An array of `len` zero-valued elements.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment, or `len` elements do not fit in memory.
    pub fn new(len: usize) -> Result<Self, CreateError> {
        let seg = Segment::<(), T>::create(Tag::RawArray, len)?;
        Ok(RawArray { seg: Arc::new(seg) })
    }

    /// An array holding `values`.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn from_values(values: impl IntoIterator<Item = T>) -> Result<Self, CreateError> {
        let values: Vec<T> = values.into_iter().collect();
        let mut seg = Segment::<(), T>::create(Tag::RawArray, values.len())?;
        for (i, v) in values.into_iter().enumerate() {
            seg.init(i, v);
        }
        Ok(RawArray { seg: Arc::new(seg) })
    }

    pub(crate) fn segment(&self) -> &Segment<(), T> {
        &self.seg
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.seg.len() == 0
    }

    /// A copy of element `index` (relaxed atomic loads; see the type's docs).
    pub fn get(&self, index: usize) -> Option<T>
    where
        T: Copy,
    {
        self.seg.read(index)
    }

    /// Sets element `index` (relaxed atomic stores; see the type's docs).
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] when `index >= len`.
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds>
    where
        T: Copy,
    {
        let len = self.len();
        self.seg
            .write(index, value)
            .then_some(())
            .ok_or(OutOfBounds { index, len })
    }

    /// Copies elements `start..start + out.len()` into `out`.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] when the range passes the end.
    pub fn read(&self, start: usize, out: &mut [T]) -> Result<(), OutOfBounds>
    where
        T: Copy,
    {
        let len = self.len();
        self.seg
            .read_slice(start, out)
            .then_some(())
            .ok_or(OutOfBounds {
                index: start.saturating_add(out.len()),
                len,
            })
    }

    /// Copies `src` into elements `start..start + src.len()`.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] when the range passes the end.
    pub fn write(&self, start: usize, src: &[T]) -> Result<(), OutOfBounds>
    where
        T: Copy,
    {
        let len = self.len();
        self.seg
            .write_slice(start, src)
            .then_some(())
            .ok_or(OutOfBounds {
                index: start.saturating_add(src.len()),
                len,
            })
    }

    /// A copy of every element (relaxed atomic loads; see the type's docs).
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Copy,
    {
        self.seg.to_vec()
    }

    /// A new, independent `RawArray` holding a copy of this one (Python's
    /// `sharedctypes.copy`).
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn copy(&self) -> Result<Self, CreateError>
    where
        T: Copy,
    {
        let seg = Segment::<(), T>::create(Tag::RawArray, self.len())?;
        seg.write_slice(0, &self.to_vec());
        Ok(RawArray { seg: Arc::new(seg) })
    }

    /// A new [`Array`] with a lock, holding a copy of this one (Python's
    /// `sharedctypes.synchronized`, except that the result is a copy, not a view).
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn synchronized(&self) -> Result<Array<T>, CreateError>
    where
        T: Copy,
    {
        Array::from_slice(&self.to_vec())
    }

    /// A new descriptor for the segment.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens an array from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError`] when the segment is not a `RawArray<T>`.
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        let seg = Segment::attach(Tag::RawArray, fd.into_owned_fd())?;
        Ok(RawArray { seg: Arc::new(seg) })
    }

    /// The address of the first element in this process's mapping.
    pub fn as_ptr(&self) -> *mut T {
        self.seg.as_ptr()
    }
}

impl<T: ShmSafe + Copy + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawArray").field(&self.to_vec()).finish()
    }
}

impl<T: ShmSafe> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seg = crate::shm::deserialize_segment(Tag::RawArray, d)?;
        Ok(RawArray { seg: Arc::new(seg) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_part_of_the_type_check() {
        let a = Array::<u16>::new(3).unwrap();
        assert_eq!(a.to_vec(), [0, 0, 0]);
        let b = Array::<u16>::from_descriptor(a.descriptor().unwrap()).unwrap();
        b.set(2, 9).unwrap();
        assert_eq!(a.get(2), Some(9));
        assert_eq!(a.set(3, 1), Err(OutOfBounds { index: 3, len: 3 }));
        assert!(Array::<i16>::from_descriptor(a.descriptor().unwrap()).is_err());
        assert!(RawArray::<u16>::from_descriptor(a.descriptor().unwrap()).is_err());
    }

    #[test]
    #[should_panic(expected = "holds this `Array`'s lock (an `ArrayGuard` is alive)")]
    fn get_under_its_own_guard_names_the_array() {
        let a = Array::<u8>::new(2).unwrap();
        let _guard = a.lock().unwrap();
        let _ = a.get(0);
    }

    #[test]
    fn empty_arrays_work() {
        let a = Array::<f64>::new(0).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.to_vec(), Vec::<f64>::new());
        let r = RawArray::<f64>::from_values([]).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn raw_bulk_copies_check_bounds() {
        let r = RawArray::from_values(0..8u64).unwrap();
        let mut out = [0u64; 3];
        r.read(5, &mut out).unwrap();
        assert_eq!(out, [5, 6, 7]);
        assert!(r.read(6, &mut out).is_err());
        assert!(r.write(usize::MAX, &out).is_err());
        let c = r.copy().unwrap();
        r.set(0, 100).unwrap();
        assert_eq!(c.get(0), Some(0));
        assert_eq!(r.synchronized().unwrap().get(0), Some(100));
    }

    #[test]
    fn huge_lengths_are_refused() {
        assert!(matches!(
            Array::<u64>::new(usize::MAX / 4),
            Err(CreateError::TooLarge { .. })
        ));
    }
}
