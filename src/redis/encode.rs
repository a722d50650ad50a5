//! How objects are stored: values (and a dict's keys as first inserted) in the crate's
//! postcard encoding of [`Object`], or in Python's pickle for Python readers; dict keys also in
//! a canonical form in which equal keys (`1`, `1.0`, `True`) are the same bytes.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::manager::{Exception, ManagerError, check_hashable};
use crate::object::{BigInt, Object};

/// How values are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Encoding {
    /// The crate's postcard encoding of [`Object`].
    #[default]
    Postcard,
    /// Python's pickle (protocol 4), which `pickle.loads` reads.
    #[cfg(feature = "python")]
    Pickle,
}

/// The stored bytes of a value.
pub(super) fn value(c: Encoding, o: &Object) -> Result<Vec<u8>, ManagerError> {
    match c {
        Encoding::Postcard => {
            let mut out = Vec::new();
            codec::encode_plain_into(o, &mut out)?;
            Ok(out)
        }
        #[cfg(feature = "python")]
        Encoding::Pickle => Ok(codec::pickle::dumps(o)),
    }
}

/// The value stored as `bytes` (written by any program: decoded with the codec's bounds).
pub(super) fn object(c: Encoding, bytes: &[u8]) -> Result<Object, ManagerError> {
    match c {
        Encoding::Postcard => Ok(codec::decode::<Object>(bytes, Vec::new())?),
        #[cfg(feature = "python")]
        Encoding::Pickle => codec::pickle::loads(bytes)
            .map_err(|e| ManagerError::Codec(codec::CodecError::Decode(e.to_string()))),
    }
}

/// The canonical bytes of a dict key: equal keys by Python's `==` give equal bytes, and
/// unequal keys different bytes. Unhashable keys are Python's `TypeError`.
pub(super) fn key(o: &Object) -> Result<Vec<u8>, Exception> {
    check_hashable(o)?;
    let mut out = Vec::new();
    canonical(o, &mut out);
    Ok(out)
}

/// 2^63 as a float: `-TWO_63 <= x < TWO_63` is exactly the range of `i64`.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

fn canonical(o: &Object, out: &mut Vec<u8>) {
    let big = |b: &BigInt, out: &mut Vec<u8>| match b.to_i64() {
        Some(i) => small(i, out),
        None => {
            out.push(b'B');
            out.extend(b.to_signed_bytes_le());
        }
    };
    match o {
        Object::None => out.push(b'N'),
        Object::Bool(b) => small(i64::from(*b), out),
        Object::Int(i) => small(*i, out),
        Object::BigInt(b) => big(b, out),
        Object::Float(x) if x.fract() == 0.0 && *x >= -TWO_63 && *x < TWO_63 => {
            small(*x as i64, out);
        }
        Object::Float(x) => match BigInt::from_f64(*x) {
            Some(b) => big(&b, out),
            None => {
                out.push(b'F');
                // NaN keys all equal each other, as in `Dict`.
                let bits = if x.is_nan() { f64::NAN } else { *x }.to_bits();
                out.extend(bits.to_be_bytes());
            }
        },
        Object::Str(s) => {
            out.push(b'S');
            out.extend(s.as_bytes());
        }
        Object::Bytes(b) => {
            out.push(b'Y');
            out.extend(b);
        }
        Object::Tuple(items) => {
            out.push(b'T');
            nested(items.iter(), out);
        }
        Object::FrozenSet(s) | Object::Set(s) => {
            // Order-independent: the members' canonical forms, sorted.
            let mut members: Vec<Vec<u8>> = s
                .iter()
                .map(|m| {
                    let mut b = Vec::new();
                    canonical(m, &mut b);
                    b
                })
                .collect();
            members.sort();
            out.push(b'Z');
            for m in members {
                out.extend(u64::try_from(m.len()).unwrap_or(u64::MAX).to_be_bytes());
                out.extend(m);
            }
        }
        // Unhashable: refused by `key` before this is reached.
        _ => out.push(b'?'),
    }
}

fn small(i: i64, out: &mut Vec<u8>) {
    out.push(b'I');
    out.extend(i.to_be_bytes());
}

/// Items one after another, each prefixed by its length, so that no two sequences share bytes.
fn nested<'a>(items: impl Iterator<Item = &'a Object>, out: &mut Vec<u8>) {
    for item in items {
        let mut b = Vec::new();
        canonical(item, &mut b);
        out.extend(u64::try_from(b.len()).unwrap_or(u64::MAX).to_be_bytes());
        out.extend(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    #[test]
    fn equal_keys_are_equal_bytes() {
        let k = |o: Object| key(&o).unwrap();
        assert_eq!(k(obj!(1)), k(obj!(1.0)));
        assert_eq!(k(obj!(1)), k(obj!(true)));
        assert_eq!(k(obj!((1, "a"))), k(obj!((1.0, "a"))));
        assert_eq!(k(Object::Float(f64::NAN)), k(Object::Float(-f64::NAN)));
        assert_eq!(
            k(Object::Float(1e20)),
            k(Object::from(100_000_000_000_000_000_000u128))
        );
        assert_ne!(k(obj!("1")), k(obj!(1)));
        assert_ne!(k(obj!("a")), k(Object::bytes(b"a")));
        assert_ne!(k(obj!((("a", "b"),))), k(obj!(("a", "b"))));
        assert_ne!(k(obj!(1.5)), k(obj!(1)));
        assert!(key(&obj!([1])).is_err());
    }
}
