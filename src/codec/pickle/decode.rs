//! The decoder behind [`loads_with`](super::loads_with): a stack machine over values under
//! construction, then one iterative pass that follows memo references.
//!
//! # Bounds against hostile input
//!
//! - **Depth.** Every value under construction ([`Val`]) records how deep it nests, and no
//!   opcode may build one deeper than [`Limits::max_depth`]: dropping or walking a `Val` recurses
//!   at most that far. Nesting through memo references is checked when the final object is
//!   built, which is iterative (an explicit stack of frames on the heap).
//! - **Memory.** Everything the decoder materialises is charged to one budget
//!   ([`Limits::max_bytes`]): every slot of its stack, every mark, memo entry, container item
//!   and placeholder, every `str`/`bytes`/`int` payload, every dict or set entry and every copy
//!   of a shared object, at its in-memory size. The charge is never given back, so it bounds the
//!   peak.
//! - **CPU.** Each opcode costs time linear in its own bytes, except container conversions
//!   (hashing into a dict or set) and copies of shared objects, which are linear in what the
//!   budget admitted. A pickle is read at most twice (see *Memo* below).
//!
//! # Memo
//!
//! Python's pickler memoizes every `str` and container it writes, but most pickles never
//! refer back to one (a manager request `('1', '__getitem__', ('k',), {})` has four
//! `MEMOIZE`s and no `GET`). So the first reading keeps no memo at all: `PUT`s only count,
//! values stay where they are. The first `GET` or `DUP` ends that reading, and the pickle is
//! read again from the start with the memo kept (values move into memo slots, references
//! take their place, and the final pass follows them).
//!
//! # Shape
//!
//! A container under construction keeps its finished items as [`Object`]s, so a list of
//! scalars costs what the final list costs. An item that is not finished yet (a memo reference,
//! or a container that still holds one) leaves a placeholder and a [`Hole`] naming it; the final
//! pass fills the holes. A container moved into another one while it has no holes becomes an
//! `Object` at once: nothing can reach it any more to change it.

use std::collections::HashMap;
use std::mem::size_of;

use super::{Limits, PickleError};

mod array;
mod manager;
mod opcodes;
mod resolve;
use crate::object::repr::clipped;
use crate::object::{Dict, Object, Set};
use array::ARRAY_MARK;
use manager::{CLASS_MARK, EXCEPTIONS, PROXY_CLASSES, no_stray_class};

type Res<T> = Result<T, PickleError>;

/// The callables Python uses to pickle plain data; nothing else is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    Set,
    FrozenSet,
    ByteArray,
    Bytes,
    CodecsEncode,
    /// `builtins.slice`, read as an [`Object::Slice`].
    Slice,
    /// `builtins.range`, read as the list of its ints (bounded by the budget).
    Range,
    /// `multiprocessing.managers.Token`, created by `NEWOBJ` (no state yet).
    TokenNew,
    /// A `Token` with its state `(typeid, address, id)` (after `BUILD`), read as an
    /// [`Object::Proxy`].
    Token,
    /// `multiprocessing.managers.RebuildProxy(func, token, serializer, kwds)`: read as the
    /// token's [`Object::Proxy`], never called.
    RebuildProxy,
    /// A proxy class of `multiprocessing.managers` (`AutoProxy`, `ListProxy`, …), only as the
    /// first argument of `RebuildProxy`.
    ProxyClass(&'static str),
    /// `array.array`: a call `array.array(typecode, items)` (protocol 2's pickle of an array)
    /// is read as the list of its items; as a value, only as the first argument of
    /// `array._array_reconstructor`.
    ArrayClass,
    /// `array._array_reconstructor(array.array, typecode, mformat, bytes)` (protocol 3 and
    /// later): read as the list of the items the machine format gives, never called.
    ArrayReconstructor,
    /// One of the exceptions a manager server replies with (only when the limits allow them).
    Exception(&'static str),
}

impl Global {
    fn lookup(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("builtins" | "__builtin__", "slice") => Some(Global::Slice),
            ("builtins", "range") | ("__builtin__", "xrange") => Some(Global::Range),
            ("multiprocessing.managers", "Token") => Some(Global::TokenNew),
            ("multiprocessing.managers", "RebuildProxy") => Some(Global::RebuildProxy),
            ("multiprocessing.managers", class) => PROXY_CLASSES
                .iter()
                .find(|c| **c == class)
                .map(|c| Global::ProxyClass(c)),
            ("builtins" | "__builtin__", "set") => Some(Global::Set),
            ("builtins" | "__builtin__", "frozenset") => Some(Global::FrozenSet),
            ("builtins" | "__builtin__", "bytearray") => Some(Global::ByteArray),
            ("builtins" | "__builtin__", "bytes") => Some(Global::Bytes),
            ("_codecs", "encode") => Some(Global::CodecsEncode),
            ("array", "array") => Some(Global::ArrayClass),
            ("array", "_array_reconstructor") => Some(Global::ArrayReconstructor),
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

/// The kind of an empty container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Seq(SeqKind),
    Dict,
}

/// A value under construction.
#[derive(Debug)]
enum Val {
    /// A finished scalar (never a container: containers are `Seq` or `Dict` until they settle).
    Obj(Object),
    /// An empty container (most containers start so: no allocation until items arrive).
    Empty(Kind),
    /// A container with items.
    Cont(Box<Container>),
    /// The value of a memo slot.
    Ref(usize),
    Global(Global),
    /// `global(*args)`, evaluated once the arguments are complete.
    Call(Box<CallVal>),
}

/// A container under construction.
#[derive(Debug)]
struct Container {
    kind: Kind,
    /// Finished items, and placeholders where `holes` and `refs` will go; a dict's keys and
    /// values alternate (`k0, v0, k1, v1, ...`).
    items: Vec<Object>,
    holes: Vec<Hole>,
    /// `(at, slot)`: memo references, the most common kind of hole, kept small.
    refs: Vec<(usize, usize)>,
    /// Containers nested in this value, itself included (memo references count 0 here; the
    /// final pass counts them).
    depth: usize,
}

impl Container {
    fn is_finished(&self) -> bool {
        self.holes.is_empty() && self.refs.is_empty()
    }
}

#[derive(Debug)]
struct CallVal {
    global: Global,
    /// A tuple, directly or through the memo.
    args: Val,
    offset: usize,
    depth: usize,
}

/// An item that is not finished yet, and where it goes.
#[derive(Debug)]
struct Hole {
    at: usize,
    val: Val,
}

impl Val {
    /// Containers nested in this value, not counting memo references.
    fn depth(&self) -> usize {
        match self {
            Val::Cont(c) => c.depth,
            Val::Call(c) => c.depth,
            Val::Empty(_) => 1,
            _ => 0,
        }
    }
}

/// What the budget charges for `len` bytes on the heap: the bytes, rounded up to the
/// allocator's granule, plus its bookkeeping word (nothing for an empty payload).
fn heap(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.div_ceil(16).saturating_mul(16).saturating_add(16)
    }
}

/// Estimated heap bytes of `o` beyond its own `size_of::<Object>()`. Recursion is bounded by
/// the object's depth, which the decoder keeps within its limit.
fn heap_size(o: &Object) -> usize {
    const OBJ: usize = size_of::<Object>();
    match o {
        Object::Str(s) => heap(s.len()),
        Object::Bytes(b) => heap(b.len()),
        Object::BigInt(b) => heap(b.byte_len()),
        Object::List(v) | Object::Tuple(v) => v.iter().map(|o| OBJ + heap_size(o)).sum(),
        Object::Dict(d) => d
            .iter()
            .map(|(k, v)| DICT_ENTRY + heap_size(k) + heap_size(v))
            .sum(),
        Object::Set(s) | Object::FrozenSet(s) => s.iter().map(|k| SET_ENTRY + heap_size(k)).sum(),
        _ => 0,
    }
}

/// Charge for one dict entry: hash, key and value in the entry vector, plus the index.
const DICT_ENTRY: usize = 2 * size_of::<Object>() + 8 + 16;
/// Charge for one set element: hash and element, plus the index.
const SET_ENTRY: usize = size_of::<Object>() + 8 + 16;
/// Charge for one memo slot: the slot, its use count, and a dense key entry.
const MEMO_ENTRY: usize = size_of::<Slot>() + size_of::<usize>() + size_of::<Option<usize>>();

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
    /// Returns whether the key is new.
    fn insert(&mut self, key: u64, slot: usize) -> bool {
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
        fresh
    }

    fn get(&self, key: u64) -> Option<usize> {
        match usize::try_from(key) {
            Ok(k) if k < self.dense.len() => self.dense[k],
            _ => self.sparse.get(&key).copied(),
        }
    }
}

/// A memo slot.
#[derive(Debug)]
enum Slot {
    Pending(Val),
    /// Being resolved or extended: meeting it again means the object contains itself.
    Busy,
    /// Built, with its depth; copied for each further use.
    Done(Object, usize),
    /// Moved out to its last user.
    Taken,
}

pub(super) struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    /// The most stack slots and marks charged so far.
    stack_peak: usize,
    marks_peak: usize,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    /// Memo keys to slots (several keys may name one slot).
    memo: Memo,
    slots: Vec<Slot>,
    /// References to each slot not yet resolved.
    uses: Vec<usize>,
    max_depth: usize,
    /// Whether exceptions are read ([`Limits::exceptions`]).
    exceptions: bool,
    /// The first reading: memo keys are counted, nothing is kept (see *Memo* in the module
    /// documentation).
    no_memo: bool,
    /// The first reading met a memo reference: read again with the memo kept.
    needs_memo: bool,
    /// A proxy class was named: the final value is checked for one left as a value.
    classes: bool,
    /// Bytes still allowed.
    budget: usize,
    /// Bytes charged so far.
    charged: usize,
}

/// Reads one pickle: first without a memo, again with one if the pickle refers back to a
/// value (see *Memo* in the module documentation).
pub(super) fn read(input: &[u8], limits: &Limits) -> Res<Object> {
    let mut first = Decoder::new(input, limits);
    match first.run() {
        Err(_) if first.needs_memo => {
            drop(first);
            let mut again = Decoder::new(input, limits);
            again.no_memo = false;
            again.finish_reading()
        }
        Ok(o) if first.classes => no_stray_class(&o).map(|()| o),
        r => r,
    }
}

/// As [`read`], keeping the memo from the start (for tests comparing the two readings).
#[cfg(test)]
pub(super) fn read_keeping_memo(input: &[u8], limits: &Limits) -> Res<Object> {
    let mut d = Decoder::new(input, limits);
    d.no_memo = false;
    d.finish_reading()
}

impl<'a> Decoder<'a> {
    /// Runs the decoder, and checks that no proxy class is left as a value.
    fn finish_reading(&mut self) -> Res<Object> {
        let o = self.run()?;
        if self.classes {
            no_stray_class(&o)?;
        }
        Ok(o)
    }

    fn new(input: &'a [u8], limits: &Limits) -> Self {
        Decoder {
            input,
            pos: 0,
            // Enough for most pickles: one allocation instead of a few growths.
            stack: Vec::with_capacity(8),
            stack_peak: 0,
            marks_peak: 0,
            marks: Vec::new(),
            memo: Memo::default(),
            slots: Vec::new(),
            uses: Vec::new(),
            max_depth: limits.max_depth,
            exceptions: limits.exceptions,
            no_memo: true,
            needs_memo: false,
            classes: false,
            budget: limits.budget(input.len()),
            charged: 0,
        }
    }

    #[inline]
    fn charge(&mut self, n: usize) -> Res<()> {
        if n > self.budget {
            return Err(self.over_budget());
        }
        self.budget -= n;
        self.charged += n;
        Ok(())
    }

    #[cold]
    fn over_budget(&self) -> PickleError {
        PickleError::Limit(format!(
            "the pickle would build more than {} bytes of values",
            self.charged.saturating_add(self.budget)
        ))
    }

    fn invalid<T>(&self, offset: usize, reason: impl Into<String>) -> Res<T> {
        Err(PickleError::Invalid {
            offset,
            reason: reason.into(),
        })
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

    fn too_deep<T>(&self) -> Res<T> {
        Err(PickleError::Limit(format!(
            "containers nest deeper than {} levels",
            self.max_depth
        )))
    }

    fn check_depth(&self, depth: usize) -> Res<()> {
        if depth > self.max_depth {
            return self.too_deep();
        }
        Ok(())
    }

    // ---- input ----

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

    // ---- the stack ----

    /// Pushes a value, charging each stack slot the first time the stack reaches it.
    #[inline]
    fn push(&mut self, v: Val) -> Res<()> {
        self.stack.push(v);
        if self.stack.len() > self.stack_peak {
            self.stack_peak = self.stack.len();
            self.charge(size_of::<Val>())?;
        }
        Ok(())
    }

    /// Pushes a scalar with a heap payload of `payload` bytes.
    fn push_scalar(&mut self, o: Object, payload: usize) -> Res<()> {
        self.charge(heap(payload))?;
        self.push(Val::Obj(o))
    }

    fn push_mark(&mut self) -> Res<()> {
        self.marks.push(self.stack.len());
        if self.marks.len() > self.marks_peak {
            self.marks_peak = self.marks.len();
            self.charge(size_of::<usize>())?;
        }
        Ok(())
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

    // ---- containers ----

    fn new_container(&mut self, kind: Kind) -> Res<Box<Container>> {
        self.charge(size_of::<Container>())?;
        Ok(Box::new(Container {
            kind,
            items: Vec::new(),
            holes: Vec::new(),
            refs: Vec::new(),
            depth: 1,
        }))
    }

    /// The empty container of a kind, finished.
    fn empty(kind: Kind) -> Object {
        match kind {
            Kind::Seq(SeqKind::List) => Object::List(Vec::new()),
            Kind::Seq(SeqKind::Tuple) => Object::Tuple(Vec::new()),
            Kind::Seq(SeqKind::Set) => Object::Set(Set::new()),
            Kind::Seq(SeqKind::FrozenSet) => Object::FrozenSet(Set::new()),
            Kind::Dict => Object::Dict(Dict::new()),
        }
    }

    /// A value moved into a container: a finished `Object` if nothing can change it any more,
    /// else the value back (it becomes a hole).
    fn settle(&mut self, v: Val) -> Res<Result<Object, Val>> {
        Ok(match v {
            Val::Obj(o) => Ok(o),
            Val::Global(Global::ProxyClass(c)) => Ok(Object::Str(format!("{CLASS_MARK}{c}"))),
            Val::Global(Global::ArrayClass) => Ok(Object::Str(ARRAY_MARK.into())),
            Val::Empty(kind) => Ok(Self::empty(kind)),
            Val::Cont(c) if c.is_finished() => Ok(self.finish(c.kind, c.items)?),
            Val::Call(c) => {
                let CallVal {
                    global,
                    args,
                    offset,
                    depth,
                } = *c;
                match args {
                    Val::Empty(Kind::Seq(SeqKind::Tuple)) => {
                        Ok(self.call(offset, global, Object::Tuple(Vec::new()))?)
                    }
                    Val::Cont(args)
                        if args.is_finished() && args.kind == Kind::Seq(SeqKind::Tuple) =>
                    {
                        Ok(self.call(offset, global, Object::Tuple(args.items))?)
                    }
                    args => Err(Val::Call(Box::new(CallVal {
                        global,
                        args,
                        offset,
                        depth,
                    }))),
                }
            }
            // A memo reference waits for the final pass, which moves the value out for its last
            // use (Python memoizes every `str`: copying them here would double their cost).
            v => Err(v),
        })
    }

    /// Adds items to a container under construction (for a dict: keys and values in turn).
    fn add_items(
        &mut self,
        at: usize,
        c: &mut Container,
        new: impl ExactSizeIterator<Item = Val>,
    ) -> Res<()> {
        if c.kind == Kind::Dict && !new.len().is_multiple_of(2) {
            return self.invalid(at, "odd number of items for a dict");
        }
        self.charge(new.len().saturating_mul(size_of::<Object>()))?;
        c.items.reserve(new.len());
        for v in new {
            match v {
                // Scalars, most items, go straight in.
                Val::Obj(o) => c.items.push(o),
                Val::Ref(slot) => {
                    self.charge(size_of::<(usize, usize)>())?;
                    c.refs.push((c.items.len(), slot));
                    c.items.push(Object::None);
                }
                v => self.add_value(c, v)?,
            }
        }
        Ok(())
    }

    /// Adds a value that is neither a scalar nor a memo reference.
    #[inline(never)]
    fn add_value(&mut self, c: &mut Container, v: Val) -> Res<()> {
        let depth = 1 + v.depth();
        if depth > c.depth {
            self.check_depth(depth)?;
            c.depth = depth;
        }
        let o = match self.settle(v)? {
            Ok(o) => o,
            Err(val) => {
                self.charge(size_of::<Hole>())?;
                c.holes.push(Hole {
                    at: c.items.len(),
                    val,
                });
                Object::None
            }
        };
        c.items.push(o);
        Ok(())
    }

    fn make_set(&mut self, items: Vec<Object>) -> Res<Set> {
        self.charge(items.len().saturating_mul(SET_ENTRY))?;
        Set::try_from_iter(items).or_else(|e| self.late(format!("{e} in a set")))
    }

    fn finish(&mut self, kind: Kind, items: Vec<Object>) -> Res<Object> {
        Ok(match kind {
            Kind::Seq(SeqKind::List) => Object::List(items),
            Kind::Seq(SeqKind::Tuple) => Object::Tuple(items),
            Kind::Seq(SeqKind::Set) => Object::Set(self.make_set(items)?),
            Kind::Seq(SeqKind::FrozenSet) => Object::FrozenSet(self.make_set(items)?),
            Kind::Dict => {
                let n = items.len() / 2;
                self.charge(n.saturating_mul(DICT_ENTRY))?;
                let mut d = Dict::with_capacity(n);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let Err(e) = d.insert(k, v) {
                        return self.late(format!("{e} as dict key"));
                    }
                }
                Object::Dict(d)
            }
        })
    }

    /// A container of the values from `from` up the stack (which leave it).
    fn container_from(&mut self, at: usize, kind: Kind, from: usize) -> Res<Val> {
        if from == self.stack.len() {
            return Ok(Val::Empty(kind));
        }
        let mut c = self.new_container(kind)?;
        self.with_items(from, |d, items| d.add_items(at, &mut c, items))?;
        Ok(Val::Cont(c))
    }

    /// Runs `f` on the values from `from` up the stack, which leave it (no copy is made: a
    /// batch costs no more than its items).
    fn with_items<R>(
        &mut self,
        from: usize,
        f: impl FnOnce(&mut Self, &mut std::vec::Drain<'_, Val>) -> Res<R>,
    ) -> Res<R> {
        let mut stack = std::mem::take(&mut self.stack);
        let r = f(self, &mut stack.drain(from..));
        self.stack = stack;
        r
    }

    /// The position of the innermost mark, which is closed.
    fn close_mark(&mut self, at: usize) -> Res<usize> {
        match self.marks.pop() {
            Some(m) => Ok(m),
            None => self.invalid(at, "no MARK on the stack"),
        }
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
        self.charge(MEMO_ENTRY)?;
        let slot = self.slots.len();
        let v = std::mem::replace(&mut self.stack[top], Val::Ref(slot));
        self.slots.push(Slot::Pending(v));
        self.uses.push(1);
        Ok(slot)
    }

    fn put(&mut self, at: usize, key: u64) -> Res<()> {
        if self.no_memo {
            if self.stack.len() <= self.floor() {
                return self.invalid(at, "nothing to memoize");
            }
            // Nothing refers to the key before the first `GET`, which ends this reading.
            return Ok(());
        }
        let slot = self.share_top(at)?;
        let dense = usize::try_from(key).is_ok_and(|k| k <= self.memo.dense.len());
        if self.memo.insert(key, slot) && !dense {
            // A sparse key costs a hash map entry.
            self.charge(48)?;
        }
        Ok(())
    }

    /// Ends the first reading, which keeps no memo: the pickle refers back to a value.
    fn memo_needed(&mut self) -> PickleError {
        self.needs_memo = true;
        PickleError::Limit("the pickle is read again with its memo".into())
    }

    fn get(&mut self, at: usize, key: u64) -> Res<()> {
        if self.no_memo {
            return Err(self.memo_needed());
        }
        match self.memo.get(key) {
            Some(slot) => {
                self.uses[slot] += 1;
                self.push(Val::Ref(slot))
            }
            None => self.invalid(at, format!("memo key {key} was never stored")),
        }
    }

    /// Adds the values from `from` up the stack (which leave it) to the container just below
    /// them (on the stack, or the memo slot it refers to).
    fn extend(&mut self, at: usize, want: Kind, from: usize) -> Res<()> {
        if from == 0 || from - 1 < self.floor() {
            return self.invalid(at, "stack underflow");
        }
        let place = from - 1;
        let slot = match self.stack[place] {
            Val::Ref(s) => Some(s),
            _ => None,
        };
        let mut target = match slot {
            Some(s) => match std::mem::replace(&mut self.slots[s], Slot::Busy) {
                Slot::Pending(v) => v,
                _ => return self.invalid(at, "memo slot is not a container"),
            },
            None => std::mem::replace(&mut self.stack[place], Val::Obj(Object::None)),
        };
        if from < self.stack.len() {
            // The first items: the empty container gets its storage.
            target = match target {
                Val::Empty(k) if k == want => Val::Cont(self.new_container(k)?),
                t => t,
            };
        }
        match &mut target {
            Val::Cont(c) if c.kind == want => {
                self.with_items(from, |d, items| d.add_items(at, c, items))?;
            }
            Val::Empty(k) if *k == want => {}
            _ => {
                return self.invalid(
                    at,
                    match want {
                        Kind::Seq(SeqKind::Set) => "ADDITEMS to something that is not a set",
                        Kind::Dict => "SETITEM to something that is not a dict",
                        _ => "APPEND to something that is not a list",
                    },
                );
            }
        }
        match slot {
            Some(s) => self.slots[s] = Slot::Pending(target),
            None => self.stack[place] = target,
        }
        Ok(())
    }

    fn global(&self, at: usize, module: &str, name: &str) -> Res<Val> {
        let exception = || {
            let module = if module == "exceptions" || module == "__builtin__" {
                "builtins"
            } else {
                module
            };
            EXCEPTIONS
                .iter()
                .find(|e| e.split_once('.') == Some((module, name)))
        };
        match Global::lookup(module, name) {
            Some(g) => Ok(Val::Global(g)),
            None if self.exceptions && exception().is_some() => {
                Ok(Val::Global(Global::Exception(exception().expect("found"))))
            }
            None => Err(PickleError::Forbidden {
                offset: at,
                what: format!("global {}", clipped(&format_args!("{module}.{name}"), 100)),
            }),
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

    /// Evaluates one of the known plain-data calls.
    fn call(&mut self, at: usize, global: Global, args: Object) -> Res<Object> {
        let Object::Tuple(mut args) = args else {
            return self.invalid(at, "REDUCE arguments are not a tuple");
        };
        let latin1 = |d: &Self, s: &str, enc: &str| -> Res<Object> {
            if !matches!(enc, "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1") {
                return d.forbidden(at, &format!("the {:?} codec", clipped(&enc, 40)));
            }
            let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c).ok()).collect();
            bytes
                .map(Object::Bytes)
                .map_or_else(|| d.invalid(at, "latin-1 text out of range"), Ok)
        };
        if let Some(r) = self.manager_call(at, global, &mut args) {
            return r;
        }
        match (global, args.as_mut_slice()) {
            (Global::Set, []) => Ok(Object::Set(Set::new())),
            (Global::FrozenSet, []) => Ok(Object::FrozenSet(Set::new())),
            (Global::Set | Global::FrozenSet, [items]) => {
                let items = match std::mem::take(items) {
                    Object::List(v) | Object::Tuple(v) => v,
                    Object::Set(s) | Object::FrozenSet(s) => s.into_iter().collect(),
                    _ => return self.invalid(at, "set() of something not a sequence"),
                };
                let s = self.make_set(items)?;
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
            ) => {
                let (s, enc) = (std::mem::take(s), std::mem::take(enc));
                let o = latin1(self, &s, &enc)?;
                self.charge(heap(s.len()))?;
                Ok(o)
            }
            _ => self.invalid(at, format!("unexpected arguments for {global:?}")),
        }
    }
}

/// Python's `raw-unicode-escape` decoding (the `UNICODE` opcode of protocol 0).
fn raw_unicode_escape(line: &[u8]) -> Result<String, &'static str> {
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
                return Err("str is not valid UTF-8 (a lone surrogate cannot be represented)");
            }
            None => return Err("truncated \\u escape"),
        }
        i = after + 1 + width;
    }
    Ok(out)
}
