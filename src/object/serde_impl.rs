//! `Serialize`/`Deserialize` for [`Object`].
//!
//! Binary formats (`is_human_readable() == false`: postcard, bincode, CBOR, and the crate's own
//! [`to_object`](super::to_object)) carry an externally tagged enum named [`MARKER`], one variant
//! per kind, so every kind survives exactly. The variant indices are part of the wire format:
//! new kinds are only ever appended.
//!
//! Human-readable formats (JSON, YAML, ...) get the natural mapping: `None` as unit/null, numbers,
//! strings, bytes, sequences for lists, tuples and sets, maps for dicts. Reading back gives lists
//! and dicts; integers too large for `i128` travel as strings of their `repr` (decimal, or
//! hexadecimal beyond [`MAX_STR_DIGITS`](super::MAX_STR_DIGITS) digits).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{BigInt, Dict, MAX_DEPTH, Object, ProxyRef, Set, Slice};

/// The enum name of the tagged form; [`to_object`](super::to_object) and
/// [`from_object`](super::from_object) recognise it.
pub(crate) const MARKER: &str = "$multiproc::Object";

/// A variant name no format writes: [`from_object`](super::from_object) answers an `Object`'s
/// request for its tagged form with it, and hands the whole object over through
/// [`take_passed`] (no walk, no recursion: converting an `Object` into an `Object` costs
/// nothing, however deep).
pub(crate) const PASS_VARIANT: &str = "$multiproc::Object::passed";

thread_local! {
    /// The object `from_object` hands over, between its `visit_enum` and the visitor's take.
    static PASSED: std::cell::RefCell<Option<Object>> = const { std::cell::RefCell::new(None) };
}

/// Hands `o` to the `Deserialize` of `Object` running inside `f`, and clears it afterwards.
pub(crate) fn pass<R>(o: Object, f: impl FnOnce() -> R) -> R {
    PASSED.with(|p| *p.borrow_mut() = Some(o));
    let r = f();
    PASSED.with(|p| p.borrow_mut().take());
    r
}

/// The object [`pass`] handed over, if any.
fn take_passed() -> Option<Object> {
    PASSED.with(|p| p.borrow_mut().take())
}

/// Variant names of the tagged form, by index.
pub(crate) const VARIANTS: &[&str] = &[
    "None",
    "Bool",
    "Int",
    "BigInt",
    "Float",
    "Str",
    "Bytes",
    "List",
    "Tuple",
    "Dict",
    "Set",
    "FrozenSet",
    "Slice",
    "Proxy",
];

/// Serializes its slice with `serialize_bytes`.
struct AsBytes<'a>(&'a [u8]);

impl Serialize for AsBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Serializes an iterator of objects as a sequence.
struct AsSeq<I>(I);

impl<'a, I: ExactSizeIterator<Item = &'a Object> + Clone> Serialize for AsSeq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0.clone() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

impl Serialize for Dict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Set {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AsSeq(self.iter()).serialize(s)
    }
}

/// The newtype name under which an `Object` offers itself whole to
/// [`to_object`](super::to_object); every other format sees through a newtype struct.
pub(crate) const PASS_NEWTYPE: &str = "$multiproc::Object::whole";

thread_local! {
    /// Set by `to_object` just before it serializes the payload of a [`PASS_NEWTYPE`]; the
    /// payload's `serialize` clears it and leaves a copy of the object in [`WHOLE`].
    static WANT_WHOLE: Cell<bool> = const { Cell::new(false) };
    static WHOLE: std::cell::RefCell<Option<Object>> = const { std::cell::RefCell::new(None) };
}

/// Serializes the payload of a [`PASS_NEWTYPE`] with `serialize`, asking it to hand its object
/// over whole; returns that object (or `None` if the payload was something else).
pub(crate) fn take_whole<R>(serialize: impl FnOnce() -> R) -> (R, Option<Object>) {
    WANT_WHOLE.with(|w| w.set(true));
    let r = serialize();
    WANT_WHOLE.with(|w| w.set(false));
    (r, WHOLE.with(|w| w.borrow_mut().take()))
}

/// An object offered whole: to `to_object` a copy (no walk through serde, so no recursion on
/// the object's depth beyond `Clone`); to every other format its tagged form.
struct Whole<'a>(&'a Object);

impl Serialize for Whole<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if WANT_WHOLE.with(|w| w.replace(false)) {
            WHOLE.with(|w| *w.borrow_mut() = Some(self.0.clone()));
            return s.serialize_unit();
        }
        self.0.serialize_tagged(s)
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return match self {
                Object::None => s.serialize_unit(),
                Object::Bool(b) => s.serialize_bool(*b),
                Object::Int(i) => s.serialize_i64(*i),
                Object::BigInt(b) => match (b.to_i128(), b.to_u128()) {
                    (Some(i), _) => s.serialize_i128(i),
                    (_, Some(u)) => s.serialize_u128(u),
                    _ => s.collect_str(b),
                },
                Object::Float(x) => s.serialize_f64(*x),
                Object::Str(v) => s.serialize_str(v),
                Object::Bytes(b) => s.serialize_bytes(b),
                Object::List(v) | Object::Tuple(v) => AsSeq(v.iter()).serialize(s),
                Object::Dict(d) => d.serialize(s),
                Object::Set(v) | Object::FrozenSet(v) => v.serialize(s),
                Object::Slice(v) => AsSeq([&v.start, &v.stop, &v.step].into_iter()).serialize(s),
                Object::Proxy(p) => (&p.typeid, p.id).serialize(s),
            };
        }
        s.serialize_newtype_struct(PASS_NEWTYPE, &Whole(self))
    }
}

impl Object {
    /// The tagged form of binary formats (see the module documentation).
    fn serialize_tagged<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Object::None => s.serialize_unit_variant(MARKER, 0, VARIANTS[0]),
            Object::Bool(b) => s.serialize_newtype_variant(MARKER, 1, VARIANTS[1], b),
            Object::Int(i) => s.serialize_newtype_variant(MARKER, 2, VARIANTS[2], i),
            Object::BigInt(b) => s.serialize_newtype_variant(
                MARKER,
                3,
                VARIANTS[3],
                &AsBytes(&b.to_signed_bytes_le()),
            ),
            Object::Float(x) => s.serialize_newtype_variant(MARKER, 4, VARIANTS[4], x),
            Object::Str(v) => s.serialize_newtype_variant(MARKER, 5, VARIANTS[5], v),
            Object::Bytes(b) => s.serialize_newtype_variant(MARKER, 6, VARIANTS[6], &AsBytes(b)),
            Object::List(v) => {
                s.serialize_newtype_variant(MARKER, 7, VARIANTS[7], &AsSeq(v.iter()))
            }
            Object::Tuple(v) => {
                s.serialize_newtype_variant(MARKER, 8, VARIANTS[8], &AsSeq(v.iter()))
            }
            Object::Dict(d) => s.serialize_newtype_variant(MARKER, 9, VARIANTS[9], d),
            Object::Set(v) => s.serialize_newtype_variant(MARKER, 10, VARIANTS[10], v),
            Object::FrozenSet(v) => s.serialize_newtype_variant(MARKER, 11, VARIANTS[11], v),
            Object::Slice(v) => s.serialize_newtype_variant(
                MARKER,
                12,
                VARIANTS[12],
                &AsSeq([&v.start, &v.stop, &v.step].into_iter()),
            ),
            Object::Proxy(p) => {
                s.serialize_newtype_variant(MARKER, 13, VARIANTS[13], &(&p.typeid, p.id))
            }
        }
    }
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Counts nesting while an object is being deserialized.
struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<Self, E> {
        let d = DEPTH.with(|d| {
            let v = d.get() + 1;
            d.set(v);
            v
        });
        let guard = DepthGuard;
        // Scalars count one level too: MAX_DEPTH containers around a scalar are allowed.
        if d > MAX_DEPTH + 1 {
            return Err(E::custom(format_args!(
                "objects nest deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(guard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Capacity to reserve for a length announced by the input: never more than a few pages.
pub(crate) fn cautious(hint: Option<usize>) -> usize {
    hint.unwrap_or(0).min(4096)
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _guard = DepthGuard::enter::<D::Error>()?;
        if d.is_human_readable() {
            d.deserialize_any(NaturalVisitor)
        } else {
            d.deserialize_enum(MARKER, VARIANTS, TaggedVisitor)
        }
    }
}

impl<'de> Deserialize<'de> for Dict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DictVisitor)
    }
}

impl<'de> Deserialize<'de> for Set {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(SetVisitor)
    }
}

/// The natural mapping of human-readable formats.
struct NaturalVisitor;

impl<'de> Visitor<'de> for NaturalVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Python plain value")
    }

    fn visit_unit<E>(self) -> Result<Object, E> {
        Ok(Object::None)
    }

    fn visit_none<E>(self) -> Result<Object, E> {
        Ok(Object::None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Object, D::Error> {
        Object::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Object, D::Error> {
        Object::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Object, E> {
        Ok(Object::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Object, E> {
        Ok(Object::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Object, E> {
        Ok(Object::from(v))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Object, E> {
        Ok(Object::from(v))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Object, E> {
        Ok(Object::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Object, E> {
        Ok(Object::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Object, E> {
        Ok(Object::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Object, E> {
        Ok(Object::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Object, E> {
        Ok(Object::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Object, E> {
        Ok(Object::Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Object, A::Error> {
        SeqVisitor.visit_seq(seq).map(Object::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object, A::Error> {
        DictVisitor.visit_map(map).map(Object::Dict)
    }
}

/// A variant of the tagged form, by index or by name.
#[derive(Clone, Copy)]
enum Kind {
    None,
    Bool,
    Int,
    BigInt,
    Float,
    Str,
    Bytes,
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    Slice,
    Proxy,
    /// The whole object, handed over by `from_object` ([`PASS_VARIANT`]).
    Passed,
}

impl Kind {
    const ALL: [Kind; 14] = [
        Kind::None,
        Kind::Bool,
        Kind::Int,
        Kind::BigInt,
        Kind::Float,
        Kind::Str,
        Kind::Bytes,
        Kind::List,
        Kind::Tuple,
        Kind::Dict,
        Kind::Set,
        Kind::FrozenSet,
        Kind::Slice,
        Kind::Proxy,
    ];
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object kind")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
                usize::try_from(v)
                    .ok()
                    .and_then(|i| Kind::ALL.get(i).copied())
                    .ok_or_else(|| E::custom(format_args!("unknown object kind {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
                if v == PASS_VARIANT {
                    return Ok(Kind::Passed);
                }
                VARIANTS
                    .iter()
                    .position(|n| *n == v)
                    .map(|i| Kind::ALL[i])
                    .ok_or_else(|| E::unknown_variant(v, VARIANTS))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
                match std::str::from_utf8(v) {
                    Ok(s) => self.visit_str(s),
                    Err(_) => Err(E::custom("unknown object kind")),
                }
            }
        }
        d.deserialize_identifier(KindVisitor)
    }
}

/// The tagged form of binary formats.
struct TaggedVisitor;

impl<'de> Visitor<'de> for TaggedVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged Python plain value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Object, A::Error> {
        // Containers recurse through this frame: it holds only what they need, and scalars are
        // read out of line (debug builds give every local of a function its own stack slot).
        let (kind, v) = data.variant::<Kind>()?;
        Ok(match kind {
            Kind::List => Object::List(v.newtype_variant_seed(SeqVisitor)?),
            Kind::Tuple => Object::Tuple(v.newtype_variant_seed(SeqVisitor)?),
            Kind::Dict => Object::Dict(v.newtype_variant_seed(DictVisitor)?),
            Kind::Set => Object::Set(v.newtype_variant_seed(SetVisitor)?),
            Kind::FrozenSet => Object::FrozenSet(v.newtype_variant_seed(SetVisitor)?),
            Kind::Slice => match <[Object; 3]>::try_from(v.newtype_variant_seed(SeqVisitor)?) {
                Ok([start, stop, step]) => Slice::of(start, stop, step).into(),
                Err(_) => return Err(de::Error::custom("a slice has three parts")),
            },
            kind => scalar::<A>(kind, v)?,
        })
    }
}

/// The payload of a scalar kind of the tagged form.
#[inline(never)]
fn scalar<'de, A: EnumAccess<'de>>(kind: Kind, v: A::Variant) -> Result<Object, A::Error> {
    Ok(match kind {
        Kind::None => {
            v.unit_variant()?;
            Object::None
        }
        Kind::Bool => Object::Bool(v.newtype_variant()?),
        Kind::Int => Object::Int(v.newtype_variant()?),
        Kind::BigInt => Object::BigInt(BigInt::from_signed_bytes_le(
            &v.newtype_variant_seed(BytesVisitor)?,
        )),
        Kind::Float => Object::Float(v.newtype_variant()?),
        Kind::Str => Object::Str(v.newtype_variant()?),
        Kind::Bytes => Object::Bytes(v.newtype_variant_seed(BytesVisitor)?),
        Kind::Proxy => {
            let (typeid, id): (String, u64) = v.newtype_variant()?;
            ProxyRef::new(typeid, id).into()
        }
        Kind::Passed => {
            v.unit_variant()?;
            take_passed().ok_or_else(|| de::Error::custom("unknown object kind"))?
        }
        Kind::List | Kind::Tuple | Kind::Dict | Kind::Set | Kind::FrozenSet | Kind::Slice => {
            return Err(de::Error::custom("a container is not a scalar"));
        }
    })
}

/// Bytes, from a byte string or a sequence of `u8`.
struct BytesVisitor;

impl<'de> DeserializeSeed<'de> for BytesVisitor {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(self)
    }
}

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(cautious(seq.size_hint()));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// A sequence of objects.
struct SeqVisitor;

impl<'de> DeserializeSeed<'de> for SeqVisitor {
    type Value = Vec<Object>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Object>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SeqVisitor {
    type Value = Vec<Object>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Object>, A::Error> {
        let mut out = Vec::with_capacity(cautious(seq.size_hint()));
        while let Some(o) = seq.next_element::<Object>()? {
            out.push(o);
        }
        Ok(out)
    }
}

/// A map of objects.
struct DictVisitor;

impl<'de> DeserializeSeed<'de> for DictVisitor {
    type Value = Dict;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Dict, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DictVisitor {
    type Value = Dict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dict, A::Error> {
        let mut d = Dict::with_capacity(cautious(map.size_hint()));
        while let Some((k, v)) = map.next_entry::<Object, Object>()? {
            d.insert(k, v).map_err(de::Error::custom)?;
        }
        Ok(d)
    }
}

/// A set of objects, from a sequence.
struct SetVisitor;

impl<'de> DeserializeSeed<'de> for SetVisitor {
    type Value = Set;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Set, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SetVisitor {
    type Value = Set;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of hashable objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Set, A::Error> {
        let mut s = Set::with_capacity(cautious(seq.size_hint()));
        while let Some(o) = seq.next_element::<Object>()? {
            s.insert(o).map_err(de::Error::custom)?;
        }
        Ok(s)
    }
}
