//! The managed `Namespace` and `Value`: attributes, and one value with `get`/`set`.

use crate::object::{Dict, Object};

use super::exception::{Exception, ExceptionKind};
use super::referent::{Call, CallResult, Referent, not_exposed};

/// A `Namespace` held by the manager: named attributes.
#[derive(Default)]
pub(crate) struct Namespace {
    attrs: Dict,
}

impl Namespace {
    /// A namespace with the attributes of `attrs` (string keys).
    pub fn new(attrs: Dict) -> Result<Self, Exception> {
        let mut ns = Namespace::default();
        for (k, v) in attrs {
            let name = attr_name(k)?;
            ns.attrs.insert(name, v).expect("a str is hashable");
        }
        Ok(ns)
    }
}

/// An attribute name, which must be a `str`.
fn attr_name(name: Object) -> Result<Object, Exception> {
    match name {
        Object::Str(_) => Ok(name),
        other => Err(Exception::type_error(format!(
            "attribute name must be string, not '{}'",
            other.type_name()
        ))),
    }
}

impl Referent for Namespace {
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh(self.attrs.iter().flat_map(|(k, v)| [k, v]), budget)
    }

    fn typeid(&self) -> &'static str {
        "Namespace"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["__getattribute__", "__setattr__", "__delattr__"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        let missing = |name: &Object| {
            Exception::msg(
                ExceptionKind::AttributeError,
                format!(
                    "'Namespace' object has no attribute '{}'",
                    name.as_str().unwrap_or_default()
                ),
            )
        };
        Ok(match call.method.as_str() {
            "__getattribute__" => {
                let name = attr_name(call.one()?)?;
                self.attrs
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| missing(&name))?
            }
            "__setattr__" => {
                let (name, value) = call.two()?;
                let name = attr_name(name)?;
                self.attrs.insert(name, value).expect("a str is hashable");
                Object::None
            }
            "__delattr__" => {
                let name = attr_name(call.one()?)?;
                self.attrs.remove(&name).ok_or_else(|| missing(&name))?;
                Object::None
            }
            _ => return Err(not_exposed(self.typeid(), &call.method)),
        }
        .into())
    }

    /// `Namespace(a=1, b='x')`, the public attributes sorted, as Python prints it.
    fn repr(&self) -> String {
        let mut items: Vec<String> = self
            .attrs
            .iter()
            .filter_map(|(k, v)| {
                let k = k.as_str()?;
                (!k.starts_with('_')).then(|| format!("{k}={v}"))
            })
            .collect();
        items.sort();
        format!("Namespace({})", items.join(", "))
    }

    fn value(&self) -> Object {
        Object::Dict(self.attrs.clone())
    }
}

/// A `Value` held by the manager: Python's `managers.Value(typecode, value)`, whose type code
/// is kept for its `repr` only (as in Python, it does not constrain the value).
pub(crate) struct Value {
    typecode: Object,
    value: Object,
}

impl Value {
    /// A value with its type code.
    pub fn new(typecode: Object, value: Object) -> Self {
        Value { typecode, value }
    }
}

impl Referent for Value {
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh([&self.value], budget)
    }

    fn typeid(&self) -> &'static str {
        "Value"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["get", "set", "update_with", "compare_and_set"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        Ok(match call.method.as_str() {
            "get" => {
                call.arity(0, 0)?;
                self.value.clone()
            }
            "set" => {
                self.value = call.one()?;
                Object::None
            }
            // value = op(value, operand), in one step, in place; returns the new value (its
            // length, for a sequence: see `ops::reply_of`).
            "update_with" => {
                let (op, operand) = call.two()?;
                let op = super::dict::op_name(&op)?;
                super::ops::apply_in_place(op, &mut self.value, operand)?;
                super::ops::reply_of(&self.value)
            }
            // if value == expected: value = new; returns whether it did.
            "compare_and_set" => {
                let (expected, new) = call.two()?;
                let same = self.value == expected;
                if same {
                    self.value = new;
                }
                Object::Bool(same)
            }
            _ => return Err(not_exposed(self.typeid(), &call.method)),
        }
        .into())
    }

    fn repr(&self) -> String {
        format!("Value({}, {})", self.typecode, self.value)
    }

    fn value(&self) -> Object {
        self.value.clone()
    }
}
