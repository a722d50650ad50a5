//! `Array`: Python's `managers.Array(typecode, sequence)`, which is an `array.array` held by
//! the server: numbers of one C type (or characters, for `'u'`), each checked on the way in
//! with the exception and message CPython's `array` module gives for it.

use super::exception::{Exception, ExceptionKind};
use super::referent::{Call, CallResult, Referent, not_exposed};
use crate::object::{Object, Slice};

/// The type codes, in the order Python's error message lists them.
const CODES: &str = "bBuhHiIlLqQfd";

/// A managed `array.array`.
pub(crate) struct Array {
    code: char,
    /// Each item already of the code's kind: `Int` (or `BigInt` above `i64`, for `'Q'`/`'L'`),
    /// `Float` (rounded to `f32` for `'f'`), or a one-character `Str` for `'u'`.
    items: Vec<Object>,
}

impl Array {
    /// `Array(typecode, sequence, lock=True)`; `lock` is accepted and ignored, as by Python's
    /// manager.
    pub fn create(mut call: Call) -> Result<Array, Exception> {
        call.take_kwarg("lock");
        let mut args = call.take(2, 3)?.into_iter();
        let (typecode, sequence) = (args.next(), args.next());
        let code = match typecode {
            Some(Object::Str(s)) if s.chars().count() == 1 => s.chars().next().unwrap_or('?'),
            Some(Object::Str(_)) => {
                return Err(Exception::type_error(
                    "array() argument 1 must be a unicode character, not str",
                ));
            }
            other => {
                return Err(Exception::type_error(format!(
                    "array() argument 1 must be a unicode character, not {}",
                    other.map_or("NoneType", |o| o.type_name())
                )));
            }
        };
        // Python looks at a str initializer before the code itself.
        if code != 'u' && matches!(sequence, Some(Object::Str(_))) {
            return Err(Exception::type_error(format!(
                "cannot use a str to initialize an array with typecode '{code}'"
            )));
        }
        let items = super::referent::iterate(sequence.unwrap_or(Object::None))?;
        if !CODES.contains(code) {
            let list: Vec<String> = CODES.chars().map(String::from).collect();
            let (last, rest) = list.split_last().unwrap_or((&list[0], &[]));
            return Err(Exception::msg(
                ExceptionKind::ValueError,
                format!("bad typecode (must be {} or {last})", rest.join(", ")),
            ));
        }
        let items = items
            .into_iter()
            .map(|x| item(code, x))
            .collect::<Result<_, _>>()?;
        Ok(Array { code, items })
    }

    fn index(&self, i: &Object, what: &str) -> Result<usize, Exception> {
        let i = match i {
            Object::Bool(b) => i64::from(*b),
            Object::Int(i) => *i,
            Object::BigInt(_) => {
                return Err(Exception::msg(
                    ExceptionKind::IndexError,
                    "cannot fit 'int' into an index-sized integer",
                ));
            }
            _ => return Err(Exception::type_error("array indices must be integers")),
        };
        let len = self.items.len() as i64;
        let at = if i < 0 { i.saturating_add(len) } else { i };
        if (0..len).contains(&at) {
            Ok(at as usize)
        } else {
            Err(Exception::msg(ExceptionKind::IndexError, what.to_owned()))
        }
    }
}

impl Array {
    /// `a[s] = value`, where `value` is a list of items, the form an array takes
    /// here (Python's clients send an `array.array` of the same type code): each item is
    /// checked by type code first; a simple slice takes any number of items in place of the
    /// ones it names (the array grows or shrinks, as `array.array` does), an extended one
    /// exactly as many as it names, or none (which deletes them, as in CPython).
    fn set_slice(&mut self, s: &Slice, value: Object) -> Result<(), Exception> {
        // The items are checked first, as a Python client builds its array before it sends it;
        // then the slice, then the kind of value, in CPython's order.
        let new: Result<Vec<Object>, &str> = match value {
            Object::List(v) => v
                .into_iter()
                .map(|x| item(self.code, x))
                .collect::<Result<_, _>>()
                .map(Ok)?,
            other => Err(other.type_name()),
        };
        let len = self.items.len();
        let (_, _, step) = s.indices(len).map_err(super::slice::exception)?;
        let new = new.map_err(|kind| {
            Exception::type_error(format!(
                "can only assign array (not \"{kind}\") to array slice"
            ))
        })?;
        if new.is_empty() {
            // As CPython's array: no items in place of a slice, even an extended one, deletes it.
            return super::slice::delete(&mut self.items, s);
        }
        if step != 1 {
            let size = s.positions(len).map_err(super::slice::exception)?.len();
            if size != new.len() {
                return Err(Exception::msg(
                    ExceptionKind::ValueError,
                    format!(
                        "attempt to assign array of size {} to extended slice of size {size}",
                        new.len()
                    ),
                ));
            }
        }
        super::slice::set(&mut self.items, s, Object::List(new))
    }
}

/// `x` as an item of an array of type `code`, or the error Python raises for it.
fn item(code: char, x: Object) -> Result<Object, Exception> {
    match code {
        'u' => match x {
            Object::Str(s) if s.chars().count() == 1 => Ok(Object::Str(s)),
            _ => Err(Exception::type_error(
                "array item must be unicode character",
            )),
        },
        'f' | 'd' => {
            let v = real(&x)?;
            Ok(Object::Float(if code == 'f' {
                f64::from(v as f32)
            } else {
                v
            }))
        }
        _ => {
            let v = match &x {
                Object::Bool(b) => Some(i128::from(*b)),
                Object::Int(i) => Some(i128::from(*i)),
                Object::BigInt(b) => b.to_i128(),
                other => {
                    return Err(Exception::type_error(format!(
                        "'{}' object cannot be interpreted as an integer",
                        other.type_name()
                    )));
                }
            };
            let negative = match &x {
                Object::BigInt(b) => b.is_negative(),
                _ => v.is_some_and(|v| v < 0),
            };
            integer(code, v, negative)?;
            Ok(match v.and_then(|v| i64::try_from(v).ok()) {
                Some(v) => Object::Int(v),
                None => x,
            })
        }
    }
}

/// A number for `'f'`/`'d'`.
fn real(x: &Object) -> Result<f64, Exception> {
    match x {
        Object::Float(v) => Ok(*v),
        Object::Bool(b) => Ok(f64::from(u8::from(*b))),
        Object::Int(i) => Ok(*i as f64),
        Object::BigInt(b) => match b.to_i128() {
            Some(v) => Ok(v as f64),
            // Beyond `f64` (2^1024): Python's message; in between, the nearest power of two
            // times the leading bits is close enough for an `array` of doubles.
            None if b.bits() > 1024 => Err(Exception::msg(
                ExceptionKind::OverflowError,
                "int too large to convert to float",
            )),
            None => {
                let bytes = b.to_signed_bytes_le();
                let magnitude = bytes.iter().rev().fold(0.0f64, |acc, &byte| {
                    acc * 256.0 + f64::from(if b.is_negative() { !byte } else { byte })
                });
                Ok(if b.is_negative() {
                    -(magnitude + 1.0)
                } else {
                    magnitude
                })
            }
        },
        other => Err(Exception::type_error(format!(
            "must be real number, not {}",
            other.type_name()
        ))),
    }
}

/// Checks an integer for type `code` as CPython's `array` does, with its messages: `v` is
/// the value when it fits an `i128`, `negative` its sign.
fn integer(code: char, v: Option<i128>, negative: bool) -> Result<(), Exception> {
    let overflow = |m: &str| Err(Exception::msg(ExceptionKind::OverflowError, m.to_owned()));
    // The range checks of the C conversions CPython chains for each code, in order.
    let range = |v: i128, lo: i128, hi: i128, name: &str| -> Result<(), Exception> {
        if v < lo {
            overflow(&format!("{name} is less than minimum"))
        } else if v > hi {
            overflow(&format!("{name} is greater than maximum"))
        } else {
            Ok(())
        }
    };
    const LONG: (i128, i128) = (i64::MIN as i128, i64::MAX as i128);
    const INT: (i128, i128) = (i32::MIN as i128, i32::MAX as i128);
    const SHORT: (i128, i128) = (i16::MIN as i128, i16::MAX as i128);
    match code {
        'b' | 'B' | 'h' | 'H' | 'i' | 'l' => {
            let Some(v) = v.filter(|v| (LONG.0..=LONG.1).contains(v)) else {
                return overflow("Python int too large to convert to C long");
            };
            match code {
                'b' => {
                    range(v, SHORT.0, SHORT.1, "signed short integer")?;
                    range(v, -128, 127, "signed char")
                }
                'B' => range(v, 0, 255, "unsigned byte integer"),
                'h' => range(v, SHORT.0, SHORT.1, "signed short integer"),
                'H' => {
                    range(v, INT.0, INT.1, "signed integer")?;
                    range(v, 0, 65535, "unsigned short")
                }
                'i' => range(v, INT.0, INT.1, "signed integer"),
                _ => Ok(()),
            }
        }
        'I' | 'L' => {
            if negative {
                return overflow("can't convert negative value to unsigned int");
            }
            let Some(v) = v.filter(|&v| v <= u64::MAX as i128) else {
                return overflow("Python int too large to convert to C unsigned long");
            };
            if code == 'I' {
                range(v, 0, u32::MAX as i128, "unsigned int")
            } else {
                Ok(())
            }
        }
        'q' => match v {
            Some(v) if (LONG.0..=LONG.1).contains(&v) => Ok(()),
            _ => overflow("int too big to convert"),
        },
        _ => {
            // 'Q'
            if negative {
                return overflow("can't convert negative int to unsigned");
            }
            match v {
                Some(v) if v <= u64::MAX as i128 => Ok(()),
                _ => overflow("int too big to convert"),
            }
        }
    }
}

impl Referent for Array {
    fn typeid(&self) -> &'static str {
        "Array"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["__len__", "__getitem__", "__setitem__"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        Ok(match call.method.as_str() {
            "__len__" => {
                call.arity(0, 0)?;
                Object::from(self.items.len())
            }
            "__getitem__" => {
                let i = call.one()?;
                // A slice is a list of the items (Python's is an `array.array`, which has no
                // `Object` form).
                if let Object::Slice(s) = &i {
                    return Ok(super::slice::get(&self.items, s)?.into());
                }
                let at = self.index(&i, "array index out of range")?;
                self.items[at].clone()
            }
            "__setitem__" => {
                let (i, x) = call.two()?;
                if let Object::Slice(s) = &i {
                    self.set_slice(s, x)?;
                    return Ok(Object::None.into());
                }
                let at = self.index(&i, "array assignment index out of range")?;
                self.items[at] = item(self.code, x)?;
                Object::None
            }
            _ => return Err(not_exposed(self.typeid(), &call.method)),
        }
        .into())
    }

    fn repr(&self) -> String {
        if self.items.is_empty() {
            return format!("array('{}')", self.code);
        }
        if self.code == 'u' {
            let text: String = self
                .items
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect();
            return format!("array('u', {})", Object::Str(text));
        }
        format!(
            "array('{}', {})",
            self.code,
            Object::List(self.items.clone())
        )
    }

    /// A list of the items (Python's `_getvalue()` gives an `array.array`, which has no
    /// `Object` form).
    fn value(&self) -> Object {
        Object::List(self.items.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON: &str = r#"
import array, sys
for line in sys.stdin:
    code, value = line.rstrip('\n').split('\t')
    out = []
    try:
        a = array.array(code, eval(value))
        out.append(repr(a))
        a[-1] = a[0]
        out.append(repr(a[-1]))
        a[len(a)] = a[0]
        out.append('no error')
    except Exception as e:
        out.append(type(e).__name__ + ': ' + str(e))
    print(' | '.join(out))
"#;

    /// What our array gives for the same steps as the Python side above.
    fn ours(code: &str, value: Object) -> String {
        use super::super::referent::Outcome;
        let mut out = Vec::new();
        let err = |e: Exception| format!("{}: {e}", e.kind().python_name().1);
        let steps = |out: &mut Vec<String>| -> Result<(), Exception> {
            let mut a = Array::create(Call::new("Array", vec![code.into(), value]))?;
            out.push(a.repr());
            let Outcome::Value(first) = a.call(Call::new("__getitem__", vec![0.into()]))? else {
                panic!("not a value")
            };
            a.call(Call::new("__setitem__", vec![(-1).into(), first.clone()]))?;
            let Outcome::Value(last) = a.call(Call::new("__getitem__", vec![(-1).into()]))? else {
                panic!("not a value")
            };
            out.push(last.to_string());
            let len = a.items.len();
            a.call(Call::new("__setitem__", vec![len.into(), first]))?;
            out.push("no error".into());
            Ok(())
        };
        if let Err(e) = steps(&mut out) {
            out.push(err(e));
        }
        out.join(" | ")
    }

    #[test]
    fn arrays_check_and_print_their_items_as_pythons() {
        let values = [
            "[2**70]",
            "[-2**70]",
            "[2**64]",
            "[2**64 - 1]",
            "[2**63]",
            "[-2**63]",
            "[2**63 - 1]",
            "[2**32]",
            "[2**31]",
            "[-2**31 - 1]",
            "[65536]",
            "[65535]",
            "[32768]",
            "[-32769]",
            "[256]",
            "[255]",
            "[128]",
            "[-129]",
            "[-1]",
            "[0, 1, 2]",
            "[True]",
            "[1.5]",
            "['x']",
            "[None]",
            "[0.1, 1e300, -2.5]",
            "[2**1100]",
            "[]",
            "'ab'",
            "['a', 'bc']",
            "5",
        ];
        let mut script = String::new();
        let mut cases = Vec::new();
        for code in CODES
            .chars()
            .map(String::from)
            .chain(["z".into(), "ii".into()])
        {
            for v in values {
                script += &format!("{code}\t{v}\n");
                cases.push((code.clone(), v));
            }
        }
        let theirs = crate::testing::python_output(PYTHON, &script);
        assert_eq!(theirs.lines().count(), cases.len());
        for ((code, v), want) in cases.iter().zip(theirs.lines()) {
            let value: Object = v
                .replace("2**1100", &format!("0x1{}", "0".repeat(275)))
                .replace("2**70 - 1", &((1u128 << 70) - 1).to_string())
                .replace("2**70", &(1u128 << 70).to_string())
                .replace("2**64 - 1", &u64::MAX.to_string())
                .replace("2**64", &(1u128 << 64).to_string())
                .replace("-2**63", &i64::MIN.to_string())
                .replace("2**63 - 1", &i64::MAX.to_string())
                .replace("2**63", &(1u128 << 63).to_string())
                .replace("-2**31 - 1", &(-(1i64 << 31) - 1).to_string())
                .replace("2**32", &(1u64 << 32).to_string())
                .replace("2**31", &(1u64 << 31).to_string())
                .parse()
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            // Python 3.13 lists the new code 'w' among the valid ones.
            let want = want.replace("u, w, h", "u, h");
            assert_eq!(ours(code, value), want, "array({code:?}, {v})");
        }
    }

    const PYTHON_SLICES: &str = r#"
import array, sys
for line in sys.stdin:
    code, init, sl, value = line.rstrip('\n').split('\t')
    a = array.array(code, eval(init))
    s = eval('slice(' + sl + ')')
    out = []
    try:
        out.append(repr(a[s].tolist()))
    except Exception as e:
        out.append(type(e).__name__ + ': ' + str(e))
    try:
        v = eval(value)
        a[s] = array.array(code, v) if isinstance(v, list) else v
        out.append(repr(a.tolist()))
    except Exception as e:
        out.append(type(e).__name__ + ': ' + str(e))
    print(' | '.join(out))
"#;

    /// What our array gives for the steps of the Python side above: the slice read, then
    /// assigned (a list standing for Python's `array.array` of the same code).
    fn ours_sliced(code: &str, init: Object, s: Slice, value: Object) -> String {
        use super::super::referent::Outcome;
        let err = |e: Exception| format!("{}: {e}", e.kind().python_name().1);
        let mut a = Array::create(Call::new("Array", vec![code.into(), init])).unwrap();
        let got = match a.call(Call::new("__getitem__", vec![s.clone().into()])) {
            Ok(Outcome::Value(v)) => v.to_string(),
            Ok(_) => panic!("not a value"),
            Err(e) => err(e),
        };
        let set = match a.call(Call::new("__setitem__", vec![s.into(), value])) {
            Ok(_) => Object::List(a.items.clone()).to_string(),
            Err(e) => err(e),
        };
        format!("{got} | {set}")
    }

    #[test]
    fn array_slices_read_and_assign_as_pythons() {
        let slices = [
            "None, None, -1",
            "None, None, None",
            "1, 3, None",
            "None, None, 2",
            "3, 1, None",
            "None, None, 0",
            "-2, None, None",
            "-100, 100, None",
            "4, 0, -2",
            "'a', None, None",
        ];
        let numbers = ["[9, 8]", "[]", "[300]", "[1.5]", "5", "[7, 7, 7]", "(1, 2)"];
        let chars = [
            "['x', 'y']",
            "[]",
            "['xy']",
            "[1]",
            "'z'",
            "['p', 'q', 'r']",
        ];
        let arrays = [
            ("i", "[1, 2, 3, 4, 5]", &numbers[..]),
            ("B", "[1, 2, 3, 4, 5]", &numbers[..]),
            ("d", "[0.5, 1.5, 2.5, 3.5]", &numbers[..]),
            ("u", "'abcde'", &chars[..]),
        ];
        let mut script = String::new();
        let mut cases = Vec::new();
        for (code, init, values) in arrays {
            for sl in slices {
                for v in values.iter() {
                    script += &format!("{code}\t{init}\t{sl}\t{v}\n");
                    cases.push((code, init, sl, *v));
                }
            }
        }
        let theirs = crate::testing::python_output(PYTHON_SLICES, &script);
        assert_eq!(theirs.lines().count(), cases.len());
        for ((code, init, sl, v), want) in cases.into_iter().zip(theirs.lines()) {
            let parse = |t: &str| -> Object { t.parse().unwrap_or_else(|e| panic!("{t}: {e}")) };
            let parts: Vec<Object> = sl.split(", ").map(parse).collect();
            let s = Slice::of(parts[0].clone(), parts[1].clone(), parts[2].clone());
            let ours = ours_sliced(code, parse(init), s, parse(v));
            assert_eq!(ours, want, "array({code:?}, {init})[{sl}] = {v}");
        }
    }
}
