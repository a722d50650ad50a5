//! [`Value`] (with a lock) and [`RawValue`] (without).

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

/// One `T` in shared memory with a robust lock, like Python's `multiprocessing.Value`.
///
/// Access goes through [`lock`](Value::lock), whose guard dereferences to `T`, or through the
/// shortcuts [`load`](Value::load) and [`store`](Value::store). A process killed while holding
/// the lock does not block the others: the next [`lock`](Value::lock) returns
/// [`OwnerDied`](crate::sync::OwnerDied), holding the guard, so that the value can be checked and
/// repaired.
///
/// `Clone` shares the same value; serializing it (as a [`Process`](crate::Process) argument, or
/// in a message) sends the segment, and the receiver gets the same value.
///
/// # Examples
///
/// ```
/// use multiproc::shm::Value;
///
/// let num = Value::new(0.0f64).unwrap();      // Value('d', 0.0)
/// *num.lock().unwrap() = 3.1415927;           // with num.get_lock(): num.value = 3.1415927
/// assert_eq!(num.load(), 3.1415927);
/// ```
pub struct Value<T: ShmSafe> {
    seg: Arc<Segment<RawLock, T>>,
}

impl<T: ShmSafe> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            seg: Arc::clone(&self.seg),
        }
    }
}

/// The panic of a blocking `lock`, `load` or `store` by the thread that holds the lock.
const REENTERED: &str = "this thread already holds this `Value`'s lock (a `ValueGuard` is alive): \
    `Value::lock`, `load` and `store` take that lock, which is not re-entrant; \
    read or write through the guard (`*guard`) instead, or drop the guard first";

fn deadline(timeout: Duration) -> Wait {
    Instant::now()
        .checked_add(timeout)
        .map_or(Wait::Forever, Wait::Until)
}

impl<T: ShmSafe> Value<T> {
    /// Puts `value` in a new shared segment.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new(value: T) -> Result<Self, CreateError> {
        let mut seg = Segment::<RawLock, T>::create(Tag::Value, 1)?;
        seg.state().init(false).map_err(CreateError::Os)?;
        seg.init(0, value);
        Ok(Value { seg: Arc::new(seg) })
    }

    /// Locks the value, blocking until the lock is free. Python: `get_lock()`.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`](crate::sync::OwnerDied), holding the guard, when a previous holder died
    /// while holding the lock (and the poison was not cleared since).
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock (a [`ValueGuard`] is alive): the lock is not
    /// re-entrant, and waiting for it would wait forever. Use the guard you hold.
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        blocking(self.lock_with(Wait::Forever))
    }

    /// Locks the value if the lock is free now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] when it is held; [`TryLockError::OwnerDied`] as for
    /// [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.lock_with(Wait::No)
    }

    /// Locks the value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`TryLockError::TimedOut`]; [`TryLockError::OwnerDied`] as for [`lock`](Self::lock).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.lock_with(deadline(timeout))
    }

    /// Locks the value, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout).
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.lock_with(Wait::Until(deadline))
    }

    fn lock_with(&self, wait: Wait) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        let seg = &*self.seg;
        wrap(seg.state().acquire(seg.local(), wait), REENTERED, |raw| {
            ValueGuard { seg, raw }
        })
    }

    /// A copy of the value, read under the lock. Python: `v.value`.
    ///
    /// A dead previous holder is not reported here; use [`lock`](Self::lock) to see it.
    ///
    /// # Panics
    ///
    /// If this thread holds the lock already (a [`ValueGuard`] is alive): read `*guard` instead.
    ///
    /// ```should_panic
    /// let v = multiproc::shm::Value::new(1u32).unwrap();
    /// let guard = v.lock().unwrap();
    /// let x = v.load(); // panics: "this thread already holds this `Value`'s lock ..."
    /// # drop(guard);
    /// ```
    pub fn load(&self) -> T
    where
        T: Copy,
    {
        *self.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the value under the lock. Python: `v.value = x`.
    ///
    /// A dead previous holder is not reported here; use [`lock`](Self::lock) to see it.
    ///
    /// # Panics
    ///
    /// If this thread holds the lock already (a [`ValueGuard`] is alive): assign `*guard = value`
    /// instead.
    pub fn store(&self, value: T) {
        *self.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Whether a holder died (or panicked) holding the lock since the poison was last cleared.
    pub fn is_poisoned(&self) -> bool {
        self.seg.state().is_poisoned()
    }

    /// A new descriptor for the value's segment, to pass it by means of your own.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens a value from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError::WrongType`] when the segment is not a `Value<T>` (another object, or
    /// another `T`); other [`AttachError`]s when it is no segment of this crate.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::shm::{AttachError, Value};
    ///
    /// let v = Value::new(1.5f64).unwrap();
    /// let same = Value::<f64>::from_descriptor(v.descriptor().unwrap()).unwrap();
    /// assert_eq!(same.load(), 1.5);
    /// let wrong = Value::<i64>::from_descriptor(v.descriptor().unwrap());
    /// assert!(matches!(wrong, Err(AttachError::WrongType { .. })));
    /// ```
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        let seg = Segment::attach(Tag::Value, fd.into_owned_fd())?;
        Ok(Value { seg: Arc::new(seg) })
    }
}

impl<T: ShmSafe + Copy + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Ok(g) => f.debug_tuple("Value").field(&*g).finish(),
            Err(_) => f.write_str("Value(<locked>)"),
        }
    }
}

impl<T: ShmSafe> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seg = crate::shm::deserialize_segment(Tag::Value, d)?;
        Ok(Value { seg: Arc::new(seg) })
    }
}

/// Holds the lock of a [`Value`] and dereferences to its `T`. Not `Send`.
///
/// ```compile_fail
/// let v = multiproc::shm::Value::new(0u8).unwrap();
/// let guard = v.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: the guard cannot move to another thread
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: ShmSafe> {
    seg: &'a Segment<RawLock, T>,
    raw: RawGuard<'a>,
}

impl<T: ShmSafe> ValueGuard<'_, T> {
    /// Declares the value repaired after an [`OwnerDied`](crate::sync::OwnerDied) report.
    pub fn clear_poison(&self) {
        self.raw.lock().clear_poison();
    }
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.seg.data_ref(&self.raw)[0]
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.seg.data_mut(&mut self.raw)[0]
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

/// One `T` in shared memory without a lock, like Python's `multiprocessing.RawValue`.
///
/// [`load`](RawValue::load) and [`store`](RawValue::store) copy the value in units of its
/// alignment (at most 8 bytes), each a relaxed atomic access, so using one `RawValue` from
/// several threads and processes at once is no data race. What a load racing with a store
/// elsewhere gets: each unit is whole, old or new; a value of one unit (`u64`, `f64`, `u32`, ...)
/// is never torn, while a wider one (`u128`, `[u64; 4]`, a struct) may mix units of the two.
/// Nothing orders these accesses with others (to publish data, pair them with an
/// [`Event`](crate::sync::Event) or a lock), and read-modify-write sequences from two
/// processes lose updates. Use [`Value`] when that matters.
///
/// # Examples
///
/// ```
/// use multiproc::shm::RawValue;
///
/// let v = RawValue::new(7i32).unwrap();
/// v.store(v.load() + 1);
/// assert_eq!(v.load(), 8);
/// let copy = v.copy().unwrap(); // sharedctypes.copy
/// v.store(0);
/// assert_eq!(copy.load(), 8);
/// ```
pub struct RawValue<T: ShmSafe> {
    seg: Arc<Segment<(), T>>,
}

impl<T: ShmSafe> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            seg: Arc::clone(&self.seg),
        }
    }
}

impl<T: ShmSafe> RawValue<T> {
    /// Puts `value` in a new shared segment.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new(value: T) -> Result<Self, CreateError> {
        let mut seg = Segment::<(), T>::create(Tag::RawValue, 1)?;
        seg.init(0, value);
        Ok(RawValue { seg: Arc::new(seg) })
    }

    /// A copy of the value (relaxed atomic loads, unit by unit; see the type's docs).
    pub fn load(&self) -> T
    where
        T: Copy,
    {
        self.seg.read(0).expect("a value segment holds one element")
    }

    /// Replaces the value (relaxed atomic stores, unit by unit; see the type's docs).
    pub fn store(&self, value: T)
    where
        T: Copy,
    {
        self.seg.write(0, value);
    }

    /// A new, independent `RawValue` holding a copy of this one (Python's `sharedctypes.copy`).
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn copy(&self) -> Result<Self, CreateError>
    where
        T: Copy,
    {
        RawValue::new(self.load())
    }

    /// A new [`Value`] with a lock, holding a copy of this one (Python's
    /// `sharedctypes.synchronized`, except that the result is a copy, not a view: the lock lives
    /// in the same segment as the data it guards).
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn synchronized(&self) -> Result<Value<T>, CreateError>
    where
        T: Copy,
    {
        Value::new(self.load())
    }

    /// A new descriptor for the segment.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens a value from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError`] when the segment is not a `RawValue<T>`.
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        let seg = Segment::attach(Tag::RawValue, fd.into_owned_fd())?;
        Ok(RawValue { seg: Arc::new(seg) })
    }

    /// The address of the value in this process's mapping.
    pub fn as_ptr(&self) -> *mut T {
        self.seg.as_ptr()
    }
}

impl<T: ShmSafe + Copy + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.load()).finish()
    }
}

impl<T: ShmSafe> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seg = crate::shm::deserialize_segment(Tag::RawValue, d)?;
        Ok(RawValue { seg: Arc::new(seg) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_through_codec() {
        let v = Value::new(2.5f64).unwrap();
        let mut buf = Vec::new();
        let fds = crate::codec::encode_into(&v, &mut buf).unwrap();
        let back: Value<f64> = crate::codec::decode(&buf, fds).unwrap();
        back.store(4.0);
        assert_eq!(v.load(), 4.0);
        let fds = crate::codec::encode_into(&v, &mut buf).unwrap();
        let wrong = crate::codec::decode::<Value<f32>>(&buf[buf.len() - 1..], fds).unwrap_err();
        assert!(wrong.to_string().contains("not a Value"), "{wrong}");
    }

    #[test]
    fn guard_updates_under_lock() {
        let v = Value::new(0u64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *v.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.load(), 40_000);
    }

    #[test]
    #[should_panic(expected = "holds this `Value`'s lock (a `ValueGuard` is alive)")]
    fn load_under_its_own_guard_names_the_value() {
        let v = Value::new(1u32).unwrap();
        let _guard = v.lock().unwrap();
        let _ = v.load();
    }

    #[test]
    fn raw_value_is_not_a_value() {
        let r = RawValue::new(1u32).unwrap();
        assert!(Value::<u32>::from_descriptor(r.descriptor().unwrap()).is_err());
        assert_eq!(r.synchronized().unwrap().load(), 1);
    }
}
