//! Python's `array.array` in a pickle, read as the list of its items: `array.array(typecode,
//! items)` (protocol 2) and `array._array_reconstructor(array.array, typecode, mformat,
//! bytes)` (protocol 3 and later), and `array.array(typecode, bytes)` (what a process that
//! imported `multiprocessing` sends for `a[1:3] = array('i', …)`: the items in the sender's
//! machine layout, read here as the little-endian layout of Linux on x86-64 and ARM64).
//! Nothing is called: the machine format code or the type code says how to read the bytes.

use std::mem::size_of;

use super::{Decoder, Global, Res};
use crate::object::Object;

/// `array.array` as a value (the first argument of `_array_reconstructor`).
pub(super) const ARRAY_MARK: &str = "\0array.array";

/// How the items of a machine format are read: CPython's `enum machine_format_code`.
#[derive(Clone, Copy)]
enum Format {
    Int {
        size: usize,
        signed: bool,
        big: bool,
    },
    Float {
        size: usize,
        big: bool,
    },
    Utf32 {
        big: bool,
    },
}

fn format(code: i64) -> Option<Format> {
    let int = |size, signed, big| Some(Format::Int { size, signed, big });
    match code {
        0 => int(1, false, false),
        1 => int(1, true, false),
        2..=13 => {
            let n = code - 2;
            let size = [2, 4, 8][(n / 4) as usize];
            int(size, n % 4 >= 2, n % 2 == 1)
        }
        14..=17 => Some(Format::Float {
            size: if code < 16 { 4 } else { 8 },
            big: code % 2 == 1,
        }),
        20 | 21 => Some(Format::Utf32 { big: code == 21 }),
        _ => None,
    }
}

/// The machine format of a type code on little-endian 64-bit Linux (CPython's native one).
fn native(typecode: &str) -> Option<Format> {
    let int = |size, signed| {
        Some(Format::Int {
            size,
            signed,
            big: false,
        })
    };
    match typecode {
        "b" => int(1, true),
        "B" => int(1, false),
        "h" => int(2, true),
        "H" => int(2, false),
        "i" => int(4, true),
        "I" => int(4, false),
        "l" | "q" => int(8, true),
        "L" | "Q" => int(8, false),
        "f" => Some(Format::Float {
            size: 4,
            big: false,
        }),
        "d" => Some(Format::Float {
            size: 8,
            big: false,
        }),
        "u" | "w" => Some(Format::Utf32 { big: false }),
        _ => None,
    }
}

fn item(f: Format, b: &[u8]) -> Option<Object> {
    let mut raw = [0u8; 8];
    let size = b.len();
    let big = match f {
        Format::Int { big, .. } | Format::Float { big, .. } | Format::Utf32 { big } => big,
    };
    if big {
        raw[..size].copy_from_slice(b);
        raw[..size].reverse();
    } else {
        raw[..size].copy_from_slice(b);
    }
    let unsigned = u64::from_le_bytes(raw);
    Some(match f {
        Format::Int { signed: false, .. } => Object::from(unsigned),
        Format::Int { signed: true, .. } => {
            let shift = 64 - 8 * size as u32;
            Object::Int(((unsigned << shift) as i64) >> shift)
        }
        Format::Float { size: 4, .. } => Object::Float(f32::from_bits(unsigned as u32).into()),
        Format::Float { .. } => Object::Float(f64::from_bits(unsigned)),
        Format::Utf32 { .. } => Object::from(char::from_u32(unsigned as u32)?),
    })
}

fn size(f: Format) -> usize {
    match f {
        Format::Int { size, .. } | Format::Float { size, .. } => size,
        Format::Utf32 { .. } => 4,
    }
}

impl Decoder<'_> {
    /// One of the two calls that make an `array.array`.
    pub(super) fn array_call(
        &mut self,
        at: usize,
        global: Global,
        args: &mut [Object],
    ) -> Res<Object> {
        match (global, args) {
            (Global::ArrayClass, [Object::Str(_)]) => Ok(Object::List(Vec::new())),
            (Global::ArrayClass, [Object::Str(_), Object::List(items)]) => {
                Ok(Object::List(std::mem::take(items)))
            }
            (Global::ArrayClass, [Object::Str(typecode), Object::Bytes(bytes)]) => {
                let Some(f) = native(typecode) else {
                    return self.invalid(at, "an array of an unknown type code");
                };
                self.array_items(at, f, bytes)
            }
            (
                Global::ArrayReconstructor,
                [
                    Object::Str(class),
                    Object::Str(_),
                    Object::Int(code),
                    Object::Bytes(bytes),
                ],
            ) if class == ARRAY_MARK => {
                let Some(f) = format(*code) else {
                    return self.invalid(at, format!("array machine format {code}"));
                };
                self.array_items(at, f, bytes)
            }
            _ => self.invalid(at, format!("unexpected arguments for {global:?}")),
        }
    }

    /// The items of an array in machine format `f`.
    fn array_items(&mut self, at: usize, f: Format, bytes: &[u8]) -> Res<Object> {
        if !bytes.len().is_multiple_of(size(f)) {
            return self.invalid(at, "array bytes not a whole number of items");
        }
        let n = bytes.len() / size(f);
        self.charge(n.saturating_mul(size_of::<Object>()))?;
        let items: Option<Vec<Object>> = bytes.chunks_exact(size(f)).map(|b| item(f, b)).collect();
        match items {
            Some(items) => Ok(Object::List(items)),
            None => self.invalid(at, "array of 'u' holds a value that is no character"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::pickle::loads;

    #[test]
    fn arrays_read_as_lists_of_their_items() {
        // Python 3.11's pickle.dumps(array('i', [1, -2]), 4) and the protocol 2 form.
        let p4 = b"\x80\x04\x95J\x00\x00\x00\x00\x00\x00\x00\x8c\x05array\x94\x8c\x14_array_reconstructor\x94\x93\x94(\x8c\x05array\x94\x8c\x05array\x94\x93\x94\x8c\x01i\x94K\x08C\x08\x01\x00\x00\x00\xfe\xff\xff\xff\x94t\x94R\x94.";
        assert_eq!(loads(p4).unwrap().to_string(), "[1, -2]");
        let p2 = b"\x80\x02carray\narray\nq\x00X\x01\x00\x00\x00iq\x01]q\x02(K\x01K\x02e\x86q\x03Rq\x04.";
        assert_eq!(loads(p2).unwrap().to_string(), "[1, 2]");
        let native = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05array\x94\x8c\x05array\x94\x93\x94\x8c\x01h\x94C\x04\xfe\xff\x05\x00\x94\x86\x94R\x94.";
        assert_eq!(loads(native).unwrap().to_string(), "[-2, 5]");
        // A manager client's request `a[1:2] = array('b', [-7, 8, 9])`.
        let req = b"\x80\x04\x95}\x00\x00\x00\x00\x00\x00\x00(\x8c\x027f\x94\x8c\x0b__setitem__\x94\x8c\x08builtins\x94\x8c\x05slice\x94\x93\x94K\x01K\x02N\x87\x94R\x94\x8c\x05array\x94\x8c\x14_array_reconstructor\x94\x93\x94(\x8c\x05array\x94\x8c\x05array\x94\x93\x94\x8c\x01b\x94K\x01C\x03\xf9\x08\t\x94t\x94R\x94\x86\x94}\x94t\x94.";
        assert_eq!(
            loads(req).unwrap().to_string(),
            "('7f', '__setitem__', (slice(1, 2, None), [-7, 8, 9]), {})"
        );
        // array.array alone, anywhere else, is a class as a value: refused.
        assert!(loads(b"\x80\x02carray\narray\nq\x00.").is_err());
    }
}
