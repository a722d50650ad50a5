//! postcard with the text of custom serde errors kept.
//!
//! postcard's error type drops the message of `Error::custom` (a failing `Serialize` or
//! `Deserialize` implementation, or serde's own "invalid value: …, expected …" reports) and
//! says only "Serde Serialization Error". Here serde runs through thin wrappers around
//! postcard's serializer and deserializer whose error type, [`Text`], keeps the message. Where
//! a `Text` must pass back through postcard (a value nested inside a postcard compound), its
//! message waits in a thread-local until the wrapper one level up takes it back. The wrappers
//! forward every call unchanged, so the bytes are postcard's own.

use std::cell::RefCell;
use std::fmt::{self, Display};

use postcard::ser_flavors::Flavor;
use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

/// An error with its message.
///
/// Boxed, so that it is one pointer wide: every `Result` on the decoder's hot path carries it.
#[derive(Debug)]
#[allow(clippy::box_collection)]
pub(crate) struct Text(pub(crate) Box<String>);

impl Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Text {}

impl ser::Error for Text {
    #[cold]
    fn custom<T: Display>(msg: T) -> Self {
        Text(Box::new(msg.to_string()))
    }
}

impl de::Error for Text {
    #[cold]
    fn custom<T: Display>(msg: T) -> Self {
        Text(Box::new(msg.to_string()))
    }
}

thread_local! {
    /// The message of a [`Text`] that had to travel through postcard's own error type.
    static PENDING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An error coming out of postcard: the message it carries for us, or its own text.
#[cold]
fn text<E: Display>(e: E) -> Text {
    Text(Box::new(
        PENDING
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| e.to_string()),
    ))
}

/// A [`Text`] going into postcard: its message waits for [`text`] one level up.
#[cold]
fn stash(t: Text) -> String {
    let copy = (*t.0).clone();
    PENDING.with(|p| *p.borrow_mut() = Some(*t.0));
    copy
}

#[cold]
fn through<E: ser::Error>(t: Text) -> E {
    E::custom(stash(t))
}

#[cold]
fn through_de<E: de::Error>(t: Text) -> E {
    E::custom(stash(t))
}

/// postcard's output into a `Vec`, as its `ExtendFlavor`, but with the short runs postcard
/// writes most (a varint: 1 to 10 bytes) appended as constant-length copies: a copy of a
/// length known only at run time is a call to `memcpy`, which cost more than the encoding
/// itself for a sequence of small integers.
struct VecOut(Vec<u8>);

impl Flavor for VecOut {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let v = &mut self.0;
        match *data {
            [a] => v.push(a),
            [a, b] => v.extend_from_slice(&[a, b]),
            [a, b, c] => v.extend_from_slice(&[a, b, c]),
            [a, b, c, d] => v.extend_from_slice(&[a, b, c, d]),
            [a, b, c, d, e] => v.extend_from_slice(&[a, b, c, d, e]),
            _ => v.extend_from_slice(data),
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// `postcard::to_extend`, keeping error messages.
pub(crate) fn to_extend<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Result<Vec<u8>, Text> {
    PENDING.with(|p| p.borrow_mut().take());
    let mut ser = postcard::Serializer {
        output: VecOut(out),
    };
    value.serialize(Keep(&mut ser))?;
    ser.output.finalize().map_err(text)
}

/// `postcard::take_from_bytes`, keeping error messages.
pub(crate) fn take_from_bytes<'a, T: de::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<(T, &'a [u8]), Text> {
    PENDING.with(|p| p.borrow_mut().take());
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(Keep(&mut de))?;
    Ok((value, de.finalize().map_err(text)?))
}

/// A serializer, deserializer, visitor, seed or access of postcard's, wrapped.
struct Keep<X>(X);

/// A value serialized through the wrapper.
struct KeepValue<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for KeepValue<'_, T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Keep(s)).map_err(through)
    }
}

macro_rules! forward_ser {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name(self, $($arg: $ty),*) -> Result<Self::Ok, Text> {
            self.0.$name($($arg),*).map_err(text)
        })*
    };
}

impl<S: ser::Serializer> ser::Serializer for Keep<S> {
    type Ok = S::Ok;
    type Error = Text;
    type SerializeSeq = Keep<S::SerializeSeq>;
    type SerializeTuple = Keep<S::SerializeTuple>;
    type SerializeTupleStruct = Keep<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Keep<S::SerializeTupleVariant>;
    type SerializeMap = Keep<S::SerializeMap>;
    type SerializeStruct = Keep<S::SerializeStruct>;
    type SerializeStructVariant = Keep<S::SerializeStructVariant>;

    forward_ser! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, Text> {
        self.0.serialize_some(&KeepValue(v)).map_err(text)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<S::Ok, Text> {
        self.0
            .serialize_newtype_struct(name, &KeepValue(v))
            .map_err(text)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, Text> {
        self.0
            .serialize_newtype_variant(name, index, variant, &KeepValue(v))
            .map_err(text)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Text> {
        self.0.serialize_seq(len).map(Keep).map_err(text)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Text> {
        self.0.serialize_tuple(len).map(Keep).map_err(text)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Text> {
        self.0
            .serialize_tuple_struct(name, len)
            .map(Keep)
            .map_err(text)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Text> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Keep)
            .map_err(text)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Text> {
        self.0.serialize_map(len).map(Keep).map_err(text)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Text> {
        self.0.serialize_struct(name, len).map(Keep).map_err(text)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Text> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Keep)
            .map_err(text)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_compound {
    ($trait:ident, $method:ident $(, $key:ident: $kty:ty)?) => {
        impl<S: ser::$trait> ser::$trait for Keep<S> {
            type Ok = S::Ok;
            type Error = Text;

            fn $method<T: Serialize + ?Sized>(&mut self, $($key: $kty,)? v: &T) -> Result<(), Text> {
                self.0.$method($($key,)? &KeepValue(v)).map_err(text)
            }

            fn end(self) -> Result<S::Ok, Text> {
                self.0.end().map_err(text)
            }
        }
    };
}

forward_compound!(SerializeSeq, serialize_element);
forward_compound!(SerializeTuple, serialize_element);
forward_compound!(SerializeTupleStruct, serialize_field);
forward_compound!(SerializeTupleVariant, serialize_field);
forward_compound!(SerializeStruct, serialize_field, key: &'static str);
forward_compound!(SerializeStructVariant, serialize_field, key: &'static str);

impl<S: ser::SerializeMap> ser::SerializeMap for Keep<S> {
    type Ok = S::Ok;
    type Error = Text;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Text> {
        self.0.serialize_key(&KeepValue(k)).map_err(text)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Text> {
        self.0.serialize_value(&KeepValue(v)).map_err(text)
    }

    fn end(self) -> Result<S::Ok, Text> {
        self.0.end().map_err(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Deserializing

macro_rules! forward_de {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Text> {
            self.0.$name($($arg,)* Keep(visitor)).map_err(text)
        })*
    };
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Keep<D> {
    type Error = Text;

    forward_de! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($name:ident($ty:ty);)*) => {
        $(fn $name<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$name::<Text>(v).map_err(through_de)
        })*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Keep<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none::<Text>().map_err(through_de)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit::<Text>().map_err(through_de)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Keep(d)).map_err(through_de)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(Keep(d)).map_err(through_de)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Keep(seq)).map_err(through_de)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Keep(map)).map_err(through_de)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Keep(data)).map_err(through_de)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Keep<S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Keep(d)).map_err(through_de)
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Keep<A> {
    type Error = Text;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Text> {
        self.0.next_element_seed(Keep(seed)).map_err(text)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Keep<A> {
    type Error = Text;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Text> {
        self.0.next_key_seed(Keep(seed)).map_err(text)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Text> {
        self.0.next_value_seed(Keep(seed)).map_err(text)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Keep<A> {
    type Error = Text;
    type Variant = Keep<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Text> {
        self.0
            .variant_seed(Keep(seed))
            .map(|(v, variant)| (v, Keep(variant)))
            .map_err(text)
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Keep<A> {
    type Error = Text;

    fn unit_variant(self) -> Result<(), Text> {
        self.0.unit_variant().map_err(text)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Text> {
        self.0.newtype_variant_seed(Keep(seed)).map_err(text)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Text> {
        self.0.tuple_variant(len, Keep(visitor)).map_err(text)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Text> {
        self.0.struct_variant(fields, Keep(visitor)).map_err(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Refuses to serialize, and to deserialize an odd number.
    #[derive(Debug)]
    struct Picky(u32);

    impl Serialize for Picky {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 == 13 {
                return Err(ser::Error::custom("13 is unlucky"));
            }
            s.serialize_u32(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Picky {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u32::deserialize(d)?;
            if n % 2 == 1 {
                return Err(de::Error::custom(format!("{n} is odd")));
            }
            Ok(Picky(n))
        }
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Nest {
        Deep(Vec<Option<(u8, Picky)>>),
    }

    #[test]
    fn the_bytes_are_postcards() {
        let v = (
            1u8,
            "two",
            vec![3u64, 4],
            Some(5i32),
            Nest::Deep(vec![None]),
        );
        let ours = to_extend(&v, Vec::new()).unwrap();
        assert_eq!(ours, postcard::to_allocvec(&v).unwrap());
        type Back = (u8, String, Vec<u64>, Option<i32>, Nest);
        let (back, rest): (Back, _) = take_from_bytes(&ours).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            (back.0, back.1.as_str(), back.2, back.3),
            (1, "two", vec![3, 4], Some(5))
        );
    }

    #[test]
    fn serialize_messages_survive_nesting() {
        let e = to_extend(&Picky(13), Vec::new()).unwrap_err();
        assert_eq!(*e.0, "13 is unlucky");
        let nested = Nest::Deep(vec![None, Some((1, Picky(13)))]);
        let e = to_extend(&nested, Vec::new()).unwrap_err();
        assert_eq!(*e.0, "13 is unlucky");
    }

    #[test]
    fn deserialize_messages_survive_nesting() {
        let bytes = postcard::to_allocvec(&7u32).unwrap();
        assert_eq!(
            take_from_bytes::<Picky>(&bytes).unwrap_err().0.as_str(),
            "7 is odd"
        );
        let bytes = postcard::to_allocvec(&(0u8, vec![Some((1u8, 9u32))])).unwrap();
        let e = take_from_bytes::<Nest>(&bytes).unwrap_err();
        assert_eq!(*e.0, "9 is odd");
    }

    #[test]
    fn serdes_own_reports_keep_their_text() {
        let bytes = postcard::to_allocvec(&5u8).unwrap();
        let e = take_from_bytes::<Nest>(&bytes).unwrap_err();
        assert!(e.0.contains("variant index"), "{}", e.0);
        let e = take_from_bytes::<u32>(&[]).unwrap_err();
        assert!(e.0.contains("end of buffer"), "{}", e.0);
    }

    #[test]
    fn a_stale_message_does_not_leak_into_the_next_error() {
        let _ = to_extend(&Picky(13), Vec::new());
        let e = take_from_bytes::<u32>(&[]).unwrap_err();
        assert!(!e.0.contains("unlucky"), "{}", e.0);
    }
}
