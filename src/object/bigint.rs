//! [`BigInt`]: Python's `int` beyond the range of `i64`.

use std::fmt;
use std::str::FromStr;

/// An integer of any size, for Python `int`s that do not fit in an `i64`.
///
/// It holds a value and converts it (decimal text, two's-complement bytes as pickle writes them,
/// the primitive integers); it does no arithmetic. [`Object::Int`](super::Object::Int) holds the
/// integers that fit in an `i64`; the conversions into [`Object`](super::Object) pick the variant.
///
/// # Examples
///
/// ```
/// use multiproc::object::BigInt;
///
/// let n: BigInt = "-123456789012345678901234567890".parse().unwrap();
/// assert_eq!(n.to_string(), "-123456789012345678901234567890");
/// assert_eq!(BigInt::from(u64::MAX).to_signed_bytes_le(), [0xff; 8].iter().copied().chain([0]).collect::<Vec<u8>>());
/// assert_eq!(BigInt::from(-1i64).to_i64(), Some(-1));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BigInt {
    /// Magnitude in base 2^32, least significant limb first, without high zero limbs (zero is
    /// empty).
    mag: Box<[u32]>,
    /// Sign; never set for zero.
    negative: bool,
}

/// Why a text is not a decimal integer.
///
/// ```
/// use multiproc::object::BigInt;
/// assert_eq!("12a".parse::<BigInt>().unwrap_err().to_string(), "invalid decimal integer literal");
/// let long = "9".repeat(5000);
/// assert_eq!(
///     long.parse::<BigInt>().unwrap_err().to_string(),
///     "decimal integer literal of 5000 digits exceeds the limit of 4300 digits",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBigIntError {
    /// The number of digits, when there are too many; `None` for a malformed literal.
    too_long: Option<usize>,
}

impl fmt::Display for ParseBigIntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.too_long {
            None => f.write_str("invalid decimal integer literal"),
            Some(n) => write!(
                f,
                "decimal integer literal of {n} digits exceeds the limit of {MAX_STR_DIGITS} digits"
            ),
        }
    }
}

impl std::error::Error for ParseBigIntError {}

/// The most decimal digits converted to or from text, as Python's default
/// `sys.get_int_max_str_digits()` (since CVE-2020-10735): decimal conversion costs time
/// quadratic in the length. [`BigInt`]'s `FromStr` refuses longer literals, and its `Display`
/// (hence an [`Object`](super::Object)'s `repr`) writes longer integers in hexadecimal
/// (`0x...`), which is exact, linear, and reads back with `str::parse::<Object>()` as in Python.
///
/// ```
/// use multiproc::object::{BigInt, MAX_STR_DIGITS};
/// let small: BigInt = "9".repeat(MAX_STR_DIGITS).parse().unwrap();
/// assert_eq!(small.to_string().len(), MAX_STR_DIGITS);
/// let huge = BigInt::from_signed_bytes_le(&[0xff; 2000].iter().copied().chain([0]).collect::<Vec<u8>>());
/// assert!(huge.to_string().starts_with("0xffff"));
/// ```
pub const MAX_STR_DIGITS: usize = 4300;

/// Bits of the smallest power of ten with more than [`MAX_STR_DIGITS`] digits, rounded down:
/// a magnitude of fewer bits has at most that many digits.
const MAX_STR_BITS: u64 = 14284;

impl BigInt {
    fn from_parts(negative: bool, mut mag: Vec<u32>) -> Self {
        while mag.last() == Some(&0) {
            mag.pop();
        }
        let negative = negative && !mag.is_empty();
        BigInt {
            mag: mag.into_boxed_slice(),
            negative,
        }
    }

    /// Is the value below zero?
    ///
    /// ```
    /// assert!(multiproc::object::BigInt::from(-5i64).is_negative());
    /// ```
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The number of bits of the magnitude (Python's `int.bit_length()`); zero has none.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from(u64::MAX).bits(), 64);
    /// assert_eq!(BigInt::from(-256i64).bits(), 9);
    /// assert_eq!(BigInt::default().bits(), 0);
    /// ```
    pub fn bits(&self) -> u64 {
        match self.mag.last() {
            None => 0,
            Some(top) => (self.mag.len() as u64) * 32 - u64::from(top.leading_zeros()),
        }
    }

    /// Bytes of the magnitude in memory.
    #[cfg(feature = "python")]
    pub(crate) fn byte_len(&self) -> usize {
        self.mag.len() * 4
    }

    /// Reads the digits of a power-of-two base (`bits_per_digit` 1, 3 or 4: binary, octal,
    /// hexadecimal), most significant first, in linear time. `None` for a digit out of range.
    pub(crate) fn from_pow2_digits(
        negative: bool,
        digits: &str,
        bits_per_digit: u32,
    ) -> Option<Self> {
        let radix = 1u32 << bits_per_digit;
        let mut mag: Vec<u32> = vec![0; (digits.len() * bits_per_digit as usize).div_ceil(32)];
        for (i, c) in digits.bytes().rev().enumerate() {
            let d = char::from(c).to_digit(radix)?;
            let bit = i * bits_per_digit as usize;
            let (limb, shift) = (bit / 32, bit % 32);
            let wide = u64::from(d) << shift;
            mag[limb] |= wide as u32;
            if wide >> 32 != 0 {
                mag[limb + 1] |= (wide >> 32) as u32;
            }
        }
        Some(Self::from_parts(negative, mag))
    }

    /// Writes the magnitude in hexadecimal, `0x` first (linear in the size).
    fn write_hex(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str("0x")?;
        let mut limbs = self.mag.iter().rev();
        if let Some(top) = limbs.next() {
            write!(f, "{top:x}")?;
        }
        for limb in limbs {
            write!(f, "{limb:08x}")?;
        }
        Ok(())
    }

    /// Is the value zero?
    ///
    /// ```
    /// assert!(multiproc::object::BigInt::default().is_zero());
    /// ```
    pub fn is_zero(&self) -> bool {
        self.mag.is_empty()
    }

    /// Reads a little-endian two's-complement integer (the payload of pickle's `LONG1`/`LONG4`,
    /// Python's `int.from_bytes(b, 'little', signed=True)`); empty input is zero.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from_signed_bytes_le(&[0xff]).to_i64(), Some(-1));
    /// assert_eq!(BigInt::from_signed_bytes_le(&[0x80, 0x00]).to_i64(), Some(128));
    /// ```
    pub fn from_signed_bytes_le(bytes: &[u8]) -> Self {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut mag = vec![0u32; bytes.len().div_ceil(4)];
        for (i, b) in bytes.iter().enumerate() {
            mag[i / 4] |= u32::from(*b) << (8 * (i % 4));
        }
        if negative {
            // Sign-extend the top limb, then negate: the magnitude is !x + 1.
            let used = bytes.len() % 4;
            if let (1..=3, Some(top)) = (used, mag.last_mut()) {
                *top |= u32::MAX << (8 * used);
            }
            let mut carry = true;
            for limb in &mut mag {
                let (v, c) = (!*limb).overflowing_add(u32::from(carry));
                *limb = v;
                carry = c;
            }
        }
        Self::from_parts(negative, mag)
    }

    /// Writes the value as the shortest little-endian two's-complement bytes (Python's
    /// `encode_long` in pickle); zero is empty.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from(-256i64).to_signed_bytes_le(), [0x00, 0xff]);
    /// assert_eq!(BigInt::from(255i64).to_signed_bytes_le(), [0xff, 0x00]);
    /// ```
    pub fn to_signed_bytes_le(&self) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.mag.iter().flat_map(|l| l.to_le_bytes()).collect();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        if bytes.is_empty() {
            return bytes;
        }
        if self.negative {
            let mut carry = true;
            for b in &mut bytes {
                let (v, c) = (!*b).overflowing_add(u8::from(carry));
                *b = v;
                carry = c;
            }
            if bytes.last().is_some_and(|b| b & 0x80 == 0) {
                bytes.push(0xff);
            }
        } else if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            bytes.push(0);
        }
        bytes
    }

    /// The magnitude as a `u128`, if it fits.
    fn mag_u128(&self) -> Option<u128> {
        if self.mag.len() > 4 {
            return None;
        }
        Some(
            self.mag
                .iter()
                .rev()
                .fold(0u128, |acc, l| (acc << 32) | u128::from(*l)),
        )
    }

    /// The value as an `i64`, if it fits.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from(i64::MIN).to_i64(), Some(i64::MIN));
    /// assert_eq!(BigInt::from(u64::MAX).to_i64(), None);
    /// ```
    pub fn to_i64(&self) -> Option<i64> {
        self.to_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as an `i128`, if it fits.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from(i128::MIN).to_i128(), Some(i128::MIN));
    /// ```
    pub fn to_i128(&self) -> Option<i128> {
        let m = self.mag_u128()?;
        if self.negative {
            if m <= i128::MAX as u128 {
                Some(-(m as i128))
            } else if m == i128::MAX as u128 + 1 {
                Some(i128::MIN)
            } else {
                None
            }
        } else {
            i128::try_from(m).ok()
        }
    }

    /// The value as a `u128`, if it fits.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from(u128::MAX).to_u128(), Some(u128::MAX));
    /// assert_eq!(BigInt::from(-1i64).to_u128(), None);
    /// ```
    pub fn to_u128(&self) -> Option<u128> {
        if self.negative {
            return None;
        }
        self.mag_u128()
    }

    /// The integer a float holds, if it is finite and has no fractional part (exact: no
    /// rounding, as Python's `int(x)` for such floats).
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!(BigInt::from_f64(1e20).unwrap().to_string(), "100000000000000000000");
    /// assert!(BigInt::from_f64(0.5).is_none());
    /// ```
    pub fn from_f64(x: f64) -> Option<Self> {
        if !x.is_finite() || x.fract() != 0.0 {
            return None;
        }
        let bits = x.to_bits();
        let negative = bits >> 63 == 1;
        let exp = ((bits >> 52) & 0x7ff) as i32;
        if exp == 0 {
            // Zero (subnormals are fractional and excluded above).
            return Some(BigInt::default());
        }
        let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        let shift = exp - 1075; // value = mantissa * 2^shift
        let mut mag: Vec<u32> = Vec::new();
        if shift <= 0 {
            let v = mantissa >> (-shift);
            mag.extend([v as u32, (v >> 32) as u32]);
        } else {
            let shift = shift as usize;
            let limbs = shift / 32;
            let bitshift = shift % 32;
            mag.resize(limbs, 0);
            let v = u128::from(mantissa) << bitshift;
            mag.extend([v as u32, (v >> 32) as u32, (v >> 64) as u32]);
        }
        Some(Self::from_parts(negative, mag))
    }

    /// Divides the magnitude in place by `d`, returning the remainder.
    fn divmod_small(mag: &mut [u32], d: u32) -> u32 {
        let mut rem: u64 = 0;
        for limb in mag.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        rem as u32
    }
}

impl std::ops::Neg for BigInt {
    type Output = BigInt;

    /// The opposite value.
    ///
    /// ```
    /// use multiproc::object::BigInt;
    /// assert_eq!((-BigInt::from(u64::MAX)).to_string(), "-18446744073709551615");
    /// ```
    fn neg(mut self) -> BigInt {
        self.negative = !self.negative && !self.mag.is_empty();
        self
    }
}

impl Ord for BigInt {
    /// Numeric order.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let magnitude = || {
            self.mag
                .len()
                .cmp(&other.mag.len())
                .then_with(|| self.mag.iter().rev().cmp(other.mag.iter().rev()))
        };
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(),
            (true, true) => magnitude().reverse(),
        }
    }
}

impl PartialOrd for BigInt {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BigInt {
    /// Decimal, as Python's `repr(int)`, up to [`MAX_STR_DIGITS`] digits; hexadecimal (`0x...`)
    /// beyond, where Python's `repr` would raise `ValueError`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.to_i128() {
            return write!(f, "{v}");
        }
        if self.bits() > MAX_STR_BITS + 1 {
            return self.write_hex(f);
        }
        const CHUNK: u32 = 1_000_000_000;
        let mut mag = self.mag.to_vec();
        let mut chunks = Vec::new();
        while !mag.is_empty() {
            chunks.push(Self::divmod_small(&mut mag, CHUNK));
            while mag.last() == Some(&0) {
                mag.pop();
            }
        }
        // Digits: nine per chunk below the first, which has at least one.
        let first_digits = chunks
            .last()
            .map_or(1, |c| c.checked_ilog10().unwrap_or(0) + 1);
        if (chunks.len() - 1) * 9 + first_digits as usize > MAX_STR_DIGITS {
            return self.write_hex(f);
        }
        if self.negative {
            f.write_str("-")?;
        }
        let mut iter = chunks.iter().rev();
        if let Some(first) = iter.next() {
            write!(f, "{first}")?;
        }
        for c in iter {
            write!(f, "{c:09}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BigInt({self})")
    }
}

impl FromStr for BigInt {
    type Err = ParseBigIntError;

    /// Parses an optional sign and decimal digits (no spaces, no underscores), at most
    /// [`MAX_STR_DIGITS`] of them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, digits) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseBigIntError { too_long: None });
        }
        if digits.len() > MAX_STR_DIGITS {
            return Err(ParseBigIntError {
                too_long: Some(digits.len()),
            });
        }
        let mut mag: Vec<u32> = Vec::new();
        for chunk in digits.as_bytes().chunks(9) {
            let mut mul: u64 = 1;
            let mut add: u64 = 0;
            for b in chunk {
                mul *= 10;
                add = add * 10 + u64::from(b - b'0');
            }
            let mut carry = add;
            for limb in &mut mag {
                let v = u64::from(*limb) * mul + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry != 0 {
                mag.push(carry as u32);
            }
        }
        Ok(Self::from_parts(negative, mag))
    }
}

impl From<u128> for BigInt {
    fn from(v: u128) -> Self {
        Self::from_parts(
            false,
            vec![
                v as u32,
                (v >> 32) as u32,
                (v >> 64) as u32,
                (v >> 96) as u32,
            ],
        )
    }
}

impl From<i128> for BigInt {
    fn from(v: i128) -> Self {
        let mut b = Self::from(v.unsigned_abs());
        b.negative = v < 0;
        b
    }
}

impl From<i64> for BigInt {
    fn from(v: i64) -> Self {
        Self::from(i128::from(v))
    }
}

impl From<u64> for BigInt {
    fn from(v: u64) -> Self {
        Self::from(u128::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_for_edge_values() {
        for v in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            -256,
            i64::MAX as i128,
            i64::MIN as i128,
            u64::MAX as i128,
            i128::MAX,
            i128::MIN,
        ] {
            let b = BigInt::from(v);
            let bytes = b.to_signed_bytes_le();
            let mut expected: Vec<u8> = v.to_le_bytes().to_vec();
            // Python's minimal encoding: drop redundant sign bytes.
            while expected.len() > 1 {
                let n = expected.len();
                let redundant = (expected[n - 1] == 0 && expected[n - 2] & 0x80 == 0)
                    || (expected[n - 1] == 0xff && expected[n - 2] & 0x80 != 0);
                if !redundant {
                    break;
                }
                expected.pop();
            }
            if v == 0 {
                expected.clear();
            }
            assert_eq!(bytes, expected, "{v}");
            assert_eq!(BigInt::from_signed_bytes_le(&bytes).to_i128(), Some(v));
            assert_eq!(b.to_string(), v.to_string());
            assert_eq!(v.to_string().parse::<BigInt>().unwrap(), b);
        }
    }

    #[test]
    fn decimal_round_trip_of_huge_values() {
        let s = format!("-{}", "9876543210".repeat(20));
        let b: BigInt = s.parse().unwrap();
        assert_eq!(b.to_string(), s);
        assert_eq!(BigInt::from_signed_bytes_le(&b.to_signed_bytes_le()), b);
        assert_eq!("000123".parse::<BigInt>().unwrap().to_string(), "123");
        assert_eq!("-0".parse::<BigInt>().unwrap().to_string(), "0");
        assert!("".parse::<BigInt>().is_err());
        assert!("-".parse::<BigInt>().is_err());
        assert!("12a".parse::<BigInt>().is_err());
    }

    #[test]
    fn order_is_numeric() {
        let mut values: Vec<BigInt> = [
            "-100000000000000000000000",
            "-18446744073709551616",
            "-1",
            "0",
            "1",
            "4294967296",
            "18446744073709551616",
            "100000000000000000000000",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let sorted = values.clone();
        values.reverse();
        values.sort();
        assert_eq!(values, sorted);
    }

    #[test]
    fn floats_convert_exactly() {
        assert_eq!(BigInt::from_f64(-0.0).unwrap().to_string(), "0");
        assert_eq!(BigInt::from_f64(3.0).unwrap().to_string(), "3");
        assert_eq!(
            BigInt::from_f64(2f64.powi(64)).unwrap().to_string(),
            "18446744073709551616"
        );
        assert_eq!(
            BigInt::from_f64(-1e30).unwrap().to_string(),
            "-1000000000000000019884624838656"
        );
        assert_eq!(BigInt::from_f64(f64::MAX).unwrap().to_string().len(), 309);
        assert!(BigInt::from_f64(f64::NAN).is_none());
        assert!(BigInt::from_f64(f64::INFINITY).is_none());
    }
}
