//! [`to_object`]: any `Serialize` value as an [`Object`].

use std::fmt;

use serde::ser::{self, Serialize};

use super::repr::clipped;
use super::serde_impl::{MARKER, PASS_NEWTYPE, take_whole};
use super::{BigInt, Dict, Object, Set};

/// A typed value could not become an [`Object`], or an `Object` could not become the type asked
/// for ([`to_object`], [`from_object`](super::from_object)).
///
/// # Examples
///
/// ```
/// use multiproc::{obj, object::from_object};
///
/// let err = from_object::<(u8, String)>(obj!((1, 2))).unwrap_err();
/// assert_eq!(err.to_string(), "invalid type: integer `2`, expected a string");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub(crate) String);

/// The longest message kept from serde: its messages quote values (`invalid type: string
/// "..."`), which may be as large as the input.
const MAX_MESSAGE: usize = 1024;

impl ser::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError(clipped(&msg, MAX_MESSAGE))
    }
}

impl serde::de::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError(clipped(&msg, MAX_MESSAGE))
    }
}

/// Converts any serializable value into an [`Object`], mapping serde's data model onto Python's
/// as `pickle` would see the equivalent Python value:
///
/// | Rust (serde) | Object |
/// |---|---|
/// | `()`, unit struct, `Option::None` | `None` |
/// | integers | `int` (beyond `i64`: a [`BigInt`]) |
/// | `f32`, `f64` | `float` |
/// | `char`, `&str`, `String` | `str` |
/// | bytes (`serde_bytes`) | `bytes` |
/// | `Vec`, slices, sequences | `list` |
/// | tuples, tuple structs | `tuple` |
/// | maps, structs | `dict` (structs keyed by field name) |
/// | `Some(x)`, newtype struct | `x` |
/// | enum: unit variant / other variants | `'Name'` / `{'Name': payload}` |
/// | [`Object`] | itself, exactly |
///
/// # Errors
///
/// [`SerdeError`] when a map key is unhashable (a list, map or set as key), or the value's own
/// `Serialize` fails.
///
/// # Examples
///
/// ```
/// use multiproc::object::to_object;
///
/// #[derive(serde::Serialize)]
/// struct Job { id: u32, args: (f64, String), tags: Vec<&'static str> }
///
/// let o = to_object(&Job { id: 7, args: (0.5, "x".into()), tags: vec!["a"] }).unwrap();
/// assert_eq!(o.to_string(), "{'id': 7, 'args': (0.5, 'x'), 'tags': ['a']}");
/// ```
pub fn to_object<T: Serialize + ?Sized>(value: &T) -> Result<Object, SerdeError> {
    value.serialize(ObjectSerializer)
}

/// The serde `Serializer` whose output is an [`Object`].
struct ObjectSerializer;

fn dict_key(key: Object) -> Result<Object, SerdeError> {
    match super::unhashable_kind(&key) {
        Some(kind) => Err(SerdeError(format!("unhashable type: '{kind}' as map key"))),
        None => Ok(key),
    }
}

fn into_set(items: Object) -> Result<Set, SerdeError> {
    let items = match items {
        Object::List(v) | Object::Tuple(v) => v,
        Object::Set(s) | Object::FrozenSet(s) => return Ok(s),
        other => {
            return Err(SerdeError(format!(
                "a set cannot hold {}",
                other.type_name()
            )));
        }
    };
    Set::try_from_iter(items).map_err(|e| SerdeError(e.to_string()))
}

/// Rebuilds an object from its tagged form (see `serde_impl`).
fn untag(variant: &str, inner: Object) -> Result<Object, SerdeError> {
    Ok(match (variant, inner) {
        ("Tuple", Object::List(v)) => Object::Tuple(v),
        ("Set", inner) => Object::Set(into_set(inner)?),
        ("FrozenSet", inner) => Object::FrozenSet(into_set(inner)?),
        ("BigInt", Object::Bytes(b)) => Object::BigInt(BigInt::from_signed_bytes_le(&b)),
        ("Slice", Object::List(v)) => match <[Object; 3]>::try_from(v) {
            Ok([start, stop, step]) => super::Slice::of(start, stop, step).into(),
            Err(_) => return Err(SerdeError("a slice has three parts".into())),
        },
        ("Proxy", Object::Tuple(v) | Object::List(v)) => match v.as_slice() {
            [Object::Str(t), id] if id.as_i64().is_some_and(|i| i >= 0) => {
                super::ProxyRef::new(t.clone(), id.as_i64().unwrap_or(0) as u64).into()
            }
            _ => return Err(SerdeError("a proxy reference is (typeid, id)".into())),
        },
        (_, inner) => inner,
    })
}

impl ser::Serializer for ObjectSerializer {
    type Ok = Object;
    type Error = SerdeError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<Object, SerdeError> {
        Ok(Object::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_f32(self, v: f32) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_char(self, v: char) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_str(self, v: &str) -> Result<Object, SerdeError> {
        Ok(v.into())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Object, SerdeError> {
        Ok(Object::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Object, SerdeError> {
        Ok(Object::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Object, SerdeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Object, SerdeError> {
        Ok(Object::None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Object, SerdeError> {
        Ok(Object::None)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Object, SerdeError> {
        if name == MARKER {
            return Ok(Object::None);
        }
        Ok(variant.into())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Object, SerdeError> {
        if name == PASS_NEWTYPE {
            // An `Object`: it hands itself over whole.
            let (r, whole) = take_whole(|| v.serialize(ObjectSerializer));
            return match whole {
                Some(o) => Ok(o),
                None => r,
            };
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Object, SerdeError> {
        let inner = v.serialize(ObjectSerializer)?;
        if name == MARKER {
            return untag(variant, inner);
        }
        let mut d = Dict::with_capacity(1);
        d.insert(variant, inner)
            .map_err(|e| SerdeError(e.to_string()))?;
        Ok(Object::Dict(d))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            tuple: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.min(4096)),
            tuple: true,
        })
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, SerdeError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerdeError> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_tuple(len)?,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            dict: Dict::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<MapBuilder, SerdeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, SerdeError> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_map(Some(len))?,
        })
    }
}

/// Collects a list or tuple.
struct SeqBuilder {
    items: Vec<Object>,
    tuple: bool,
}

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerdeError> {
        self.items.push(v.serialize(ObjectSerializer)?);
        Ok(())
    }
    fn finish(self) -> Object {
        if self.tuple {
            Object::Tuple(self.items)
        } else {
            Object::List(self.items)
        }
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerdeError> {
        self.push(v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerdeError> {
        self.push(v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerdeError> {
        self.push(v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Ok(self.finish())
    }
}

/// Collects a dict.
struct MapBuilder {
    dict: Dict,
    key: Option<Object>,
}

impl MapBuilder {
    fn entry(&mut self, k: Object, v: Object) -> Result<(), SerdeError> {
        let k = dict_key(k)?;
        self.dict
            .insert(k, v)
            .map_err(|e| SerdeError(e.to_string()))?;
        Ok(())
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), SerdeError> {
        self.key = Some(k.serialize(ObjectSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerdeError> {
        let k = self
            .key
            .take()
            .ok_or_else(|| SerdeError("map value without a key".into()))?;
        let v = v.serialize(ObjectSerializer)?;
        self.entry(k, v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Ok(Object::Dict(self.dict))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), SerdeError> {
        let v = v.serialize(ObjectSerializer)?;
        self.entry(key.into(), v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Ok(Object::Dict(self.dict))
    }
}

/// Wraps a tuple or struct variant's payload as `{'Variant': payload}`.
struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

impl<B> VariantBuilder<B> {
    fn wrap(variant: &'static str, payload: Object) -> Result<Object, SerdeError> {
        let mut d = Dict::with_capacity(1);
        d.insert(variant, payload)
            .map_err(|e| SerdeError(e.to_string()))?;
        Ok(Object::Dict(d))
    }
}

impl ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerdeError> {
        self.inner.push(v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Self::wrap(self.variant, self.inner.finish())
    }
}

impl ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Object;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), SerdeError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, v)
    }
    fn end(self) -> Result<Object, SerdeError> {
        Self::wrap(self.variant, Object::Dict(self.inner.dict))
    }
}
