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
    /// Objects named by proxies a call brings to a container, held from the check that they
    /// exist until the container holds them.
    Arriving,
}

/// The most bytes one call may create by copying what the object holds (a `list * n` of large
/// items); beyond it the call raises `MemoryError`.
pub(crate) const MAX_BYTES_PER_CALL: usize = 256 << 20;

/// Takes the approximate size of `o` from `budget`; `false` as soon as it runs out. Stops
/// early, so that measuring costs no more than the budget allows.
pub(crate) fn fits(o: &Object, budget: &mut usize) -> bool {
    fits_walk(&mut vec![o], budget)
}

/// Takes the approximate size of everything on `stack` (and their items) from `budget`,
/// emptying it; `false` as soon as the budget runs out.
pub(crate) fn fits_walk(stack: &mut Vec<&Object>, budget: &mut usize) -> bool {
    while let Some(o) = stack.pop() {
        // A container's items are counted before they are walked, so that the walk's own
        // memory stays within the budget too.
        let items = match o {
            Object::List(v) | Object::Tuple(v) => v.len(),
            Object::Dict(d) => d.len(),
            Object::Set(s) | Object::FrozenSet(s) => s.len(),
            _ => 0,
        };
        if items.saturating_mul(SLOT) > *budget {
            return false;
        }
        match o {
            Object::List(v) | Object::Tuple(v) => stack.extend(v.iter()),
            Object::Dict(d) => {
                for (k, v) in d.iter() {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Object::Set(s) | Object::FrozenSet(s) => stack.extend(s.iter()),
            _ => {}
        }
        match budget.checked_sub(own_size(o)) {
            Some(left) => *budget = left,
            None => return false,
        }
    }
    true
}

/// What each object counts for beside its own bytes.
pub(crate) const SLOT: usize = 32;

/// The approximate size of `o` without its items.
pub(crate) fn own_size(o: &Object) -> usize {
    SLOT + match o {
        Object::Str(s) => s.len(),
        Object::Bytes(b) => b.len(),
        Object::BigInt(b) => b.bits() as usize / 8,
        _ => 0,
    }
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

    /// About how many bytes the object holds (see [`limits`](super::limits)), or `None` when
    /// it is more than `budget`. By default measured on a copy of its [`value`](Self::value):
    /// a type that holds much overrides it to measure in place.
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh([&self.value()], budget)
    }

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

/// A method call as a managed object receives it: the method's name and its arguments, as
/// Python's request carries them (`(method, args, kwargs)`).
///
/// A [custom type](super::Managed) gets one per call; the helpers check the arguments and
/// raise Python's `TypeError` for wrong ones, with Python's wording.
///
/// # Examples
///
/// ```
/// use multiproc::manager::{Call, ExceptionKind};
/// use multiproc::obj;
///
/// let call = Call::new("add", vec![obj!(2), obj!(3)]);
/// let (a, b) = call.two().unwrap();
/// assert_eq!((a, b), (obj!(2), obj!(3)));
///
/// let err = Call::new("add", vec![obj!(2)]).two().unwrap_err();
/// assert_eq!(err.kind(), ExceptionKind::TypeError);
/// assert_eq!(err.to_string(), "add expected exactly 2 arguments, got 1");
///
/// // Typed, through serde: the positional arguments as a tuple.
/// let (n, name): (i64, String) = Call::new("f", vec![obj!(7), obj!("x")]).args_as().unwrap();
/// assert_eq!((n, name.as_str()), (7, "x"));
/// ```
#[derive(Debug)]
pub struct Call {
    /// The caller.
    pub(crate) who: Holder,
    /// The method.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Object>,
    /// Keyword arguments (string keys).
    pub kwargs: Dict,
}

impl Call {
    /// A call of `method` with positional arguments and no keyword arguments (for tests of
    /// a type of your own, say).
    ///
    /// ```
    /// let call = multiproc::manager::Call::new("get", vec![]);
    /// assert_eq!(call.method, "get");
    /// ```
    pub fn new(method: impl Into<String>, args: Vec<Object>) -> Self {
        Call {
            who: Holder::Server,
            method: method.into(),
            args,
            kwargs: Dict::new(),
        }
    }

    /// The positional arguments as a serde value, usually a tuple (`(i64, String)`), with no
    /// keyword arguments; a `TypeError` naming the method when they do not fit.
    ///
    /// # Errors
    ///
    /// `TypeError` for keyword arguments or arguments that do not convert to `T`.
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// use multiproc::obj;
    ///
    /// let by: (u32,) = Call::new("add", vec![obj!(5)]).args_as().unwrap();
    /// assert_eq!(by, (5,));
    /// let wrong = Call::new("add", vec![obj!("five")]).args_as::<(u32,)>();
    /// assert!(wrong.unwrap_err().to_string().starts_with("add: "));
    /// ```
    pub fn args_as<T: serde::de::DeserializeOwned>(self) -> Result<T, Exception> {
        self.no_kwargs()?;
        if let Some(n) = tuple_len::<T>() {
            self.positional(n, n)?;
        }
        let method = self.method;
        crate::object::from_object(Object::Tuple(self.args))
            .map_err(|e| Exception::type_error(format!("{method}: {e}")))
    }

    /// The method's name as Python's messages show it (`get`, not `__getitem__`).
    fn name(&self) -> &str {
        &self.method
    }

    /// Checks that the call has between `min` and `max` positional arguments and no keyword
    /// arguments, with the `TypeError` Python raises otherwise.
    ///
    /// # Errors
    ///
    /// `TypeError` for too few or too many arguments, or a keyword argument.
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// assert!(Call::new("get", vec![]).arity(0, 1).is_ok());
    /// assert!(Call::new("get", vec![multiproc::obj!(1), multiproc::obj!(2)]).arity(0, 1).is_err());
    /// ```
    pub fn arity(&self, min: usize, max: usize) -> Result<(), Exception> {
        self.no_kwargs()?;
        self.positional(min, max)
    }

    /// Checks the number of positional arguments only (keyword arguments are left to the
    /// method).
    ///
    /// # Errors
    ///
    /// `TypeError` for too few or too many positional arguments.
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// assert!(Call::new("put", vec![multiproc::obj!(1)]).positional(1, 1).is_ok());
    /// ```
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
    ///
    /// # Errors
    ///
    /// `TypeError` naming the first keyword argument.
    ///
    /// ```
    /// assert!(multiproc::manager::Call::new("get", vec![]).no_kwargs().is_ok());
    /// ```
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
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// use multiproc::obj;
    /// let mut call = Call::new("get", vec![]);
    /// call.kwargs.insert("timeout", 1).unwrap();
    /// assert_eq!(call.take_kwarg("timeout"), Some(obj!(1)));
    /// assert!(call.no_kwargs().is_ok());
    /// ```
    pub fn take_kwarg(&mut self, name: &str) -> Option<Object> {
        self.kwargs.remove(&Object::from(name))
    }

    /// The arguments of a method with the parameters `names` (each optional), given by position
    /// or by keyword, in the order of `names`; Python's `TypeError` for too many, unknown or
    /// repeated ones.
    ///
    /// # Errors
    ///
    /// `TypeError` for too many, unknown or repeated arguments.
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// use multiproc::obj;
    /// let mut call = Call::new("get", vec![obj!(true)]);
    /// call.kwargs.insert("timeout", 0.5).unwrap();
    /// let p = call.params(&["block", "timeout"]).unwrap();
    /// assert_eq!(p, [Some(obj!(true)), Some(obj!(0.5))]);
    /// ```
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
    ///
    /// # Errors
    ///
    /// As [`arity`](Self::arity).
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// use multiproc::obj;
    /// assert_eq!(Call::new("f", vec![obj!(1)]).take(0, 2).unwrap(), [obj!(1)]);
    /// ```
    pub fn take(self, min: usize, max: usize) -> Result<Vec<Object>, Exception> {
        self.arity(min, max)?;
        Ok(self.args)
    }

    /// The one positional argument of a call that takes exactly one.
    ///
    /// # Errors
    ///
    /// As [`arity`](Self::arity).
    ///
    /// ```
    /// use multiproc::manager::Call;
    /// use multiproc::obj;
    /// assert_eq!(Call::new("set", vec![obj!(4)]).one().unwrap(), obj!(4));
    /// ```
    pub fn one(self) -> Result<Object, Exception> {
        let mut v = self.take(1, 1)?;
        Ok(v.pop().expect("one argument, checked"))
    }

    /// The two positional arguments of a call that takes exactly two.
    ///
    /// # Errors
    ///
    /// As [`arity`](Self::arity).
    pub fn two(self) -> Result<(Object, Object), Exception> {
        let mut v = self.take(2, 2)?.into_iter();
        Ok((v.next().expect("checked"), v.next().expect("checked")))
    }
}

/// The number of items of `T` when it deserializes as a tuple (`(i64, String)`: 2), found by
/// asking its `Deserialize` which form it wants, without any data.
fn tuple_len<T: serde::de::DeserializeOwned>() -> Option<usize> {
    use serde::de::value::Error;
    use serde::de::{Error as _, Visitor};

    struct Probe<'a>(&'a mut Option<usize>);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("probe"))
        }
        fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, _: V) -> Result<V::Value, Error> {
            *self.0 = Some(len);
            Err(Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple_struct map struct enum
            identifier ignored_any
        }
    }

    let mut len = None;
    let _ = T::deserialize(Probe(&mut len));
    len
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
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh(&self.items, budget)
    }

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
