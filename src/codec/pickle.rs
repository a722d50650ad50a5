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
//! `OrderedDict`, `complex`, …) are rejected the same way. What Python's manager clients send
//! is read as data too: `builtins.slice` as an [`Object::Slice`], `builtins.range` as the list
//! of its ints, and a pickled proxy (`multiprocessing.managers.RebuildProxy` of a proxy class
//! and a `Token`) as an [`Object::Proxy`]; [`dumps`] writes those two the way Python pickles
//! them.
//!
//! Hostile input gives an error, never a panic, a stack overflow or an unbounded allocation,
//! in debug and release builds alike:
//!
//! - lengths are checked against the input before anything is allocated;
//! - nesting is limited to [`Limits::max_depth`] ([`MAX_DEPTH`] by default) for everything the
//!   decoder builds, and nothing is walked or dropped recursively beyond it;
//! - memory: everything the decoder builds counts against [`Limits::max_bytes`], by default
//!   64 MiB plus 64 bytes per input byte ([`FIXED_BYTES`], [`BYTES_PER_INPUT_BYTE`]), so a
//!   pickle of `n` bytes costs at most about `2 × (64 MiB + 64·n)` bytes of heap, allocator
//!   slack included;
//! - CPU: work is linear in the input and in what the budget admits; integers in the text
//!   opcodes of protocol 0 are limited to 4300 digits, as Python limits `int(str)`.
//!
//! # Differences from Python
//!
//! - An object shared between several places in Python (`x = [1]; [x, x]`) arrives as equal,
//!   independent copies; a self-containing object (`x = []; x.append(x)`) is an error.
//! - `bytearray` arrives as `bytes`; a `str` holding a lone surrogate is an error (Rust strings
//!   are UTF-8).
//! - Sets are written in their insertion order; Python keeps no order, so a set sent to Python
//!   may print in a different order there.
//! - An `int` of more than 4300 digits arrives exactly but prints in hexadecimal
//!   ([`MAX_STR_DIGITS`](crate::object::MAX_STR_DIGITS)); Python refuses to print it.
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

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::object::{BigInt, MAX_DEPTH, Object, SerdeError, from_object, to_object};

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
    pub(crate) max_depth: usize,
    max_bytes: Option<usize>,
    /// Also read the exceptions a Python manager server replies with (`KeyError('k')` …),
    /// as [`EXCEPTION_MARK`] tuples: for the manager's client only.
    pub(crate) exceptions: bool,
}

/// How an exception of a Python manager's reply is read when [`Limits::exceptions`] is set:
/// `(EXCEPTION_MARK, 'module.Name', args)`.
pub(crate) const EXCEPTION_MARK: &str = "\0exception";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            max_bytes: None,
            exceptions: false,
        }
    }
}

/// The part of the default [`Limits::max_bytes`] that does not grow with the input: room for
/// the copies of shared objects that small pickles may ask for (Python's `[x] * 1000`).
pub const FIXED_BYTES: usize = 64 << 20;

/// The part of the default [`Limits::max_bytes`] that grows with the input, per input byte.
/// A Python list of `None`s (1 byte per item) costs 32 bytes per input byte here (the size of
/// an [`Object`]); the densest pickles Python writes, lists of memoized empty containers
/// (`]\x94`: 2 bytes for an item, its memo entry and its place in the list), cost 56.
pub const BYTES_PER_INPUT_BYTE: usize = 64;

impl Limits {
    /// The default limits: nesting up to [`MAX_DEPTH`], values up to [`FIXED_BYTES`] (64 MiB)
    /// plus [`BYTES_PER_INPUT_BYTE`] (64) times the input length.
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
    /// Values deeper than [`MAX_DEPTH`] need more stack than the crate plans for when they are
    /// printed, compared, converted with serde or dropped: raise this only on a thread with a
    /// proportionally larger stack.
    ///
    /// ```
    /// let mut limits = multiproc::codec::pickle::Limits::new();
    /// limits.max_depth(64);
    /// ```
    pub fn max_depth(&mut self, depth: usize) -> &mut Self {
        self.max_depth = depth;
        self
    }

    /// How many bytes of values the decoder may build, counted at their in-memory size: every
    /// object (`size_of::<Object>()`, 32 bytes on 64-bit targets), every `str`, `bytes` and
    /// `int` payload, every dict or set entry, every copy of an object the pickle shares between
    /// several places (`x = [..]; [x, x]`; this model copies it), and the decoder's own stack,
    /// marks and memo. The count only grows, so it bounds the decoder's peak; the allocator's
    /// slack (vectors grow by doubling) can add up to as much again.
    ///
    /// ```
    /// use multiproc::codec::pickle::{self, Limits};
    /// // Python: x = list(range(100)); pickle.dumps([x, x], 2)
    /// let mut p = b"\x80\x02](]q\x01(".to_vec();
    /// for i in 0..100u8 { p.extend([b'K', i]); }
    /// p.extend(b"eh\x01e.");
    /// assert!(pickle::loads_with(&p, Limits::new().max_bytes(4000)).is_err());
    /// assert_eq!(pickle::loads(&p).unwrap().as_slice().unwrap().len(), 2);
    /// ```
    pub fn max_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// The former name of [`max_bytes`](Self::max_bytes), which now counts every value, not
    /// only copies of shared ones.
    ///
    /// ```
    /// #![allow(deprecated)]
    /// let mut limits = multiproc::codec::pickle::Limits::new();
    /// limits.max_copied_bytes(1 << 20);
    /// ```
    #[deprecated(note = "use `max_bytes`, which counts every value the decoder builds")]
    pub fn max_copied_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_bytes(bytes)
    }

    /// The byte budget for an input of `len` bytes.
    pub(crate) fn budget(&self, len: usize) -> usize {
        self.max_bytes
            .unwrap_or_else(|| FIXED_BYTES.saturating_add(len.saturating_mul(BYTES_PER_INPUT_BYTE)))
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
    let to = ProxyTarget {
        address: &Object::None,
        exposed: &|_| None,
    };
    dump_for(object, out, &to);
}

/// How [`dump_for`] writes proxy references: the manager's address, and the exposed methods
/// of an object by id (for the `AutoProxy` of a typeid without a proxy class of its own).
pub(crate) struct ProxyTarget<'a> {
    pub address: &'a Object,
    pub exposed: &'a dyn Fn(u64) -> Option<&'static [&'static str]>,
}

/// Appends the pickle of `object` to `out`, writing a proxy reference ([`Object::Proxy`]) as
/// Python pickles a proxy of a manager at `address` (`('127.0.0.1', 5000)` or a path):
/// `RebuildProxy(ListProxy, Token('list', address, '2a'), 'pickle', {})`.
pub(crate) fn dump_for(object: &Object, out: &mut Vec<u8>, address: &ProxyTarget<'_>) {
    out.extend([op::PROTO, PROTOCOL]);
    write_object(object, out, address);
    out.push(op::STOP);
}

/// The `TUPLE2` opcode, for callers that build a pickle piece by piece.
pub(crate) const TUPLE2: u8 = op::TUPLE2;

/// Appends a whole pickle of the one value whose opcodes `body` writes: protocol header,
/// body, `STOP`.
pub(crate) fn wrap(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend([op::PROTO, PROTOCOL]);
    body(out);
    out.push(op::STOP);
}

/// Writes a `str`.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_len(
        out,
        s.len(),
        op::SHORT_BINUNICODE,
        op::BINUNICODE,
        op::BINUNICODE8,
    );
    out.extend(s.as_bytes());
}

/// Writes the opcodes of `o` (no header), proxies as [`dump_for`] writes them.
pub(crate) fn write_value(out: &mut Vec<u8>, o: &Object, address: &ProxyTarget<'_>) {
    write_object(o, out, address);
}

/// Writes the global `module.name` (protocol 4's `STACK_GLOBAL`).
pub(crate) fn write_global(out: &mut Vec<u8>, module: &str, name: &str) {
    write_str(out, module);
    write_str(out, name);
    out.push(op::STACK_GLOBAL);
}

/// Writes Python's `multiprocessing.managers.Token(typeid, address, id)`.
pub(crate) fn write_token(out: &mut Vec<u8>, typeid: &str, address: &Object, id: u64) {
    write_global(out, "multiprocessing.managers", "Token");
    out.extend([op::EMPTY_TUPLE, op::NEWOBJ]);
    let state = Object::Tuple(vec![
        typeid.into(),
        address.clone(),
        Object::Str(format!("{id:x}")),
    ]);
    write_value(
        out,
        &state,
        &ProxyTarget {
            address: &Object::None,
            exposed: &|_| None,
        },
    );
    out.push(op::BUILD);
}

/// Writes a call `module.name(*args)` (`REDUCE`), as Python pickles an exception or a slice.
pub(crate) fn write_call(out: &mut Vec<u8>, module: &str, name: &str, args: &[Object]) {
    write_global(out, module, name);
    let to = ProxyTarget {
        address: &Object::None,
        exposed: &|_| None,
    };
    write_object(&Object::Tuple(args.to_vec()), out, &to);
    out.push(op::REDUCE);
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
    decode::read(bytes, limits)
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
    address: &ProxyTarget<'_>,
) {
    let n = items.len();
    if let (1, Some(single)) = (n, single) {
        for item in items {
            write_object(item, out, address);
        }
        out.push(single);
        return;
    }
    let mut items = items.peekable();
    while items.peek().is_some() {
        out.push(op::MARK);
        for item in items.by_ref().take(BATCH) {
            write_object(item, out, address);
        }
        out.push(many);
    }
}

fn write_object(o: &Object, out: &mut Vec<u8>, address: &ProxyTarget<'_>) {
    match o {
        Object::Slice(s) => {
            write_call(
                out,
                "builtins",
                "slice",
                &[s.start.clone(), s.stop.clone(), s.step.clone()],
            );
        }
        Object::Proxy(p) => {
            write_global(out, "multiprocessing.managers", "RebuildProxy");
            out.push(op::MARK);
            write_global(
                out,
                "multiprocessing.managers",
                p.python_class().unwrap_or("AutoProxy"),
            );
            write_token(out, &p.typeid, address.address, p.id);
            write_str(out, "pickle");
            out.push(op::EMPTY_DICT);
            // An AutoProxy built without its methods would ask for them on a connection
            // without the authkey handshake, as Python's own does; Python pickles them along.
            if p.python_class().is_none()
                && let Some(exposed) = (address.exposed)(p.id)
            {
                write_str(out, "exposed");
                out.push(op::MARK);
                for m in exposed {
                    write_str(out, m);
                }
                out.extend([op::TUPLE, op::SETITEM]);
            }
            out.push(op::TUPLE);
            out.push(op::REDUCE);
        }
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
        Object::Str(s) => write_str(out, s),
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
            write_batched(out, items.iter(), Some(op::APPEND), op::APPENDS, address);
        }
        Object::Tuple(items) => match items.len() {
            0 => out.push(op::EMPTY_TUPLE),
            n @ 1..=3 => {
                for item in items {
                    write_object(item, out, address);
                }
                out.push([op::TUPLE1, op::TUPLE2, op::TUPLE3][n - 1]);
            }
            _ => {
                out.push(op::MARK);
                for item in items {
                    write_object(item, out, address);
                }
                out.push(op::TUPLE);
            }
        },
        Object::Dict(d) => {
            out.push(op::EMPTY_DICT);
            if d.len() == 1 {
                for (k, v) in d.iter() {
                    write_object(k, out, address);
                    write_object(v, out, address);
                }
                out.push(op::SETITEM);
                return;
            }
            let mut entries = d.iter().peekable();
            while entries.peek().is_some() {
                out.push(op::MARK);
                for (k, v) in entries.by_ref().take(BATCH) {
                    write_object(k, out, address);
                    write_object(v, out, address);
                }
                out.push(op::SETITEMS);
            }
        }
        Object::Set(s) => {
            out.push(op::EMPTY_SET);
            write_batched(out, s.iter(), None, op::ADDITEMS, address);
        }
        Object::FrozenSet(s) => {
            out.push(op::MARK);
            for item in s.iter() {
                write_object(item, out, address);
            }
            out.push(op::FROZENSET);
        }
    }
}

mod decode;

#[cfg(test)]
mod tests;
