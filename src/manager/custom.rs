//! Types of your own, served by a manager as the built-in ones are: Python's
//! `BaseManager.register(typeid, callable)`, without running code from the wire.
//!
//! A type implements [`Managed`] (a method name and [`Object`] arguments in, an [`Object`] or a
//! Python-style [`Exception`] out) and is registered under a typeid with a [`Factory`], a plain
//! function that builds one from the constructor's arguments. The server calls it for
//! `create(typeid, args)`, and serves the object's methods under the same rules as the
//! built-ins: one call at a time per object (each call is atomic with respect to the others on
//! that object), calls on other objects alongside, and a call whose [`cost`](Managed::cost)
//! passes the server's threshold on a worker thread, where it delays only the clients of that
//! object.
//!
//! A factory is a `fn` pointer, not a closure, so that it reaches the server process of
//! [`Manager::start`](super::Manager::start) as a process's target does: the child, the same
//! program started again, finds the same function at its own address.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::{ManagerError, Proxy};
use super::exception::{Exception, ExceptionKind};
use super::referent::{Call, CallResult, Holder, Referent};
use crate::object::{Object, from_object, to_object};
use crate::sys::entry::FnRef;

/// A type of your own that a manager serves: its methods, called by name with [`Object`]
/// arguments, as Python's manager calls the methods of a registered class.
///
/// Each object is called by one client at a time: `call` has the object to itself, so a
/// read-modify-write inside one method is atomic. Register the type with a [`Factory`] on
/// [`ManagerOptions::register`](super::ManagerOptions::register) or
/// [`Server::register`](super::Server::register); clients make one with
/// [`Manager::create`](super::Manager::create) and call it through a [`Proxy`] (typed calls:
/// [`Proxy::call_as`]).
///
/// # Examples
///
/// A counter, with a typed proxy of its own, incremented by several processes:
///
/// ```
/// # multiproc::init();
/// use multiproc::manager::{Call, Exception, Manager, Managed, Proxy};
/// use multiproc::object::Object;
/// use multiproc::serde::{Deserialize, Serialize};
///
/// #[derive(Default)]
/// struct Counter(i64);
///
/// impl Managed for Counter {
///     fn exposed(&self) -> &'static [&'static str] {
///         &["add", "get"]
///     }
///     fn call(&mut self, call: Call) -> Result<Object, Exception> {
///         match call.method.as_str() {
///             "add" => {
///                 let (by,): (i64,) = call.args_as()?;
///                 self.0 += by;
///                 Ok(self.0.into())
///             }
///             "get" => {
///                 call.arity(0, 0)?;
///                 Ok(self.0.into())
///             }
///             _ => Err(call.no_such_method()),
///         }
///     }
///     fn value(&self) -> Object {
///         self.0.into()
///     }
/// }
///
/// fn new_counter(call: Call) -> Result<Box<dyn Managed>, Exception> {
///     let (start,): (i64,) = call.args_as()?;
///     Ok(Box::new(Counter(start)))
/// }
///
/// /// The client's view: typed methods over a proxy; it travels to children as an argument.
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "multiproc::serde")]
/// struct CounterProxy(Proxy);
///
/// impl CounterProxy {
///     fn add(&self, by: i64) -> Result<i64, multiproc::manager::ManagerError> {
///         self.0.call_as("add", (by,))
///     }
/// }
///
/// fn worker(c: CounterProxy) {
///     for _ in 0..100 {
///         c.add(1).unwrap();
///     }
/// }
///
/// let manager = Manager::options().register("Counter", new_counter).start()?;
/// let counter = CounterProxy(manager.create("Counter", vec![10.into()])?);
/// let workers: Vec<_> = (0..3)
///     .map(|_| multiproc::Process::start(worker, CounterProxy(counter.0.clone())))
///     .collect::<Result<_, _>>()?;
/// for w in workers {
///     w.join()?;
/// }
/// assert_eq!(counter.add(0)?, 310);
/// assert_eq!(counter.0.to_string(), "310");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Managed: Send + 'static {
    /// The methods a proxy may call (Python's `exposed`). A call of any other method raises
    /// `AttributeError` without reaching [`call`](Self::call); `__repr__`, `__str__` and
    /// `#GETVALUE` are always answered (from [`repr`](Self::repr) and [`value`](Self::value)).
    fn exposed(&self) -> &'static [&'static str];

    /// Runs `call.method` with its arguments. A method raises by returning an [`Exception`],
    /// which the caller receives as Python's would (`TypeError` for wrong arguments, say: the
    /// helpers of [`Call`] raise those).
    ///
    /// # Errors
    ///
    /// Whatever the method raises.
    fn call(&mut self, call: Call) -> Result<Object, Exception>;

    /// A copy of the object's state, as plain data (Python's `proxy._getvalue()`). The
    /// server's memory bounds measure the object on it: what the calls bring (their
    /// arguments) is counted as for the built-in types; what a method makes beyond that is
    /// counted when the object is measured again.
    fn value(&self) -> Object;

    /// Python's `repr` of the object; by default that of its [`value`](Self::value).
    fn repr(&self) -> String {
        self.value().to_string()
    }

    /// About how many items `call` touches. Cheap calls (the default, 0) run on the server's
    /// loop; a call above its threshold (100 000) runs on a worker thread, so that it delays
    /// only the clients of this object. Cost is asked before each call; keep it cheap.
    fn cost(&self, call: &Call) -> u64 {
        let _ = call;
        0
    }

    /// Whether the object keeps something for `caller` that it must give back when the
    /// caller goes away (a claim, a lock); asked after each of its calls. If it answers
    /// `true`, [`client_gone`](Self::client_gone) is called once the caller has gone.
    fn remembers(&self, caller: Caller) -> bool {
        let _ = caller;
        false
    }

    /// `caller` disconnected or died (even killed with `SIGKILL`): give back what it held,
    /// as the built-in locks do.
    fn client_gone(&mut self, caller: Caller) {
        let _ = caller;
    }
}

/// Who makes a call, as the server tells its clients apart: a connection of a client
/// process, the identity the built-in locks have for their owner.
///
/// ```
/// use multiproc::manager::Call;
/// let a = Call::new("claim", vec![]).caller();
/// assert_eq!(a, Call::new("release", vec![]).caller());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Caller(Holder);

/// Builds an object of a registered type from the constructor's arguments (those of
/// [`Manager::create`](super::Manager::create) after the typeid). A plain function, so that it
/// reaches a server running in another process.
pub type Factory = fn(Call) -> Result<Box<dyn Managed>, Exception>;

impl Call {
    /// Who makes the call (the server itself, for a call made with [`Call::new`]).
    pub fn caller(&self) -> Caller {
        Caller(self.who)
    }

    /// The `AttributeError` of a method this type does not have, for the last arm of a
    /// [`Managed::call`].
    ///
    /// ```
    /// use multiproc::manager::{Call, ExceptionKind};
    /// let e = Call::new("frobnicate", vec![]).no_such_method();
    /// assert_eq!(e.kind(), ExceptionKind::AttributeError);
    /// ```
    pub fn no_such_method(&self) -> Exception {
        Exception::msg(
            ExceptionKind::AttributeError,
            format!("the object has no method {:?}", self.method),
        )
    }
}

impl Proxy {
    /// Calls `method` with typed arguments and a typed result, converted through serde:
    /// `args` is a tuple of the positional arguments (`()` for none, `(x,)` for one), the
    /// result any type the method's value converts to.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Raised`] with the exception the method raised; [`ManagerError::Codec`]
    /// when the arguments or the result do not convert; the other variants when the manager
    /// cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::manager::Manager;
    /// let manager = Manager::start_thread()?;
    /// let d = manager.create("dict", vec![])?;
    /// d.call_as::<_, ()>("__setitem__", ("k", vec![1, 2]))?;
    /// let v: Vec<i32> = d.call_as("__getitem__", ("k",))?;
    /// assert_eq!(v, [1, 2]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn call_as<A: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        args: A,
    ) -> Result<R, ManagerError> {
        let encode = |e: crate::object::SerdeError| {
            ManagerError::Codec(crate::codec::CodecError::Encode(e.to_string()))
        };
        let args = match to_object(&args).map_err(encode)? {
            Object::Tuple(items) => items,
            Object::None => Vec::new(),
            one => vec![one],
        };
        let value = self.call(method, args)?;
        from_object(value)
            .map_err(|e| ManagerError::Codec(crate::codec::CodecError::Decode(e.to_string())))
    }
}

/// An object of a registered type, as the server holds it.
struct Custom {
    typeid: &'static str,
    inner: Box<dyn Managed>,
}

impl Referent for Custom {
    fn typeid(&self) -> &'static str {
        self.typeid
    }

    fn exposed(&self) -> &'static [&'static str] {
        self.inner.exposed()
    }

    fn call(&mut self, call: Call) -> CallResult {
        // A method that panics raises in its caller, and the server goes on serving. The
        // object stays as the panic left it, as a Python object an exception left half-way.
        let method = call.method.clone();
        let inner = &mut self.inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.call(call))) {
            Ok(r) => Ok(r?.into()),
            Err(panic) => Err(panicked(self.typeid, &method, panic.as_ref())),
        }
    }

    fn cost(&self, call: &Call) -> u64 {
        self.inner.cost(call)
    }

    fn remembers(&self, who: Holder) -> bool {
        self.inner.remembers(Caller(who))
    }

    fn client_gone(&mut self, who: Holder) {
        let inner = &mut self.inner;
        let gone = std::panic::AssertUnwindSafe(|| inner.client_gone(Caller(who)));
        // A panic here is the type's own: the server goes on.
        let _ = std::panic::catch_unwind(gone);
    }

    fn repr(&self) -> String {
        let inner = &self.inner;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.repr()))
            .unwrap_or_else(|_| format!("<{} object>", self.typeid))
    }

    fn value(&self) -> Object {
        let inner = &self.inner;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.value()))
            .unwrap_or(Object::None)
    }
}

/// The `RuntimeError` of a method of a registered type that panicked.
fn panicked(typeid: &str, method: &str, panic: &(dyn std::any::Any + Send)) -> Exception {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    Exception::msg(
        ExceptionKind::RuntimeError,
        format!("{typeid}.{method} panicked: {why}"),
    )
}

/// The typeids of the built-in types, as [`Manager::create`](super::Manager::create) and
/// `multiproc serve --object NAME=TYPE` take them; a registered type may not take one.
///
/// ```
/// assert!(multiproc::manager::BUILTIN_TYPEIDS.contains(&"Queue"));
/// ```
pub const BUILTIN_TYPEIDS: &[&str] = &[
    "dict",
    "list",
    "Namespace",
    "Value",
    "Array",
    "Queue",
    "JoinableQueue",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Condition",
    "Barrier",
    "Iterator",
];

/// The reference to a factory that a child server receives.
pub(crate) type FactoryRef = FnRef<Call, Result<Box<dyn Managed>, Exception>>;

/// The types registered on a server, beside the built-in ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct Types {
    by_name: Vec<(&'static str, Factory)>,
}

impl Types {
    /// Registers `factory` under `typeid`.
    pub fn register(&mut self, typeid: &'static str, factory: Factory) -> Result<(), String> {
        if BUILTIN_TYPEIDS.contains(&typeid) {
            return Err(format!("{typeid:?} is a built-in type of the manager"));
        }
        if typeid.is_empty() || typeid.starts_with('#') {
            return Err(format!("{typeid:?} is not a typeid"));
        }
        if self.get(typeid).is_some() {
            return Err(format!("{typeid:?} is registered already"));
        }
        self.by_name.push((typeid, factory));
        Ok(())
    }

    fn get(&self, typeid: &str) -> Option<(&'static str, Factory)> {
        self.by_name.iter().copied().find(|(t, _)| *t == typeid)
    }

    /// Creates an object of `typeid`: a registered type, or a built-in one.
    pub fn create(&self, typeid: &str, call: Call) -> Result<Box<dyn Referent>, Exception> {
        match self.get(typeid) {
            Some((typeid, factory)) => {
                // A factory that panics raises in its caller, as a method does.
                let made = std::panic::catch_unwind(|| factory(call));
                let inner =
                    made.map_err(|panic| panicked(typeid, "__init__", panic.as_ref()))??;
                Ok(Box::new(Custom { typeid, inner }))
            }
            None => super::create(typeid, call),
        }
    }

    /// The registrations, in the form a server process started from this program receives.
    pub fn to_wire(&self) -> Result<Vec<(String, FactoryRef)>, String> {
        self.by_name
            .iter()
            .map(|&(typeid, f)| match FnRef::of(f) {
                Some(r) => Ok((typeid.to_owned(), r)),
                None => Err(format!(
                    "the factory of {typeid:?} is not in the executable (a shared library's \
                     function cannot reach a server process; use start_thread)"
                )),
            })
            .collect()
    }

    /// The registrations a server process received from the program that started it.
    pub fn from_wire(wire: Vec<(String, FactoryRef)>) -> Result<Types, String> {
        let mut types = Types::default();
        for (typeid, r) in wire {
            let f = r
                .get()
                .ok_or_else(|| format!("the factory of {typeid:?} is not in this executable"))?;
            // Once per registered type and server process: the server's typeids live as long
            // as it does.
            types.register(Box::leak(typeid.into_boxed_str()), f)?;
        }
        Ok(types)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    struct Echo;

    impl Managed for Echo {
        fn exposed(&self) -> &'static [&'static str] {
            &["echo"]
        }
        fn call(&mut self, call: Call) -> Result<Object, Exception> {
            match call.method.as_str() {
                "echo" => Ok(Object::Tuple(call.args)),
                _ => Err(call.no_such_method()),
            }
        }
        fn value(&self) -> Object {
            Object::None
        }
    }

    fn echo(call: Call) -> Result<Box<dyn Managed>, Exception> {
        call.arity(0, 0)?;
        Ok(Box::new(Echo))
    }

    #[test]
    fn registered_types_are_made_and_dispatched() {
        let mut types = Types::default();
        types.register("Echo", echo).unwrap();
        let mut e = types.create("Echo", Call::new("", vec![])).unwrap();
        assert_eq!(e.typeid(), "Echo");
        let r = e.dispatch(Call::new("echo", vec![obj!(1)])).ok().unwrap();
        assert!(matches!(r, super::super::referent::Outcome::Value(v) if v == obj!((1,))));
        let err = e.dispatch(Call::new("other", vec![])).err().unwrap();
        assert_eq!(err.kind(), ExceptionKind::AttributeError);
        let err = types.create("Echo", Call::new("", vec![obj!(1)])).err();
        assert_eq!(err.unwrap().kind(), ExceptionKind::TypeError);
        // Built-ins still there, unknown names refused.
        assert_eq!(
            types
                .create("dict", Call::new("", vec![]))
                .ok()
                .unwrap()
                .typeid(),
            "dict"
        );
        assert!(types.create("Nope", Call::new("", vec![])).is_err());
    }

    #[test]
    fn registrations_are_checked() {
        let mut types = Types::default();
        assert!(types.register("dict", echo).is_err());
        assert!(types.register("#x", echo).is_err());
        types.register("Echo", echo).unwrap();
        assert!(types.register("Echo", echo).is_err());
    }

    #[test]
    fn registrations_travel_as_offsets() {
        let mut types = Types::default();
        types.register("Echo", echo).unwrap();
        let bytes = postcard::to_allocvec(&types.to_wire().unwrap()).unwrap();
        let back = Types::from_wire(postcard::from_bytes(&bytes).unwrap()).unwrap();
        let e = back.create("Echo", Call::new("", vec![])).ok().unwrap();
        assert_eq!(e.typeid(), "Echo");
    }
}
