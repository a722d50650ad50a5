//! The manager: a server that holds objects (dicts, lists, queues, locks, …) and serves their
//! methods to proxies in other processes, as Python's `multiprocessing.managers`.
//!
//! A [`Manager`] starts a server ([`Manager::start`] in a child process, as Python's
//! `Manager()`; [`Manager::start_thread`] on a thread) or reaches one that runs elsewhere
//! ([`Manager::connect`]). Each object lives on the server; a [`Proxy`] (or a typed one:
//! [`DictProxy`], [`ListProxy`], [`QueueProxy`], [`LockProxy`], [`EventProxy`],
//! [`ConditionProxy`], [`SemaphoreProxy`], [`BarrierProxy`], [`NamespaceProxy`],
//! [`ValueProxy`]) calls its methods there. Proxies travel to child processes
//! as arguments, so several processes share one object.
//!
//! ```
//! # multiproc::init();
//! use multiproc::manager::{ExceptionKind, Manager, ManagerError};
//! use multiproc::obj;
//!
//! let manager = Manager::start().unwrap();
//! let d = manager.dict().unwrap();
//! d.set("hits", 1).unwrap();
//! // One step on the server: no update is lost, whoever else increments.
//! assert_eq!(d.update_with("hits", "add", 1).unwrap(), obj!(2));
//! // Python's exceptions, with Python's names.
//! match d.get_item("missing") {
//!     Err(ManagerError::Raised(e)) => assert_eq!(e.kind(), ExceptionKind::KeyError),
//!     other => panic!("{other:?}"),
//! }
//! // Any method of any managed type, by name.
//! let q = manager.create("Queue", vec![]).unwrap();
//! q.call("put", vec![obj!([1, "two"])]).unwrap();
//! assert_eq!(q.call("get", vec![]).unwrap().to_string(), "[1, 'two']");
//! ```
//!
//! # The server
//!
//! One thread serves every client by readiness: handshakes, requests and replies never wait
//! on a client, so a silent or slow client delays nobody. A call that touches many items (a
//! sort, a copy or the `repr` of a large list) runs on one of two worker threads instead, as
//! does any call on an object such a call holds, so a long call delays only the clients of
//! that object. Each object has its own lock, so the calls on one object are atomic with
//! respect to each other. A call that waits (`Queue.get`
//! on an empty queue, `Lock.acquire` of a held lock) parks only its caller. A request is
//! Python's `(object id, method, args, kwargs)`, decoded with bounded size and depth; nothing
//! in it is ever run: the types are the built-in ones below.
//!
//! | typeid | methods (Python's) | beyond Python |
//! |---|---|---|
//! | `dict` | `__getitem__ __setitem__ __delitem__ __contains__ __len__ __iter__ get keys values items pop popitem setdefault update clear copy` | `update_with`, `compare_and_set` |
//! | `list` | `__getitem__ __setitem__ __delitem__ __contains__ __len__ __add__ __mul__ __rmul__ __imul__ __reversed__ append count extend index insert pop remove reverse sort clear copy`, indices and slices | |
//! | `Namespace` | `__getattribute__ __setattr__ __delattr__` | |
//! | `Value` | `get set` | `update_with`, `compare_and_set` |
//! | `Queue`, `JoinableQueue` | `put put_nowait get get_nowait qsize empty full task_done join` | |
//! | `Lock`, `RLock` | `acquire release` | `acquire_robust`, `locked` |
//! | `Semaphore`, `BoundedSemaphore` | `acquire release` | `get_value` |
//! | `Event` | `is_set set clear wait` | |
//! | `Condition` | `acquire release wait notify notify_all` | |
//! | `Barrier` | `wait abort reset` and the attributes `parties n_waiting broken` | |
//!
//! Types of your own join them: implement [`Managed`] and register a [`Factory`] under a
//! typeid with [`Manager::options`] or [`Server::register`].
//!
//! # When a client goes away
//!
//! A client that disconnects or dies, even killed with `SIGKILL`, is released at once: the
//! server drops its references (an object nobody else holds is freed), cancels its waiting
//! calls, and gives back what it held. A `Lock`, `RLock` or `Condition` it held goes to the next
//! acquirer, which `acquire_robust` tells (it answers 2: acquired from an owner that died);
//! a party that leaves a `Barrier` while waiting breaks it, so that the others raise
//! `BrokenBarrierError` instead of waiting forever. Semaphore permits are not owned, so a dead
//! client's permits stay taken, as in Python. Python's manager keeps a dead client's objects
//! until it stops, and its locks stay held forever.
//!
//! # Python's own clients
//!
//! `multiproc serve` (and any [`Server`], with the `python` feature, which the `cli` feature
//! enables) also serves Python's own manager clients, unchanged:
//! `SyncManager(address, authkey).connect()` of CPython 3.11–3.13, and the remote-manager
//! recipe (`QueueManager.register('get_queue'); m.connect(); m.get_queue().put(x)`) for the
//! names it publishes (`--object get_queue=Queue`), shared with Rust clients. A connection
//! whose first request is a pickle speaks Python's protocol. Nothing in a request runs: the
//! only names a request may carry are `builtins.slice`, `builtins.range` and those a pickled
//! proxy is made of (`RebuildProxy`, `AutoProxy`, `Token`, the builtin proxy classes), read
//! as data; any other is refused with a `#TRACEBACK` that names it, and the connection goes
//! on. Python's client takes references with explicit `incref`/`decref`, each on a new
//! connection: its references belong to all Python clients together, so the objects of a
//! Python client that dies are kept, as Python's server keeps them.
//!
//! | Python's `SyncManager` | served here |
//! |---|---|
//! | `dict`, `list` (with slices and nested proxies), `Namespace`, `Value` | yes; `Value`'s typecode is kept for its repr, never checked (as Python) |
//! | `Queue`, `JoinableQueue` (`AutoProxy`) | yes, without 3.13's `shutdown` |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Condition`, `Event`, `Barrier` | yes (`Condition.wait_for` runs on the client, as in Python) |
//! | `Array` | yes: items checked by their type code with Python's exceptions; `_getvalue()` gives a list, not an `array.array` |
//! | `Pool`, `sort(key=…)`, a `Barrier` action, classes registered with a callable | no: the server never runs Python code; the error says so |
//! | iterators (`iter(d)`, `#PROXY`) | yes (a snapshot of the keys) |
//! | `str(proxy)`, `#GETVALUE` (`proxy._getvalue()`) | yes, Python's reprs |
//! | `_number_of_objects()`, `_debug_info()` | yes |
//! | `register('get_queue')` + `connect()` (the remote-manager recipe) | the names published with `multiproc serve --object NAME=TYPE` |
//! | `shutdown()` | only for the server of a [`Manager`]; a stand-alone server refuses |
//! | the `xmlrpclib` serializer | no |
//! | protocol 0–5 requests, both handshakes (3.11's HMAC-MD5 only with `--allow-legacy-md5`) | yes |
//!
//! The other way round, [`Manager::connect_python`] uses Python's own manager server
//! (`SyncManager(address, authkey).get_server().serve_forever()`) from Rust with the same
//! proxy types: its `dict`, `list` (slices, nested proxies), `Namespace`, `Value` and `Queue`,
//! Python's exceptions typed, each proxy's reference given back when it is dropped.
//!
//! # Differences from Python's managers
//!
//! - **Nothing from the wire runs.** Python's server unpickles requests, so anyone with the
//!   authkey runs code on it; here a request is plain data, and only the built-in types and
//!   those the server's own program [registered](Managed) can be created. A `sort(key=...)`
//!   or a `Barrier` action cannot run on the server.
//! - **Memory is bounded.** One object holds at most 1 GiB by default, and all of them
//!   together as much as [`ManagerOptions::max_memory`] (or [`Server::set_max_memory`])
//!   allows; past it a call raises `MemoryError` and changes nothing. Python's server grows
//!   until the machine runs out.
//! - **`d[k] += 1` races in Python;** [`DictProxy::update_with`] does it in one step.
//! - **Few connections.** Python opens a new connection, with a full handshake, for every
//!   `create`, `incref` and `decref`, and one per thread for calls; here the proxies of a
//!   process share a few connections (one per call in flight), which the server counts as one
//!   client: its references are released when the last of them closes.
//! - **Nested proxies are held.** A proxy stored in a managed dict or list (`d['x'] =
//!   m.list()`, or `d.set("x", &list)` and [`DictProxy::get_proxy`] from Rust) keeps its
//!   object alive while an entry names it, and the object is freed when the entry goes and no
//!   proxy of it is left; Python's server keeps such objects until it stops, and
//!   `_number_of_objects()` does not count them.
//! - **Iterators are snapshots.** `__iter__` of a dict returns an iterator over the keys at the
//!   time of the call; Python's raises if the dict changes size meanwhile.
//! - **Proxies and the authkey.** A proxy sent to another process carries the manager's
//!   address and authkey, as Python's does when it spawns a child; send proxies only to
//!   processes you would give the key. The sender should keep its proxy until the receiver
//!   has its own (the receiver takes its own reference when it decodes the proxy).

mod array;
mod client;
mod custom;
mod dict;
mod exception;
mod limits;
mod list;
mod namespace;
mod nested;
mod ops;
mod protocol;
mod proxies;
#[cfg(feature = "python")]
mod python;
mod queue;
mod referent;
mod server;
mod slice;
mod standalone;
mod start;
mod sync;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wait;

pub use client::{Manager, ManagerError, Proxy};
pub use custom::{BUILTIN_TYPEIDS, Caller, Factory, Managed};
pub use exception::{Exception, ExceptionKind};
pub use proxies::{
    Acquired, ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, ListProxy,
    LockProxy, NamespaceProxy, QueueProxy, SemaphoreProxy, ValueProxy,
};
pub use standalone::{Server, Stopper};
pub use start::ManagerOptions;

use crate::object::Dict;
pub use referent::Call;
// For the Redis backend, which keeps the manager's semantics.
#[cfg(feature = "redis")]
pub(crate) use ops::{apply, reply_of};
pub(crate) use referent::Referent;
#[cfg(feature = "redis")]
pub(crate) use referent::{Outcome, check_hashable, iterate, truthy};

/// For the fuzz target: decodes `data` as a sequence of requests and runs each, from two
/// clients in turn, against a fresh server table; then expires every waiting call and
/// releases both clients. Must never panic, whatever `data` holds.
#[doc(hidden)]
pub fn __fuzz_requests(data: &[u8]) {
    use protocol::{Request, Session};
    use referent::Holder;
    let table = table::Table::default();
    let names = std::sync::RwLock::new(std::collections::HashMap::new());
    let mut rest = data;
    let mut turn = 0u64;
    while let Ok((req, more)) = postcard::take_from_bytes::<Request>(rest) {
        rest = more;
        turn += 1;
        let who = Holder::Client(turn % 2);
        let session = Session {
            table: &table,
            names: &names,
            holder: who,
            who,
        };
        let _ = session.handle(req);
        if turn >= 64 {
            break;
        }
    }
    let later = std::time::Instant::now() + std::time::Duration::from_secs(1 << 20);
    let _ = table.expire(later);
    let _ = table.release(Holder::Client(0));
    let _ = table.release(Holder::Client(1));
}

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
        "Array" => Box::new(array::Array::create(call)?),
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
