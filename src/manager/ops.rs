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
    Ok(match (a, b) {
        (Object::Str(mut x), Object::Str(y)) => {
            grows(x.len(), y.len())?;
            x.push_str(&y);
            Object::Str(x)
        }
        (Object::Bytes(mut x), Object::Bytes(y)) => {
            grows(x.len(), y.len())?;
            x.extend(y);
            Object::Bytes(x)
        }
        (Object::List(mut x), Object::List(y)) => {
            grows(x.len(), y.len())?;
            x.extend(y);
            Object::List(x)
        }
        (Object::Tuple(mut x), Object::Tuple(y)) => {
            grows(x.len(), y.len())?;
            x.extend(y);
            Object::Tuple(x)
        }
        (a, b) => return Err(unsupported("+", &a, &b)),
    })
}

/// Whether `max`/`min` (`op`) of `current` and `operand` is the operand.
fn operand_wins(op: &str, current: &Object, operand: &Object) -> Result<bool, Exception> {
    let want = if op == "max" {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    match operand.partial_cmp(current) {
        Some(o) => Ok(o == want),
        None => Err(Exception::type_error(format!(
            "'{op}' cannot compare '{}' and '{}'",
            operand.type_name(),
            current.type_name()
        ))),
    }
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
        "max" | "min" => Ok(if operand_wins(op, &current, &operand)? {
            operand
        } else {
            current
        }),
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
            grows(items.len(), more.len())?;
            items.extend(more);
            Ok(Object::List(items))
        }
        other => Err(Exception::msg(
            ExceptionKind::ValueError,
            format!("unknown operation {other:?}; the operations are {OPERATIONS:?}"),
        )),
    }
}

/// `*current = op(*current, operand)`, changing `current` in place: a string, bytes or list
/// that grows by `add`, `append` or `extend` is not copied, so a call costs what its operand
/// does, not what the value has grown to. On an error `current` is unchanged.
pub(crate) fn apply_in_place(
    op: &str,
    current: &mut Object,
    operand: Object,
) -> Result<(), Exception> {
    let is_number = |o: &Object| {
        matches!(
            o,
            Object::Bool(_) | Object::Int(_) | Object::BigInt(_) | Object::Float(_)
        )
    };
    match (op, &mut *current, operand) {
        ("add", Object::Str(x), Object::Str(y)) => {
            grows(x.len(), y.len())?;
            x.push_str(&y);
        }
        ("add", Object::Bytes(x), Object::Bytes(y)) => {
            grows(x.len(), y.len())?;
            x.extend(y);
        }
        ("add", Object::List(x), Object::List(y)) | ("add", Object::Tuple(x), Object::Tuple(y)) => {
            grows(x.len(), y.len())?;
            x.extend(y);
        }
        ("append", Object::List(x), y) => {
            grows(x.len(), 1)?;
            x.push(y);
        }
        ("extend", Object::List(x), y) => {
            let more = iterate(y)?;
            grows(x.len(), more.len())?;
            x.extend(more);
        }
        ("max" | "min", c, y) => {
            if operand_wins(op, c, &y)? {
                *c = y;
            }
        }
        (_, _, y) if !OPERATIONS.contains(&op) => return apply(op, None, y).map(drop),
        // Numbers are small: computed as a new value. Anything else is an error, raised
        // without copying the current value.
        (_, c, y) if is_number(c) => *current = apply(op, Some(c.clone()), y)?,
        ("add" | "sub" | "mul", c, y) => {
            let sym = match op {
                "add" => "+",
                "sub" => "-",
                _ => "*",
            };
            return Err(unsupported(sym, c, &y));
        }
        (_, c, _) => {
            return Err(Exception::type_error(format!(
                "'{op}' needs a list, not {}",
                c.type_name()
            )));
        }
    }
    Ok(())
}

/// Refuses a sequence of `n` items that would grow by `m` past what one call may make.
fn grows(n: usize, m: usize) -> Result<(), Exception> {
    if n.saturating_add(m) > MAX_ITEMS_PER_CALL * 16 {
        Err(Exception::msg(
            ExceptionKind::MemoryError,
            "the result would be too large for one call",
        ))
    } else {
        Ok(())
    }
}

/// What `update_with` answers for the new value `new`: the value itself when it is a number
/// (or `None`), its length when it is a sequence or a collection, so that growing a large
/// value by small steps costs small replies.
pub(crate) fn reply_of(new: &Object) -> Object {
    match new.len() {
        Some(n) => Object::from(n),
        None => new.clone(),
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

    #[test]
    fn in_place_operations_agree_with_the_copying_ones() {
        let values = [
            obj!(None),
            obj!(true),
            obj!(3),
            obj!(2.5),
            obj!("ab"),
            obj!(b"xy"),
            obj!([1, "a"]),
            obj!((1, 2)),
            obj!({"k": 1}),
        ];
        for op in OPERATIONS.iter().copied().chain(["pow"]) {
            for cur in &values {
                for x in &values {
                    let copied = apply(op, Some(cur.clone()), x.clone());
                    let mut in_place = cur.clone();
                    match (apply_in_place(op, &mut in_place, x.clone()), copied) {
                        (Ok(()), Ok(v)) => assert_eq!(in_place, v, "{op} {cur} {x}"),
                        (Err(a), Err(b)) => {
                            assert_eq!(a.kind(), b.kind(), "{op} {cur} {x}");
                            assert_eq!(&in_place, cur, "unchanged on error: {op} {cur} {x}");
                        }
                        (a, b) => panic!("{op} {cur} {x}: {a:?} vs {b:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn growing_values_answer_their_length() {
        assert_eq!(reply_of(&obj!("abc")), obj!(3));
        assert_eq!(reply_of(&obj!([1, 2])), obj!(2));
        assert_eq!(reply_of(&obj!(7)), obj!(7));
        assert_eq!(reply_of(&obj!(None)), obj!(None));
    }
}
