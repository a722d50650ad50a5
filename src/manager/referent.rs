//! What the server holds: managed objects ("referents", in Python's word) and how a method
//! call reaches one.
//!
//! A call arrives as Python's request has it, `(method name, positional arguments, keyword
//! arguments)`, all plain [`Object`]s, and runs against the referent under the server's lock for
//! that object, so that every call is atomic with respect to the others on the same object. A
//! call either returns a value, or a new referent that the server registers and hands back as
//! a proxy (the iterator of a dict, for example), or raises an [`Exception`] with Python's name.
//!
//! A call that cannot complete yet (`Queue.get` on an empty queue, `Lock.acquire` of a held
//! lock) does not block the server: the referent answers [`Outcome::Wait`] with a ticket of its
//! own and keeps what the call needs (the item of a `put`, say). The server parks the caller,
//! whose later requests wait behind it, and asks the referent again ([`Referent::resume`]) after
//! each call that may have changed its state, until it completes; at the caller's deadline it
//! asks [`Referent::expire`] for the time-out answer. A client that goes away has its waiting
//! calls [`cancel`](Referent::cancel)led and whatever it held ([`Referent::client_gone`], a lock
//! say) given back.

use std::time::Duration;

use crate::object::{Dict, Object};

use super::exception::{Exception, ExceptionKind};

/// The most elements one call may create (a `list * n`, say); beyond it the call raises
/// `MemoryError` instead of letting one request exhaust the server.
pub(crate) const MAX_ITEMS_PER_CALL: usize = 1 << 24;

/// Who holds a reference or makes a call: a client session, or the server (named objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    /// The server: published objects live as long as the server.
    Server,
    /// A client connection.
    Client(u64),
    /// A client's session: the connections of one client process, which hold its references
    /// together.
    Session(u64),
    /// Python's own clients, which take and drop references by explicit `incref`/`decref`,
    /// each on a connection of its own: their references outlive any one connection.
    Python,
    /// A managed object holding proxies of others (a dict with a list in it).
    Object(u64),
    /// References a container gave up, kept a moment for whoever took the proxy out of it
    /// (`pop`, `Queue.get`) to take its own.
    Handover,
}

/// The most bytes one call may create by copying what the object holds (a `list * n` of large
/// items); beyond it the call raises `MemoryError`.
pub(crate) const MAX_BYTES_PER_CALL: usize = 256 << 20;

/// Takes the approximate size of `o` from `budget`; `false` as soon as it runs out. Stops
/// early, so that measuring costs no more than the budget allows.
pub(crate) fn fits(o: &Object, budget: &mut usize) -> bool {
    const SLOT: usize = 32;
    let mut stack = vec![o];
    while let Some(o) = stack.pop() {
        // A container's items are counted before they are walked, so that the walk's own
        // memory stays within the budget too.
        let container = matches!(
            o,
            Object::List(_)
                | Object::Tuple(_)
                | Object::Dict(_)
                | Object::Set(_)
                | Object::FrozenSet(_)
        );
        if container && o.len().is_some_and(|n| n.saturating_mul(SLOT) > *budget) {
            return false;
        }
        let own = SLOT
            + match o {
                Object::Str(s) => s.len(),
                Object::Bytes(b) => b.len(),
                Object::BigInt(b) => b.bits() as usize / 8,
                Object::List(v) | Object::Tuple(v) => {
                    stack.extend(v.iter());
                    0
                }
                Object::Dict(d) => {
                    for (k, v) in d.iter() {
                        stack.push(k);
                        stack.push(v);
                    }
                    0
                }
                Object::Set(s) | Object::FrozenSet(s) => {
                    stack.extend(s.iter());
                    0
                }
                _ => 0,
            };
        match budget.checked_sub(own) {
            Some(left) => *budget = left,
            None => return false,
        }
    }
    true
}

/// What a successful call gives back.
pub(crate) enum Outcome {
    /// A plain value, copied to the caller.
    Value(Object),
    /// A new object, served behind a proxy of its own.
    Referent(Box<dyn Referent>),
    /// Not yet: the caller waits, at most `timeout` (`None`: no limit), under `ticket`.
    Wait {
        /// The referent's name for this waiting call.
        ticket: u64,
        /// How long the caller may wait, from the first call.
        timeout: Option<Duration>,
    },
}

impl From<Object> for Outcome {
    fn from(o: Object) -> Self {
        Outcome::Value(o)
    }
}

/// The result of a call.
pub(crate) type CallResult = Result<Outcome, Exception>;

/// An object held by the manager.
pub(crate) trait Referent: Send {
    /// The type's name in Python's registry (`"dict"`, `"list"`, `"Namespace"`, …).
    fn typeid(&self) -> &'static str;

    /// The methods a proxy may call, as Python's `exposed` tuple lists them.
    fn exposed(&self) -> &'static [&'static str];

    /// Runs `method`.
    fn call(&mut self, call: Call) -> CallResult;

    /// Tries again the waiting call `ticket` of `who`, after the object's state may have
    /// changed: [`Outcome::Wait`] again (its time-out is ignored) if it still cannot complete.
    fn resume(&mut self, ticket: u64, who: Holder) -> CallResult {
        let _ = (ticket, who);
        Err(nothing_waits())
    }

    /// The answer of the waiting call `ticket` of `who` whose time is up. It may still wait
    /// (without a time-out) where Python's would: a `Condition.wait` that timed out must take
    /// its lock back before it returns.
    fn expire(&mut self, ticket: u64, who: Holder) -> CallResult {
        let _ = (ticket, who);
        Err(nothing_waits())
    }

    /// Forgets the waiting call `ticket`: its caller has gone.
    fn cancel(&mut self, ticket: u64) {
        let _ = ticket;
    }

    /// Gives back what `who` held (locks, semaphore permits, a place at a barrier): the client
    /// has gone, cleanly or killed.
    fn client_gone(&mut self, who: Holder) {
        let _ = who;
    }

    /// Does the object keep state for `who` that [`client_gone`](Self::client_gone) must give
    /// back? Asked after each call of `who`.
    fn remembers(&self, who: Holder) -> bool {
        let _ = who;
        false
    }

    /// About how many items `call` touches: a call above the server's threshold runs on a
    /// worker thread, so that it delays no other client. Most calls are cheap (0).
    fn cost(&self, call: &Call) -> u64 {
        let _ = call;
        0
    }

    /// Python's `repr` of the object (a proxy's `__repr__`/`__str__` fallback).
    fn repr(&self) -> String;

    /// A copy of the whole object (Python's `#GETVALUE`).
    fn value(&self) -> Object;

    /// Runs `call`, answering the methods every referent has: `__repr__`, `__str__` and
    /// `#GETVALUE`; a method outside [`exposed`](Self::exposed) raises `AttributeError`.
    fn dispatch(&mut self, call: Call) -> CallResult {
        match call.method.as_str() {
            "__repr__" | "__str__" => {
                call.arity(0, 0)?;
                Ok(Object::Str(self.repr()).into())
            }
            "#GETVALUE" => {
                call.arity(0, 0)?;
                Ok(self.value().into())
            }
            m if self.exposed().contains(&m) => self.call(call),
            m => Err(not_exposed(self.typeid(), m)),
        }
    }
}

/// A resumed or expired ticket the referent does not know: a server bug, answered as an
/// error rather than a panic.
fn nothing_waits() -> Exception {
    Exception::msg(
        ExceptionKind::RuntimeError,
        "no call of this object is waiting",
    )
}

/// The `AttributeError` of a call to a method the object does not expose.
pub(crate) fn not_exposed(typeid: &str, method: &str) -> Exception {
    Exception::msg(
        ExceptionKind::AttributeError,
        format!("method {method:?} of {typeid:?} is not exposed"),
    )
}

/// A method call: the method's name, its arguments, and who calls.
#[derive(Debug)]
pub(crate) struct Call {
    /// The caller.
    pub who: Holder,
    /// The method.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Object>,
    /// Keyword arguments (string keys).
    pub kwargs: Dict,
}

impl Call {
    /// A call without keyword arguments, by the server.
    #[cfg(test)]
    pub fn new(method: impl Into<String>, args: Vec<Object>) -> Self {
        Call {
            who: Holder::Server,
            method: method.into(),
            args,
            kwargs: Dict::new(),
        }
    }

    /// The method's name as Python's messages show it (`get`, not `__getitem__`).
    fn name(&self) -> &str {
        &self.method
    }

    /// Checks that the call has between `min` and `max` positional arguments and no keyword
    /// arguments, with the `TypeError` Python raises otherwise.
    pub fn arity(&self, min: usize, max: usize) -> Result<(), Exception> {
        self.no_kwargs()?;
        self.positional(min, max)
    }

    /// Checks the number of positional arguments only.
    pub fn positional(&self, min: usize, max: usize) -> Result<(), Exception> {
        let n = self.args.len();
        let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
        if n < min {
            let bound = if min == max { "exactly" } else { "at least" };
            return Err(Exception::type_error(format!(
                "{} expected {bound} {min} {}, got {n}",
                self.name(),
                plural(min)
            )));
        }
        if n > max {
            let bound = if min == max { "exactly" } else { "at most" };
            return Err(Exception::type_error(format!(
                "{} expected {bound} {max} {}, got {n}",
                self.name(),
                plural(max)
            )));
        }
        Ok(())
    }

    /// Checks that no keyword argument was given.
    pub fn no_kwargs(&self) -> Result<(), Exception> {
        match self.kwargs.keys().next() {
            None => Ok(()),
            Some(k) => Err(Exception::type_error(format!(
                "{}() got an unexpected keyword argument {k}",
                self.name()
            ))),
        }
    }

    /// Takes the keyword argument `name`, if given.
    pub fn take_kwarg(&mut self, name: &str) -> Option<Object> {
        self.kwargs.remove(&Object::from(name))
    }

    /// The arguments of a method with the parameters `names` (each optional), given by position
    /// or by keyword, in the order of `names`; Python's `TypeError` for too many, unknown or
    /// repeated ones.
    pub fn params(self, names: &[&str]) -> Result<Vec<Option<Object>>, Exception> {
        if self.args.len() > names.len() {
            return Err(Exception::type_error(format!(
                "{}() takes at most {} arguments ({} given)",
                self.method,
                names.len(),
                self.args.len()
            )));
        }
        let given = self.args.len();
        let mut out: Vec<Option<Object>> = self.args.into_iter().map(Some).collect();
        out.resize(names.len(), None);
        for (k, v) in self.kwargs {
            let at = k.as_str().and_then(|k| names.iter().position(|n| *n == k));
            match at {
                Some(i) if i >= given && out[i].is_none() => out[i] = Some(v),
                Some(_) => {
                    return Err(Exception::type_error(format!(
                        "{}() got multiple values for argument {k}",
                        self.method
                    )));
                }
                None => {
                    return Err(Exception::type_error(format!(
                        "{}() got an unexpected keyword argument {k}",
                        self.method
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The positional arguments, by value, checked to be between `min` and `max` in number,
    /// with no keyword arguments.
    pub fn take(self, min: usize, max: usize) -> Result<Vec<Object>, Exception> {
        self.arity(min, max)?;
        Ok(self.args)
    }

    /// The one positional argument of a call that takes exactly one.
    pub fn one(self) -> Result<Object, Exception> {
        let mut v = self.take(1, 1)?;
        Ok(v.pop().expect("one argument, checked"))
    }

    /// The two positional arguments of a call that takes exactly two.
    pub fn two(self) -> Result<(Object, Object), Exception> {
        let mut v = self.take(2, 2)?.into_iter();
        Ok((v.next().expect("checked"), v.next().expect("checked")))
    }
}

/// `TypeError("unhashable type: 'list'")` if `key` cannot be a dict key.
pub(crate) fn check_hashable(key: &Object) -> Result<(), Exception> {
    match crate::object::unhashable_kind(key) {
        None => Ok(()),
        Some(kind) => Err(Exception::type_error(format!("unhashable type: '{kind}'"))),
    }
}

/// The items of an iterable argument, as Python's `for x in arg` sees them: the items of a
/// list, tuple or set, the keys of a dict, the characters of a str, the integers of a bytes.
pub(crate) fn iterate(arg: Object) -> Result<Vec<Object>, Exception> {
    Ok(match arg {
        Object::List(v) | Object::Tuple(v) => v,
        Object::Set(s) | Object::FrozenSet(s) => s.into_iter().collect(),
        Object::Dict(d) => d.into_iter().map(|(k, _)| k).collect(),
        Object::Str(s) => s.chars().map(Object::from).collect(),
        Object::Bytes(b) => b.into_iter().map(|x| Object::Int(x.into())).collect(),
        other => {
            return Err(Exception::type_error(format!(
                "'{}' object is not iterable",
                other.type_name()
            )));
        }
    })
}

/// A time-out argument in seconds, as Python's `timeout=`: `None` waits without limit, a
/// negative one is a `ValueError`.
pub(crate) fn timeout_arg(arg: Option<Object>) -> Result<Option<Duration>, Exception> {
    let secs = match arg {
        None | Some(Object::None) => return Ok(None),
        Some(Object::Float(x)) => x,
        Some(o @ (Object::Int(_) | Object::Bool(_))) => int_arg(&o, "timeout")? as f64,
        Some(other) => {
            return Err(Exception::type_error(format!(
                "a timeout is a number, not {}",
                other.type_name()
            )));
        }
    };
    if secs.is_nan() || secs < 0.0 {
        return Err(Exception::msg(
            ExceptionKind::ValueError,
            "'timeout' must be a non-negative number",
        ));
    }
    // Longer than anyone waits: no limit.
    Ok(Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| d.as_secs() < 1 << 40))
}

/// Python's truth value of a plain object.
pub(crate) fn truthy(o: &Object) -> bool {
    match o {
        Object::None => false,
        Object::Bool(b) => *b,
        Object::Int(i) => *i != 0,
        Object::BigInt(_) => true,
        Object::Float(x) => *x != 0.0,
        other => other.len().is_none_or(|n| n != 0),
    }
}

/// A Python `int` argument that fits an `i64` (`True` counts as 1, as in Python).
pub(crate) fn int_arg(arg: &Object, what: &str) -> Result<i64, Exception> {
    match arg {
        Object::Bool(b) => Ok(i64::from(*b)),
        Object::Int(i) => Ok(*i),
        Object::BigInt(_) => Err(Exception::msg(
            ExceptionKind::IndexError,
            format!("cannot fit 'int' into an index-sized integer ({what})"),
        )),
        other => Err(Exception::type_error(format!(
            "{what} must be integers, not {}",
            other.type_name()
        ))),
    }
}

/// The iterator a proxy's `__iter__` hands back: a snapshot of the items taken at the call,
/// served one by one by `__next__`.
pub(crate) struct Iter {
    items: std::collections::VecDeque<Object>,
}

impl Iter {
    /// An iterator over `items`.
    pub fn new(items: Vec<Object>) -> Self {
        Iter {
            items: items.into(),
        }
    }
}

impl Referent for Iter {
    fn typeid(&self) -> &'static str {
        "Iterator"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["__next__", "send", "throw", "close"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        match call.method.as_str() {
            "__next__" | "send" => {
                let max = usize::from(call.method == "send");
                call.arity(max, max)?;
                match self.items.pop_front() {
                    Some(x) => Ok(x.into()),
                    None => Err(Exception::new(ExceptionKind::StopIteration, vec![])),
                }
            }
            "close" => {
                call.arity(0, 0)?;
                self.items.clear();
                Ok(Object::None.into())
            }
            // `throw` raises the given exception in the generator; an iterator over a
            // snapshot has nothing to run, so it ends.
            _ => {
                self.items.clear();
                Err(Exception::new(ExceptionKind::StopIteration, vec![]))
            }
        }
    }

    fn repr(&self) -> String {
        "<iterator object>".into()
    }

    fn value(&self) -> Object {
        Object::List(self.items.iter().cloned().collect())
    }
}
