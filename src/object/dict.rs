//! [`Dict`] and [`Set`]: insertion-ordered containers keyed by Python's equality.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use indexmap::{Equivalent, IndexMap, IndexSet};

use super::{BigInt, Object};

/// A key or set element could not be stored: Python's `TypeError: unhashable type`.
///
/// Lists, dicts and sets (and tuples holding one of them) are unhashable, as in Python. The value
/// that was given comes back with [`into_inner`](Self::into_inner).
///
/// # Examples
///
/// ```
/// use multiproc::object::{Dict, Object};
///
/// let mut d = Dict::new();
/// let err = d.insert(vec![1], "x").unwrap_err();
/// assert_eq!(err.to_string(), "unhashable type: 'list'");
/// let (key, value) = err.into_inner();
/// assert_eq!(key, Object::from(vec![1]));
/// assert_eq!(value, Object::from("x"));
/// ```
#[derive(Clone, PartialEq)]
pub struct Unhashable<T> {
    kind: &'static str,
    value: T,
}

impl<T> Unhashable<T> {
    pub(crate) fn new(kind: &'static str, value: T) -> Self {
        Unhashable { kind, value }
    }

    /// The Python type name of the unhashable part (`"list"`, `"dict"`, `"set"`).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The value that was given.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> fmt::Debug for Unhashable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unhashable({:?})", self.kind)
    }
}

impl<T> fmt::Display for Unhashable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unhashable type: '{}'", self.kind)
    }
}

impl<T> std::error::Error for Unhashable<T> {}

/// Numbers reduced to one form, so that equal values (`True`, `1`, `1.0`) hash and compare equal.
enum Num {
    Small(i64),
    Big(BigInt),
    /// Not an integer: a fraction, an infinity or a NaN.
    Float(f64),
}

/// 2^63 as a float: `-TWO_63 <= x < TWO_63` is exactly the range of `i64`.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

fn num(o: &Object) -> Option<Num> {
    Some(match o {
        Object::Bool(b) => Num::Small(i64::from(*b)),
        Object::Int(i) => Num::Small(*i),
        Object::BigInt(b) => match b.to_i64() {
            Some(i) => Num::Small(i),
            None => Num::Big(b.clone()),
        },
        Object::Float(x) => {
            if x.fract() == 0.0 && *x >= -TWO_63 && *x < TWO_63 {
                Num::Small(*x as i64)
            } else if let Some(b) = BigInt::from_f64(*x) {
                Num::Big(b)
            } else {
                Num::Float(*x)
            }
        }
        _ => return None,
    })
}

/// Python's `==` on numbers, with NaN equal to NaN when `nan_eq` (keys) and unequal otherwise.
fn num_eq(a: &Num, b: &Num, nan_eq: bool) -> bool {
    match (a, b) {
        (Num::Small(x), Num::Small(y)) => x == y,
        (Num::Big(x), Num::Big(y)) => x == y,
        (Num::Float(x), Num::Float(y)) => x == y || (nan_eq && x.is_nan() && y.is_nan()),
        _ => false,
    }
}

/// Python's order on numbers; `None` when a NaN is involved.
fn num_cmp(a: &Num, b: &Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Small(x), Num::Small(y)) => Some(x.cmp(y)),
        (Num::Big(x), Num::Big(y)) => Some(x.cmp(y)),
        // `num` makes a `Big` only outside the `i64` range.
        (Num::Small(_), Num::Big(y)) => Some(if y.is_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        }),
        (Num::Big(_), Num::Small(_)) => num_cmp(b, a).map(Ordering::reverse),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(y),
        (Num::Float(x), n) => {
            if x.is_nan() {
                None
            } else if x.is_infinite() {
                Some(if *x > 0.0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                })
            } else {
                // x is not an integer: it lies strictly between floor(x) and floor(x) + 1.
                let floor = num(&Object::Float(x.floor()))?;
                Some(match num_cmp(&floor, n)? {
                    Ordering::Less => Ordering::Less,
                    _ => Ordering::Greater,
                })
            }
        }
        (n, Num::Float(_)) => num_cmp(b, n).map(Ordering::reverse),
    }
}

/// Python's comparison operators as a partial order: numbers by value, `str` and `bytes`
/// lexicographically, lists and tuples item by item, sets by inclusion; `None` where Python
/// raises `TypeError` (different kinds, dicts, `None`) unless the two are equal.
pub(crate) fn py_cmp(a: &Object, b: &Object) -> Option<Ordering> {
    use Object as O;
    match (a, b) {
        (O::Str(x), O::Str(y)) => Some(x.cmp(y)),
        (O::Bytes(x), O::Bytes(y)) => Some(x.cmp(y)),
        (O::List(x), O::List(y)) | (O::Tuple(x), O::Tuple(y)) => {
            match x.iter().zip(y).find(|(p, q)| !py_eq(p, q, false)) {
                Some((p, q)) => py_cmp(p, q),
                None => Some(x.len().cmp(&y.len())),
            }
        }
        (O::Set(x) | O::FrozenSet(x), O::Set(y) | O::FrozenSet(y)) => {
            let subset = |s: &Set, t: &Set| s.iter().all(|k| t.contains(k));
            match x.len().cmp(&y.len()) {
                Ordering::Equal => subset(x, y).then_some(Ordering::Equal),
                Ordering::Less => subset(x, y).then_some(Ordering::Less),
                Ordering::Greater => subset(y, x).then_some(Ordering::Greater),
            }
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => num_cmp(&x, &y),
            _ => py_eq(a, b, false).then_some(Ordering::Equal),
        },
    }
}

/// The Python type name of the first unhashable part of `o`, if any.
pub(crate) fn unhashable_kind(o: &Object) -> Option<&'static str> {
    match o {
        Object::List(_) => Some("list"),
        Object::Dict(_) => Some("dict"),
        Object::Set(_) => Some("set"),
        Object::Slice(_) => Some("slice"),
        Object::Proxy(_) => Some("proxy"),
        Object::Tuple(items) => items.iter().find_map(unhashable_kind),
        _ => None,
    }
}

/// Equality of two objects: Python's `==`, except that NaN equals NaN when `nan_eq`.
pub(crate) fn py_eq(a: &Object, b: &Object, nan_eq: bool) -> bool {
    use Object as O;
    match (a, b) {
        (O::None, O::None) => true,
        (O::Str(x), O::Str(y)) => x == y,
        (O::Bytes(x), O::Bytes(y)) => x == y,
        (O::List(x), O::List(y)) | (O::Tuple(x), O::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b, nan_eq))
        }
        (O::Dict(x), O::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w, nan_eq)))
        }
        (O::Set(x) | O::FrozenSet(x), O::Set(y) | O::FrozenSet(y)) => {
            x.len() == y.len() && x.iter().all(|k| y.contains(k))
        }
        (O::Slice(x), O::Slice(y)) => {
            py_eq(&x.start, &y.start, nan_eq)
                && py_eq(&x.stop, &y.stop, nan_eq)
                && py_eq(&x.step, &y.step, nan_eq)
        }
        (O::Proxy(x), O::Proxy(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => num_eq(&x, &y, nan_eq),
            _ => false,
        },
    }
}

/// Hashes a hashable object consistently with `py_eq(.., true)`.
fn py_hash<H: Hasher>(o: &Object, h: &mut H) {
    if let Some(n) = num(o) {
        match n {
            Num::Small(i) => {
                h.write_u8(1);
                h.write_i64(i);
            }
            Num::Big(b) => {
                h.write_u8(2);
                b.hash(h);
            }
            Num::Float(x) => {
                h.write_u8(3);
                h.write_u64(if x.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    x.to_bits()
                });
            }
        }
        return;
    }
    match o {
        Object::Str(s) => {
            h.write_u8(4);
            s.hash(h);
        }
        Object::Bytes(b) => {
            h.write_u8(5);
            b.hash(h);
        }
        Object::Tuple(items) => {
            h.write_u8(6);
            h.write_usize(items.len());
            for i in items {
                py_hash(i, h);
            }
        }
        Object::FrozenSet(s) | Object::Set(s) => {
            // Order-independent: the sum of the elements' own hashes, under keys chosen at
            // random once per process: with fixed keys, sets whose element hashes sum to the
            // same value could be computed in advance and flood a dict with collisions.
            use std::hash::BuildHasher;
            static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
            let keys = KEYS.get_or_init(std::hash::RandomState::new);
            h.write_u8(7);
            let mut sum = 0u64;
            for k in s.iter() {
                let mut eh = keys.build_hasher();
                py_hash(k, &mut eh);
                sum = sum.wrapping_add(eh.finish());
            }
            h.write_u64(sum);
        }
        _ => h.write_u8(0),
    }
}

/// A hashable object, as stored in a [`Dict`] or [`Set`].
#[derive(Clone)]
pub(crate) struct Key(Object);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        py_hash(&self.0, h);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        py_eq(&self.0, &other.0, true)
    }
}

impl Eq for Key {}

/// A borrowed lookup key; only built for hashable objects.
struct KeyRef<'a>(&'a Object);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        py_hash(self.0, h);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        py_eq(self.0, &key.0, true)
    }
}

/// Python's `dict`: insertion-ordered, keyed by any hashable [`Object`].
///
/// Keys follow Python's equality: `1`, `1.0` and `True` are the same key, and, as in Python, the
/// key first inserted stays while its value is replaced. `str` and `bytes` keys never equal each
/// other. NaN keys all equal each other (Python tells NaN keys apart by object identity, which a
/// value model cannot see). Lists, dicts and sets cannot be keys ([`Unhashable`]).
///
/// # Examples
///
/// ```
/// use multiproc::object::{Dict, Object};
///
/// let mut d = Dict::new();
/// d.insert(1, "one").unwrap();
/// d.insert("2", 2).unwrap();
/// d.insert(1.0, "uno").unwrap(); // same key as 1
/// assert_eq!(d.to_string(), "{1: 'uno', '2': 2}");
/// assert_eq!(d.get(&Object::from(true)), Some(&Object::from("uno")));
/// ```
#[derive(Clone, Default)]
pub struct Dict {
    /// `None` while empty and never filled: an empty dict (the kwargs of most requests, say)
    /// costs no allocation.
    map: Option<Box<IndexMap<Key, Object>>>,
}

/// The map of every dict that has none: an empty one.
fn no_map() -> &'static IndexMap<Key, Object> {
    static EMPTY: std::sync::OnceLock<IndexMap<Key, Object>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(IndexMap::new)
}

impl Dict {
    /// An empty dict.
    ///
    /// ```
    /// assert!(multiproc::object::Dict::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty dict with room for `n` entries.
    ///
    /// ```
    /// assert!(multiproc::object::Dict::with_capacity(8).is_empty());
    /// ```
    pub fn with_capacity(n: usize) -> Self {
        Dict {
            map: (n > 0).then(|| Box::new(IndexMap::with_capacity(n))),
        }
    }

    fn map(&self) -> &IndexMap<Key, Object> {
        match &self.map {
            Some(m) => m,
            None => no_map(),
        }
    }

    fn map_mut(&mut self) -> &mut IndexMap<Key, Object> {
        self.map.get_or_insert_with(Box::default)
    }

    /// Number of entries.
    ///
    /// ```
    /// let d = multiproc::object::Dict::try_from_iter([(1, 2)]).unwrap();
    /// assert_eq!(d.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Is the dict empty?
    ///
    /// ```
    /// assert!(multiproc::object::Dict::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// `d[key] = value`: inserts or replaces, returning the previous value. A new key goes last;
    /// an existing key keeps its place (and the key object first inserted).
    ///
    /// # Errors
    ///
    /// [`Unhashable`] if the key is (or holds) a list, dict or set; the key and value come back.
    ///
    /// ```
    /// let mut d = multiproc::object::Dict::new();
    /// assert_eq!(d.insert("a", 1).unwrap(), None);
    /// assert_eq!(d.insert("a", 2).unwrap(), Some(1.into()));
    /// ```
    pub fn insert(
        &mut self,
        key: impl Into<Object>,
        value: impl Into<Object>,
    ) -> Result<Option<Object>, Unhashable<(Object, Object)>> {
        let key = key.into();
        let value = value.into();
        if let Some(kind) = unhashable_kind(&key) {
            return Err(Unhashable::new(kind, (key, value)));
        }
        Ok(self.map_mut().insert(Key(key), value))
    }

    /// `d.get(key)`: the value for `key`, or `None` (also for an unhashable key).
    ///
    /// ```
    /// use multiproc::obj;
    /// let d = obj!({"a": 1});
    /// assert_eq!(d.as_dict().unwrap().get(&"a".into()), Some(&obj!(1)));
    /// ```
    pub fn get(&self, key: &Object) -> Option<&Object> {
        if unhashable_kind(key).is_some() {
            return None;
        }
        self.map().get(&KeyRef(key))
    }

    /// The value for `key`, mutably.
    ///
    /// ```
    /// use multiproc::{obj, object::Object};
    /// let mut d = obj!({"n": 1});
    /// *d.as_dict_mut().unwrap().get_mut(&"n".into()).unwrap() = obj!(2);
    /// assert_eq!(d.to_string(), "{'n': 2}");
    /// ```
    pub fn get_mut(&mut self, key: &Object) -> Option<&mut Object> {
        if unhashable_kind(key).is_some() {
            return None;
        }
        self.map.as_mut()?.get_mut(&KeyRef(key))
    }

    /// `key in d`.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert!(obj!({1: None}).as_dict().unwrap().contains_key(&obj!(1.0)));
    /// ```
    pub fn contains_key(&self, key: &Object) -> bool {
        self.get(key).is_some()
    }

    /// `d.pop(key)`: removes the entry, keeping the order of the others.
    ///
    /// ```
    /// use multiproc::obj;
    /// let mut d = obj!({1: 2, 3: 4, 5: 6});
    /// assert_eq!(d.as_dict_mut().unwrap().remove(&obj!(3)), Some(obj!(4)));
    /// assert_eq!(d.to_string(), "{1: 2, 5: 6}");
    /// ```
    pub fn remove(&mut self, key: &Object) -> Option<Object> {
        if unhashable_kind(key).is_some() {
            return None;
        }
        self.map.as_mut()?.shift_remove(&KeyRef(key))
    }

    /// The entries in insertion order.
    ///
    /// ```
    /// use multiproc::obj;
    /// let d = obj!({"a": 1, "b": 2});
    /// let keys: Vec<String> = d.as_dict().unwrap().iter().map(|(k, _)| k.to_string()).collect();
    /// assert_eq!(keys, ["'a'", "'b'"]);
    /// ```
    pub fn iter(
        &self,
    ) -> impl ExactSizeIterator<Item = (&Object, &Object)> + DoubleEndedIterator + Clone {
        self.map().iter().map(|(k, v)| (&k.0, v))
    }

    /// The entries in insertion order, values mutable.
    ///
    /// ```
    /// use multiproc::{obj, object::Object};
    /// let mut d = obj!({"a": 1});
    /// for (_, v) in d.as_dict_mut().unwrap().iter_mut() { *v = Object::None; }
    /// assert_eq!(d.to_string(), "{'a': None}");
    /// ```
    pub fn iter_mut(
        &mut self,
    ) -> impl ExactSizeIterator<Item = (&Object, &mut Object)> + DoubleEndedIterator {
        self.map_mut().iter_mut().map(|(k, v)| (&k.0, v))
    }

    /// The keys in insertion order.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert_eq!(obj!({1: 2}).as_dict().unwrap().keys().next(), Some(&obj!(1)));
    /// ```
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Object> + DoubleEndedIterator + Clone {
        self.map().keys().map(|k| &k.0)
    }

    /// The values in insertion order.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert_eq!(obj!({1: 2}).as_dict().unwrap().values().next(), Some(&obj!(2)));
    /// ```
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Object> + DoubleEndedIterator + Clone {
        self.map().values()
    }
}

impl PartialEq for Dict {
    /// Python's `==`: the same keys with equal values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|w| py_eq(v, w, false)))
    }
}

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl IntoIterator for Dict {
    type Item = (Object, Object);
    type IntoIter = DictIntoIter;

    fn into_iter(self) -> DictIntoIter {
        DictIntoIter(self.map.map(|m| *m).unwrap_or_default().into_iter())
    }
}

/// The owned entries of a [`Dict`], in insertion order.
///
/// ```
/// use multiproc::obj;
/// let d = obj!({"a": 1}).as_dict().unwrap().clone();
/// assert_eq!(d.into_iter().collect::<Vec<_>>(), [(obj!("a"), obj!(1))]);
/// ```
pub struct DictIntoIter(indexmap::map::IntoIter<Key, Object>);

impl Iterator for DictIntoIter {
    type Item = (Object, Object);
    fn next(&mut self) -> Option<(Object, Object)> {
        self.0.next().map(|(k, v)| (k.0, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for DictIntoIter {}

impl DoubleEndedIterator for DictIntoIter {
    fn next_back(&mut self) -> Option<(Object, Object)> {
        self.0.next_back().map(|(k, v)| (k.0, v))
    }
}

impl Dict {
    /// Collects pairs into a dict (a later duplicate key replaces the earlier value).
    ///
    /// # Errors
    ///
    /// [`Unhashable`] at the first unhashable key, with that pair.
    ///
    /// ```
    /// use multiproc::object::Dict;
    /// let d = Dict::try_from_iter([("a", 1), ("b", 2)]).unwrap();
    /// assert_eq!(d.to_string(), "{'a': 1, 'b': 2}");
    /// ```
    pub fn try_from_iter<K: Into<Object>, V: Into<Object>>(
        iter: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Dict, Unhashable<(Object, Object)>> {
        let iter = iter.into_iter();
        let mut d = Dict::with_capacity(iter.size_hint().0.min(4096));
        for (k, v) in iter {
            d.insert(k, v)?;
        }
        Ok(d)
    }
}

/// Python's `set` (and, inside [`Object::FrozenSet`], `frozenset`): insertion-ordered, with the
/// element equality of [`Dict`] keys.
///
/// Python prints a set in hash order; this one keeps and prints insertion order (a set received
/// from Python keeps the order Python sent, so it prints as Python printed it).
///
/// # Examples
///
/// ```
/// use multiproc::object::Set;
///
/// let mut s = Set::new();
/// assert!(s.insert(1).unwrap());
/// assert!(!s.insert(1.0).unwrap()); // already there
/// s.insert("a").unwrap();
/// assert_eq!(s.to_string(), "{1, 'a'}");
/// assert_eq!(Set::new().to_string(), "set()");
/// ```
#[derive(Clone, Default)]
pub struct Set {
    set: Box<IndexSet<Key>>,
}

impl Set {
    /// An empty set.
    ///
    /// ```
    /// assert!(multiproc::object::Set::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `n` elements.
    ///
    /// ```
    /// assert!(multiproc::object::Set::with_capacity(4).is_empty());
    /// ```
    pub fn with_capacity(n: usize) -> Self {
        Set {
            set: Box::new(IndexSet::with_capacity(n)),
        }
    }

    /// Number of elements.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert_eq!(obj!({1, 2, 1}).as_set().unwrap().len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Is the set empty?
    ///
    /// ```
    /// assert!(multiproc::object::Set::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// `s.add(x)`: adds the element; `false` if an equal one was already there (it stays).
    ///
    /// # Errors
    ///
    /// [`Unhashable`] if the element is (or holds) a list, dict or set; it comes back.
    ///
    /// ```
    /// let mut s = multiproc::object::Set::new();
    /// assert!(s.insert((1, 2)).unwrap());
    /// assert!(s.insert(vec![1]).is_err());
    /// ```
    pub fn insert(&mut self, value: impl Into<Object>) -> Result<bool, Unhashable<Object>> {
        let value = value.into();
        if let Some(kind) = unhashable_kind(&value) {
            return Err(Unhashable::new(kind, value));
        }
        Ok(self.set.insert(Key(value)))
    }

    /// `x in s`.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert!(obj!({1, 2}).as_set().unwrap().contains(&obj!(true)));
    /// ```
    pub fn contains(&self, value: &Object) -> bool {
        unhashable_kind(value).is_none() && self.set.contains(&KeyRef(value))
    }

    /// `s.discard(x)`: removes the element, keeping the order of the others; `true` if it was
    /// there.
    ///
    /// ```
    /// use multiproc::obj;
    /// let mut s = obj!({1, 2, 3});
    /// assert!(s.as_set_mut().unwrap().remove(&obj!(2)));
    /// assert_eq!(s.to_string(), "{1, 3}");
    /// ```
    pub fn remove(&mut self, value: &Object) -> bool {
        unhashable_kind(value).is_none() && self.set.shift_remove(&KeyRef(value))
    }

    /// The elements in insertion order.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert_eq!(obj!({"x"}).as_set().unwrap().iter().next(), Some(&obj!("x")));
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Object> + DoubleEndedIterator + Clone {
        self.set.iter().map(|k| &k.0)
    }
}

impl PartialEq for Set {
    /// Python's `==`: the same elements, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|k| other.contains(k))
    }
}

impl fmt::Debug for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl IntoIterator for Set {
    type Item = Object;
    type IntoIter = SetIntoIter;

    fn into_iter(self) -> SetIntoIter {
        SetIntoIter(self.set.into_iter())
    }
}

/// The owned elements of a [`Set`], in insertion order.
///
/// ```
/// use multiproc::obj;
/// let s = obj!({1, 2}).as_set().unwrap().clone();
/// assert_eq!(s.into_iter().collect::<Vec<_>>(), [obj!(1), obj!(2)]);
/// ```
pub struct SetIntoIter(indexmap::set::IntoIter<Key>);

impl Iterator for SetIntoIter {
    type Item = Object;
    fn next(&mut self) -> Option<Object> {
        self.0.next().map(|k| k.0)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for SetIntoIter {}

impl DoubleEndedIterator for SetIntoIter {
    fn next_back(&mut self) -> Option<Object> {
        self.0.next_back().map(|k| k.0)
    }
}

impl Set {
    /// Collects elements into a set (duplicates are dropped).
    ///
    /// # Errors
    ///
    /// [`Unhashable`] at the first unhashable element, with it.
    ///
    /// ```
    /// use multiproc::object::Set;
    /// assert_eq!(Set::try_from_iter([3, 1, 3]).unwrap().to_string(), "{3, 1}");
    /// ```
    pub fn try_from_iter<T: Into<Object>>(
        iter: impl IntoIterator<Item = T>,
    ) -> Result<Set, Unhashable<Object>> {
        let iter = iter.into_iter();
        let mut s = Set::with_capacity(iter.size_hint().0.min(4096));
        for v in iter {
            s.insert(v)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_dict_without_a_map_acts_as_any_empty_dict() {
        for mut d in [Dict::new(), Dict::with_capacity(0), Dict::with_capacity(4)] {
            assert!(d.is_empty());
            assert_eq!(d.len(), 0);
            assert_eq!(d.get(&1.into()), None);
            assert_eq!(d.get_mut(&1.into()), None);
            assert_eq!(d.remove(&1.into()), None);
            assert_eq!(d.iter().count(), 0);
            assert_eq!(d.iter_mut().count(), 0);
            assert_eq!(d.keys().len() + d.values().len(), 0);
            assert_eq!(d, Dict::default());
            assert_eq!(d.to_string(), "{}");
            assert_eq!(d.clone().into_iter().count(), 0);
            d.insert(1, "a").unwrap();
            assert_eq!(d.get(&1.0.into()), Some(&Object::from("a")));
            assert_ne!(d, Dict::new());
            assert_eq!(d.remove(&true.into()), Some(Object::from("a")));
            assert_eq!(d, Dict::new());
        }
    }
}
