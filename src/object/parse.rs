//! `str::parse::<Object>()`: Python literals, the inverse of `Display`.

use std::str::FromStr;

use super::repr::clipped;
use super::{BigInt, Dict, MAX_DEPTH, Object, Set};

/// A text is not a Python literal of plain data.
///
/// # Examples
///
/// ```
/// let err = "[1, 2".parse::<multiproc::Object>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid literal at offset 5: expected ',' or ']'");
/// assert_eq!(err.offset(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid literal at offset {offset}: {reason}")]
pub struct ParseObjectError {
    offset: usize,
    reason: String,
}

impl ParseObjectError {
    /// Byte offset in the text where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl FromStr for Object {
    type Err = ParseObjectError;

    /// Reads a Python literal, as `ast.literal_eval` does for plain data: `None`, `True`,
    /// `False`, integers (`-12`, `1_000`, `0xff`, `0o17`, `0b101`, any size), floats (`1.5`,
    /// `1e+16`, and `inf`/`nan` as `repr` prints them), strings and bytes with Python's quotes
    /// and escapes, lists, tuples, dicts, sets, `set()` and `frozenset(...)`. Whatever
    /// `Display` prints reads back.
    ///
    /// # Errors
    ///
    /// [`ParseObjectError`] for anything else (names, calls, operators, unhashable keys, nesting
    /// deeper than [`MAX_DEPTH`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{obj, Object};
    ///
    /// let o: Object = "{1: '1', '2': 2, 0.25: None}".parse().unwrap();
    /// assert!(o.identical(&obj!({1: "1", "2": 2, 0.25: None})));
    /// let t: Object = "(b'\\x00', frozenset({1}), [-1e-05, inf])".parse().unwrap();
    /// assert_eq!(t.to_string(), "(b'\\x00', frozenset({1}), [-1e-05, inf])");
    /// ```
    fn from_str(s: &str) -> Result<Object, ParseObjectError> {
        let mut p = Parser {
            text: s,
            pos: 0,
            depth: 0,
        };
        let o = p.value()?;
        p.skip_space();
        if p.pos != s.len() {
            return p.fail("unexpected text after the value");
        }
        Ok(o)
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

type Res<T> = Result<T, ParseObjectError>;

impl Parser<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Res<T> {
        Err(ParseObjectError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Consumes `c` (after spaces) if it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// One value. The recursive path (a container holds values) goes through small frames
    /// only: each kind of literal is read by a function of its own, so that the deepest value
    /// accepted ([`MAX_DEPTH`]) fits a 2 MiB stack in debug builds too.
    fn value(&mut self) -> Res<Object> {
        self.skip_space();
        match self.peek() {
            Some('[') => self.nested(Self::list),
            Some('(') => self.nested(Self::tuple),
            Some('{') => self.nested(Self::brace),
            Some('\'' | '"') => self.strings(),
            Some('b' | 'B') if self.at_bytes() => self.byte_strings(),
            Some('-' | '+') => self.signed(),
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => self.name(),
            Some(_) => self.fail("expected a value"),
            None => self.fail("expected a value, found the end"),
        }
    }

    /// After `[`.
    fn list(&mut self) -> Res<Object> {
        self.pos += 1;
        let items = self.items(']')?.0;
        Ok(Object::List(items))
    }

    /// After `(`: a tuple, or a parenthesized value.
    fn tuple(&mut self) -> Res<Object> {
        self.pos += 1;
        let (mut items, comma) = self.items(')')?;
        if items.len() == 1 && !comma {
            return Ok(items.pop().unwrap_or_default());
        }
        Ok(Object::Tuple(items))
    }

    /// String literals; adjacent ones concatenate, as in Python.
    #[inline(never)]
    fn strings(&mut self) -> Res<Object> {
        let mut text = self.string()?;
        while {
            self.skip_space();
            matches!(self.peek(), Some('\'' | '"'))
        } {
            text.push_str(&self.string()?);
        }
        Ok(Object::Str(text))
    }

    /// Bytes literals, concatenated.
    #[inline(never)]
    fn byte_strings(&mut self) -> Res<Object> {
        let mut bytes = Vec::new();
        while {
            self.skip_space();
            self.at_bytes()
        } {
            self.pos += 1;
            bytes.extend(self.bytes()?);
        }
        Ok(Object::Bytes(bytes))
    }

    /// A number after its sign.
    #[inline(never)]
    fn signed(&mut self) -> Res<Object> {
        let negative = self.peek() == Some('-');
        self.pos += 1;
        self.skip_space();
        match self.number()? {
            Object::Int(i) if negative => Ok(match i.checked_neg() {
                Some(n) => Object::Int(n),
                None => Object::BigInt(-BigInt::from(i)),
            }),
            Object::BigInt(b) if negative => Ok(Object::from(-b)),
            Object::Float(x) if negative => Ok(Object::Float(-x)),
            o => Ok(o),
        }
    }

    /// Does a bytes literal (`b'` or `b"`) start here?
    fn at_bytes(&self) -> bool {
        let mut chars = self.rest().chars();
        matches!(chars.next(), Some('b' | 'B')) && matches!(chars.next(), Some('\'' | '"'))
    }

    fn nested(&mut self, f: fn(&mut Self) -> Res<Object>) -> Res<Object> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("containers nest deeper than {MAX_DEPTH} levels"));
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// Comma-separated values up to `close`; also tells whether a comma was seen.
    fn items(&mut self, close: char) -> Res<(Vec<Object>, bool)> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.eat(close) {
                return Ok((items, comma));
            }
            items.push(self.value()?);
            if self.eat(close) {
                return Ok((items, comma));
            }
            if !self.eat(',') {
                return self.fail(format!("expected ',' or '{close}'"));
            }
            comma = true;
        }
    }

    /// After `{`: a dict or a set.
    fn brace(&mut self) -> Res<Object> {
        self.pos += 1;
        if self.eat('}') {
            return Ok(Object::Dict(Dict::new()));
        }
        let first_at = self.pos;
        let first = self.value()?;
        if self.eat(':') {
            self.dict_rest(first, first_at)
        } else {
            self.set_rest(first, first_at)
        }
    }

    /// A dict after its first key and the `:`.
    fn dict_rest(&mut self, first: Object, first_at: usize) -> Res<Object> {
        let mut d = Dict::new();
        let mut key = first;
        let mut key_at = first_at;
        loop {
            let value = self.value()?;
            if let Err(e) = d.insert(key, value) {
                self.pos = key_at;
                return self.fail(e.to_string());
            }
            if self.eat('}') {
                return Ok(Object::Dict(d));
            }
            if !self.eat(',') {
                return self.fail("expected ',' or '}'");
            }
            if self.eat('}') {
                return Ok(Object::Dict(d));
            }
            self.skip_space();
            key_at = self.pos;
            key = self.value()?;
            if !self.eat(':') {
                return self.fail("expected ':'");
            }
        }
    }

    /// A set after its first element.
    fn set_rest(&mut self, first: Object, first_at: usize) -> Res<Object> {
        let mut items = vec![first];
        if !self.eat('}') {
            if !self.eat(',') {
                return self.fail("expected ',', ':' or '}'");
            }
            items.extend(self.items('}')?.0);
        }
        match Set::try_from_iter(items) {
            Ok(s) => Ok(Object::Set(s)),
            Err(e) => {
                self.pos = first_at;
                self.fail(e.to_string())
            }
        }
    }

    /// After `set` or `frozenset`: the call's parentheses and argument.
    fn set_call(&mut self, set: bool) -> Res<Object> {
        if !self.eat('(') {
            return self.fail("expected '('");
        }
        if self.eat(')') {
            return self.set_of(set, Object::Tuple(Vec::new()));
        }
        // `set({...})` is one level, as the set it reads; only a call around something else
        // (another call) counts a level of its own.
        self.skip_space();
        let arg = if matches!(self.peek(), Some('[' | '(' | '{')) {
            self.value()?
        } else {
            self.nested(Self::value)?
        };
        if !self.eat(')') {
            return self.fail("expected ')'");
        }
        self.set_of(set, arg)
    }

    /// `set(arg)` or `frozenset(arg)`, the argument read.
    #[inline(never)]
    fn set_of(&mut self, set: bool, arg: Object) -> Res<Object> {
        let items = match arg {
            Object::List(v) | Object::Tuple(v) => v,
            Object::Set(s) | Object::FrozenSet(s) => s.into_iter().collect(),
            Object::Dict(d) if d.is_empty() => Vec::new(),
            _ => {
                let name = if set { "set" } else { "frozenset" };
                return self.fail(format!("{name}() of something not a collection"));
            }
        };
        match Set::try_from_iter(items) {
            Ok(s) if set => Ok(Object::Set(s)),
            Ok(s) => Ok(Object::FrozenSet(s)),
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// `None`, `True`, `False`, `inf`, `nan`, `set()`, `frozenset(...)`.
    fn name(&mut self) -> Res<Object> {
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let name = &self.text[start..start + len];
        self.pos += len;
        match name {
            "None" => Ok(Object::None),
            "True" => Ok(Object::Bool(true)),
            "False" => Ok(Object::Bool(false)),
            "inf" => Ok(Object::Float(f64::INFINITY)),
            "nan" => Ok(Object::Float(f64::NAN)),
            "set" | "frozenset" => self.set_call(name == "set"),
            _ => {
                self.pos = start;
                self.fail(format!("unknown name {:?}", clipped(&name, 60)))
            }
        }
    }

    fn number(&mut self) -> Res<Object> {
        let start = self.pos;
        let text = self.text;
        let rest = &text[start..];
        if rest.starts_with("inf") || rest.starts_with("nan") {
            return self.name();
        }
        let radix = match rest.get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("0x") => 16,
            Some("0o") => 8,
            Some("0b") => 2,
            _ => 10,
        };
        if radix != 10 {
            self.pos += 2;
            let len = self
                .rest()
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(self.rest().len());
            let digits = self.rest()[..len].replace('_', "");
            self.pos += len;
            return parse_radix(&digits, radix).map_or_else(
                || {
                    self.pos = start;
                    self.fail("invalid integer literal")
                },
                Ok,
            );
        }
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_digit()
                    || c == '_'
                    || c == '.'
                    || c == 'e'
                    || c == 'E'
                    || ((c == '+' || c == '-')
                        && i > 0
                        && matches!(rest.as_bytes()[i - 1], b'e' | b'E')))
            })
            .map_or(rest.len(), |(i, _)| i);
        let literal = &rest[..len];
        let clean = literal.replace('_', "");
        self.pos += len;
        let bad = literal.starts_with('_')
            || literal.ends_with('_')
            || literal.contains("__")
            || literal.contains("_.")
            || literal.contains("._");
        if !bad && clean.bytes().all(|b| b.is_ascii_digit()) {
            if clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0') {
                self.pos = start;
                return self.fail("leading zeros in a decimal integer");
            }
            match clean.parse::<BigInt>() {
                Ok(b) => return Ok(Object::from(b)),
                Err(e) => {
                    self.pos = start;
                    return self.fail(e.to_string());
                }
            }
        } else if !bad
            && clean.bytes().any(|b| b.is_ascii_digit())
            && let Ok(x) = clean.parse::<f64>()
        {
            return Ok(Object::Float(x));
        }
        self.pos = start;
        self.fail(format!("invalid number {:?}", clipped(&literal, 60)))
    }

    /// The opening quote and the body of a string; returns the raw body and the quote.
    fn quoted(&mut self) -> Res<(usize, usize, char)> {
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => return self.fail("expected a quote"),
        };
        let triple: String = std::iter::repeat_n(quote, 3).collect();
        let long = self.rest().starts_with(&triple);
        let open = if long { 3 } else { 1 };
        self.pos += open;
        let body = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = body;
        loop {
            match bytes.get(i) {
                None => return self.fail("unterminated string"),
                Some(b'\\') => i += 2,
                Some(b'\n') if !long => {
                    self.pos = i;
                    return self.fail("newline in a string");
                }
                Some(&c) if c == quote as u8 => {
                    if !long || self.text[i..].starts_with(&triple) {
                        break;
                    }
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
        self.pos = i + open;
        Ok((body, i, quote))
    }

    fn string(&mut self) -> Res<String> {
        let (start, end, _) = self.quoted()?;
        let body = &self.text[start..end];
        let mut out = String::with_capacity(body.len());
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else {
                break;
            };
            let hex = |n: usize, chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
                let s: String = (0..n)
                    .filter_map(|_| chars.next().map(|(_, c)| c))
                    .collect();
                (s.len() == n)
                    .then(|| u32::from_str_radix(&s, 16).ok())
                    .flatten()
            };
            let code = match e {
                '\n' => continue,
                '\\' | '\'' | '"' => Some(e as u32),
                'n' => Some(10),
                't' => Some(9),
                'r' => Some(13),
                'a' => Some(7),
                'b' => Some(8),
                'f' => Some(12),
                'v' => Some(11),
                'x' => hex(2, &mut chars),
                'u' => hex(4, &mut chars),
                'U' => hex(8, &mut chars),
                '0'..='7' => Some(octal(e, &mut chars)),
                _ => {
                    out.push('\\');
                    out.push(e);
                    continue;
                }
            };
            match code.map(char::from_u32) {
                Some(Some(c)) => out.push(c),
                _ => {
                    self.pos = start + i;
                    return self.fail("invalid escape (or a lone surrogate) in a string");
                }
            }
        }
        Ok(out)
    }

    fn bytes(&mut self) -> Res<Vec<u8>> {
        let (start, end, _) = self.quoted()?;
        let body = &self.text[start..end];
        if !body.is_ascii() {
            self.pos = start;
            return self.fail("bytes can only contain ASCII literal characters");
        }
        let mut out = Vec::with_capacity(body.len());
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c as u8);
                continue;
            }
            let Some((_, e)) = chars.next() else {
                break;
            };
            let byte = match e {
                '\n' => continue,
                '\\' | '\'' | '"' => Some(e as u32),
                'n' => Some(10),
                't' => Some(9),
                'r' => Some(13),
                'a' => Some(7),
                'b' => Some(8),
                'f' => Some(12),
                'v' => Some(11),
                'x' => {
                    let s: String = (0..2)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    (s.len() == 2)
                        .then(|| u32::from_str_radix(&s, 16).ok())
                        .flatten()
                }
                '0'..='7' => Some(octal(e, &mut chars)),
                _ => {
                    out.extend([b'\\', e as u8]);
                    continue;
                }
            };
            match byte.and_then(|b| u8::try_from(b).ok()) {
                Some(b) => out.push(b),
                None => {
                    self.pos = start + i;
                    return self.fail("invalid escape in bytes");
                }
            }
        }
        Ok(out)
    }
}

/// Up to three octal digits, the first already read.
fn octal(first: char, chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> u32 {
    let mut v = first as u32 - '0' as u32;
    for _ in 0..2 {
        match chars.peek() {
            Some(&(_, c @ '0'..='7')) => {
                v = v * 8 + (c as u32 - '0' as u32);
                chars.next();
            }
            _ => break,
        }
    }
    v
}

/// Digits of base 2, 8 or 16 (linear time: no size limit, as in Python).
fn parse_radix(digits: &str, radix: u32) -> Option<Object> {
    if digits.is_empty() {
        return None;
    }
    if let Ok(v) = i64::from_str_radix(digits, radix) {
        return Some(Object::Int(v));
    }
    BigInt::from_pow2_digits(false, digits, radix.trailing_zeros()).map(Object::from)
}
