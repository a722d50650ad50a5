//! One named object held in Redis, as a proxy sees it: its keys, and the calls of its type
//! turned into Redis commands and scripts.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::Value;
use serde::{Deserialize, Serialize};

use super::Shared;
use super::encode::{self, Encoding};
use super::scripts::{self, S};
use crate::manager::{Exception, ExceptionKind, ManagerError};
use crate::object::{Dict, Object};

/// What one call does: one command whose reply is the result (these can be pipelined), or
/// several steps run in order.
pub(super) enum Plan<'a> {
    /// One command, and what its reply means.
    One(redis::Cmd, Finish),
    /// Several round trips (a read-modify-write, a wait).
    Steps(Box<dyn FnOnce() -> Result<Object, ManagerError> + 'a>),
    /// Known without asking the server (bad arguments).
    Done(Result<Object, ManagerError>),
}

/// The meaning of a command's reply.
pub(super) type Finish = Box<dyn FnOnce(Value) -> Result<Object, ManagerError> + Send>;

impl Plan<'_> {
    pub(super) fn one(
        cmd: redis::Cmd,
        finish: impl FnOnce(Value) -> Result<Object, ManagerError> + Send + 'static,
    ) -> Self {
        Plan::One(cmd, Box::new(finish))
    }

    pub(super) fn raise(e: Exception) -> Self {
        Plan::Done(Err(ManagerError::Raised(e)))
    }
}

/// Where a proxy is at with its object: the message in hand of a queue consumer, the hold of
/// a lock.
#[derive(Default)]
pub(super) struct Local {
    /// A name for each thread that used the handle: its queue consumer id and its lock
    /// token, so that threads sharing a proxy are told apart as the manager tells them apart
    /// (by connection).
    pub(super) threads: Vec<((u32, std::thread::ThreadId), String)>,
    /// The names that consume from the queue (each with its lease renewed and its own
    /// in-flight list).
    pub(super) consumers: Vec<String>,
    /// The names that hold the lock, with their acquires not yet released.
    pub(super) holds: Vec<(String, u32)>,
    /// The fencing token of the last acquire.
    pub(super) fence: i64,
}

impl Local {
    /// The calling thread's name (`handle-pid-n`), made on first use; the process is part of
    /// it, so that a child made by `fork` (whose thread has its parent's id) is another one.
    pub(super) fn thread_name(&mut self, handle: &str) -> String {
        let me = (std::process::id(), std::thread::current().id());
        if let Some((_, name)) = self.threads.iter().find(|(t, _)| *t == me) {
            return name.clone();
        }
        let name = format!("{handle}-{}-{}", me.0, self.threads.len());
        self.threads.push((me, name.clone()));
        name
    }
}

/// A named object in Redis, behind a [`Proxy`](crate::manager::Proxy).
pub(crate) struct RedisObject {
    pub(super) shared: Arc<Shared>,
    pub(super) typeid: String,
    pub(super) name: String,
    /// `{mp:<namespace>:<name>}`: the hash tag every key of the object starts with.
    pub(super) prefix: String,
    /// The queue's `maxsize` (0: none), the bounded semaphore's bound (-1: none).
    pub(super) limit: i64,
    /// A `Value`'s type code, kept for its `repr`.
    pub(super) typecode: Object,
    /// The keys of [`PARTS`], in its order.
    keys: Vec<String>,
    /// This handle's name, which its threads' names start with.
    pub(super) me: String,
    pub(super) local: Mutex<Local>,
}

/// What a proxy of a Redis object is made of on the wire: where the server is and the
/// object's name, so that a receiving process connects and opens it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    pub(super) url: String,
    pub(super) namespace: String,
    pub(super) lease_ms: u64,
    pub(super) timeout_ms: u64,
    pub(super) encoding: Encoding,
    pub(super) name: String,
    pub(super) typeid: String,
}

impl Wire {
    /// Connects (once per process) and opens the object.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached, or the object is of another type now.
    pub(crate) fn open(self) -> Result<Arc<RedisObject>, ManagerError> {
        let options = super::RedisOptions {
            namespace: self.namespace,
            lease: Duration::from_millis(self.lease_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            encoding: self.encoding,
        };
        let shared = Shared::get(&self.url, &options)?;
        RedisObject::open(shared, &self.typeid, &self.name, &[])
    }
}

/// The fixed parts of the objects' key names, made once per handle.
const PARTS: &[&str] = &[
    "meta",
    "keys",
    "values",
    "order",
    "seq",
    "items",
    "attrs",
    "value",
    "room",
    "unfinished",
    "joiners",
    "consumers",
    "owner",
    "held",
    "fence",
    "waiters",
    "count",
    "flag",
];

/// A random name, 128 bits in hex.
pub(super) fn token() -> String {
    let mut b = [0u8; 16];
    if crate::sys::net::random(&mut b).is_err() {
        // No randomness: time and pid still tell handles apart.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = (t ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl RedisObject {
    /// Opens the object `name` of type `typeid`, creating it with the meta fields `init`
    /// (name, value) if it does not exist.
    pub(super) fn open(
        shared: Arc<Shared>,
        typeid: &str,
        name: &str,
        init: &[(&str, Vec<u8>)],
    ) -> Result<Arc<RedisObject>, ManagerError> {
        let prefix = format!("{{mp:{}:{name}}}", shared.namespace);
        let meta_key = format!("{prefix}:meta");
        let mut cmd = scripts::call(S::Open, &[&meta_key]);
        cmd.arg(typeid);
        for (k, v) in init {
            cmd.arg(*k).arg(v.as_slice());
        }
        let fields: Vec<(String, Vec<u8>)> = shared.pool.run(|c| cmd.query(c))?;
        let field = |f: &str| {
            fields
                .iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| v.as_slice())
        };
        let stored = String::from_utf8_lossy(field("type").unwrap_or_default()).into_owned();
        if stored != typeid {
            return Err(ManagerError::Raised(Exception::type_error(format!(
                "{name:?} is a {stored} in Redis, not a {typeid}"
            ))));
        }
        let number = |f: &str, default: i64| {
            field(f)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(default)
        };
        let limit = number("limit", if typeid.contains("Semaphore") { -1 } else { 0 });
        let c = shared.encoding;
        let typecode = match field("typecode") {
            Some(b) => encode::object(c, b)?,
            None => Object::None,
        };
        Ok(Arc::new(RedisObject {
            shared,
            typeid: typeid.to_owned(),
            name: name.to_owned(),
            keys: PARTS.iter().map(|p| format!("{prefix}:{p}")).collect(),
            prefix,
            limit,
            typecode,
            me: token(),
            local: Mutex::new(Local::default()),
        }))
    }

    /// The object's key `part` (`{mp:ns:name}:part`), one of [`PARTS`].
    pub(super) fn key(&self, part: &'static str) -> &str {
        let i = PARTS.iter().position(|&p| p == part).unwrap_or_default();
        &self.keys[i]
    }

    /// The object's key `part` made of a name (`inflight:<consumer>`).
    pub(super) fn key_of(&self, part: &str) -> String {
        format!("{}:{part}", self.prefix)
    }

    /// How the object's values are stored.
    pub(super) fn codec(&self) -> Encoding {
        self.shared.encoding
    }

    pub(super) fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The wire form of a proxy of this object.
    pub(crate) fn wire(&self) -> Wire {
        Wire {
            url: self.shared.url.clone(),
            namespace: self.shared.namespace.clone(),
            lease_ms: u64::try_from(self.shared.lease.as_millis()).unwrap_or(u64::MAX),
            timeout_ms: u64::try_from(self.shared.pool.timeout.as_millis()).unwrap_or(u64::MAX),
            encoding: self.shared.encoding,
            name: self.name.clone(),
            typeid: self.typeid.clone(),
        }
    }

    /// The object's type, as the manager names it.
    pub(crate) fn typeid(&self) -> &str {
        &self.typeid
    }

    /// Runs `method` with Python's semantics for the object's type.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Raised`] with the exception the manager's object would raise; the
    /// other variants when Redis cannot be reached.
    pub(crate) fn call_kw(
        &self,
        method: &str,
        args: Vec<Object>,
        kwargs: Dict,
    ) -> Result<Object, ManagerError> {
        match self.plan(method, args, &kwargs) {
            Plan::One(cmd, finish) => finish(self.shared.pool.run(|c| cmd.query(c))?),
            Plan::Steps(run) => run(),
            Plan::Done(r) => r,
        }
    }

    /// How `method` runs.
    pub(super) fn plan(&self, method: &str, args: Vec<Object>, kwargs: &Dict) -> Plan<'_> {
        match self.typeid.as_str() {
            "dict" => super::dict::plan(self, method, args, kwargs),
            "list" => super::list::plan(self, method, args, kwargs),
            "Namespace" | "Value" => super::dict::plan_small(self, method, args, kwargs),
            "Queue" | "JoinableQueue" => super::queue::plan(self, method, args, kwargs),
            _ => super::sync::plan(self, method, args, kwargs),
        }
    }

    /// Runs one command on a connection of the pool.
    pub(super) fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, ManagerError> {
        self.shared.pool.run(|c| cmd.query(c))
    }

    /// Waits, at most `limit` (`None`: no limit), until `attempt` succeeds. `attempt` gets
    /// the name of a wake list to register (atomically with its failed check) in the waiter
    /// set `waiters`, or `""` when it must not wait; whoever changes the state wakes the
    /// registered lists. Blocks on the list in slices of at most the lease, so that a wait
    /// also notices what expired meanwhile (a dead consumer's lease).
    pub(super) fn wait_until<T>(
        &self,
        limit: Option<Duration>,
        waiters: &str,
        mut attempt: impl FnMut(&str) -> Result<Option<T>, ManagerError>,
    ) -> Result<Option<T>, ManagerError> {
        if limit == Some(Duration::ZERO) {
            return attempt("");
        }
        let deadline = limit.map(|l| Instant::now() + l);
        let wake = self.key_of(&format!("wake:{}", token()));
        let result = loop {
            match attempt(&wake) {
                Ok(Some(v)) => break Ok(Some(v)),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                break Ok(None);
            }
            let slice = left.map_or(self.shared.lease, |l| l.min(self.shared.lease));
            let mut blpop = redis::cmd("BLPOP");
            blpop.arg(&wake).arg(seconds(slice));
            if let Err(e) = self
                .shared
                .pool
                .blocking(slice, |c| blpop.query::<Value>(c))
            {
                break Err(e);
            }
        };
        let _ = self.query::<Value>(&scripts::call(S::Unwait, &[waiters, &wake]));
        result
    }
}

/// A block time as Redis takes it (seconds, with decimals), never 0 (which is no limit).
pub(super) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(0.001)
}

/// How long a waiting call may wait: Python's `block`/`blocking` and `timeout` arguments, at
/// positions 0 and 1 or by name. `Some(ZERO)`: must not wait; `None`: no limit.
pub(super) fn wait_limit(
    mut args: Vec<Object>,
    kwargs: &Dict,
    names: [&str; 2],
    negative_is_forever: bool,
) -> Result<Option<Duration>, Exception> {
    if args.len() > 2 {
        return Err(Exception::type_error(format!(
            "takes at most 2 arguments ({} given)",
            args.len()
        )));
    }
    let timeout = match kwargs.get(&Object::from(names[1])) {
        Some(t) => Some(t.clone()),
        None => (args.len() == 2).then(|| args.pop().unwrap_or_default()),
    };
    let block = match kwargs.get(&Object::from(names[0])) {
        Some(b) => Some(b.clone()),
        None => args.pop(),
    };
    if block.is_some_and(|b| !crate::manager::truthy(&b)) {
        return Ok(Some(Duration::ZERO));
    }
    match timeout {
        None | Some(Object::None) => Ok(None),
        Some(t) => {
            let Some(secs) = t.as_f64() else {
                return Err(Exception::type_error(format!(
                    "'{}' must be a number, not {}",
                    names[1],
                    t.type_name()
                )));
            };
            if secs < 0.0 {
                if negative_is_forever {
                    return Ok(None);
                }
                return Err(Exception::msg(
                    ExceptionKind::ValueError,
                    "'timeout' must be a non-negative number",
                ));
            }
            Ok(Some(
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
            ))
        }
    }
}

/// An exactly-`n`-arguments check, with Python's message.
pub(super) fn arity(
    method: &str,
    args: &[Object],
    min: usize,
    max: usize,
) -> Result<(), Exception> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("exactly {min}")
        } else {
            format!("from {min} to {max}")
        };
        return Err(Exception::type_error(format!(
            "{method}() takes {want} arguments ({} given)",
            args.len()
        )));
    }
    Ok(())
}

/// The `AttributeError` of a method this type does not have on Redis.
pub(super) fn no_method(typeid: &str, method: &str) -> Exception {
    Exception::msg(
        ExceptionKind::AttributeError,
        format!("method {method:?} of {typeid:?} is not exposed"),
    )
}

/// A reply's bytes (`None` for nil).
pub(super) fn bytes(v: Value) -> Result<Option<Vec<u8>>, ManagerError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::Okay => Ok(Some(b"OK".to_vec())),
        other => Err(unexpected(&other)),
    }
}

/// A reply's integer.
pub(super) fn int(v: &Value) -> Result<i64, ManagerError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unexpected(v)),
        Value::Nil => Ok(0),
        other => Err(unexpected(other)),
    }
}

/// A reply's stored value, decoded (`None` for nil).
pub(super) fn stored(c: Encoding, v: Value) -> Result<Option<Object>, ManagerError> {
    bytes(v)?.map(|b| encode::object(c, &b)).transpose()
}

pub(super) fn unexpected(v: &Value) -> ManagerError {
    ManagerError::Protocol(format!("unexpected reply from Redis: {v:?}"))
}

impl fmt::Debug for RedisObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisObject")
            .field("typeid", &self.typeid)
            .field("name", &self.name)
            .field("server", &self.shared.pool.address)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisObject {
    /// Queue consumers leave (the items they hold count as done); a lock still held is freed
    /// and the next acquirer told its owner went away, as the manager does for a client that
    /// goes away.
    fn drop(&mut self) {
        let local = std::mem::take(&mut *self.local());
        if !local.consumers.is_empty() {
            super::queue::leave(self, &local.consumers);
        }
        for (token, _) in &local.holds {
            super::sync::abandon(self, token);
        }
    }
}
