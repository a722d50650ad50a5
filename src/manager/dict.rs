//! The managed `dict`: Python's `DictProxy` methods on an insertion-ordered [`Dict`].

use crate::object::{Dict, Object};

use super::exception::{Exception, ExceptionKind};
use super::ops;
use super::referent::{
    Call, CallResult, Iter, Outcome, Referent, check_hashable, iterate, not_exposed,
};

/// A `dict` held by the manager.
#[derive(Default)]
pub(crate) struct ManagedDict {
    dict: Dict,
}

impl ManagedDict {
    /// A managed dict holding `dict`.
    pub fn new(dict: Dict) -> Self {
        ManagedDict { dict }
    }

    fn missing(key: Object) -> Exception {
        Exception::new(ExceptionKind::KeyError, vec![key])
    }

    fn set(&mut self, key: Object, value: Object) -> Result<(), Exception> {
        check_hashable(&key)?;
        self.dict.insert(key, value).expect("hashable, checked");
        Ok(())
    }

    /// `d.update(other, **kwargs)`.
    fn update(&mut self, mut call: Call) -> Result<(), Exception> {
        call.positional(0, 1)?;
        let kwargs = std::mem::take(&mut call.kwargs);
        if let Some(other) = call.args.pop() {
            match other {
                Object::Dict(d) => {
                    for (k, v) in d {
                        self.set(k, v)?;
                    }
                }
                other => {
                    for (i, pair) in iterate(other)?.into_iter().enumerate() {
                        let (k, v) = pair_of(pair, i)?;
                        self.set(k, v)?;
                    }
                }
            }
        }
        for (k, v) in kwargs {
            self.set(k, v)?;
        }
        Ok(())
    }
}

/// The name of an [`ops`] operation.
pub(crate) fn op_name(op: &Object) -> Result<&str, Exception> {
    op.as_str().ok_or_else(|| {
        Exception::type_error(format!(
            "an operation is named by a str, not {}",
            op.type_name()
        ))
    })
}

/// Element `i` of a `dict.update` sequence, which must be a pair.
fn pair_of(item: Object, i: usize) -> Result<(Object, Object), Exception> {
    let items = match item {
        Object::List(v) | Object::Tuple(v) => v,
        Object::Str(_) | Object::Bytes(_) | Object::Set(_) | Object::FrozenSet(_) => iterate(item)?,
        Object::Dict(d) => d.into_iter().map(|(k, _)| k).collect(),
        _ => {
            return Err(Exception::type_error(format!(
                "cannot convert dictionary update sequence element #{i} to a sequence"
            )));
        }
    };
    let n = items.len();
    let mut it = items.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(k), Some(v), None) => Ok((k, v)),
        _ => Err(Exception::msg(
            ExceptionKind::ValueError,
            format!("dictionary update sequence element #{i} has length {n}; 2 is required"),
        )),
    }
}

impl Referent for ManagedDict {
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh(self.dict.iter().flat_map(|(k, v)| [k, v]), budget)
    }

    fn typeid(&self) -> &'static str {
        "dict"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &[
            "__contains__",
            "__delitem__",
            "__getitem__",
            "__iter__",
            "__len__",
            "__setitem__",
            "clear",
            "copy",
            "get",
            "items",
            "keys",
            "pop",
            "popitem",
            "setdefault",
            "update",
            "values",
            "update_with",
            "compare_and_set",
        ]
    }

    fn call(&mut self, call: Call) -> CallResult {
        let d = &mut self.dict;
        Ok(match call.method.as_str() {
            "__contains__" => {
                let key = call.one()?;
                check_hashable(&key)?;
                Object::Bool(d.contains_key(&key))
            }
            "__getitem__" => {
                let key = call.one()?;
                check_hashable(&key)?;
                match d.get(&key) {
                    Some(v) => v.clone(),
                    None => return Err(Self::missing(key)),
                }
            }
            "__setitem__" => {
                let (key, value) = call.two()?;
                self.set(key, value)?;
                Object::None
            }
            "__delitem__" => {
                let key = call.one()?;
                check_hashable(&key)?;
                match d.remove(&key) {
                    Some(_) => Object::None,
                    None => return Err(Self::missing(key)),
                }
            }
            "__len__" => {
                call.arity(0, 0)?;
                Object::from(d.len())
            }
            "__iter__" => {
                call.arity(0, 0)?;
                return Ok(Outcome::Referent(Box::new(Iter::new(
                    d.keys().cloned().collect(),
                ))));
            }
            "clear" => {
                call.arity(0, 0)?;
                *d = Dict::new();
                Object::None
            }
            "copy" => {
                call.arity(0, 0)?;
                Object::Dict(d.clone())
            }
            "get" => {
                let mut args = call.take(1, 2)?.into_iter();
                let key = args.next().expect("checked");
                check_hashable(&key)?;
                match d.get(&key) {
                    Some(v) => v.clone(),
                    None => args.next().unwrap_or_default(),
                }
            }
            "keys" => {
                call.arity(0, 0)?;
                Object::List(d.keys().cloned().collect())
            }
            "values" => {
                call.arity(0, 0)?;
                Object::List(d.values().cloned().collect())
            }
            "items" => {
                call.arity(0, 0)?;
                Object::List(
                    d.iter()
                        .map(|(k, v)| Object::Tuple(vec![k.clone(), v.clone()]))
                        .collect(),
                )
            }
            "pop" => {
                let mut args = call.take(1, 2)?.into_iter();
                let key = args.next().expect("checked");
                check_hashable(&key)?;
                match (d.remove(&key), args.next()) {
                    (Some(v), _) | (None, Some(v)) => v,
                    (None, None) => return Err(Self::missing(key)),
                }
            }
            "popitem" => {
                call.arity(0, 0)?;
                let Some(key) = d.keys().next_back().cloned() else {
                    return Err(Exception::msg(
                        ExceptionKind::KeyError,
                        "popitem(): dictionary is empty",
                    ));
                };
                let value = d.remove(&key).expect("the last key is present");
                Object::Tuple(vec![key, value])
            }
            "setdefault" => {
                let mut args = call.take(1, 2)?.into_iter();
                let key = args.next().expect("checked");
                check_hashable(&key)?;
                match d.get(&key) {
                    Some(v) => v.clone(),
                    None => {
                        let v = args.next().unwrap_or_default();
                        self.set(key, v.clone())?;
                        v
                    }
                }
            }
            "update" => {
                self.update(call)?;
                Object::None
            }
            // d[key] = op(d.get(key), operand), in one step, in place; returns the new value
            // (its length, for a sequence: see `ops::reply_of`).
            "update_with" => {
                let mut args = call.take(3, 3)?.into_iter();
                let (key, op, operand) = (args.next(), args.next(), args.next());
                let (key, op, operand) = (key.expect("3"), op.expect("3"), operand.expect("3"));
                check_hashable(&key)?;
                let op = op_name(&op)?;
                match self.dict.get_mut(&key) {
                    Some(current) => {
                        ops::apply_in_place(op, current, operand)?;
                        ops::reply_of(current)
                    }
                    None => {
                        let new = ops::apply(op, None, operand)?;
                        let reply = ops::reply_of(&new);
                        self.set(key, new)?;
                        reply
                    }
                }
            }
            // if d.get(key) == expected: d[key] = new; returns whether it did.
            "compare_and_set" => {
                let mut args = call.take(3, 3)?.into_iter();
                let (key, expected, new) = (args.next(), args.next(), args.next());
                let (key, expected, new) = (key.expect("3"), expected.expect("3"), new.expect("3"));
                check_hashable(&key)?;
                let current = d.get(&key).unwrap_or(&Object::None);
                let same = *current == expected;
                if same {
                    self.set(key, new)?;
                }
                Object::Bool(same)
            }
            _ => return Err(not_exposed(self.typeid(), &call.method)),
        }
        .into())
    }

    fn cost(&self, call: &Call) -> u64 {
        let n = self.dict.len() as u64;
        match call.method.as_str() {
            "copy" | "items" | "keys" | "values" | "__iter__" | "__repr__" | "__str__"
            | "#GETVALUE" | "clear" => n,
            "update" => call.args.first().and_then(Object::len).unwrap_or(0) as u64,
            // Operands as large as the value they change.
            "update_with" => call.args.get(2).and_then(Object::len).unwrap_or(0) as u64,
            _ => 0,
        }
    }

    fn repr(&self) -> String {
        self.dict.to_string()
    }

    fn value(&self) -> Object {
        Object::Dict(self.dict.clone())
    }
}
