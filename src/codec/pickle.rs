//! Python's pickle, for plain data: what Python's `Connection.send`/`recv` put in a frame.
//!
//! [`dumps`] writes an [`Object`] as a protocol-4 pickle (the default of Python 3.8–3.13; every
//! Python since 3.4 reads it); [`loads`] reads protocols 0–5 as any Python 3 writes them.
//! [`to_vec`] and [`from_slice`] do the same for any serde type, through
//! [`to_object`] and [`from_object`].
//!
//! # Safety against the sender
//!
//! Python's `pickle.loads` runs code named by the data (`GLOBAL`/`REDUCE` can call anything).
//! This decoder never imports or calls anything: it knows the few names that Python itself uses
//! to pickle plain data (`builtins.set`, `builtins.frozenset`, `builtins.bytearray`,
//! `builtins.bytes`, `_codecs.encode`), builds the value those calls would build, and rejects
//! every other name with [`PickleError::Forbidden`]. Objects of classes (instances, `datetime`,
//! `OrderedDict`, `complex`, …) are rejected the same way.
//!
//! Hostile input gives an error, never a panic, a stack overflow or an unbounded allocation:
//! lengths are checked against the input before anything is allocated, nesting is limited to
//! [`Limits::max_depth`], and values that the pickle shares between several places (and this
//! model copies) are limited to [`Limits::max_copied_bytes`].
//!
//! # Differences from Python
//!
//! - An object shared between several places in Python (`x = [1]; [x, x]`) arrives as equal,
//!   independent copies; a self-containing object (`x = []; x.append(x)`) is an error.
//! - `bytearray` arrives as `bytes`; a `str` holding a lone surrogate is an error (Rust strings
//!   are UTF-8).
//! - Sets are written in their insertion order; Python keeps no order, so a set sent to Python
//!   may print in a different order there.
//! - Python 2's `str` opcodes (`SHORT_BINSTRING`, `BINSTRING`) read as ASCII text; the quoted
//!   `STRING` opcode and out-of-band buffers (`NEXT_BUFFER`) are not supported.
//!
//! # Examples
//!
//! ```
//! use multiproc::codec::pickle;
//! use multiproc::obj;
//!
//! let msg = obj!({1: "1", "2": 2, 0.25: None});
//! let bytes = pickle::dumps(&msg);
//! assert_eq!(pickle::loads(&bytes).unwrap().to_string(), "{1: '1', '2': 2, 0.25: None}");
//!
//! // What Python 3.11 sends for `conn.send(['沐风', 666, (1, b'x')])`:
//! let from_python = b"\x80\x04\x95\x19\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x06\xe6\xb2\x90\xe9\xa3\x8e\x94M\x9a\x02K\x01C\x01x\x94\x86\x94e.";
//! assert_eq!(pickle::loads(from_python).unwrap().to_string(), "['沐风', 666, (1, b'x')]");
//! ```

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::object::{BigInt, Dict, MAX_DEPTH, Object, SerdeError, Set, from_object, to_object};

/// Why a value could not be pickled, or a pickle not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The value does not convert to or from [`Object`] (for [`to_vec`] and [`from_slice`]).
    #[error("cannot convert value: {0}")]
    Convert(#[from] SerdeError),
    /// The input ends before the pickle does.
    #[error("pickle truncated at offset {offset}")]
    Truncated {
        /// Where more input was needed.
        offset: usize,
    },
    /// The input is not a well-formed pickle of plain data.
    #[error("invalid pickle at offset {offset}: {reason}")]
    Invalid {
        /// Offset of the offending opcode.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The pickle names code or a class (a global other than the builtins of plain data, an
    /// object instance, a persistent id); nothing was imported or run.
    #[error("pickle at offset {offset} needs {what}, which is not plain data and is never loaded")]
    Forbidden {
        /// Offset of the offending opcode.
        offset: usize,
        /// The name or the opcode.
        what: String,
    },
    /// The value nests deeper, or expands further, than the [`Limits`] allow.
    #[error("pickle exceeds a decoding limit: {0}")]
    Limit(String),
}

/// Bounds on what [`loads_with`] builds from untrusted input.
///
/// # Examples
///
/// ```
/// use multiproc::codec::pickle::{self, Limits};
///
/// let deep = pickle::dumps(&multiproc::obj!([[[[1]]]]));
/// assert!(pickle::loads_with(&deep, Limits::new().max_depth(3)).is_err());
/// assert!(pickle::loads_with(&deep, Limits::new().max_depth(4)).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_depth: usize,
    max_copied_bytes: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            max_copied_bytes: None,
        }
    }
}

impl Limits {
    /// The default limits: nesting up to [`MAX_DEPTH`], copies of shared objects up to 64 MiB
    /// plus 16 times the input length.
    ///
    /// ```
    /// let limits = multiproc::codec::pickle::Limits::new();
    /// assert_eq!(limits, Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How deep containers may nest.
    ///
    /// ```
    /// let mut limits = multiproc::codec::pickle::Limits::new();
    /// limits.max_depth(64);
    /// ```
    pub fn max_depth(&mut self, depth: usize) -> &mut Self {
        self.max_depth = depth;
        self
    }

    /// An object that the pickle shares between several places (`x = [..]; [x, x]`) is copied
    /// for each further place: this bounds the estimated bytes of all such copies, so that a
    /// small pickle cannot expand into a huge value.
    ///
    /// ```
    /// use multiproc::codec::pickle::{self, Limits};
    /// // Python: x = list(range(100)); pickle.dumps([x, x], 2)
    /// let mut p = b"\x80\x02](]q\x01(".to_vec();
    /// for i in 0..100u8 { p.extend([b'K', i]); }
    /// p.extend(b"eh\x01e.");
    /// assert!(pickle::loads_with(&p, Limits::new().max_copied_bytes(100)).is_err());
    /// assert_eq!(pickle::loads(&p).unwrap().as_slice().unwrap().len(), 2);
    /// ```
    pub fn max_copied_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_copied_bytes = Some(bytes);
        self
    }
}

/// The protocol [`dumps`] writes.
pub const PROTOCOL: u8 = 4;

/// Pickles an object (protocol 4), as Python's `pickle.dumps(obj, 4)` would.
///
/// # Examples
///
/// ```
/// let bytes = multiproc::codec::pickle::dumps(&multiproc::obj!((1, "a")));
/// assert_eq!(bytes, b"\x80\x04K\x01\x8c\x01a\x86.");
/// ```
pub fn dumps(object: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    dump_into(object, &mut out);
    out
}

/// Appends the pickle of `object` to `out` (for building a frame in place).
///
/// # Examples
///
/// ```
/// let mut frame = vec![0, 0, 0, 0];
/// multiproc::codec::pickle::dump_into(&multiproc::obj!(None), &mut frame);
/// assert_eq!(&frame[4..], b"\x80\x04N.");
/// ```
pub fn dump_into(object: &Object, out: &mut Vec<u8>) {
    out.extend([op::PROTO, PROTOCOL]);
    write_object(object, out);
    out.push(op::STOP);
}

/// Pickles any serializable value, converted as [`to_object`] does (for an [`Object`],
/// [`dumps`] skips that conversion).
///
/// # Errors
///
/// [`PickleError::Convert`] if the value does not convert (for example a map with list keys).
///
/// # Examples
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Point { x: i32, y: i32 }
/// let bytes = multiproc::codec::pickle::to_vec(&Point { x: 1, y: 2 }).unwrap();
/// let back = multiproc::codec::pickle::loads(&bytes).unwrap();
/// assert_eq!(back.to_string(), "{'x': 1, 'y': 2}");
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PickleError> {
    Ok(dumps(&to_object(value)?))
}

/// Appends the pickle of any serializable value to `out` (for building a frame in place); `out`
/// is unchanged on error.
///
/// # Errors
///
/// As [`to_vec`].
///
/// # Examples
///
/// ```
/// let mut frame = Vec::new();
/// multiproc::codec::pickle::to_vec_into(&(1u8, "a"), &mut frame).unwrap();
/// assert_eq!(frame, b"\x80\x04K\x01\x8c\x01a\x86.");
/// ```
pub fn to_vec_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), PickleError> {
    dump_into(&to_object(value)?, out);
    Ok(())
}

/// Reads a pickle (protocols 0–5) of plain data with the default [`Limits`].
///
/// # Errors
///
/// See [`PickleError`]: truncated or malformed input, anything that is not plain data, input
/// beyond the limits. Bytes after the `STOP` opcode are an error too.
///
/// # Examples
///
/// ```
/// use multiproc::codec::pickle::{loads, PickleError};
///
/// assert_eq!(loads(b"\x80\x04K\x01\x8c\x01a\x86.").unwrap().to_string(), "(1, 'a')");
/// // The classic exploit: `os.system('echo hi')`. Nothing runs.
/// let err = loads(b"cos\nsystem\n(S'echo hi'\ntR.").unwrap_err();
/// assert!(matches!(err, PickleError::Forbidden { .. }), "{err}");
/// ```
pub fn loads(bytes: &[u8]) -> Result<Object, PickleError> {
    loads_with(bytes, &Limits::default())
}

/// Reads a pickle with explicit [`Limits`].
///
/// # Errors
///
/// As [`loads`].
///
/// # Examples
///
/// ```
/// use multiproc::codec::pickle::{self, Limits};
/// let o = pickle::loads_with(b"\x80\x04N.", &Limits::default()).unwrap();
/// assert!(o.is_none());
/// ```
pub fn loads_with(bytes: &[u8], limits: &Limits) -> Result<Object, PickleError> {
    let budget = limits
        .max_copied_bytes
        .unwrap_or_else(|| (64usize << 20).saturating_add(bytes.len().saturating_mul(16)));
    Decoder {
        input: bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
        slots: Vec::new(),
        uses: Vec::new(),
        max_depth: limits.max_depth,
        budget,
    }
    .run()
}

/// Reads a pickle into any deserializable type, converted as
/// [`from_object`] does (for an [`Object`], [`loads`] skips that
/// conversion).
///
/// # Errors
///
/// As [`loads`], plus [`PickleError::Convert`] when the value does not have the shape of `T`.
///
/// # Examples
///
/// ```
/// let bytes = b"\x80\x04K\x01\x8c\x01a\x86.";
/// let (n, s): (u8, String) = multiproc::codec::pickle::from_slice(bytes).unwrap();
/// assert_eq!((n, s.as_str()), (1, "a"));
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PickleError> {
    Ok(from_object(loads(bytes)?)?)
}

/// Pickle opcodes (CPython's `Lib/pickle.py` names).
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

// ---- encoder ----

/// Items per `APPENDS`/`SETITEMS`/`ADDITEMS` batch, as Python's pickler.
const BATCH: usize = 1000;

fn write_len(out: &mut Vec<u8>, len: usize, short: u8, long: u8, huge: u8) {
    if len < 256 {
        out.extend([short, len as u8]);
    } else if let Ok(l) = u32::try_from(len) {
        out.push(long);
        out.extend(l.to_le_bytes());
    } else {
        out.push(huge);
        out.extend((len as u64).to_le_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if (0..256).contains(&i) {
        out.extend([op::BININT1, i as u8]);
    } else if (0..65536).contains(&i) {
        out.push(op::BININT2);
        out.extend((i as u16).to_le_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(op::BININT);
        out.extend(v.to_le_bytes());
    } else {
        write_long(out, &BigInt::from(i));
    }
}

fn write_long(out: &mut Vec<u8>, b: &BigInt) {
    let bytes = b.to_signed_bytes_le();
    if bytes.len() < 256 {
        out.extend([op::LONG1, bytes.len() as u8]);
    } else {
        out.push(op::LONG4);
        // A BigInt longer than 2 GiB cannot exist in practice; saturate rather than wrap.
        out.extend(i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_le_bytes());
    }
    out.extend(bytes);
}

fn write_batched<'a>(
    out: &mut Vec<u8>,
    items: impl ExactSizeIterator<Item = &'a Object>,
    single: Option<u8>,
    many: u8,
) {
    let n = items.len();
    if let (1, Some(single)) = (n, single) {
        for item in items {
            write_object(item, out);
        }
        out.push(single);
        return;
    }
    let mut items = items.peekable();
    while items.peek().is_some() {
        out.push(op::MARK);
        for item in items.by_ref().take(BATCH) {
            write_object(item, out);
        }
        out.push(many);
    }
}

fn write_object(o: &Object, out: &mut Vec<u8>) {
    match o {
        Object::None => out.push(op::NONE),
        Object::Bool(true) => out.push(op::NEWTRUE),
        Object::Bool(false) => out.push(op::NEWFALSE),
        Object::Int(i) => write_int(out, *i),
        Object::BigInt(b) => match b.to_i64() {
            Some(i) => write_int(out, i),
            None => write_long(out, b),
        },
        Object::Float(x) => {
            out.push(op::BINFLOAT);
            out.extend(x.to_be_bytes());
        }
        Object::Str(s) => {
            write_len(
                out,
                s.len(),
                op::SHORT_BINUNICODE,
                op::BINUNICODE,
                op::BINUNICODE8,
            );
            out.extend(s.as_bytes());
        }
        Object::Bytes(b) => {
            write_len(
                out,
                b.len(),
                op::SHORT_BINBYTES,
                op::BINBYTES,
                op::BINBYTES8,
            );
            out.extend(b);
        }
        Object::List(items) => {
            out.push(op::EMPTY_LIST);
            write_batched(out, items.iter(), Some(op::APPEND), op::APPENDS);
        }
        Object::Tuple(items) => match items.len() {
            0 => out.push(op::EMPTY_TUPLE),
            n @ 1..=3 => {
                for item in items {
                    write_object(item, out);
                }
                out.push([op::TUPLE1, op::TUPLE2, op::TUPLE3][n - 1]);
            }
            _ => {
                out.push(op::MARK);
                for item in items {
                    write_object(item, out);
                }
                out.push(op::TUPLE);
            }
        },
        Object::Dict(d) => {
            out.push(op::EMPTY_DICT);
            if d.len() == 1 {
                for (k, v) in d.iter() {
                    write_object(k, out);
                    write_object(v, out);
                }
                out.push(op::SETITEM);
                return;
            }
            let mut entries = d.iter().peekable();
            while entries.peek().is_some() {
                out.push(op::MARK);
                for (k, v) in entries.by_ref().take(BATCH) {
                    write_object(k, out);
                    write_object(v, out);
                }
                out.push(op::SETITEMS);
            }
        }
        Object::Set(s) => {
            out.push(op::EMPTY_SET);
            write_batched(out, s.iter(), None, op::ADDITEMS);
        }
        Object::FrozenSet(s) => {
            out.push(op::MARK);
            for item in s.iter() {
                write_object(item, out);
            }
            out.push(op::FROZENSET);
        }
    }
}

// ---- decoder ----

/// The callables Python uses to pickle plain data; nothing else is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    Set,
    FrozenSet,
    ByteArray,
    Bytes,
    CodecsEncode,
}

impl Global {
    fn lookup(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("builtins" | "__builtin__", "set") => Some(Global::Set),
            ("builtins" | "__builtin__", "frozenset") => Some(Global::FrozenSet),
            ("builtins" | "__builtin__", "bytearray") => Some(Global::ByteArray),
            ("builtins" | "__builtin__", "bytes") => Some(Global::Bytes),
            ("_codecs", "encode") => Some(Global::CodecsEncode),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeqKind {
    List,
    Tuple,
    Set,
    FrozenSet,
}

/// A value under construction: containers may still refer to memo slots.
#[derive(Clone, Debug)]
enum Val {
    /// A finished scalar (never a container).
    Obj(Object),
    Seq {
        kind: SeqKind,
        items: Vec<Val>,
        depth: usize,
    },
    Dict {
        pairs: Vec<(Val, Val)>,
        depth: usize,
    },
    /// The value of a memo slot.
    Ref(usize),
    Global(Global),
    /// `global(*args)`, evaluated once the arguments are complete.
    Call {
        global: Global,
        args: Box<Val>,
        offset: usize,
        depth: usize,
    },
}

impl Val {
    /// Containers nested in this value, not counting memo references (their own contents are
    /// checked when stored, and the whole depth once resolved).
    fn depth(&self) -> usize {
        match self {
            Val::Seq { depth, .. } | Val::Dict { depth, .. } | Val::Call { depth, .. } => *depth,
            _ => 0,
        }
    }
}

/// Memo keys to slots: dense keys (what picklers write: 0, 1, 2, ...) in a vector, any other
/// key in a map.
#[derive(Default)]
struct Memo {
    dense: Vec<Option<usize>>,
    sparse: HashMap<u64, usize>,
    /// Number of distinct keys (the next `MEMOIZE` key).
    len: u64,
}

impl Memo {
    fn insert(&mut self, key: u64, slot: usize) {
        let fresh = match usize::try_from(key) {
            Ok(k) if k < self.dense.len() => self.dense[k].replace(slot).is_none(),
            Ok(k) if k == self.dense.len() && !self.sparse.contains_key(&key) => {
                self.dense.push(Some(slot));
                true
            }
            _ => self.sparse.insert(key, slot).is_none(),
        };
        if fresh {
            self.len += 1;
        }
    }

    fn get(&self, key: u64) -> Option<usize> {
        match usize::try_from(key) {
            Ok(k) if k < self.dense.len() => self.dense[k],
            _ => self.sparse.get(&key).copied(),
        }
    }
}

/// A memo slot.
enum Slot {
    Pending(Val),
    /// Being resolved: meeting it again means the object contains itself.
    Busy,
    Done(Object),
    /// Moved out to its last user.
    Taken,
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    /// Memo keys to slots (several keys may name one slot).
    memo: Memo,
    slots: Vec<Slot>,
    /// References to each slot not yet resolved.
    uses: Vec<usize>,
    max_depth: usize,
    /// Bytes of copies still allowed.
    budget: usize,
}

type Res<T> = Result<T, PickleError>;

impl<'a> Decoder<'a> {
    fn invalid<T>(&self, offset: usize, reason: impl Into<String>) -> Res<T> {
        Err(PickleError::Invalid {
            offset,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let input: &'a [u8] = self.input;
        match input.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(PickleError::Truncated {
                offset: input.len(),
            }),
        }
    }

    fn byte(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A length field; the caller takes that many bytes, which checks it against the input.
    fn len_u64(&mut self) -> Res<usize> {
        let n = u64::from_le_bytes(self.array()?);
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn line(&mut self) -> Res<&'a [u8]> {
        let input: &'a [u8] = self.input;
        let rest = &input[self.pos.min(input.len())..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                let line = &rest[..i];
                Ok(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => Err(PickleError::Truncated {
                offset: input.len(),
            }),
        }
    }

    fn text_line(&mut self, at: usize) -> Res<&'a str> {
        let line = self.line()?;
        match std::str::from_utf8(line) {
            Ok(s) => Ok(s),
            Err(_) => self.invalid(at, "text argument is not ASCII"),
        }
    }

    fn utf8(&self, at: usize, bytes: &[u8]) -> Res<Object> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Object::Str(s.to_owned())),
            Err(_) => self.invalid(
                at,
                "str is not valid UTF-8 (a lone surrogate cannot be represented)",
            ),
        }
    }

    /// The stack floor: values below the innermost mark belong to outer opcodes.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, at: usize) -> Res<Val> {
        if self.stack.len() <= self.floor() {
            return self.invalid(at, "stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.invalid(at, "stack underflow"),
        }
    }

    fn pop_mark(&mut self, at: usize) -> Res<Vec<Val>> {
        match self.marks.pop() {
            Some(m) => Ok(self.stack.split_off(m)),
            None => self.invalid(at, "no MARK on the stack"),
        }
    }

    fn check_depth(&self, depth: usize) -> Res<()> {
        if depth > self.max_depth {
            return Err(PickleError::Limit(format!(
                "containers nest deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(())
    }

    fn seq(&self, kind: SeqKind, items: Vec<Val>) -> Res<Val> {
        let depth = 1 + items.iter().map(Val::depth).max().unwrap_or(0);
        self.check_depth(depth)?;
        Ok(Val::Seq { kind, items, depth })
    }

    fn dict(&self, at: usize, flat: Vec<Val>) -> Res<Val> {
        if !flat.len().is_multiple_of(2) {
            return self.invalid(at, "odd number of items for a dict");
        }
        let depth = 1 + flat.iter().map(Val::depth).max().unwrap_or(0);
        self.check_depth(depth)?;
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(Val::Dict { pairs, depth })
    }

    /// Makes the top of the stack shareable: it moves into a memo slot and a reference takes its
    /// place. Returns the slot.
    fn share_top(&mut self, at: usize) -> Res<usize> {
        if self.stack.len() <= self.floor() {
            return self.invalid(at, "nothing to memoize");
        }
        let top = self.stack.len() - 1;
        if let Val::Ref(s) = self.stack[top] {
            return Ok(s);
        }
        let slot = self.slots.len();
        let v = std::mem::replace(&mut self.stack[top], Val::Ref(slot));
        self.slots.push(Slot::Pending(v));
        self.uses.push(1);
        Ok(slot)
    }

    fn put(&mut self, at: usize, key: u64) -> Res<()> {
        let slot = self.share_top(at)?;
        self.memo.insert(key, slot);
        Ok(())
    }

    fn get(&mut self, at: usize, key: u64) -> Res<()> {
        match self.memo.get(key) {
            Some(slot) => {
                self.uses[slot] += 1;
                self.stack.push(Val::Ref(slot));
                Ok(())
            }
            None => self.invalid(at, format!("memo key {key} was never stored")),
        }
    }

    /// The container an `APPEND`-like opcode adds to: the value just below the popped items,
    /// or the memo slot it refers to.
    fn target(&mut self, at: usize) -> Res<&mut Val> {
        if self.stack.len() <= self.floor() {
            return self.invalid(at, "stack underflow");
        }
        let top = self.stack.len() - 1;
        if let Val::Ref(s) = self.stack[top] {
            return match &mut self.slots[s] {
                Slot::Pending(v) => Ok(v),
                _ => Err(PickleError::Invalid {
                    offset: at,
                    reason: "memo slot is not a container".into(),
                }),
            };
        }
        Ok(&mut self.stack[top])
    }

    /// Adds items to a list or set at the top of the stack.
    fn extend(&mut self, at: usize, want: SeqKind, new: Vec<Val>) -> Res<()> {
        let max_depth = self.max_depth;
        let new_depth = 1 + new.iter().map(Val::depth).max().unwrap_or(0);
        let target = self.target(at)?;
        match target {
            Val::Seq { kind, items, depth } if *kind == want => {
                items.extend(new);
                *depth = (*depth).max(new_depth);
                if *depth > max_depth {
                    return Err(PickleError::Limit(format!(
                        "containers nest deeper than {max_depth} levels"
                    )));
                }
                Ok(())
            }
            _ => self.invalid(
                at,
                match want {
                    SeqKind::Set => "ADDITEMS to something that is not a set",
                    _ => "APPEND to something that is not a list",
                },
            ),
        }
    }

    fn set_items(&mut self, at: usize, flat: Vec<Val>) -> Res<()> {
        if !flat.len().is_multiple_of(2) {
            return self.invalid(at, "odd number of items for SETITEMS");
        }
        let max_depth = self.max_depth;
        let new_depth = 1 + flat.iter().map(Val::depth).max().unwrap_or(0);
        let target = self.target(at)?;
        match target {
            Val::Dict { pairs, depth } => {
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                *depth = (*depth).max(new_depth);
                if *depth > max_depth {
                    return Err(PickleError::Limit(format!(
                        "containers nest deeper than {max_depth} levels"
                    )));
                }
                Ok(())
            }
            _ => self.invalid(at, "SETITEM to something that is not a dict"),
        }
    }

    fn global(&self, at: usize, module: &str, name: &str) -> Res<Val> {
        match Global::lookup(module, name) {
            Some(g) => Ok(Val::Global(g)),
            None => Err(PickleError::Forbidden {
                offset: at,
                what: format!("global {module}.{name}"),
            }),
        }
    }

    /// An error found while building the final value, reported at the `STOP` opcode.
    fn late<T>(&self, reason: impl Into<String>) -> Res<T> {
        self.invalid(self.input.len().saturating_sub(1), reason)
    }

    fn forbidden<T>(&self, at: usize, what: &str) -> Res<T> {
        Err(PickleError::Forbidden {
            offset: at,
            what: what.to_owned(),
        })
    }

    fn decimal(&self, at: usize, text: &str) -> Res<Object> {
        // Python refuses to convert more than 4300 digits by default; stay in that range.
        if text.len() > 5000 {
            return self.invalid(at, "integer literal too long");
        }
        match text.trim().parse::<BigInt>() {
            Ok(b) => Ok(Object::from(b)),
            Err(_) => self.invalid(at, format!("invalid integer literal {text:?}")),
        }
    }

    fn run(mut self) -> Res<Object> {
        loop {
            let at = self.pos;
            let code = self.byte()?;
            match code {
                op::PROTO => {
                    let v = self.byte()?;
                    if v > 5 {
                        return self.invalid(at, format!("unsupported pickle protocol {v}"));
                    }
                }
                op::FRAME => {
                    // Frames only help buffered readers; the whole pickle is already here.
                    self.array::<8>()?;
                }
                op::STOP => {
                    let v = self.pop(at)?;
                    if self.pos != self.input.len() {
                        return self.invalid(
                            self.pos,
                            format!("{} bytes after STOP", self.input.len() - self.pos),
                        );
                    }
                    let max_depth = self.max_depth;
                    return self.resolve(v, max_depth);
                }
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop(at)?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark(at)?;
                }
                op::DUP => {
                    let slot = self.share_top(at)?;
                    self.uses[slot] += 1;
                    self.stack.push(Val::Ref(slot));
                }
                op::NONE => self.stack.push(Val::Obj(Object::None)),
                op::NEWTRUE => self.stack.push(Val::Obj(Object::Bool(true))),
                op::NEWFALSE => self.stack.push(Val::Obj(Object::Bool(false))),
                op::BININT => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.stack.push(Val::Obj(Object::Int(v.into())));
                }
                op::BININT1 => {
                    let v = self.byte()?;
                    self.stack.push(Val::Obj(Object::Int(v.into())));
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.stack.push(Val::Obj(Object::Int(v.into())));
                }
                op::LONG1 | op::LONG4 => {
                    let n = if code == op::LONG1 {
                        usize::from(self.byte()?)
                    } else {
                        let n = i32::from_le_bytes(self.array()?);
                        match usize::try_from(n) {
                            Ok(n) => n,
                            Err(_) => return self.invalid(at, "negative LONG4 length"),
                        }
                    };
                    let b = BigInt::from_signed_bytes_le(self.take(n)?);
                    self.stack.push(Val::Obj(Object::from(b)));
                }
                op::INT => {
                    let text = self.text_line(at)?;
                    let o = match text {
                        "01" => Object::Bool(true),
                        "00" => Object::Bool(false),
                        t => self.decimal(at, t)?,
                    };
                    self.stack.push(Val::Obj(o));
                }
                op::LONG => {
                    let text = self.text_line(at)?;
                    let o = self.decimal(at, text.strip_suffix('L').unwrap_or(text))?;
                    self.stack.push(Val::Obj(o));
                }
                op::FLOAT => {
                    let text = self.text_line(at)?;
                    match text.trim().parse::<f64>() {
                        Ok(x) => self.stack.push(Val::Obj(Object::Float(x))),
                        Err(_) => return self.invalid(at, format!("invalid float {text:?}")),
                    }
                }
                op::BINFLOAT => {
                    let x = f64::from_be_bytes(self.array()?);
                    self.stack.push(Val::Obj(Object::Float(x)));
                }
                op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                    let n = match code {
                        op::SHORT_BINUNICODE => usize::from(self.byte()?),
                        op::BINUNICODE => u32::from_le_bytes(self.array()?) as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?;
                    let o = self.utf8(at, bytes)?;
                    self.stack.push(Val::Obj(o));
                }
                op::UNICODE => {
                    let line = self.line()?;
                    let s = self.raw_unicode_escape(at, line)?;
                    self.stack.push(Val::Obj(Object::Str(s)));
                }
                op::SHORT_BINSTRING | op::BINSTRING => {
                    let n = if code == op::SHORT_BINSTRING {
                        usize::from(self.byte()?)
                    } else {
                        match usize::try_from(i32::from_le_bytes(self.array()?)) {
                            Ok(n) => n,
                            Err(_) => return self.invalid(at, "negative BINSTRING length"),
                        }
                    };
                    let bytes = self.take(n)?;
                    if !bytes.is_ascii() {
                        return self.invalid(at, "Python 2 str is not ASCII");
                    }
                    let o = self.utf8(at, bytes)?;
                    self.stack.push(Val::Obj(o));
                }
                op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = match code {
                        op::SHORT_BINBYTES => usize::from(self.byte()?),
                        op::BINBYTES => u32::from_le_bytes(self.array()?) as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.stack.push(Val::Obj(Object::Bytes(bytes)));
                }
                op::EMPTY_LIST => self.stack.push(Val::Seq {
                    kind: SeqKind::List,
                    items: Vec::new(),
                    depth: 1,
                }),
                op::EMPTY_TUPLE => self.stack.push(Val::Seq {
                    kind: SeqKind::Tuple,
                    items: Vec::new(),
                    depth: 1,
                }),
                op::EMPTY_SET => self.stack.push(Val::Seq {
                    kind: SeqKind::Set,
                    items: Vec::new(),
                    depth: 1,
                }),
                op::EMPTY_DICT => self.stack.push(Val::Dict {
                    pairs: Vec::new(),
                    depth: 1,
                }),
                op::LIST | op::TUPLE | op::FROZENSET => {
                    let items = self.pop_mark(at)?;
                    let kind = match code {
                        op::LIST => SeqKind::List,
                        op::TUPLE => SeqKind::Tuple,
                        _ => SeqKind::FrozenSet,
                    };
                    let v = self.seq(kind, items)?;
                    self.stack.push(v);
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1) + 1;
                    if self.stack.len() < self.floor() + n {
                        return self.invalid(at, "stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.seq(SeqKind::Tuple, items)?;
                    self.stack.push(v);
                }
                op::DICT => {
                    let flat = self.pop_mark(at)?;
                    let v = self.dict(at, flat)?;
                    self.stack.push(v);
                }
                op::APPEND => {
                    let v = self.pop(at)?;
                    self.extend(at, SeqKind::List, vec![v])?;
                }
                op::APPENDS => {
                    let items = self.pop_mark(at)?;
                    self.extend(at, SeqKind::List, items)?;
                }
                op::ADDITEMS => {
                    let items = self.pop_mark(at)?;
                    self.extend(at, SeqKind::Set, items)?;
                }
                op::SETITEM => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    self.set_items(at, vec![k, v])?;
                }
                op::SETITEMS => {
                    let flat = self.pop_mark(at)?;
                    self.set_items(at, flat)?;
                }
                op::PUT => {
                    let text = self.text_line(at)?;
                    match text.parse::<u64>() {
                        Ok(k) => self.put(at, k)?,
                        Err(_) => return self.invalid(at, "invalid PUT key"),
                    }
                }
                op::BINPUT => {
                    let k = self.byte()?;
                    self.put(at, k.into())?;
                }
                op::LONG_BINPUT => {
                    let k = u32::from_le_bytes(self.array()?);
                    self.put(at, k.into())?;
                }
                op::MEMOIZE => {
                    let k = self.memo.len;
                    self.put(at, k)?;
                }
                op::GET => {
                    let text = self.text_line(at)?;
                    match text.parse::<u64>() {
                        Ok(k) => self.get(at, k)?,
                        Err(_) => return self.invalid(at, "invalid GET key"),
                    }
                }
                op::BINGET => {
                    let k = self.byte()?;
                    self.get(at, k.into())?;
                }
                op::LONG_BINGET => {
                    let k = u32::from_le_bytes(self.array()?);
                    self.get(at, k.into())?;
                }
                op::GLOBAL => {
                    let module = self.text_line(at)?;
                    let name = self.text_line(at)?;
                    let g = self.global(at, module, name)?;
                    self.stack.push(g);
                }
                op::STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (module, name) = match (self.scalar(&module), self.scalar(&name)) {
                        (Some(Object::Str(m)), Some(Object::Str(n))) => (m.clone(), n.clone()),
                        _ => return self.invalid(at, "STACK_GLOBAL needs two str"),
                    };
                    let g = self.global(at, &module, &name)?;
                    self.stack.push(g);
                }
                op::REDUCE => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let global = match &callable {
                        Val::Global(g) => *g,
                        Val::Ref(s) => match &self.slots[*s] {
                            Slot::Pending(Val::Global(g)) => *g,
                            _ => return self.forbidden(at, "a call of something not a global"),
                        },
                        _ => return self.forbidden(at, "a call of something not a global"),
                    };
                    let depth = args.depth();
                    self.check_depth(depth)?;
                    self.stack.push(Val::Call {
                        global,
                        args: Box::new(args),
                        offset: at,
                        depth,
                    });
                }
                op::PERSID | op::BINPERSID => return self.forbidden(at, "a persistent id"),
                op::BUILD => return self.forbidden(at, "BUILD (object state)"),
                op::INST | op::OBJ | op::NEWOBJ | op::NEWOBJ_EX => {
                    return self.forbidden(at, "an object instance");
                }
                op::EXT1 | op::EXT2 | op::EXT4 => {
                    return self.forbidden(at, "an extension registry code");
                }
                op::NEXT_BUFFER | op::READONLY_BUFFER => {
                    return self.invalid(at, "out-of-band buffers are not supported");
                }
                op::STRING => {
                    return self.invalid(at, "Python 2 quoted STRING is not supported");
                }
                other => return self.invalid(at, format!("unknown opcode 0x{other:02x}")),
            }
        }
    }

    /// The scalar a value is (directly or through the memo), if it is one.
    fn scalar<'v>(&'v self, v: &'v Val) -> Option<&'v Object> {
        match v {
            Val::Obj(o) => Some(o),
            Val::Ref(s) => match &self.slots[*s] {
                Slot::Pending(Val::Obj(o)) => Some(o),
                _ => None,
            },
            _ => None,
        }
    }

    /// Python's `raw-unicode-escape` decoding (the `UNICODE` opcode of protocol 0).
    fn raw_unicode_escape(&self, at: usize, line: &[u8]) -> Res<String> {
        let mut out = String::with_capacity(line.len());
        let mut i = 0;
        while i < line.len() {
            if line[i] != b'\\' {
                out.push(char::from(line[i]));
                i += 1;
                continue;
            }
            let run = line[i..].iter().take_while(|&&b| b == b'\\').count();
            let after = i + run;
            let width = match line.get(after) {
                Some(b'u') if run % 2 == 1 => 4,
                Some(b'U') if run % 2 == 1 => 8,
                _ => {
                    out.extend(std::iter::repeat_n('\\', run));
                    i = after;
                    continue;
                }
            };
            out.extend(std::iter::repeat_n('\\', run - 1));
            let hex = line
                .get(after + 1..after + 1 + width)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            match hex.map(char::from_u32) {
                Some(Some(c)) => out.push(c),
                Some(None) => {
                    return self.invalid(
                        at,
                        "str is not valid UTF-8 (a lone surrogate cannot be represented)",
                    );
                }
                None => return self.invalid(at, "truncated \\u escape"),
            }
            i = after + 1 + width;
        }
        Ok(out)
    }

    fn charge(&mut self, o: &Object) -> Res<()> {
        fn size(o: &Object) -> usize {
            let own = std::mem::size_of::<Object>();
            match o {
                Object::Str(s) => own + s.len(),
                Object::Bytes(b) => own + b.len(),
                Object::BigInt(_) => own + 16,
                Object::List(v) | Object::Tuple(v) => own + v.iter().map(size).sum::<usize>(),
                Object::Dict(d) => {
                    own + d.iter().map(|(k, v)| size(k) + size(v) + 16).sum::<usize>()
                }
                Object::Set(s) | Object::FrozenSet(s) => {
                    own + s.iter().map(|k| size(k) + 16).sum::<usize>()
                }
                _ => own,
            }
        }
        let n = size(o);
        if n > self.budget {
            return Err(PickleError::Limit(
                "shared objects would be copied beyond the allowed size".into(),
            ));
        }
        self.budget -= n;
        Ok(())
    }

    /// Takes the value of memo slot `s` for one more reference: moved out for the last one,
    /// copied (within the budget) for the others.
    fn finish_ref(&mut self, s: usize, o: Object) -> Res<Object> {
        if self.uses[s] == 0 {
            self.slots[s] = Slot::Taken;
        } else {
            self.charge(&o)?;
            self.slots[s] = Slot::Done(o.clone());
        }
        Ok(o)
    }

    /// The value of memo slot `s` for one more reference, if it is a scalar or already built
    /// (containers still to build need a frame of their own).
    fn take_ready(&mut self, s: usize) -> Option<Res<Object>> {
        match &self.slots[s] {
            Slot::Pending(Val::Obj(_)) | Slot::Done(_) => {}
            _ => return None,
        }
        self.uses[s] = self.uses[s].saturating_sub(1);
        let o = match std::mem::replace(&mut self.slots[s], Slot::Busy) {
            Slot::Pending(Val::Obj(o)) | Slot::Done(o) => o,
            _ => return Some(self.late("memo slot changed while reading")),
        };
        Some(self.finish_ref(s, o))
    }

    /// A value that needs no frame of its own (a scalar, or a reference to one or to a built
    /// object), or the value back.
    fn ready(&mut self, v: Val) -> Result<Res<Object>, Val> {
        match v {
            Val::Obj(o) => Ok(Ok(o)),
            Val::Ref(s) => self.take_ready(s).ok_or(Val::Ref(s)),
            v => Err(v),
        }
    }

    /// Builds the final object, following memo references. Iterative (an explicit stack of
    /// frames), so that nesting costs heap, not call stack.
    fn resolve(&mut self, root: Val, max_depth: usize) -> Res<Object> {
        enum Frame {
            Seq {
                kind: SeqKind,
                items: std::vec::IntoIter<Val>,
                done: Vec<Object>,
            },
            Dict {
                pairs: std::vec::IntoIter<(Val, Val)>,
                done: Dict,
                key: Option<Object>,
                value: Option<Val>,
            },
            Ref(usize),
            Call(Global, usize),
        }
        let mut frames: Vec<Frame> = Vec::new();
        let mut depth = 0usize;
        let mut next = Some(root);
        let mut result: Option<Object> = None;
        loop {
            if let Some(v) = next.take() {
                match v {
                    Val::Obj(o) => result = Some(o),
                    Val::Seq { kind, items, .. } => {
                        depth += 1;
                        if depth > max_depth {
                            return Err(PickleError::Limit(format!(
                                "containers nest deeper than {max_depth} levels"
                            )));
                        }
                        let done = Vec::with_capacity(items.len());
                        frames.push(Frame::Seq {
                            kind,
                            items: items.into_iter(),
                            done,
                        });
                    }
                    Val::Dict { pairs, .. } => {
                        depth += 1;
                        if depth > max_depth {
                            return Err(PickleError::Limit(format!(
                                "containers nest deeper than {max_depth} levels"
                            )));
                        }
                        let done = Dict::with_capacity(pairs.len());
                        frames.push(Frame::Dict {
                            pairs: pairs.into_iter(),
                            done,
                            key: None,
                            value: None,
                        });
                    }
                    Val::Ref(s) => {
                        self.uses[s] = self.uses[s].saturating_sub(1);
                        match std::mem::replace(&mut self.slots[s], Slot::Busy) {
                            Slot::Pending(v) => {
                                frames.push(Frame::Ref(s));
                                next = Some(v);
                                continue;
                            }
                            Slot::Done(o) => result = Some(self.finish_ref(s, o)?),
                            Slot::Busy => {
                                return self
                                    .late("an object contains itself (recursive structure)");
                            }
                            Slot::Taken => return self.late("memo reference used up"),
                        }
                    }
                    Val::Global(g) => {
                        return Err(PickleError::Forbidden {
                            offset: self.input.len().saturating_sub(1),
                            what: format!("the callable {g:?} itself as a value"),
                        });
                    }
                    Val::Call {
                        global,
                        args,
                        offset,
                        ..
                    } => {
                        frames.push(Frame::Call(global, offset));
                        next = Some(*args);
                        continue;
                    }
                }
            }
            // Hand the finished value to the innermost frame, then ask it for more.
            let Some(frame) = frames.last_mut() else {
                return match result {
                    Some(o) => Ok(o),
                    None => self.late("nothing to return"),
                };
            };
            match frame {
                Frame::Seq { items, done, .. } => {
                    if let Some(o) = result.take() {
                        done.push(o);
                    }
                    // Scalars go straight in; only containers and references need a frame.
                    for v in items.by_ref() {
                        match self.ready(v) {
                            Ok(o) => done.push(o?),
                            Err(v) => {
                                next = Some(v);
                                break;
                            }
                        }
                    }
                    if next.is_some() {
                        continue;
                    }
                }
                Frame::Dict {
                    pairs,
                    done,
                    key,
                    value,
                } => {
                    if let Some(o) = result.take() {
                        match key.take() {
                            None => *key = Some(o),
                            Some(k) => {
                                if let Err(e) = done.insert(k, o) {
                                    return self.late(format!("{e} as dict key"));
                                }
                            }
                        }
                    }
                    if let Some(v) = value.take() {
                        next = Some(v);
                        continue;
                    }
                    for (k, v) in pairs.by_ref() {
                        let k = match self.ready(k) {
                            Ok(k) => k?,
                            Err(k) => {
                                *value = Some(v);
                                next = Some(k);
                                break;
                            }
                        };
                        match self.ready(v) {
                            Ok(v) => {
                                if let Err(e) = done.insert(k, v?) {
                                    return self.late(format!("{e} as dict key"));
                                }
                            }
                            Err(v) => {
                                *key = Some(k);
                                next = Some(v);
                                break;
                            }
                        }
                    }
                    if next.is_some() {
                        continue;
                    }
                }
                Frame::Ref(_) | Frame::Call(..) => {}
            }
            // The frame is complete.
            let Some(frame) = frames.pop() else {
                return self.late("nothing to return");
            };
            result = Some(match frame {
                Frame::Seq { kind, done, .. } => {
                    depth -= 1;
                    match kind {
                        SeqKind::List => Object::List(done),
                        SeqKind::Tuple => Object::Tuple(done),
                        SeqKind::Set => Object::Set(self.to_set(done)?),
                        SeqKind::FrozenSet => Object::FrozenSet(self.to_set(done)?),
                    }
                }
                Frame::Dict { done, .. } => {
                    depth -= 1;
                    Object::Dict(done)
                }
                Frame::Ref(s) => {
                    let o = match result.take() {
                        Some(o) => o,
                        None => return self.late("empty memo slot"),
                    };
                    self.finish_ref(s, o)?
                }
                Frame::Call(global, offset) => {
                    let args = match result.take() {
                        Some(o) => o,
                        None => return self.late("missing call arguments"),
                    };
                    self.call(offset, global, args)?
                }
            });
        }
    }

    fn to_set(&self, items: Vec<Object>) -> Res<Set> {
        Set::try_from_iter(items).or_else(|e| self.late(format!("{e} in a set")))
    }

    /// Evaluates one of the known plain-data calls.
    fn call(&self, at: usize, global: Global, args: Object) -> Res<Object> {
        let Object::Tuple(mut args) = args else {
            return self.invalid(at, "REDUCE arguments are not a tuple");
        };
        let latin1 = |s: &str, enc: &str| -> Res<Object> {
            if !matches!(enc, "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1") {
                return self.forbidden(at, &format!("the {enc:?} codec"));
            }
            let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c).ok()).collect();
            bytes
                .map(Object::Bytes)
                .map_or_else(|| self.invalid(at, "latin-1 text out of range"), Ok)
        };
        match (global, args.as_mut_slice()) {
            (Global::Set, []) => Ok(Object::Set(Set::new())),
            (Global::FrozenSet, []) => Ok(Object::FrozenSet(Set::new())),
            (Global::Set | Global::FrozenSet, [items]) => {
                let items = match std::mem::take(items) {
                    Object::List(v) | Object::Tuple(v) => v,
                    Object::Set(s) | Object::FrozenSet(s) => s.into_iter().collect(),
                    _ => return self.invalid(at, "set() of something not a sequence"),
                };
                let s = self.to_set(items)?;
                Ok(if global == Global::Set {
                    Object::Set(s)
                } else {
                    Object::FrozenSet(s)
                })
            }
            (Global::Bytes | Global::ByteArray, []) => Ok(Object::Bytes(Vec::new())),
            (Global::Bytes | Global::ByteArray, [Object::Bytes(b)]) => {
                Ok(Object::Bytes(std::mem::take(b)))
            }
            (
                Global::Bytes | Global::ByteArray | Global::CodecsEncode,
                [Object::Str(s), Object::Str(enc)],
            ) => latin1(s, enc),
            _ => self.invalid(at, format!("unexpected arguments for {global:?}")),
        }
    }
}

#[cfg(test)]
mod tests;
