//! The two values of Python's that are not plain data but travel inside manager requests as
//! data: a `slice` (`l[2:5]` sends `slice(2, 5, None)`) and a reference to a managed object
//! (a proxy stored inside a managed dict or list).

use std::fmt;

use super::Object;

/// Python's `slice(start, stop, step)`, as `l[start:stop:step]` builds it; each part is
/// `None` when left out.
///
/// # Examples
///
/// ```
/// use multiproc::object::{Object, Slice};
///
/// let s = Slice::new(2, None::<i64>, -1);
/// assert_eq!(Object::from(s).to_string(), "slice(2, None, -1)");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Slice {
    /// Where the slice starts (`None`: the start, or the end for a negative step).
    pub start: Object,
    /// Where it stops, excluded (`None`: the end, or the start for a negative step).
    pub stop: Object,
    /// The step (`None`: 1).
    pub step: Object,
}

impl Slice {
    /// The slice `start:stop:step`; `None::<i64>` leaves a part out.
    ///
    /// ```
    /// let all = multiproc::object::Slice::new(None::<i64>, None::<i64>, None::<i64>);
    /// assert_eq!(multiproc::object::Object::from(all).to_string(), "slice(None, None, None)");
    /// ```
    pub fn new(
        start: impl Into<Option<i64>>,
        stop: impl Into<Option<i64>>,
        step: impl Into<Option<i64>>,
    ) -> Slice {
        let part = |p: Option<i64>| p.map_or(Object::None, Object::Int);
        Slice {
            start: part(start.into()),
            stop: part(stop.into()),
            step: part(step.into()),
        }
    }

    /// A slice of any three objects, as Python's `slice()` accepts.
    ///
    /// ```
    /// use multiproc::object::{Object, Slice};
    /// let s = Slice::of(Object::None, 5.into(), Object::None);
    /// assert_eq!(Object::from(s).to_string(), "slice(None, 5, None)");
    /// ```
    pub fn of(start: Object, stop: Object, step: Object) -> Slice {
        Slice { start, stop, step }
    }

    /// The slice a Rust range stands for: `2..5` is `2:5`, `..` is `:`, `3..` is `3:`.
    ///
    /// ```
    /// use multiproc::object::{Object, Slice};
    /// assert_eq!(Object::from(Slice::range(..3)).to_string(), "slice(None, 3, None)");
    /// ```
    pub fn range(r: impl std::ops::RangeBounds<i64>) -> Slice {
        use std::ops::Bound;
        let start = match r.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => Some(s.saturating_add(1)),
            Bound::Unbounded => None,
        };
        let stop = match r.end_bound() {
            Bound::Excluded(&e) => Some(e),
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Unbounded => None,
        };
        Slice::new(start, stop, None)
    }

    /// The positions this slice selects in a sequence of `len` items, as Python's
    /// `slice.indices(len)`: `(start, stop, step)`.
    ///
    /// # Errors
    ///
    /// Python's messages: a part that is not an int or `None` (`TypeError`), a step of zero
    /// (`ValueError`).
    ///
    /// ```
    /// use multiproc::object::Slice;
    /// assert_eq!(Slice::new(None, None, -1).indices(5), Ok((4, -1, -1)));
    /// assert_eq!(Slice::new(-2, 100, None).indices(5), Ok((3, 5, 1)));
    /// ```
    pub fn indices(&self, len: usize) -> Result<(i64, i64, i64), SliceError> {
        let part = |o: &Object| -> Result<Option<i64>, SliceError> {
            match o {
                Object::None => Ok(None),
                Object::Bool(b) => Ok(Some(i64::from(*b))),
                Object::Int(i) => Ok(Some(*i)),
                // Beyond i64 a bound clamps, as Python's does.
                Object::BigInt(b) => Ok(Some(if b.is_negative() { i64::MIN } else { i64::MAX })),
                _ => Err(SliceError::NotAnInteger),
            }
        };
        let step = part(&self.step)?.unwrap_or(1);
        if step == 0 {
            return Err(SliceError::ZeroStep);
        }
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
        let bound = |o: Option<i64>, default: i64| match o {
            None => default,
            Some(i) if i < 0 => (i.saturating_add(len)).max(lower),
            Some(i) => i.min(upper),
        };
        let start = bound(part(&self.start)?, if step < 0 { upper } else { lower });
        let stop = bound(part(&self.stop)?, if step < 0 { lower } else { upper });
        Ok((start, stop, step))
    }

    /// The positions this slice selects in a sequence of `len` items, in order.
    ///
    /// # Errors
    ///
    /// As [`indices`](Self::indices).
    ///
    /// ```
    /// use multiproc::object::Slice;
    /// assert_eq!(Slice::new(None, None, -2).positions(5).unwrap(), [4, 2, 0]);
    /// ```
    pub fn positions(&self, len: usize) -> Result<Vec<usize>, SliceError> {
        let (start, stop, step) = self.indices(len)?;
        let mut out = Vec::new();
        let mut i = start;
        while (step > 0 && i < stop) || (step < 0 && i > stop) {
            out.push(i as usize);
            match i.checked_add(step) {
                Some(n) => i = n,
                None => break,
            }
        }
        Ok(out)
    }
}

/// Why a [`Slice`] selects nothing it could name.
///
/// ```
/// use multiproc::object::{Slice, SliceError};
/// assert_eq!(Slice::new(None, None, 0).indices(3), Err(SliceError::ZeroStep));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SliceError {
    /// A part is neither an int nor `None` (Python's `TypeError`).
    #[error("slice indices must be integers or None or have an __index__ method")]
    NotAnInteger,
    /// The step is zero (Python's `ValueError`).
    #[error("slice step cannot be zero")]
    ZeroStep,
}

impl fmt::Display for Slice {
    /// Python's `repr`: `slice(2, 5, None)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slice({}, {}, {})", self.start, self.stop, self.step)
    }
}

/// A reference to an object held by a manager, as a proxy stored inside a managed dict or
/// list holds it: the object's type and its id on the manager (Python's `Token`, without
/// the address, which the manager that holds it supplies).
///
/// [`Object::from`] a proxy makes one (`d.set("x", &list_proxy)`); the manager resolves it
/// back into a working proxy (`Proxy::resolve`).
///
/// # Examples
///
/// ```
/// use multiproc::object::{Object, ProxyRef};
///
/// let r = ProxyRef::new("list", 0x2a);
/// assert_eq!(Object::from(r).to_string(), "<ListProxy object, typeid 'list' at 0x2a>");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ProxyRef {
    /// The object's type in the manager's registry (`"dict"`, `"list"`, `"Queue"`, …).
    pub typeid: String,
    /// The object's id on its manager.
    pub id: u64,
}

impl ProxyRef {
    /// A reference to object `id` of type `typeid`.
    ///
    /// ```
    /// let r = multiproc::object::ProxyRef::new("dict", 1);
    /// assert_eq!(r.typeid, "dict");
    /// ```
    pub fn new(typeid: impl Into<String>, id: u64) -> ProxyRef {
        ProxyRef {
            typeid: typeid.into(),
            id,
        }
    }

    /// The name of Python's proxy class for this typeid (`ListProxy`, `DictProxy`,
    /// `AcquirerProxy`, …), or `None` where Python builds an `AutoProxy` from the methods.
    ///
    /// ```
    /// use multiproc::object::ProxyRef;
    /// assert_eq!(ProxyRef::new("Lock", 1).python_class(), Some("AcquirerProxy"));
    /// assert_eq!(ProxyRef::new("Queue", 1).python_class(), None);
    /// ```
    pub fn python_class(&self) -> Option<&'static str> {
        Some(match self.typeid.as_str() {
            "dict" => "DictProxy",
            "list" => "ListProxy",
            "Namespace" => "NamespaceProxy",
            "Value" => "ValueProxy",
            "Array" => "ArrayProxy",
            "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore" => "AcquirerProxy",
            "Condition" => "ConditionProxy",
            "Event" => "EventProxy",
            "Barrier" => "BarrierProxy",
            "Iterator" => "IteratorProxy",
            _ => return None,
        })
    }
}

impl fmt::Display for ProxyRef {
    /// What Python prints for a proxy inside a container: `<ListProxy object, typeid 'list'
    /// at 0x2a>` (Python shows the proxy's own address; this shows the object's id).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.python_class() {
            Some(c) => c.to_owned(),
            None => format!("AutoProxy[{}]", self.typeid),
        };
        write!(
            f,
            "<{class} object, typeid {} at {:#x}>",
            Object::Str(self.typeid.clone()),
            self.id
        )
    }
}

impl From<Slice> for Object {
    fn from(s: Slice) -> Object {
        Object::Slice(Box::new(s))
    }
}

impl From<ProxyRef> for Object {
    fn from(r: ProxyRef) -> Object {
        Object::Proxy(Box::new(r))
    }
}
