//! Typed proxies: Python's proxy classes (`DictProxy`, `ListProxy`, `AcquirerProxy`, …) with
//! Rust signatures over [`Proxy`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{Manager, ManagerError, Proxy, len_of};
use super::exception::ExceptionKind;
use crate::object::{Dict, Object, Slice};

/// A time-out in seconds, as Python's `timeout=` takes it.
fn secs(d: Duration) -> Object {
    Object::Float(d.as_secs_f64())
}

/// `Ok(false)` for the exception `kind` (a time-out), `Ok(true)` for success.
fn timed(r: Result<Object, ManagerError>, kind: ExceptionKind) -> Result<bool, ManagerError> {
    match r {
        Ok(_) => Ok(true),
        Err(ManagerError::Raised(e)) if e.kind() == kind => Ok(false),
        Err(e) => Err(e),
    }
}

fn truth(o: Object) -> Result<bool, ManagerError> {
    o.as_bool()
        .ok_or_else(|| ManagerError::Protocol(format!("{o} is not a bool")))
}

macro_rules! typed_proxy {
    ($name:ident, [$($typeid:literal),+], $what:literal) => {
        #[doc = concat!("A proxy of a managed ", $("`", $typeid, "` "),+, "object: ", $what)]
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Proxy);

        impl $name {
            /// The untyped proxy, for methods this type does not wrap.
            pub fn as_proxy(&self) -> &Proxy {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl TryFrom<Proxy> for $name {
            /// The proxy back, when its object is of another type.
            type Error = Proxy;

            fn try_from(p: Proxy) -> Result<Self, Proxy> {
                if [$($typeid),+].contains(&p.typeid()) {
                    Ok($name(p))
                } else {
                    Err(p)
                }
            }
        }

        impl From<$name> for Proxy {
            fn from(p: $name) -> Proxy {
                p.0
            }
        }

        impl From<&$name> for Object {
            /// A reference to the object, to store in a managed dict or list.
            fn from(p: &$name) -> Object {
                Object::from(&p.0)
            }
        }
    };
}

typed_proxy!(
    DictProxy,
    ["dict"],
    "Python's `DictProxy` methods, keys and values as [`Object`]s."
);
typed_proxy!(
    ListProxy,
    ["list"],
    "Python's `ListProxy` methods, items as [`Object`]s."
);
typed_proxy!(
    QueueProxy,
    ["Queue", "JoinableQueue"],
    "Python's `queue.Queue` methods; a `get` on an empty queue waits on the server, blocking \
     only the calling thread."
);
typed_proxy!(
    LockProxy,
    ["Lock", "RLock"],
    "`acquire`/`release`; a holder that dies leaves the lock to the next acquirer, which \
     [`acquire_robust`](LockProxy::acquire_robust) tells."
);
typed_proxy!(
    SemaphoreProxy,
    ["Semaphore", "BoundedSemaphore"],
    "`acquire`/`release` of permits."
);
typed_proxy!(EventProxy, ["Event"], "a flag that waiters wait for.");
typed_proxy!(
    ConditionProxy,
    ["Condition"],
    "a lock with `wait`/`notify`."
);
typed_proxy!(
    BarrierProxy,
    ["Barrier"],
    "a meeting point for a fixed number of parties."
);
typed_proxy!(NamespaceProxy, ["Namespace"], "named attributes.");
typed_proxy!(ValueProxy, ["Value"], "one value, with atomic updates.");
typed_proxy!(
    ArrayProxy,
    ["Array"],
    "numbers of one C type (Python's `array.array`), each checked on the way in."
);

impl ArrayProxy {
    /// `len(a)`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn len(&self) -> Result<usize, ManagerError> {
        super::client::len_of(self.0.call("__len__", vec![])?)
    }

    /// `len(a) == 0`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `a[i]` (negative `i` counts from the end).
    ///
    /// # Errors
    ///
    /// `IndexError` out of range.
    pub fn get(&self, i: i64) -> Result<Object, ManagerError> {
        self.0.call("__getitem__", vec![i.into()])
    }

    /// `a[i] = x`: `x` must fit the array's type (`TypeError`, `OverflowError`).
    ///
    /// # Errors
    ///
    /// `IndexError` out of range, `TypeError`/`OverflowError` for a value that does not fit.
    pub fn set(&self, i: i64, x: impl Into<Object>) -> Result<(), ManagerError> {
        self.0
            .call("__setitem__", vec![i.into(), x.into()])
            .map(drop)
    }
}

impl DictProxy {
    /// `d[key] = value`.
    ///
    /// # Errors
    ///
    /// `TypeError` for an unhashable key; [`ManagerError`] when the manager cannot be reached.
    pub fn set(
        &self,
        key: impl Into<Object>,
        value: impl Into<Object>,
    ) -> Result<(), ManagerError> {
        self.0
            .call("__setitem__", vec![key.into(), value.into()])
            .map(drop)
    }

    /// `d[key]`.
    ///
    /// # Errors
    ///
    /// `KeyError` when the key is missing.
    pub fn get_item(&self, key: impl Into<Object>) -> Result<Object, ManagerError> {
        self.0.call("__getitem__", vec![key.into()])
    }

    /// `d[key]` when it holds a proxy (a nested object): a working proxy of it.
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::manager::{DictProxy, Manager};
    ///
    /// let m = Manager::start_thread().unwrap();
    /// let d = m.dict().unwrap();
    /// d.set("inner", &m.dict().unwrap()).unwrap();
    /// let inner = DictProxy::try_from(d.get_proxy("inner").unwrap()).unwrap();
    /// inner.set("k", 1).unwrap();
    /// assert_eq!(inner.to_string(), "{'k': 1}");
    /// ```
    ///
    /// # Errors
    ///
    /// `KeyError` when absent; [`ManagerError::Protocol`] when the value is not a proxy.
    pub fn get_proxy(&self, key: impl Into<Object>) -> Result<Proxy, ManagerError> {
        self.0.resolve(&self.get_item(key)?)
    }

    /// `d.get(key)`: the value, or `None` when the key is missing.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn get(&self, key: impl Into<Object>) -> Result<Option<Object>, ManagerError> {
        match self.get_item(key) {
            Ok(v) => Ok(Some(v)),
            Err(ManagerError::Raised(e)) if e.kind() == super::ExceptionKind::KeyError => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `del d[key]`.
    ///
    /// # Errors
    ///
    /// `KeyError` when the key is missing.
    pub fn delete(&self, key: impl Into<Object>) -> Result<(), ManagerError> {
        self.0.call("__delitem__", vec![key.into()]).map(drop)
    }

    /// `key in d`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn contains(&self, key: impl Into<Object>) -> Result<bool, ManagerError> {
        Ok(self.0.call("__contains__", vec![key.into()])? == true)
    }

    /// `len(d)`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn len(&self) -> Result<usize, ManagerError> {
        len_of(self.0.call("__len__", vec![])?)
    }

    /// `len(d) == 0`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// A copy of the dict.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn copy(&self) -> Result<Dict, ManagerError> {
        match self.0.call("copy", vec![])? {
            Object::Dict(d) => Ok(d),
            other => Err(ManagerError::Protocol(format!("{other} is not a dict"))),
        }
    }

    /// `d[key] = op(d.get(key), operand)` in one step on the server (no lost update, unlike
    /// `d[key] += 1` through a proxy); returns the new value, or its length when it is a
    /// str, bytes, list, tuple, dict or set (so that growing a large value costs small
    /// replies; the value changes in place, so a call costs what its operand does). The
    /// operations: `"add"`, `"sub"`, `"mul"`, `"max"`, `"min"`, `"append"`, `"extend"`; a
    /// missing key starts from `0` (`1` for `mul`, `[]` for `append`/`extend`, the operand
    /// for `max`/`min`).
    ///
    /// # Errors
    ///
    /// `TypeError`/`ValueError` for an operation that does not apply.
    pub fn update_with(
        &self,
        key: impl Into<Object>,
        op: &str,
        operand: impl Into<Object>,
    ) -> Result<Object, ManagerError> {
        self.0
            .call("update_with", vec![key.into(), op.into(), operand.into()])
    }

    /// Sets `d[key] = new` only if `d.get(key) == expected` (a missing key counts as `None`),
    /// in one step; returns whether it did.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn compare_and_set(
        &self,
        key: impl Into<Object>,
        expected: impl Into<Object>,
        new: impl Into<Object>,
    ) -> Result<bool, ManagerError> {
        let args = vec![key.into(), expected.into(), new.into()];
        Ok(self.0.call("compare_and_set", args)? == true)
    }
}

impl ListProxy {
    /// `l.append(x)`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn append(&self, x: impl Into<Object>) -> Result<(), ManagerError> {
        self.0.call("append", vec![x.into()]).map(drop)
    }

    /// `l[i]`, negative `i` counting from the end.
    ///
    /// # Errors
    ///
    /// `IndexError` out of range.
    pub fn get(&self, i: i64) -> Result<Object, ManagerError> {
        self.0.call("__getitem__", vec![i.into()])
    }

    /// `l[i] = x`.
    ///
    /// # Errors
    ///
    /// `IndexError` out of range.
    pub fn set(&self, i: i64, x: impl Into<Object>) -> Result<(), ManagerError> {
        self.0
            .call("__setitem__", vec![i.into(), x.into()])
            .map(drop)
    }

    /// `l[i]` when it holds a proxy (a nested object): a working proxy of it.
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::manager::{Manager, QueueProxy};
    /// use multiproc::object::Object;
    ///
    /// let m = Manager::start_thread().unwrap();
    /// let q = m.queue(0).unwrap();
    /// let l = m.list(vec![Object::from(&q)]).unwrap();
    /// let again = QueueProxy::try_from(l.get_proxy(0).unwrap()).unwrap();
    /// again.put("job").unwrap();
    /// assert_eq!(q.qsize().unwrap(), 1);
    /// ```
    ///
    /// # Errors
    ///
    /// `IndexError` out of range; [`ManagerError::Protocol`] when the item is not a proxy.
    pub fn get_proxy(&self, i: i64) -> Result<Proxy, ManagerError> {
        self.0.resolve(&self.get(i)?)
    }

    /// `l[s]`: the items a slice selects, with Python's semantics (negative bounds count
    /// from the end; a negative step walks backwards).
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::manager::Manager;
    /// use multiproc::object::Slice;
    ///
    /// let m = Manager::start_thread().unwrap();
    /// let l = m.list((0..10).collect::<Vec<i64>>()).unwrap();
    /// assert_eq!(multiproc::object::Object::List(l.slice(Slice::range(2..5)).unwrap()).to_string(), "[2, 3, 4]");
    /// assert_eq!(l.slice(Slice::new(None, None, -3)).unwrap().len(), 4);
    /// ```
    ///
    /// # Errors
    ///
    /// `ValueError` for a step of zero.
    pub fn slice(&self, s: Slice) -> Result<Vec<Object>, ManagerError> {
        match self.0.call("__getitem__", vec![s.into()])? {
            Object::List(v) => Ok(v),
            other => Err(ManagerError::Protocol(format!("{other} is not a list"))),
        }
    }

    /// `l[s] = items`: a simple slice (no step, or 1) takes any number of items in place of
    /// those it selects; an extended slice takes exactly as many.
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::manager::Manager;
    /// use multiproc::object::Slice;
    ///
    /// let m = Manager::start_thread().unwrap();
    /// let l = m.list(vec![0, 1, 2, 3]).unwrap();
    /// l.set_slice(Slice::range(1..3), vec!["a", "b", "c"]).unwrap();
    /// assert_eq!(l.to_string(), "[0, 'a', 'b', 'c', 3]");
    /// assert!(l.set_slice(Slice::new(None, None, 2), vec![1]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `ValueError` when an extended slice gets another number of items; `TypeError` when
    /// `items` is not iterable.
    pub fn set_slice(&self, s: Slice, items: impl Into<Object>) -> Result<(), ManagerError> {
        self.0
            .call("__setitem__", vec![s.into(), items.into()])
            .map(drop)
    }

    /// `del l[s]`.
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::manager::Manager;
    /// use multiproc::object::Slice;
    ///
    /// let m = Manager::start_thread().unwrap();
    /// let l = m.list(vec![0, 1, 2, 3, 4]).unwrap();
    /// l.del_slice(Slice::new(None, None, 2)).unwrap();
    /// assert_eq!(l.to_string(), "[1, 3]");
    /// ```
    ///
    /// # Errors
    ///
    /// `ValueError` for a step of zero.
    pub fn del_slice(&self, s: Slice) -> Result<(), ManagerError> {
        self.0.call("__delitem__", vec![s.into()]).map(drop)
    }

    /// `l.reverse()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn reverse(&self) -> Result<(), ManagerError> {
        self.0.call("reverse", vec![]).map(drop)
    }

    /// `len(l)`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn len(&self) -> Result<usize, ManagerError> {
        len_of(self.0.call("__len__", vec![])?)
    }

    /// `len(l) == 0`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// A copy of the items.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn to_vec(&self) -> Result<Vec<Object>, ManagerError> {
        match self.0.call("copy", vec![])? {
            Object::List(v) => Ok(v),
            other => Err(ManagerError::Protocol(format!("{other} is not a list"))),
        }
    }
}

impl QueueProxy {
    /// `q.put(item)`: waits for room when the queue has a `maxsize` and is full.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn put(&self, item: impl Into<Object>) -> Result<(), ManagerError> {
        self.0.call("put", vec![item.into()]).map(drop)
    }

    /// `q.put(item, timeout=t)`: `false` if there was no room in time (Python's `queue.Full`).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn put_timeout(
        &self,
        item: impl Into<Object>,
        timeout: Duration,
    ) -> Result<bool, ManagerError> {
        let r = self
            .0
            .call("put", vec![item.into(), true.into(), secs(timeout)]);
        timed(r, ExceptionKind::Full)
    }

    /// `q.put_nowait(item)`: `false` if the queue is full.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn put_nowait(&self, item: impl Into<Object>) -> Result<bool, ManagerError> {
        timed(
            self.0.call("put_nowait", vec![item.into()]),
            ExceptionKind::Full,
        )
    }

    /// `q.get()`: waits for an item.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn get(&self) -> Result<Object, ManagerError> {
        self.0.call("get", vec![])
    }

    /// `q.get(timeout=t)`: `None` if nothing came in time (Python's `queue.Empty`).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<Object>, ManagerError> {
        match self.0.call("get", vec![true.into(), secs(timeout)]) {
            Ok(v) => Ok(Some(v)),
            Err(ManagerError::Raised(e)) if e.kind() == ExceptionKind::Empty => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `q.get_nowait()`: `None` if the queue is empty.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn get_nowait(&self) -> Result<Option<Object>, ManagerError> {
        match self.0.call("get_nowait", vec![]) {
            Ok(v) => Ok(Some(v)),
            Err(ManagerError::Raised(e)) if e.kind() == ExceptionKind::Empty => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `q.qsize()`: exact, as the server holds the items.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn qsize(&self) -> Result<usize, ManagerError> {
        len_of(self.0.call("qsize", vec![])?)
    }

    /// `q.task_done()`.
    ///
    /// # Errors
    ///
    /// A `ValueError` when called more times than items were put.
    pub fn task_done(&self) -> Result<(), ManagerError> {
        self.0.call("task_done", vec![]).map(drop)
    }

    /// `q.join()`: waits until every item put has been marked done.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn join(&self) -> Result<(), ManagerError> {
        self.0.call("join", vec![]).map(drop)
    }
}

/// How [`LockProxy::acquire_robust`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acquired {
    /// Not acquired before the time-out.
    No,
    /// Acquired.
    Yes,
    /// Acquired from a holder that died holding it: the data it guards may be half-updated.
    OwnerDied,
}

impl LockProxy {
    /// `lock.acquire()`: waits for the lock.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn acquire(&self) -> Result<(), ManagerError> {
        self.0.call("acquire", vec![]).map(drop)
    }

    /// `lock.acquire(timeout=t)`: whether it was acquired in time.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        truth(self.0.call("acquire", vec![true.into(), secs(timeout)])?)
    }

    /// `lock.acquire(False)`: whether it was free.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn try_acquire(&self) -> Result<bool, ManagerError> {
        truth(self.0.call("acquire", vec![false.into()])?)
    }

    /// Acquires, waiting at most `timeout` (`None`: no limit), and says whether the previous
    /// holder died holding the lock.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn acquire_robust(&self, timeout: Option<Duration>) -> Result<Acquired, ManagerError> {
        let args = match timeout {
            None => vec![],
            Some(t) => vec![true.into(), secs(t)],
        };
        match self.0.call("acquire_robust", args)?.as_i64() {
            Some(0) => Ok(Acquired::No),
            Some(1) => Ok(Acquired::Yes),
            Some(2) => Ok(Acquired::OwnerDied),
            _ => Err(ManagerError::Protocol(
                "not an acquire_robust answer".into(),
            )),
        }
    }

    /// `lock.release()`.
    ///
    /// # Errors
    ///
    /// A `RuntimeError` when the lock is not held (by this client, for an `RLock`).
    pub fn release(&self) -> Result<(), ManagerError> {
        self.0.call("release", vec![]).map(drop)
    }
}

impl SemaphoreProxy {
    /// `sem.acquire()`: waits for a permit.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn acquire(&self) -> Result<(), ManagerError> {
        self.0.call("acquire", vec![]).map(drop)
    }

    /// `sem.acquire(timeout=t)`: whether a permit came in time.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        truth(self.0.call("acquire", vec![true.into(), secs(timeout)])?)
    }

    /// `sem.release(n)`.
    ///
    /// # Errors
    ///
    /// A `ValueError` when a bounded semaphore would go past its initial value.
    pub fn release(&self, n: u32) -> Result<(), ManagerError> {
        self.0.call("release", vec![n.into()]).map(drop)
    }
}

impl EventProxy {
    /// `e.set()`: wakes every waiter.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn set(&self) -> Result<(), ManagerError> {
        self.0.call("set", vec![]).map(drop)
    }

    /// `e.clear()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.0.call("clear", vec![]).map(drop)
    }

    /// `e.is_set()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        truth(self.0.call("is_set", vec![])?)
    }

    /// `e.wait(timeout)`: whether the flag was set in time (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, ManagerError> {
        let args = timeout.map(secs).into_iter().collect();
        truth(self.0.call("wait", args)?)
    }
}

impl ConditionProxy {
    /// `c.acquire()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn acquire(&self) -> Result<(), ManagerError> {
        self.0.call("acquire", vec![]).map(drop)
    }

    /// `c.release()`.
    ///
    /// # Errors
    ///
    /// A `RuntimeError` when this client does not hold it.
    pub fn release(&self) -> Result<(), ManagerError> {
        self.0.call("release", vec![]).map(drop)
    }

    /// `c.wait(timeout)`: releases the lock, waits for a notification (`false` at the
    /// time-out), and takes the lock back before it returns.
    ///
    /// # Errors
    ///
    /// A `RuntimeError` when this client does not hold the lock.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, ManagerError> {
        let args = timeout.map(secs).into_iter().collect();
        truth(self.0.call("wait", args)?)
    }

    /// `c.notify(n)`: wakes exactly `n` waiters, the longest waiting first.
    ///
    /// # Errors
    ///
    /// A `RuntimeError` when this client does not hold the lock.
    pub fn notify(&self, n: u32) -> Result<(), ManagerError> {
        self.0.call("notify", vec![n.into()]).map(drop)
    }

    /// `c.notify_all()`.
    ///
    /// # Errors
    ///
    /// A `RuntimeError` when this client does not hold the lock.
    pub fn notify_all(&self) -> Result<(), ManagerError> {
        self.0.call("notify_all", vec![]).map(drop)
    }
}

impl BarrierProxy {
    /// `b.wait(timeout)`: this party's arrival index, once all parties have arrived.
    ///
    /// # Errors
    ///
    /// A `BrokenBarrierError` when the barrier is broken, aborted, reset, timed out, or a
    /// waiting party went away.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<usize, ManagerError> {
        let args = timeout.map(secs).into_iter().collect();
        len_of(self.0.call("wait", args)?)
    }

    /// `b.abort()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn abort(&self) -> Result<(), ManagerError> {
        self.0.call("abort", vec![]).map(drop)
    }

    /// `b.reset()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn reset(&self) -> Result<(), ManagerError> {
        self.0.call("reset", vec![]).map(drop)
    }

    /// `b.broken`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn broken(&self) -> Result<bool, ManagerError> {
        truth(self.0.call("__getattribute__", vec!["broken".into()])?)
    }
}

impl NamespaceProxy {
    /// `ns.name`.
    ///
    /// # Errors
    ///
    /// An `AttributeError` when there is no such attribute.
    pub fn get(&self, name: &str) -> Result<Object, ManagerError> {
        self.0.call("__getattribute__", vec![name.into()])
    }

    /// `ns.name = value`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn set(&self, name: &str, value: impl Into<Object>) -> Result<(), ManagerError> {
        self.0
            .call("__setattr__", vec![name.into(), value.into()])
            .map(drop)
    }

    /// `del ns.name`.
    ///
    /// # Errors
    ///
    /// An `AttributeError` when there is no such attribute.
    pub fn delete(&self, name: &str) -> Result<(), ManagerError> {
        self.0.call("__delattr__", vec![name.into()]).map(drop)
    }
}

impl ValueProxy {
    /// `v.value`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn get(&self) -> Result<Object, ManagerError> {
        self.0.call("get", vec![])
    }

    /// `v.value = x`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn set(&self, x: impl Into<Object>) -> Result<(), ManagerError> {
        self.0.call("set", vec![x.into()]).map(drop)
    }

    /// `v.value = op(v.value, operand)` in one step (see [`DictProxy::update_with`]); returns
    /// the new value, or its length when it is a sequence or a collection.
    ///
    /// # Errors
    ///
    /// `TypeError`/`ValueError` for an operation that does not apply.
    pub fn update_with(
        &self,
        op: &str,
        operand: impl Into<Object>,
    ) -> Result<Object, ManagerError> {
        self.0.call("update_with", vec![op.into(), operand.into()])
    }

    /// Sets `new` only if the value is still `expected`; whether it did.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn compare_and_set(
        &self,
        expected: impl Into<Object>,
        new: impl Into<Object>,
    ) -> Result<bool, ManagerError> {
        truth(
            self.0
                .call("compare_and_set", vec![expected.into(), new.into()])?,
        )
    }
}

/// The constructors of the managed types, as Python's `manager.dict()`, `manager.Queue()`, ….
impl Manager {
    /// A new, empty managed `dict`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn dict(&self) -> Result<DictProxy, ManagerError> {
        self.create("dict", vec![]).map(DictProxy)
    }

    /// A new managed `list` holding `items`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn list(&self, items: impl Into<Object>) -> Result<ListProxy, ManagerError> {
        self.create("list", vec![items.into()]).map(ListProxy)
    }

    /// A new managed `Queue` (`maxsize` 0: no limit).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn queue(&self, maxsize: usize) -> Result<QueueProxy, ManagerError> {
        self.create("Queue", vec![maxsize.into()]).map(QueueProxy)
    }

    /// A new managed `JoinableQueue` (`maxsize` 0: no limit).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn joinable_queue(&self, maxsize: usize) -> Result<QueueProxy, ManagerError> {
        self.create("JoinableQueue", vec![maxsize.into()])
            .map(QueueProxy)
    }

    /// A new managed `Lock`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        self.create("Lock", vec![]).map(LockProxy)
    }

    /// A new managed `RLock`, re-entrant for the client that holds it.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn rlock(&self) -> Result<LockProxy, ManagerError> {
        self.create("RLock", vec![]).map(LockProxy)
    }

    /// A new managed `Semaphore` with `value` permits (`bounded`: a `BoundedSemaphore`).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn semaphore(&self, value: u32, bounded: bool) -> Result<SemaphoreProxy, ManagerError> {
        let typeid = if bounded {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        };
        self.create(typeid, vec![value.into()]).map(SemaphoreProxy)
    }

    /// A new managed `Event`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        self.create("Event", vec![]).map(EventProxy)
    }

    /// A new managed `Condition`, with a lock of its own.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn condition(&self) -> Result<ConditionProxy, ManagerError> {
        self.create("Condition", vec![]).map(ConditionProxy)
    }

    /// A new managed `Barrier` for `parties` parties.
    ///
    /// # Errors
    ///
    /// A `ValueError` for 0 parties.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy, ManagerError> {
        self.create("Barrier", vec![parties.into()])
            .map(BarrierProxy)
    }

    /// A new managed `Namespace` with the attributes of `attrs`.
    ///
    /// # Errors
    ///
    /// A `TypeError` for a name that is not a `str`.
    pub fn namespace(&self, attrs: Dict) -> Result<NamespaceProxy, ManagerError> {
        let p = self.create_kw("Namespace", vec![], attrs)?;
        Ok(NamespaceProxy(p))
    }

    /// A new managed `Value` (the type code is kept for its `repr`, as in Python).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn value(
        &self,
        typecode: &str,
        value: impl Into<Object>,
    ) -> Result<ValueProxy, ManagerError> {
        self.create("Value", vec![typecode.into(), value.into()])
            .map(ValueProxy)
    }

    /// A new managed `Array` (Python's `manager.Array(typecode, sequence)`: an `array.array`
    /// on the server). `typecode` is one of `b B u h H i I l L q Q f d`, and every item must
    /// fit it, as in Python.
    ///
    /// # Errors
    ///
    /// `ValueError` for an unknown type code, `TypeError`/`OverflowError` for an item that
    /// does not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = multiproc::manager::Manager::start_thread()?;
    /// let a = manager.array("i", vec![1, 2, 3])?;
    /// a.set(-1, 30)?;
    /// assert_eq!(a.to_string(), "array('i', [1, 2, 30])");
    /// assert!(a.set(0, 1i64 << 40).is_err()); // OverflowError, as Python's
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn array(
        &self,
        typecode: &str,
        items: impl Into<Object>,
    ) -> Result<ArrayProxy, ManagerError> {
        self.create("Array", vec![typecode.into(), items.into()])
            .map(ArrayProxy)
    }
}
