//! [`from_object`]: an [`Object`] as any `Deserialize` type.

use serde::de::value::SeqDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::repr::clipped;
use super::serde_impl::{MARKER, PASS_VARIANT, pass};
use super::{Object, SerdeError};

/// Converts an [`Object`] into any deserializable type: the inverse of
/// [`to_object`](super::to_object). Structs read dicts keyed by field name (or tuples/lists in
/// field order), sequences read lists, tuples and sets, enums read `'Name'` or `{'Name': payload}`,
/// and integers convert when they fit.
///
/// # Errors
///
/// [`SerdeError`] when the object does not have the shape of `T`.
///
/// # Examples
///
/// ```
/// use multiproc::{obj, object::from_object};
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Job { id: u32, args: (f64, String), tags: Vec<String> }
///
/// let o = obj!({"id": 7, "args": (0.5, "x"), "tags": ["a"]});
/// let job: Job = from_object(o).unwrap();
/// assert_eq!(job, Job { id: 7, args: (0.5, "x".into()), tags: vec!["a".into()] });
/// ```
pub fn from_object<T: DeserializeOwned>(object: Object) -> Result<T, SerdeError> {
    T::deserialize(ObjectDeserializer(object))
}

/// The serde `Deserializer` reading an owned [`Object`].
struct ObjectDeserializer(Object);

impl<'de> IntoDeserializer<'de, SerdeError> for ObjectDeserializer {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

struct Seq(std::vec::IntoIter<Object>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = SerdeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        self.0
            .next()
            .map(|o| seed.deserialize(ObjectDeserializer(o)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map {
    entries: std::vec::IntoIter<(Object, Object)>,
    value: Option<Object>,
}

impl<'de> MapAccess<'de> for Map {
    type Error = SerdeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(ObjectDeserializer(k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, SerdeError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| SerdeError("map value asked before its key".into()))?;
        seed.deserialize(ObjectDeserializer(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

fn seq_of(items: Vec<Object>) -> Seq {
    Seq(items.into_iter())
}

/// An enum: the variant name and its payload (`None` for a unit variant).
struct Enum {
    variant: String,
    payload: Option<Object>,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = SerdeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), SerdeError> {
        let v = seed.deserialize(ObjectDeserializer(Object::Str(self.variant.clone())))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for Enum {
    type Error = SerdeError;
    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.payload {
            None | Some(Object::None) => Ok(()),
            Some(o) => Err(SerdeError(format!(
                "variant {} takes no value, found {}",
                clipped(&self.variant, 60),
                o.type_name()
            ))),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        seed.deserialize(ObjectDeserializer(self.payload.unwrap_or_default()))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, SerdeError> {
        de::Deserializer::deserialize_any(
            ObjectDeserializer(self.payload.unwrap_or_default()),
            visitor,
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        de::Deserializer::deserialize_any(
            ObjectDeserializer(self.payload.unwrap_or_default()),
            visitor,
        )
    }
}

impl<'de> de::Deserializer<'de> for ObjectDeserializer {
    type Error = SerdeError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Object::None => visitor.visit_unit(),
            Object::Bool(b) => visitor.visit_bool(b),
            Object::Int(i) => visitor.visit_i64(i),
            Object::BigInt(b) => match (b.to_u128(), b.to_i128()) {
                (Some(u), _) if u <= u128::from(u64::MAX) => visitor.visit_u64(u as u64),
                (_, Some(i)) => visitor.visit_i128(i),
                (Some(u), _) => visitor.visit_u128(u),
                _ => Err(SerdeError(format!(
                    "integer of {} bits is too large for any Rust integer",
                    b.bits()
                ))),
            },
            Object::Float(x) => visitor.visit_f64(x),
            Object::Str(s) => visitor.visit_string(s),
            Object::Bytes(b) => visitor.visit_byte_buf(b),
            Object::List(v) | Object::Tuple(v) => visitor.visit_seq(seq_of(v)),
            Object::Set(s) | Object::FrozenSet(s) => {
                visitor.visit_seq(seq_of(s.into_iter().collect()))
            }
            Object::Slice(s) => visitor.visit_seq(seq_of(vec![s.start, s.stop, s.step])),
            Object::Proxy(p) => visitor.visit_seq(seq_of(vec![p.typeid.into(), p.id.into()])),
            Object::Dict(d) => visitor.visit_map(Map {
                entries: d.into_iter().collect::<Vec<_>>().into_iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Object::None => visitor.visit_none(),
            o => visitor.visit_some(ObjectDeserializer(o)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        if name == MARKER {
            // An `Object` is asked for: hand this one over whole.
            let passed = Enum {
                variant: PASS_VARIANT.to_owned(),
                payload: None,
            };
            return pass(self.0, || visitor.visit_enum(passed));
        }
        match self.0 {
            Object::Str(variant) => visitor.visit_enum(Enum {
                variant,
                payload: None,
            }),
            Object::Dict(d) if d.len() == 1 => {
                let mut entries = d.into_iter();
                match entries.next() {
                    Some((Object::Str(variant), payload)) => visitor.visit_enum(Enum {
                        variant,
                        payload: Some(payload),
                    }),
                    _ => Err(SerdeError("an enum variant name must be a str".into())),
                }
            }
            o => Err(SerdeError(format!(
                "expected an enum ('Variant' or {{'Variant': value}}), found {}",
                o.type_name()
            ))),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            // `bytes` read as a sequence of `u8` (a `Vec<u8>`, an array, a tuple of `u8`).
            Object::Bytes(b) => visitor.visit_seq(SeqDeserializer::new(b.into_iter())),
            o => ObjectDeserializer(o).deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple_struct map struct identifier
    }
}
