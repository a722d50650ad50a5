//! [`Object`]: Python's plain data as a Rust value.
//!
//! An [`Object`] is one of Python's plain data types: `None`, `bool`, `int` (an `i64`, or a
//! [`BigInt`] beyond), `float`, `str`, `bytes`, `list`, `tuple`, `dict` ([`Dict`],
//! insertion-ordered), `set` and `frozenset` ([`Set`]). Messages whose shape varies, the values a
//! manager holds, and whatever a Python peer sends are held as `Object`s.
//!
//! - [`Display`](std::fmt::Display) prints Python's `repr`, character for character (an `int`
//!   of more than [`MAX_STR_DIGITS`] digits, which Python refuses to print, in hexadecimal),
//!   and [`str::parse`] reads Python literals back ([`ParseObjectError`]), as
//!   `ast.literal_eval`.
//! - [`obj!`](crate::obj) writes literals in Python's syntax.
//! - `From`/`TryFrom` convert from and to Rust's own types (a borrowed byte string, `&[u8]` or
//!   `&[u8; N]`, is `bytes`; an owned `Vec<u8>` is a list of ints, as serde sees it);
//!   [`to_object`] and [`from_object`] convert any serde type (structs become dicts keyed by
//!   field name).
//! - `Object` implements serde: binary formats (postcard, which the crate's connections use) carry
//!   an exact tagged form; human-readable formats (JSON) get the natural mapping (lists, maps,
//!   numbers), which cannot tell a tuple or set from a list, nor bytes from a list of ints.
//! - With the `python` feature, [`codec::pickle`](crate::codec) reads and writes Python's pickle.
//!
//! # Examples
//!
//! The seed's two messages:
//!
//! ```
//! use multiproc::obj;
//!
//! let list = obj!(["沐风", 666, "精易"]);
//! assert_eq!(list.to_string(), "['沐风', 666, '精易']");
//!
//! let dict = obj!({1: "1", "2": 2, 0.25: None});
//! assert_eq!(dict.to_string(), "{1: '1', '2': 2, 0.25: None}");
//! ```
//!
//! Building and reading values:
//!
//! ```
//! use multiproc::object::{Dict, Object};
//!
//! let mut d = Dict::new();
//! d.insert("name", "worker-1").unwrap();
//! d.insert("jobs", vec![1, 2, 3]).unwrap();
//! d.insert((1, 2), b"\x00ok").unwrap();
//! let o = Object::from(d);
//! assert_eq!(o.to_string(), "{'name': 'worker-1', 'jobs': [1, 2, 3], (1, 2): b'\\x00ok'}");
//!
//! let jobs: Vec<i32> = o.as_dict().unwrap().get(&"jobs".into()).unwrap().clone().try_into().unwrap();
//! assert_eq!(jobs, [1, 2, 3]);
//! ```
//!
//! # Equality and keys
//!
//! `==` on objects is Python's: `1 == 1.0 == True`, a list never equals a tuple, dicts and sets
//! compare without regard to order, and NaN is unequal to itself. `<` and friends are Python's
//! too (a partial order: `1 < "a"` is neither true nor false in Python, and `false` here). [`Object::identical`] compares
//! kinds, order and float bits exactly. Dict keys and set elements use the same equality, except
//! that NaN keys are all one key (Python separates NaN keys by object identity).

mod bigint;
mod de;
mod dict;
mod parse;
mod printable;
pub(crate) mod repr;
mod ser;
mod serde_impl;
mod special;

use std::borrow::Cow;
use std::fmt;

pub use bigint::{BigInt, MAX_STR_DIGITS, ParseBigIntError};
pub use de::from_object;
pub use dict::{Dict, DictIntoIter, Set, SetIntoIter, Unhashable};
pub use parse::ParseObjectError;
pub use ser::{SerdeError, to_object};
pub use special::{ProxyRef, Slice, SliceError};

pub(crate) use dict::unhashable_kind;

/// How deep containers may nest in an object decoded from bytes (serde formats, pickle,
/// [`str::parse`]): deeper input is an error, never a stack overflow. (Python's own recursion
/// limit is 1000.)
///
/// Every operation on an object this deep (`Display`, `==`, `<`, hashing, `Clone`, serde in
/// both directions, [`to_object`], [`from_object`], pickle, drop) runs on a 2 MiB thread, the
/// default size of a spawned thread, in debug and release builds alike. Objects built by your
/// own code may nest deeper; those operations recurse, so such values need a stack in
/// proportion to their depth (where Python raises `RecursionError`).
pub const MAX_DEPTH: usize = 512;

/// A Python value: `None`, `bool`, `int`, `float`, `str`, `bytes`, `list`, `tuple`, `dict`,
/// `set` or `frozenset`.
///
/// See the [module documentation](self) for the tour; [`obj!`](crate::obj) writes literals.
///
/// # Examples
///
/// ```
/// use multiproc::object::Object;
///
/// let t = Object::Tuple(vec![Object::from(1), Object::None]);
/// assert_eq!(t.to_string(), "(1, None)");
/// assert_eq!(Object::from(1e16).to_string(), "1e+16");
/// assert_eq!(Object::from("it's").to_string(), r#""it's""#);
/// assert_eq!(Object::from(u64::MAX).to_string(), "18446744073709551615");
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Object {
    /// `None`.
    #[default]
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in an `i64`.
    Int(i64),
    /// An `int` of any size (the conversions use it only beyond the `i64` range; a `BigInt`
    /// within it still equals the same `Int`).
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` (a `bytearray` from Python arrives as this too).
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Object>),
    /// A `tuple`.
    Tuple(Vec<Object>),
    /// A `dict`, in insertion order.
    Dict(Dict),
    /// A `set`.
    Set(Set),
    /// A `frozenset`: like a set, but hashable (it can be a dict key or a set element).
    FrozenSet(Set),
    /// A `slice`, as `l[2:5]` sends it to a manager (unhashable, as in Python 3.11).
    Slice(Box<Slice>),
    /// A reference to an object held by a manager: a proxy stored inside a managed dict or
    /// list (unhashable here).
    Proxy(Box<ProxyRef>),
}

impl Object {
    /// A `bytes` object.
    ///
    /// ```
    /// use multiproc::object::Object;
    /// assert_eq!(Object::bytes(b"a'b").to_string(), r#"b"a'b""#);
    /// ```
    pub fn bytes(b: impl Into<Vec<u8>>) -> Object {
        Object::Bytes(b.into())
    }

    /// Python's name for the type: `"NoneType"`, `"bool"`, `"int"`, `"float"`, `"str"`,
    /// `"bytes"`, `"list"`, `"tuple"`, `"dict"`, `"set"` or `"frozenset"`.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert_eq!(obj!((1,)).type_name(), "tuple");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::None => "NoneType",
            Object::Bool(_) => "bool",
            Object::Int(_) | Object::BigInt(_) => "int",
            Object::Float(_) => "float",
            Object::Str(_) => "str",
            Object::Bytes(_) => "bytes",
            Object::List(_) => "list",
            Object::Tuple(_) => "tuple",
            Object::Dict(_) => "dict",
            Object::Set(_) => "set",
            Object::FrozenSet(_) => "frozenset",
            Object::Slice(_) => "slice",
            Object::Proxy(_) => "proxy",
        }
    }

    /// Can this object be a dict key or set element? (Not if it is or holds a list, dict or set.)
    ///
    /// ```
    /// use multiproc::obj;
    /// assert!(obj!((1, "a")).is_hashable());
    /// assert!(!obj!((1, [2])).is_hashable());
    /// ```
    pub fn is_hashable(&self) -> bool {
        unhashable_kind(self).is_none()
    }

    /// Is this `None`?
    ///
    /// ```
    /// assert!(multiproc::obj!(None).is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        matches!(self, Object::None)
    }

    /// The `bool`, if this is one.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!(true).as_bool(), Some(true));
    /// ```
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Object::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The `int` as an `i64`, if this is an `int` that fits.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!(-7).as_i64(), Some(-7));
    /// assert_eq!(multiproc::obj!(u64::MAX).as_i64(), None);
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Object::Int(i) => Some(*i),
            Object::BigInt(b) => b.to_i64(),
            _ => None,
        }
    }

    /// The `float`, if this is one.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!(0.5).as_f64(), Some(0.5));
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Object::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The `str`, if this is one.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!("精易").as_str(), Some("精易"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Object::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The `bytes`, if this is one.
    ///
    /// ```
    /// use multiproc::object::Object;
    /// assert_eq!(Object::bytes(*b"ab").as_bytes(), Some(&b"ab"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Object::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The `bytes`, by value (`Vec<u8>: TryFrom<Object>` reads a list of ints instead).
    ///
    /// # Errors
    ///
    /// [`ConvertError`] with the object if it is not a `bytes`.
    ///
    /// ```
    /// use multiproc::object::Object;
    /// assert_eq!(Object::bytes(*b"ab").into_bytes().unwrap(), b"ab");
    /// assert!(Object::from("ab").into_bytes().is_err());
    /// ```
    pub fn into_bytes(self) -> Result<Vec<u8>, ConvertError> {
        match self {
            Object::Bytes(b) => Ok(b),
            o => Err(ConvertError::new("bytes", o)),
        }
    }

    /// The items of a `list` or `tuple`.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!((1, 2)).as_slice().map(|s| s.len()), Some(2));
    /// ```
    pub fn as_slice(&self) -> Option<&[Object]> {
        match self {
            Object::List(v) | Object::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The items of a `list`, mutably.
    ///
    /// ```
    /// let mut l = multiproc::obj!([1]);
    /// l.as_list_mut().unwrap().push(2.into());
    /// assert_eq!(l.to_string(), "[1, 2]");
    /// ```
    pub fn as_list_mut(&mut self) -> Option<&mut Vec<Object>> {
        match self {
            Object::List(v) => Some(v),
            _ => None,
        }
    }

    /// The `dict`, if this is one.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!({}).as_dict().map(|d| d.len()), Some(0));
    /// ```
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Object::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The `dict`, mutably.
    ///
    /// ```
    /// let mut d = multiproc::obj!({});
    /// d.as_dict_mut().unwrap().insert("k", "v").unwrap();
    /// assert_eq!(d.to_string(), "{'k': 'v'}");
    /// ```
    pub fn as_dict_mut(&mut self) -> Option<&mut Dict> {
        match self {
            Object::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The elements of a `set` or `frozenset`.
    ///
    /// ```
    /// assert_eq!(multiproc::obj!({1, 2}).as_set().map(|s| s.len()), Some(2));
    /// ```
    pub fn as_set(&self) -> Option<&Set> {
        match self {
            Object::Set(s) | Object::FrozenSet(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of a `set`, mutably (a `frozenset` cannot change).
    ///
    /// ```
    /// let mut s = multiproc::obj!({1});
    /// s.as_set_mut().unwrap().insert(2).unwrap();
    /// assert_eq!(s.to_string(), "{1, 2}");
    /// ```
    pub fn as_set_mut(&mut self) -> Option<&mut Set> {
        match self {
            Object::Set(s) => Some(s),
            _ => None,
        }
    }

    /// Python's `len()`: characters of a `str`, bytes of a `bytes`, items of a container;
    /// `None` for the other kinds.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert_eq!(obj!("沐风").len(), Some(2));
    /// assert_eq!(obj!({1: 2, 3: 4}).len(), Some(2));
    /// assert_eq!(obj!(5).len(), None);
    /// ```
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<usize> {
        match self {
            Object::Str(s) => Some(s.chars().count()),
            Object::Bytes(b) => Some(b.len()),
            Object::List(v) | Object::Tuple(v) => Some(v.len()),
            Object::Dict(d) => Some(d.len()),
            Object::Set(s) | Object::FrozenSet(s) => Some(s.len()),
            _ => None,
        }
    }

    /// Python's `o[key]` for reading: a dict's value for `key`, or a list's or tuple's item at
    /// an integer index (negative counts from the end, as in Python). `None` when absent.
    ///
    /// ```
    /// use multiproc::obj;
    /// let o = obj!({"jobs": [10, 20, 30]});
    /// let jobs = o.get_item(&obj!("jobs")).unwrap();
    /// assert_eq!(jobs.get_item(&obj!(-1)), Some(&obj!(30)));
    /// assert_eq!(jobs.get_item(&obj!(3)), None);
    /// ```
    pub fn get_item(&self, key: &Object) -> Option<&Object> {
        match self {
            Object::Dict(d) => d.get(key),
            Object::List(v) | Object::Tuple(v) => {
                let i = match key {
                    Object::Int(i) => *i,
                    Object::Bool(b) => i64::from(*b),
                    _ => return None,
                };
                let len = i64::try_from(v.len()).ok()?;
                let i = if i < 0 { i.checked_add(len)? } else { i };
                v.get(usize::try_from(i).ok()?)
            }
            _ => None,
        }
    }

    /// Exact sameness: same kinds all the way down (`1` is not `1.0`, a set is not a frozenset),
    /// dict entries and set elements in the same order, floats with the same bits (so NaN is
    /// identical to the same NaN). Stricter than `==`, which follows Python.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert!(obj!([1]) == obj!([1.0]));
    /// assert!(!obj!([1]).identical(&obj!([1.0])));
    /// assert!(obj!(f64::NAN).identical(&obj!(f64::NAN)));
    /// ```
    pub fn identical(&self, other: &Object) -> bool {
        use Object as O;
        match (self, other) {
            (O::None, O::None) => true,
            (O::Bool(a), O::Bool(b)) => a == b,
            (O::Int(a), O::Int(b)) => a == b,
            (O::BigInt(a), O::BigInt(b)) => a == b,
            (O::Float(a), O::Float(b)) => a.to_bits() == b.to_bits(),
            (O::Str(a), O::Str(b)) => a == b,
            (O::Bytes(a), O::Bytes(b)) => a == b,
            (O::List(a), O::List(b)) | (O::Tuple(a), O::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.identical(y))
            }
            (O::Dict(a), O::Dict(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((k1, v1), (k2, v2))| k1.identical(k2) && v1.identical(v2))
            }
            (O::Set(a), O::Set(b)) | (O::FrozenSet(a), O::FrozenSet(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.identical(y))
            }
            (O::Slice(a), O::Slice(b)) => {
                a.start.identical(&b.start)
                    && a.stop.identical(&b.stop)
                    && a.step.identical(&b.step)
            }
            (O::Proxy(a), O::Proxy(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for Object {
    /// Python's `==` (see the [module documentation](self)).
    fn eq(&self, other: &Self) -> bool {
        dict::py_eq(self, other, false)
    }
}

impl PartialOrd for Object {
    /// Python's `<`, `<=`, `>`, `>=`: numbers by value (`1 < 1.5 < 2**70`), `str` and `bytes`
    /// lexicographically, lists and tuples item by item, sets by inclusion (`{1} < {1, 2}`).
    /// Where Python raises `TypeError` (`1 < "a"`, dicts, `None`) this is `None`, so every
    /// comparison is `false`.
    ///
    /// ```
    /// use multiproc::obj;
    /// assert!(obj!(1) < obj!(1.5));
    /// assert!(obj!([1, "b"]) < obj!([1, "c"]));
    /// assert!(obj!({1}) < obj!({1, 2}));
    /// assert_eq!(obj!(1).partial_cmp(&obj!("a")), None);
    /// let mut v = vec![obj!(3), obj!(0.5), obj!(true), obj!(-2)];
    /// v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    /// assert_eq!(multiproc::Object::List(v).to_string(), "[-2, 0.5, True, 3]");
    /// ```
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        dict::py_cmp(self, other)
    }
}

macro_rules! eq_primitive {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for Object {
            /// Python's `==` against the value converted to an object.
            fn eq(&self, other: &$t) -> bool {
                dict::py_eq(self, &Object::from(*other), false)
            }
        }
    )*};
}
eq_primitive!(bool, i32, i64, u32, u64, f64);

impl PartialEq<str> for Object {
    /// Is this the `str` `other`?
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Object {
    /// Is this the `str` `other`?
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

/// An [`Object`] is not of the Rust type asked for (or its value does not fit); the object comes
/// back with [`into_inner`](Self::into_inner).
///
/// # Examples
///
/// ```
/// use multiproc::obj;
///
/// let err = u8::try_from(obj!(300)).unwrap_err();
/// assert_eq!(err.to_string(), "expected u8, found int 300");
/// assert_eq!(err.into_inner(), obj!(300));
/// ```
#[derive(Clone, PartialEq)]
pub struct ConvertError {
    expected: &'static str,
    object: Object,
}

impl ConvertError {
    fn new(expected: &'static str, object: Object) -> Self {
        ConvertError { expected, object }
    }

    /// The Rust type that was asked for.
    pub fn expected(&self) -> &'static str {
        self.expected
    }

    /// The object that did not convert.
    pub fn into_inner(self) -> Object {
        self.object
    }
}

impl fmt::Debug for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConvertError({self})")
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {}, found {} {}",
            self.expected,
            self.object.type_name(),
            repr::clipped(&self.object, 57)
        )
    }
}

impl std::error::Error for ConvertError {}

// ---- Rust values into objects ----

impl From<()> for Object {
    fn from((): ()) -> Self {
        Object::None
    }
}

impl From<bool> for Object {
    fn from(b: bool) -> Self {
        Object::Bool(b)
    }
}

macro_rules! from_small_int {
    ($($t:ty)*) => {$(
        impl From<$t> for Object {
            fn from(v: $t) -> Self {
                Object::Int(i64::from(v))
            }
        }
    )*};
}
from_small_int!(i8 i16 i32 i64 u8 u16 u32);

macro_rules! from_wide_int {
    ($($t:ty => $wide:ty),*) => {$(
        impl From<$t> for Object {
            fn from(v: $t) -> Self {
                match i64::try_from(v) {
                    Ok(i) => Object::Int(i),
                    Err(_) => Object::BigInt(BigInt::from(v as $wide)),
                }
            }
        }
    )*};
}
from_wide_int!(u64 => u128, usize => u128, isize => i128, i128 => i128, u128 => u128);

impl From<BigInt> for Object {
    /// An `Int` if the value fits in an `i64`, else a `BigInt`.
    fn from(b: BigInt) -> Self {
        match b.to_i64() {
            Some(i) => Object::Int(i),
            None => Object::BigInt(b),
        }
    }
}

impl From<f64> for Object {
    fn from(x: f64) -> Self {
        Object::Float(x)
    }
}

impl From<f32> for Object {
    fn from(x: f32) -> Self {
        Object::Float(f64::from(x))
    }
}

impl From<&str> for Object {
    fn from(s: &str) -> Self {
        Object::Str(s.to_owned())
    }
}

impl From<String> for Object {
    fn from(s: String) -> Self {
        Object::Str(s)
    }
}

impl From<&String> for Object {
    fn from(s: &String) -> Self {
        Object::Str(s.clone())
    }
}

impl From<Box<str>> for Object {
    fn from(s: Box<str>) -> Self {
        Object::Str(s.into())
    }
}

impl From<Cow<'_, str>> for Object {
    fn from(s: Cow<'_, str>) -> Self {
        Object::Str(s.into_owned())
    }
}

impl From<char> for Object {
    fn from(c: char) -> Self {
        Object::Str(c.to_string())
    }
}

impl<T: Into<Object>> From<Vec<T>> for Object {
    /// A `list`, for every element type: a `Vec<u8>` too is a list of ints, as serde sees it
    /// (for `bytes`, use [`Object::bytes`], or convert the borrowed slice).
    ///
    /// ```
    /// use multiproc::Object;
    /// assert_eq!(Object::from(vec![0u8, 255]).to_string(), "[0, 255]");
    /// assert_eq!(Object::bytes(vec![0u8, 255]).to_string(), r"b'\x00\xff'");
    /// ```
    fn from(v: Vec<T>) -> Self {
        Object::List(v.into_iter().map(Into::into).collect())
    }
}

impl From<&[u8]> for Object {
    /// A `bytes`: a byte string, borrowed, is `bytes` in Python's terms (`b"ab".as_slice()`
    /// and `&buf[..n]` as well as the literal `b"ab"`).
    ///
    /// ```
    /// use multiproc::{obj, Object};
    /// let buf = [0u8, 255, b'a'];
    /// assert_eq!(Object::from(&buf[..2]).to_string(), r"b'\x00\xff'");
    /// assert!(Object::from(b"ab".as_slice()).identical(&obj!(b"ab")));
    /// ```
    fn from(b: &[u8]) -> Self {
        Object::Bytes(b.to_vec())
    }
}

macro_rules! from_slice {
    ($($t:ty),*) => {$(
        impl From<&[$t]> for Object {
            /// A `list`.
            fn from(v: &[$t]) -> Self {
                Object::List(v.iter().cloned().map(Into::into).collect())
            }
        }
    )*};
}
// Every element type of the crate's conversions but `u8` (whose slices are `bytes`); for other
// element types, `.to_vec()` gives a `Vec`, which converts to a list.
from_slice!(
    Object, bool, i8, i16, i32, i64, i128, isize, u16, u32, u64, u128, usize, f32, f64, char,
    String, &str, BigInt, Dict, Set
);

impl<const N: usize> From<&[u8; N]> for Object {
    /// A `bytes`: what a byte string literal (`b"..."`) means in Python too.
    fn from(b: &[u8; N]) -> Self {
        Object::Bytes(b.to_vec())
    }
}

impl<T: Into<Object>, const N: usize> From<[T; N]> for Object {
    /// A `list`.
    fn from(v: [T; N]) -> Self {
        Object::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Object>> From<Option<T>> for Object {
    /// `None`, or the value.
    fn from(v: Option<T>) -> Self {
        v.map_or(Object::None, Into::into)
    }
}

impl From<Dict> for Object {
    fn from(d: Dict) -> Self {
        Object::Dict(d)
    }
}

impl From<Set> for Object {
    /// A `set`.
    fn from(s: Set) -> Self {
        Object::Set(s)
    }
}

macro_rules! tuple_impls {
    ($( ($($name:ident $idx:tt),+) )*) => {$(
        impl<$($name: Into<Object>),+> From<($($name,)+)> for Object {
            /// A `tuple`.
            fn from(t: ($($name,)+)) -> Self {
                Object::Tuple(vec![$(t.$idx.into()),+])
            }
        }

        impl<$($name: TryFrom<Object, Error = ConvertError>),+> TryFrom<Object> for ($($name,)+) {
            type Error = ConvertError;

            /// From a `tuple` or `list` of exactly this length.
            fn try_from(o: Object) -> Result<Self, ConvertError> {
                const LEN: usize = [$($idx),+].len();
                match o {
                    Object::Tuple(v) | Object::List(v) if v.len() == LEN => {
                        let mut it = v.into_iter();
                        Ok(($({
                            let _ = $idx;
                            $name::try_from(it.next().unwrap_or_default())?
                        },)+))
                    }
                    o => Err(ConvertError::new(concat!("a tuple of ", stringify!($($name),+)), o)),
                }
            }
        }
    )*};
}
tuple_impls! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}

// ---- objects into Rust values ----

macro_rules! try_into_int {
    ($($t:ty)*) => {$(
        impl TryFrom<Object> for $t {
            type Error = ConvertError;

            /// From an `int` (or `bool`) in range.
            fn try_from(o: Object) -> Result<Self, ConvertError> {
                let v = match &o {
                    Object::Int(i) => <$t>::try_from(*i).ok(),
                    Object::Bool(b) => Some(<$t>::from(*b)),
                    Object::BigInt(b) => match b.to_i128() {
                        Some(i) => <$t>::try_from(i).ok(),
                        None => b.to_u128().and_then(|u| <$t>::try_from(u).ok()),
                    },
                    _ => None,
                };
                v.ok_or_else(|| ConvertError::new(stringify!($t), o))
            }
        }
    )*};
}
try_into_int!(i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize);

impl TryFrom<Object> for BigInt {
    type Error = ConvertError;

    /// From an `int` (or `bool`).
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::Int(i) => Ok(BigInt::from(i)),
            Object::Bool(b) => Ok(BigInt::from(i64::from(b))),
            Object::BigInt(b) => Ok(b),
            o => Err(ConvertError::new("BigInt", o)),
        }
    }
}

impl TryFrom<Object> for bool {
    type Error = ConvertError;

    /// From a `bool`.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::Bool(b) => Ok(b),
            o => Err(ConvertError::new("bool", o)),
        }
    }
}

impl TryFrom<Object> for f64 {
    type Error = ConvertError;

    /// From a `float`, or an `int` (rounded to the nearest float, as Python's `float(n)`).
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::Float(x) => Ok(x),
            Object::Int(i) => Ok(i as f64),
            o => Err(ConvertError::new("f64", o)),
        }
    }
}

impl TryFrom<Object> for f32 {
    type Error = ConvertError;

    /// From a `float` or an `int`, rounded to `f32`.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        f64::try_from(o)
            .map(|x| x as f32)
            .map_err(|e| ConvertError::new("f32", e.object))
    }
}

impl TryFrom<Object> for String {
    type Error = ConvertError;

    /// From a `str`.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::Str(s) => Ok(s),
            o => Err(ConvertError::new("String", o)),
        }
    }
}

impl<T: TryFrom<Object, Error = ConvertError>> TryFrom<Object> for Vec<T> {
    type Error = ConvertError;

    /// From a `list` or `tuple` (for `bytes`, see [`Object::as_bytes`]). On failure the error
    /// names the element that did not convert.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::List(v) | Object::Tuple(v) => v.into_iter().map(T::try_from).collect(),
            o => Err(ConvertError::new("a list", o)),
        }
    }
}

impl<T: TryFrom<Object, Error = ConvertError>> TryFrom<Object> for Option<T> {
    type Error = ConvertError;

    /// `None`, or the value.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::None => Ok(None),
            o => T::try_from(o).map(Some),
        }
    }
}

impl TryFrom<Object> for Dict {
    type Error = ConvertError;

    /// From a `dict`.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::Dict(d) => Ok(d),
            o => Err(ConvertError::new("a dict", o)),
        }
    }
}

impl TryFrom<Object> for Set {
    type Error = ConvertError;

    /// From a `set` or `frozenset`.
    fn try_from(o: Object) -> Result<Self, ConvertError> {
        match o {
            Object::Set(s) | Object::FrozenSet(s) => Ok(s),
            o => Err(ConvertError::new("a set", o)),
        }
    }
}

// ---- the literal macro ----

/// Writes an [`Object`] literal in Python's syntax.
///
/// - `None`, and any Rust expression convertible with `Object::from` (`1`, `-2.5`, `"text"`,
///   `b"bytes"`, `true`, a variable, `vec![..]`);
/// - lists `[a, b]`; tuples `()`, `(a,)`, `(a, b)` (`(a)` is just `a`, as in Python);
/// - dicts `{}`, `{k: v, ...}`; sets `{a, b}` (`{}` is an empty dict; an empty set is
///   `Object::Set(Set::new())`).
///
/// Items nest freely. A key or element made of several tokens is written as is (`-1: x`);
/// an item containing commas outside brackets (such as `f::<A, B>()`) needs parentheses.
///
/// # Panics
///
/// If a dict key or set element is unhashable (a list, dict or set), as Python raises
/// `TypeError` for `{[1]: 2}`. Use [`Dict::insert`] to handle that case as an error.
///
/// # Examples
///
/// ```
/// use multiproc::obj;
///
/// assert_eq!(obj!(["沐风", 666, "精易"]).to_string(), "['沐风', 666, '精易']");
/// assert_eq!(obj!({1: "1", "2": 2, 0.25: None}).to_string(), "{1: '1', '2': 2, 0.25: None}");
/// assert_eq!(obj!((1,)).to_string(), "(1,)");
/// assert_eq!(obj!(()).to_string(), "()");
/// assert_eq!(obj!({1, (2, 3)}).to_string(), "{1, (2, 3)}");
/// assert_eq!(obj!([b"\x00ok", 'c', 1.5]).to_string(), "[b'\\x00ok', 'c', 1.5]");
/// let n = 5;
/// assert_eq!(obj!({"n": n, "sq": n * n, -1: [None, {}]}).to_string(), "{'n': 5, 'sq': 25, -1: [None, {}]}");
/// ```
#[macro_export]
macro_rules! obj {
    (None) => { $crate::object::Object::None };
    ([]) => { $crate::object::Object::List(::std::vec::Vec::new()) };
    ([ $($tt:tt)+ ]) => { $crate::__obj_items!(@list [] no $($tt)+) };
    (()) => { $crate::object::Object::Tuple(::std::vec::Vec::new()) };
    (( $($tt:tt)+ )) => { $crate::__obj_items!(@tuple [] no $($tt)+) };
    ({}) => { $crate::object::Object::Dict($crate::object::Dict::new()) };
    ({ $($tt:tt)+ }) => { $crate::__obj_brace!([] $($tt)+) };
    ($e:expr) => { $crate::object::Object::from($e) };
}

/// Munches comma-separated items of a list, tuple or set literal.
#[doc(hidden)]
#[macro_export]
macro_rules! __obj_items {
    // End of input.
    (@list [$($d:expr,)*] $seen:ident) => {
        $crate::object::Object::List(::std::vec![$($d,)*])
    };
    (@tuple [$d:expr,] no) => { $d };
    (@tuple [$($d:expr,)*] $seen:ident) => {
        $crate::object::Object::Tuple(::std::vec![$($d,)*])
    };
    (@set [$($d:expr,)*] $seen:ident) => {
        $crate::object::__macro_set(::std::vec![$($d,)*])
    };
    // One item, then a comma or the end.
    (@$k:ident [$($d:expr,)*] $seen:ident None , $($rest:tt)*) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::object::Object::None,] yes $($rest)*)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident None) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::object::Object::None,] $seen)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident [$($x:tt)*] , $($rest:tt)*) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::obj!([$($x)*]),] yes $($rest)*)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident [$($x:tt)*]) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::obj!([$($x)*]),] $seen)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident ($($x:tt)*) , $($rest:tt)*) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::obj!(($($x)*)),] yes $($rest)*)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident ($($x:tt)*)) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::obj!(($($x)*)),] $seen)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident {$($x:tt)*} , $($rest:tt)*) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::obj!({$($x)*}),] yes $($rest)*)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident {$($x:tt)*}) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::obj!({$($x)*}),] $seen)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident $e:expr , $($rest:tt)*) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::object::Object::from($e),] yes $($rest)*)
    };
    (@$k:ident [$($d:expr,)*] $seen:ident $e:expr) => {
        $crate::__obj_items!(@$k [$($d,)* $crate::object::Object::from($e),] $seen)
    };
}

/// Tells a dict literal from a set literal by the first `:` or `,`, then munches entries.
#[doc(hidden)]
#[macro_export]
macro_rules! __obj_brace {
    ([$($k:tt)+] : $($rest:tt)*) => {
        $crate::object::__macro_dict($crate::__obj_dict!(@value [] [$($k)+] $($rest)*))
    };
    ([$($k:tt)+] , $($rest:tt)*) => {
        $crate::__obj_items!(@set [$crate::obj!($($k)+),] yes $($rest)*)
    };
    ([$($k:tt)+]) => {
        $crate::__obj_items!(@set [$crate::obj!($($k)+),] no)
    };
    ([$($k:tt)*] $t:tt $($rest:tt)*) => {
        $crate::__obj_brace!([$($k)* $t] $($rest)*)
    };
}

/// Munches the entries of a dict literal into a `Vec` of pairs.
#[doc(hidden)]
#[macro_export]
macro_rules! __obj_dict {
    // Key: tokens up to the colon.
    (@key [$($d:expr,)*] []) => { ::std::vec![$($d,)*] };
    (@key [$($d:expr,)*] [$($k:tt)+] : $($rest:tt)*) => {
        $crate::__obj_dict!(@value [$($d,)*] [$($k)+] $($rest)*)
    };
    (@key [$($d:expr,)*] [$($k:tt)*] $t:tt $($rest:tt)*) => {
        $crate::__obj_dict!(@key [$($d,)*] [$($k)* $t] $($rest)*)
    };
    // Value: one item, then a comma or the end.
    (@value [$($d:expr,)*] [$($k:tt)+] None $(, $($rest:tt)*)?) => {
        $crate::__obj_dict!(@key [$($d,)* ($crate::obj!($($k)+), $crate::object::Object::None),] [] $($($rest)*)?)
    };
    (@value [$($d:expr,)*] [$($k:tt)+] [$($x:tt)*] $(, $($rest:tt)*)?) => {
        $crate::__obj_dict!(@key [$($d,)* ($crate::obj!($($k)+), $crate::obj!([$($x)*])),] [] $($($rest)*)?)
    };
    (@value [$($d:expr,)*] [$($k:tt)+] ($($x:tt)*) $(, $($rest:tt)*)?) => {
        $crate::__obj_dict!(@key [$($d,)* ($crate::obj!($($k)+), $crate::obj!(($($x)*))),] [] $($($rest)*)?)
    };
    (@value [$($d:expr,)*] [$($k:tt)+] {$($x:tt)*} $(, $($rest:tt)*)?) => {
        $crate::__obj_dict!(@key [$($d,)* ($crate::obj!($($k)+), $crate::obj!({$($x)*})),] [] $($($rest)*)?)
    };
    (@value [$($d:expr,)*] [$($k:tt)+] $v:expr $(, $($rest:tt)*)?) => {
        $crate::__obj_dict!(@key [$($d,)* ($crate::obj!($($k)+), $crate::object::Object::from($v)),] [] $($($rest)*)?)
    };
}

/// Builds the dict of an [`obj!`] literal.
///
/// # Panics
///
/// On an unhashable key, as documented on [`obj!`].
#[doc(hidden)]
#[track_caller]
pub fn __macro_dict(pairs: Vec<(Object, Object)>) -> Object {
    match Dict::try_from_iter(pairs) {
        Ok(d) => Object::Dict(d),
        Err(e) => panic!("obj!: {e}"),
    }
}

/// Builds the set of an [`obj!`] literal.
///
/// # Panics
///
/// On an unhashable element, as documented on [`obj!`].
#[doc(hidden)]
#[track_caller]
pub fn __macro_set(items: Vec<Object>) -> Object {
    match Set::try_from_iter(items) {
        Ok(s) => Object::Set(s),
        Err(e) => panic!("obj!: {e}"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
