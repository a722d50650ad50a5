//! The manager: a server process that holds objects (dicts, lists, namespaces, values, …) and
//! serves their methods to proxies in other processes, as Python's `multiprocessing.managers`.
//!
//! This module holds the server's objects and their methods with Python's semantics: a call
//! arrives as `(method, args, kwargs)` of plain [`Object`](crate::Object)s, runs against the
//! object atomically, and returns a value, a new object (an iterator), or an [`Exception`] named
//! as Python names it (`KeyError('zz')`), so that Rust and Python clients see what Python's own
//! manager gives them.

mod client;
mod dict;
mod exception;
mod list;
mod namespace;
mod ops;
mod protocol;
mod queue;
mod referent;
mod server;
mod sync;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wait;

pub use client::{DictProxy, ListProxy, Manager, ManagerError, Proxy};
pub use exception::{Exception, ExceptionKind};

use crate::object::Dict;
use referent::{Call, Referent};

/// Creates the object of a builtin `typeid` from its constructor's arguments, as Python's
/// `manager.dict(...)`, `manager.list(...)`, `manager.Namespace(...)` and `manager.Value(...)`
/// do.
pub(crate) fn create(typeid: &str, mut call: Call) -> Result<Box<dyn Referent>, Exception> {
    call.method = typeid.to_owned();
    Ok(match typeid {
        "dict" => {
            call.positional(0, 1)?;
            let mut d = dict::ManagedDict::new(Dict::new());
            call.method = "update".into();
            d.call(call)?;
            Box::new(d)
        }
        "list" => {
            let items = match call.take(0, 1)?.pop() {
                None => Vec::new(),
                Some(it) => referent::iterate(it)?,
            };
            Box::new(list::ManagedList::new(items))
        }
        "Namespace" => {
            call.positional(0, 0)?;
            Box::new(namespace::Namespace::new(call.kwargs)?)
        }
        "Value" => {
            // `lock` is accepted and ignored, as Python's managers.Value does.
            call.take_kwarg("lock");
            let (typecode, value) = call.two()?;
            Box::new(namespace::Value::new(typecode, value))
        }
        "Queue" => Box::new(queue::Queue::create(call, false)?),
        "JoinableQueue" => Box::new(queue::Queue::create(call, true)?),
        "Lock" | "RLock" => {
            call.arity(0, 0)?;
            Box::new(sync::Lock::new(typeid == "RLock"))
        }
        "Semaphore" => Box::new(sync::Semaphore::create(call, false)?),
        "BoundedSemaphore" => Box::new(sync::Semaphore::create(call, true)?),
        "Event" => {
            call.arity(0, 0)?;
            Box::<sync::Event>::default()
        }
        "Condition" => {
            // Python's accepts a lock to share; the manager's has its own.
            call.arity(0, 0)?;
            Box::<sync::Condition>::default()
        }
        "Barrier" => Box::new(sync::Barrier::create(call)?),
        other => {
            return Err(Exception::type_error(format!(
                "no managed type is registered as {other:?}"
            )));
        }
    })
}
