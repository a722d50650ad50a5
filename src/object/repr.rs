//! Python's `repr`: the `Display` of [`Object`], [`Dict`] and [`Set`].

use std::fmt::{self, Write};

use super::printable::NON_PRINTABLE;
use super::{Dict, Object, Set};

/// Python's `str.isprintable()` for one character.
fn is_printable(c: char) -> bool {
    let c = c as u32;
    NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// The quote Python picks: `"` if the text has a `'` and no `"`, else `'`.
fn pick_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double { '"' } else { '\'' }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `\x..`, `\u....` or `\U........` for a code point.
fn write_escape(f: &mut impl Write, prefix: u8, cp: u32, width: usize) -> fmt::Result {
    let mut buf = [0u8; 10];
    buf[0] = b'\\';
    buf[1] = prefix;
    for i in 0..width {
        buf[2 + i] = HEX[((cp >> (4 * (width - 1 - i))) & 0xf) as usize];
    }
    // The buffer holds ASCII only.
    f.write_str(std::str::from_utf8(&buf[..2 + width]).map_err(|_| fmt::Error)?)
}

/// `repr(str)`.
pub(crate) fn write_str(f: &mut impl Write, s: &str) -> fmt::Result {
    let quote = pick_quote(s.contains('\''), s.contains('"'));
    f.write_char(quote)?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let plain = if c.is_ascii() {
            c != quote && c != '\\' && (' '..'\x7f').contains(&c)
        } else {
            is_printable(c)
        };
        if plain {
            continue;
        }
        f.write_str(&s[start..i])?;
        start = i + c.len_utf8();
        match c {
            '\\' => f.write_str("\\\\")?,
            '\t' => f.write_str("\\t")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\'' => f.write_str("\\'")?,
            '"' => f.write_str("\\\"")?,
            c if (c as u32) < 0x100 => write_escape(f, b'x', c as u32, 2)?,
            c if (c as u32) < 0x10000 => write_escape(f, b'u', c as u32, 4)?,
            c => write_escape(f, b'U', c as u32, 8)?,
        }
    }
    f.write_str(&s[start..])?;
    f.write_char(quote)
}

/// `repr(bytes)`.
pub(crate) fn write_bytes(f: &mut impl Write, b: &[u8]) -> fmt::Result {
    let quote = pick_quote(b.contains(&b'\''), b.contains(&b'"'));
    f.write_char('b')?;
    f.write_char(quote)?;
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if (0x20..0x7f).contains(&c) && c != b'\\' && c != quote as u8 {
            continue;
        }
        // The run before `i` is printable ASCII.
        f.write_str(std::str::from_utf8(&b[start..i]).map_err(|_| fmt::Error)?)?;
        start = i + 1;
        match c {
            b'\\' => f.write_str("\\\\")?,
            b'\t' => f.write_str("\\t")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\'' => f.write_str("\\'")?,
            b'"' => f.write_str("\\\"")?,
            c => write_escape(f, b'x', u32::from(c), 2)?,
        }
    }
    f.write_str(std::str::from_utf8(&b[start..]).map_err(|_| fmt::Error)?)?;
    f.write_char(quote)
}

/// `repr(float)`: the shortest text that reads back to the same float, in Python's layout
/// (fixed notation for 1e-4 <= |x| < 1e16, else `d.ddde+XX`).
pub(crate) fn write_float(f: &mut impl Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        return f.write_str("nan");
    }
    if x.is_infinite() {
        return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    if x == 0.0 {
        return f.write_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
    }
    // Rust's `{:e}` without precision gives the shortest round-trip digits, as Python's repr.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Rust rounds a tie in the last digit up, Python (David Gay's dtoa) to even.
    if let Some(even) = tie_to_even(x.abs(), &digits, exp) {
        digits = even;
    }
    if x < 0.0 {
        f.write_char('-')?;
    }
    let decpt = exp + 1; // position of the decimal point relative to the digits
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            f.write_str("0.")?;
            for _ in 0..-decpt {
                f.write_char('0')?;
            }
            f.write_str(&digits)
        } else {
            let decpt = decpt as usize;
            if decpt >= digits.len() {
                f.write_str(&digits)?;
                for _ in digits.len()..decpt {
                    f.write_char('0')?;
                }
                f.write_str(".0")
            } else {
                f.write_str(&digits[..decpt])?;
                f.write_char('.')?;
                f.write_str(&digits[decpt..])
            }
        }
    } else {
        f.write_str(&digits[..1])?;
        if digits.len() > 1 {
            f.write_char('.')?;
            f.write_str(&digits[1..])?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(f, "e{sign}{:02}", exp.abs())
    }
}

/// When `x` lies exactly halfway between the shortest digits `digits` (scientific exponent
/// `exp`) and the same digits minus one in the last place, and the last digit is odd, returns
/// the even neighbour, which Python prints. Decided in exact integer arithmetic.
fn tie_to_even(x: f64, digits: &str, exp: i32) -> Option<String> {
    let last = *digits.as_bytes().last()?;
    if digits.len() < 16 || (last - b'0').is_multiple_of(2) {
        return None;
    }
    let s: u128 = digits.parse().ok()?;
    // x == (2s - 1) / 2 * 10^q ?
    let q = exp - (digits.len() as i32 - 1);
    let odd = 2 * s - 1;
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let (mut m, mut e) = if biased == 0 {
        (bits & ((1 << 52) - 1), -1074)
    } else {
        ((bits & ((1 << 52) - 1)) | (1 << 52), biased - 1075)
    };
    if m == 0 {
        return None;
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    // x = m * 2^e with m odd.
    let tie = if q >= 0 {
        // (2s-1) * 5^q * 2^(q-1): odd part (2s-1)*5^q, power q-1.
        let odd_part = 5u128.checked_pow(q as u32).and_then(|p| p.checked_mul(odd));
        e == q - 1 && odd_part == Some(u128::from(m))
    } else {
        // (2s-1) / (2 * 10^p) with p = -q: m * 2^(e+1+p) * 5^p == 2s-1.
        let p = -q;
        let lhs = 5u128
            .checked_pow(p as u32)
            .and_then(|f| f.checked_mul(u128::from(m)));
        e + 1 + p == 0 && lhs == Some(odd)
    };
    if !tie {
        return None;
    }
    let mut even = digits.as_bytes().to_vec();
    *even.last_mut()? -= 1;
    let even = String::from_utf8(even).ok()?;
    // Both neighbours are equally close; make sure the even one reads back as x too.
    let check = format!("{}.{}e{}", &even[..1], &even[1..], exp);
    (check.parse::<f64>().ok() == Some(x)).then_some(even)
}

/// `value` as `Display` writes it, cut after `max` characters (then `...`): what a message may
/// quote from a value of any size. Formatting stops at the cut, so the cost is bounded by
/// `max`, not by the value (a huge list or `int` is not printed in full first).
pub(crate) fn clipped(value: &dyn fmt::Display, max: usize) -> String {
    struct Limited {
        out: String,
        left: usize,
        cut: bool,
    }
    impl Write for Limited {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let n = s.chars().count();
            if n <= self.left {
                self.out.push_str(s);
                self.left -= n;
                return Ok(());
            }
            let end = s.char_indices().nth(self.left).map_or(s.len(), |(i, _)| i);
            self.out.push_str(&s[..end]);
            self.left = 0;
            self.cut = true;
            Err(fmt::Error)
        }
    }
    let mut w = Limited {
        out: String::new(),
        left: max,
        cut: false,
    };
    // An error is either the cut or the value's own; both end the text here.
    let _ = write!(w, "{value}");
    if w.cut {
        w.out.push_str("...");
    }
    w.out
}

fn write_seq<'a>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = &'a Object>,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        fmt::Display::fmt(item, f)?;
    }
    Ok(())
}

impl fmt::Display for Object {
    /// Python's `repr` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::None => f.write_str("None"),
            Object::Bool(true) => f.write_str("True"),
            Object::Bool(false) => f.write_str("False"),
            Object::Int(i) => write!(f, "{i}"),
            Object::BigInt(b) => write!(f, "{b}"),
            Object::Float(x) => write_float(f, *x),
            Object::Str(s) => write_str(f, s),
            Object::Bytes(b) => write_bytes(f, b),
            Object::List(items) => {
                f.write_char('[')?;
                write_seq(f, items.iter())?;
                f.write_char(']')
            }
            Object::Tuple(items) => {
                f.write_char('(')?;
                write_seq(f, items.iter())?;
                if items.len() == 1 {
                    f.write_char(',')?;
                }
                f.write_char(')')
            }
            Object::Dict(d) => fmt::Display::fmt(d, f),
            Object::Set(s) => fmt::Display::fmt(s, f),
            Object::FrozenSet(s) => {
                f.write_str("frozenset(")?;
                if !s.is_empty() {
                    fmt::Display::fmt(s, f)?;
                }
                f.write_char(')')
            }
            Object::Slice(s) => fmt::Display::fmt(s, f),
            Object::Proxy(p) => fmt::Display::fmt(p, f),
        }
    }
}

impl fmt::Display for Dict {
    /// Python's `repr`: `{k: v, ...}` in insertion order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v}")?;
        }
        f.write_char('}')
    }
}

impl fmt::Display for Set {
    /// Python's `repr`: `{a, b}` in insertion order, `set()` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("set()");
        }
        f.write_char('{')?;
        write_seq(f, self.iter())?;
        f.write_char('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(x: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, x).unwrap();
        s
    }

    #[test]
    fn floats_print_as_python() {
        let cases = [
            (0.25, "0.25"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (123456789.125, "123456789.125"),
            (1.5e300, "1.5e+300"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (1158718954304944.2, "1158718954304944.2"),
            (-1158718954304944.2, "-1158718954304944.2"),
        ];
        for (x, want) in cases {
            assert_eq!(float(x), want, "{x:?}");
        }
    }

    #[test]
    fn printable_table_spot_checks() {
        assert!(is_printable('a'));
        assert!(is_printable('沐'));
        assert!(is_printable('é'));
        assert!(!is_printable('\u{a0}'));
        assert!(!is_printable('\u{ad}'));
        assert!(!is_printable('\u{200b}'));
        assert!(!is_printable('\u{e000}'));
        assert!(!is_printable('\u{10ffff}'));
    }
}
