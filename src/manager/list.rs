//! The managed `list`: Python's `ListProxy` methods on a `Vec<Object>`.

use std::cmp::Ordering;

use crate::object::Object;

use super::exception::{Exception, ExceptionKind};
use super::referent::{
    Call, CallResult, MAX_BYTES_PER_CALL, MAX_ITEMS_PER_CALL, Referent, fits, int_arg, iterate,
    not_exposed, truthy,
};

/// A `list` held by the manager.
#[derive(Default)]
pub(crate) struct ManagedList {
    items: Vec<Object>,
}

impl ManagedList {
    /// A managed list holding `items`.
    pub fn new(items: Vec<Object>) -> Self {
        ManagedList { items }
    }

    /// The position `i` (negative counts from the end) names, if it is inside the list.
    fn position(&self, i: &Object) -> Result<Option<usize>, Exception> {
        let i = match i {
            Object::Bool(_) | Object::Int(_) => int_arg(i, "list indices")?,
            Object::BigInt(_) => return Err(index_too_large(ExceptionKind::IndexError)),
            other => {
                return Err(Exception::type_error(format!(
                    "list indices must be integers or slices, not {}",
                    other.type_name()
                )));
            }
        };
        Ok(resolve(self.items.len(), i))
    }

    fn assignment_out_of_range() -> Exception {
        Exception::msg(
            ExceptionKind::IndexError,
            "list assignment index out of range",
        )
    }

    /// `n` copies of the list, bounded by [`MAX_ITEMS_PER_CALL`].
    fn repeated(&self, n: &Object) -> Result<Vec<Object>, Exception> {
        let n = match n {
            Object::Bool(_) | Object::Int(_) | Object::BigInt(_) => n,
            other => {
                return Err(Exception::type_error(format!(
                    "'{}' object cannot be interpreted as an integer",
                    other.type_name()
                )));
            }
        };
        let n = match n {
            Object::BigInt(_) => return Err(index_too_large(ExceptionKind::OverflowError)),
            n => usize::try_from(int_arg(n, "repeat count")?).unwrap_or(0),
        };
        let len = self.items.len();
        if len != 0 && n > MAX_ITEMS_PER_CALL / len {
            return Err(too_large());
        }
        // Copies of large items count by their size, not their number.
        if n > 1 {
            let mut budget = MAX_BYTES_PER_CALL / n;
            if !self.items.iter().all(|x| fits(x, &mut budget)) {
                return Err(too_large());
            }
        }
        let mut out = Vec::with_capacity(len * n);
        for _ in 0..n {
            out.extend_from_slice(&self.items);
        }
        Ok(out)
    }

    /// `l.index(x[, start[, stop]])`.
    fn index(&self, call: Call) -> Result<Object, Exception> {
        let mut args = call.take(1, 3)?.into_iter();
        let x = args.next().expect("checked");
        let len = self.items.len();
        let bound = |arg: Option<Object>, default: usize| -> Result<usize, Exception> {
            Ok(match arg {
                None => default,
                Some(a) => clamp(len, slice_index(&a)?),
            })
        };
        let start = bound(args.next(), 0)?;
        let stop = bound(args.next(), len)?;
        if start < stop
            && let Some(p) = self.items[start..stop].iter().position(|y| *y == x)
        {
            return Ok(Object::from(start + p));
        }
        Err(Exception::msg(
            ExceptionKind::ValueError,
            format!("{x} is not in list"),
        ))
    }

    /// `l.sort(key=None, reverse=False)`: stable, as Python's; the list is left unchanged when
    /// two items cannot be compared.
    fn sort(&mut self, mut call: Call) -> Result<(), Exception> {
        let reverse = call.take_kwarg("reverse");
        match call.take_kwarg("key") {
            None | Some(Object::None) => {}
            Some(_) => {
                return Err(Exception::type_error(
                    "sort() with a key function cannot run on the manager; sort a copy instead",
                ));
            }
        }
        call.arity(0, 0)
            .map_err(|_| Exception::type_error("sort() takes no positional arguments"))?;
        let reverse = match reverse {
            None => false,
            Some(r) => truthy(&r),
        };
        // Python's sort asks only `a < b`; reversed, it keeps equal items in their order.
        let order = stable_sort(
            &self.items,
            |a, b| if reverse { lt(b, a) } else { lt(a, b) },
        )
        .map_err(|(a, b)| {
            Exception::type_error(format!(
                "'<' not supported between instances of '{a}' and '{b}'"
            ))
        })?;
        let mut old: Vec<Option<Object>> = std::mem::take(&mut self.items)
            .into_iter()
            .map(Some)
            .collect();
        let sorted = order
            .into_iter()
            .map(|i| old[i].take().expect("each index once"))
            .collect();
        self.items = sorted;
        Ok(())
    }
}

/// Python's `a < b`; an error names the two types where Python raises `TypeError`. Numbers
/// that do not compare (NaN) are not less, as in Python.
fn lt(a: &Object, b: &Object) -> Result<bool, (&'static str, &'static str)> {
    let number = |o: &Object| matches!(o, Object::Float(_) | Object::Int(_) | Object::Bool(_));
    match a.partial_cmp(b) {
        Some(o) => Ok(o == Ordering::Less),
        None if number(a) && number(b) => Ok(false),
        None => Err((a.type_name(), b.type_name())),
    }
}

/// The order of a stable merge sort of `items` by `lt`, stopping at the first error. Unlike
/// `slice::sort_by`, it cannot panic when `lt` is not a total order (NaN, hostile input).
fn stable_sort<E>(
    items: &[Object],
    mut lt: impl FnMut(&Object, &Object) -> Result<bool, E>,
) -> Result<Vec<usize>, E> {
    let n = items.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut merged = vec![0; n];
    let mut width = 1;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j) = (start, mid);
            for slot in &mut merged[start..end] {
                // Take from the right run only when it is strictly less: stable.
                let right = j < end && (i == mid || lt(&items[order[j]], &items[order[i]])?);
                if right {
                    *slot = order[j];
                    j += 1;
                } else {
                    *slot = order[i];
                    i += 1;
                }
            }
        }
        std::mem::swap(&mut order, &mut merged);
        width *= 2;
    }
    Ok(order)
}

/// Python's error for an `int` past the machine's index range, where it wants an index.
fn index_too_large(kind: ExceptionKind) -> Exception {
    Exception::msg(kind, "cannot fit 'int' into an index-sized integer")
}

/// An argument Python reads as a C `Py_ssize_t` (`insert`'s and `pop`'s index): an `int`
/// past it is an `OverflowError`, anything else not an `int` a `TypeError`.
fn ssize_arg(o: &Object) -> Result<i64, Exception> {
    match o {
        Object::Bool(_) | Object::Int(_) => int_arg(o, "indices"),
        Object::BigInt(_) => Err(Exception::msg(
            ExceptionKind::OverflowError,
            "Python int too large to convert to C ssize_t",
        )),
        other => Err(Exception::type_error(format!(
            "'{}' object cannot be interpreted as an integer",
            other.type_name()
        ))),
    }
}

/// A slice bound (`index`'s start and stop): an `int` past the index range is clipped to
/// it, as Python's `_PyEval_SliceIndex` does.
fn slice_index(o: &Object) -> Result<i64, Exception> {
    match o {
        Object::Bool(_) | Object::Int(_) => int_arg(o, "slice indices"),
        Object::BigInt(b) if b.is_negative() => Ok(i64::MIN),
        Object::BigInt(_) => Ok(i64::MAX),
        _ => Err(Exception::type_error(
            "slice indices must be integers or have an __index__ method",
        )),
    }
}

/// The position of index `i` in a sequence of `len` items, if inside.
fn resolve(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// Index `i` clamped to `0..=len`, as slice bounds are.
fn clamp(len: usize, i: i64) -> usize {
    let l = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if i < 0 { (i + l).max(0) } else { i.min(l) };
    i as usize
}

fn too_large() -> Exception {
    Exception::msg(
        ExceptionKind::MemoryError,
        format!("the result would exceed {MAX_ITEMS_PER_CALL} items"),
    )
}

impl Referent for ManagedList {
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh(&self.items, budget)
    }

    fn typeid(&self) -> &'static str {
        "list"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &[
            "__add__",
            "__contains__",
            "__delitem__",
            "__getitem__",
            "__len__",
            "__mul__",
            "__reversed__",
            "__rmul__",
            "__setitem__",
            "append",
            "count",
            "extend",
            "index",
            "insert",
            "pop",
            "remove",
            "reverse",
            "sort",
            "__imul__",
            "clear",
            "copy",
        ]
    }

    fn call(&mut self, call: Call) -> CallResult {
        Ok(match call.method.as_str() {
            "__add__" => match call.one()? {
                Object::List(other) => {
                    if self.items.len().saturating_add(other.len()) > MAX_ITEMS_PER_CALL {
                        return Err(too_large());
                    }
                    let mut out = self.items.clone();
                    out.extend(other);
                    Object::List(out)
                }
                other => {
                    return Err(Exception::type_error(format!(
                        "can only concatenate list (not \"{}\") to list",
                        other.type_name()
                    )));
                }
            },
            "__contains__" => {
                let x = call.one()?;
                Object::Bool(self.items.contains(&x))
            }
            "__getitem__" => {
                let i = call.one()?;
                if let Object::Slice(s) = &i {
                    return Ok(super::slice::get(&self.items, s)?.into());
                }
                match self.position(&i)? {
                    Some(p) => self.items[p].clone(),
                    None => {
                        return Err(Exception::msg(
                            ExceptionKind::IndexError,
                            "list index out of range",
                        ));
                    }
                }
            }
            "__setitem__" => {
                let (i, value) = call.two()?;
                if let Object::Slice(s) = &i {
                    super::slice::set(&mut self.items, s, value)?;
                    return Ok(Object::None.into());
                }
                let p = self
                    .position(&i)?
                    .ok_or_else(Self::assignment_out_of_range)?;
                self.items[p] = value;
                Object::None
            }
            "__delitem__" => {
                let i = call.one()?;
                if let Object::Slice(s) = &i {
                    super::slice::delete(&mut self.items, s)?;
                    return Ok(Object::None.into());
                }
                let p = self
                    .position(&i)?
                    .ok_or_else(Self::assignment_out_of_range)?;
                self.items.remove(p);
                Object::None
            }
            "__len__" => {
                call.arity(0, 0)?;
                Object::from(self.items.len())
            }
            "__mul__" | "__rmul__" => Object::List(self.repeated(&call.one()?)?),
            "__imul__" => {
                // Python's `list.__imul__` returns the list itself.
                self.items = self.repeated(&call.one()?)?;
                Object::List(self.items.clone())
            }
            "__reversed__" => {
                call.arity(0, 0)?;
                Object::List(self.items.iter().rev().cloned().collect())
            }
            "append" => {
                self.items.push(call.one()?);
                Object::None
            }
            "count" => {
                let x = call.one()?;
                Object::from(self.items.iter().filter(|y| **y == x).count())
            }
            "extend" => {
                let more = iterate(call.one()?)?;
                if self.items.len().saturating_add(more.len()) > isize::MAX as usize / 64 {
                    return Err(too_large());
                }
                self.items.extend(more);
                Object::None
            }
            "index" => self.index(call)?,
            "insert" => {
                let (i, x) = call.two()?;
                let p = clamp(self.items.len(), ssize_arg(&i)?);
                self.items.insert(p, x);
                Object::None
            }
            "pop" => {
                let args = call.take(0, 1)?;
                let i = args.first().map(ssize_arg).transpose()?;
                if self.items.is_empty() {
                    return Err(Exception::msg(
                        ExceptionKind::IndexError,
                        "pop from empty list",
                    ));
                }
                let p = match i {
                    None => Some(self.items.len() - 1),
                    Some(i) => resolve(self.items.len(), i),
                };
                match p {
                    Some(p) => self.items.remove(p),
                    None => {
                        return Err(Exception::msg(
                            ExceptionKind::IndexError,
                            "pop index out of range",
                        ));
                    }
                }
            }
            "remove" => {
                let x = call.one()?;
                match self.items.iter().position(|y| *y == x) {
                    Some(p) => {
                        self.items.remove(p);
                        Object::None
                    }
                    None => {
                        return Err(Exception::msg(
                            ExceptionKind::ValueError,
                            "list.remove(x): x not in list",
                        ));
                    }
                }
            }
            "reverse" => {
                call.arity(0, 0)?;
                self.items.reverse();
                Object::None
            }
            "sort" => {
                self.sort(call)?;
                Object::None
            }
            "clear" => {
                call.arity(0, 0)?;
                self.items.clear();
                Object::None
            }
            "copy" => {
                call.arity(0, 0)?;
                Object::List(self.items.clone())
            }
            _ => return Err(not_exposed(self.typeid(), &call.method)),
        }
        .into())
    }

    fn cost(&self, call: &Call) -> u64 {
        let n = self.items.len() as u64;
        let arg_len = || call.args.first().and_then(Object::len).unwrap_or(0) as u64;
        match call.method.as_str() {
            "sort" => n.saturating_mul(u64::from(64 - n.leading_zeros())),
            "__mul__" | "__rmul__" | "__imul__" => {
                let k = call.args.first().and_then(Object::as_i64).unwrap_or(0);
                n.saturating_mul(k.max(1) as u64)
            }
            "__getitem__" | "__setitem__" | "__delitem__"
                if matches!(call.args.first(), Some(Object::Slice(_))) =>
            {
                n.saturating_add(call.args.get(1).and_then(Object::len).unwrap_or(0) as u64)
            }
            "append" | "__len__" | "__getitem__" | "__setitem__" => 0,
            "extend" | "__add__" => n.saturating_add(arg_len()),
            // Copies, scans and shifts.
            _ => n,
        }
    }

    fn repr(&self) -> String {
        // One formatter for lists: the object's own.
        Object::List(self.items.clone()).to_string()
    }

    fn value(&self) -> Object {
        Object::List(self.items.clone())
    }
}
