//! Read-modify-write operations that run on the server in one step, where a proxy's
//! `d[k] += 1` is a get and a set with a race between them (the lost update of Python's
//! managers).

use std::cmp::Ordering;

use super::exception::{Exception, ExceptionKind};
use super::referent::{MAX_ITEMS_PER_CALL, iterate};
use crate::object::Object;

/// The operations of `update_with`, by name.
pub(crate) const OPERATIONS: &[&str] = &["add", "sub", "mul", "max", "min", "append", "extend"];

/// Python's `a + b` for numbers, strings, bytes, lists and tuples.
pub(crate) fn add(a: Object, b: Object) -> Result<Object, Exception> {
    arith(a, b, "+", i128::checked_add, |x, y| x + y)
}

fn unsupported(op: &str, a: &Object, b: &Object) -> Exception {
    Exception::type_error(format!(
        "unsupported operand type(s) for {op}: '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

/// An `int` operand as an `i128` (every `i64`, and the big ints that fit).
fn int(o: &Object) -> Option<i128> {
    match o {
        Object::Bool(b) => Some(i128::from(*b)),
        Object::Int(i) => Some(i128::from(*i)),
        Object::BigInt(b) => b.to_i128(),
        _ => None,
    }
}

fn float(o: &Object) -> Option<f64> {
    match o {
        Object::Float(x) => Some(*x),
        // Python converts an int to float for mixed arithmetic.
        _ => int(o).map(|i| i as f64),
    }
}

fn arith(
    a: Object,
    b: Object,
    op: &str,
    ints: fn(i128, i128) -> Option<i128>,
    floats: fn(f64, f64) -> f64,
) -> Result<Object, Exception> {
    let is_number = |o: &Object| matches!(o, Object::Bool(_) | Object::Int(_) | Object::BigInt(_));
    match (&a, &b) {
        (x, y) if is_number(x) && is_number(y) => {
            let (Some(x), Some(y)) = (int(x), int(y)) else {
                return Err(Exception::msg(
                    ExceptionKind::OverflowError,
                    "integers beyond 128 bits are not computed by the manager",
                ));
            };
            ints(x, y).map(Object::from).ok_or_else(|| {
                Exception::msg(
                    ExceptionKind::OverflowError,
                    "the result is beyond 128 bits",
                )
            })
        }
        (Object::Float(_), y) | (y, Object::Float(_)) if float(y).is_some() => Ok(Object::Float(
            floats(float(&a).expect("a number"), float(&b).expect("a number")),
        )),
        _ if op == "+" => concat(a, b),
        _ => Err(unsupported(op, &a, &b)),
    }
}

/// `a + b` for sequences of one kind.
fn concat(a: Object, b: Object) -> Result<Object, Exception> {
    let fits = |n: usize, m: usize| {
        if n.saturating_add(m) > MAX_ITEMS_PER_CALL * 16 {
            Err(Exception::msg(
                ExceptionKind::MemoryError,
                "the result would be too large for one call",
            ))
        } else {
            Ok(())
        }
    };
    Ok(match (a, b) {
        (Object::Str(mut x), Object::Str(y)) => {
            fits(x.len(), y.len())?;
            x.push_str(&y);
            Object::Str(x)
        }
        (Object::Bytes(mut x), Object::Bytes(y)) => {
            fits(x.len(), y.len())?;
            x.extend(y);
            Object::Bytes(x)
        }
        (Object::List(mut x), Object::List(y)) => {
            fits(x.len(), y.len())?;
            x.extend(y);
            Object::List(x)
        }
        (Object::Tuple(mut x), Object::Tuple(y)) => {
            fits(x.len(), y.len())?;
            x.extend(y);
            Object::Tuple(x)
        }
        (a, b) => return Err(unsupported("+", &a, &b)),
    })
}

/// The new value of `current` after `op` with `operand`. A missing `current` (a dict key not
/// yet set) starts from the operation's neutral value: `0` for `add` and `sub`, `1` for
/// `mul`, `[]` for `append` and `extend`, the operand for `max` and `min`.
pub(crate) fn apply(
    op: &str,
    current: Option<Object>,
    operand: Object,
) -> Result<Object, Exception> {
    let current = match (current, op) {
        (Some(c), _) => c,
        (None, "add" | "sub") => Object::Int(0),
        (None, "mul") => Object::Int(1),
        (None, "append" | "extend") => Object::List(Vec::new()),
        (None, "max" | "min") => return Ok(operand),
        (None, _) => Object::None,
    };
    match op {
        "add" => add(current, operand),
        "sub" => arith(current, operand, "-", i128::checked_sub, |x, y| x - y),
        "mul" => arith(current, operand, "*", i128::checked_mul, |x, y| x * y),
        "max" | "min" => {
            let want = if op == "max" {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            match operand.partial_cmp(&current) {
                Some(o) if o == want => Ok(operand),
                Some(_) => Ok(current),
                None => Err(Exception::type_error(format!(
                    "'{op}' cannot compare '{}' and '{}'",
                    operand.type_name(),
                    current.type_name()
                ))),
            }
        }
        "append" | "extend" => {
            let Object::List(mut items) = current else {
                return Err(Exception::type_error(format!(
                    "'{op}' needs a list, not {}",
                    current.type_name()
                )));
            };
            let more = if op == "append" {
                vec![operand]
            } else {
                iterate(operand)?
            };
            if items.len().saturating_add(more.len()) > MAX_ITEMS_PER_CALL * 16 {
                return Err(Exception::msg(
                    ExceptionKind::MemoryError,
                    "the result would be too large for one call",
                ));
            }
            items.extend(more);
            Ok(Object::List(items))
        }
        other => Err(Exception::msg(
            ExceptionKind::ValueError,
            format!("unknown operation {other:?}; the operations are {OPERATIONS:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    #[test]
    fn operations_follow_pythons_arithmetic() {
        let ok = |op, cur: Option<Object>, x: Object| apply(op, cur, x).unwrap().to_string();
        assert_eq!(ok("add", None, obj!(1)), "1");
        assert_eq!(
            ok("add", Some(obj!(i64::MAX)), obj!(1)),
            "9223372036854775808"
        );
        assert_eq!(ok("add", Some(obj!(true)), obj!(0.5)), "1.5");
        assert_eq!(ok("add", Some(obj!("ab")), obj!("c")), "'abc'");
        assert_eq!(ok("sub", None, obj!(2)), "-2");
        assert_eq!(ok("mul", Some(obj!(3)), obj!(2.0)), "6.0");
        assert_eq!(ok("max", Some(obj!(3)), obj!(7)), "7");
        assert_eq!(ok("min", Some(obj!(3)), obj!(7)), "3");
        assert_eq!(ok("max", None, obj!("x")), "'x'");
        assert_eq!(ok("append", None, obj!([1])), "[[1]]");
        assert_eq!(ok("extend", Some(obj!([0])), obj!((1, 2))), "[0, 1, 2]");
        let err = |op, cur: Option<Object>, x: Object| apply(op, cur, x).unwrap_err();
        assert_eq!(
            err("add", Some(obj!(1)), obj!("a")).to_string(),
            "unsupported operand type(s) for +: 'int' and 'str'"
        );
        assert_eq!(
            err("sub", Some(obj!("a")), obj!("b")).kind(),
            ExceptionKind::TypeError
        );
        let two_100: Object = "1267650600228229401496703205376".parse().unwrap();
        let square = err("mul", Some(two_100.clone()), two_100);
        assert_eq!(square.kind(), ExceptionKind::OverflowError);
        let huge: Object = "9".repeat(70).parse().unwrap();
        assert_eq!(
            err("add", Some(huge), obj!(1)).kind(),
            ExceptionKind::OverflowError
        );
        assert_eq!(
            err("max", Some(obj!(1)), obj!("a")).kind(),
            ExceptionKind::TypeError
        );
        assert_eq!(
            err("append", Some(obj!(1)), obj!(1)).kind(),
            ExceptionKind::TypeError
        );
        assert_eq!(
            err("pow", Some(obj!(1)), obj!(1)).kind(),
            ExceptionKind::ValueError
        );
    }
}
