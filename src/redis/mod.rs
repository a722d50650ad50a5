//! The manager's proxies with their objects held in Redis (or Valkey): programs on many
//! machines share dicts, lists, queues and locks by name, with the code they would write for
//! a [`Manager`](crate::manager::Manager) but for the connect line (feature `redis`).
//!
//! ```
//! use multiproc::manager::{ExceptionKind, ManagerError};
//! use multiproc::redis::Redis;
//! # // A server of this example's own, on a Unix socket, saving nothing.
//! # let dir = std::env::temp_dir().join(format!("multiproc-doc-redis-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let sock = dir.join("r.sock");
//! # let mut server = std::process::Command::new("redis-server")
//! #     .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
//! #     .arg(&sock).arg("--dir").arg(&dir)
//! #     .stdout(std::process::Stdio::null()).spawn().expect("redis-server");
//! # while std::os::unix::net::UnixStream::connect(&sock).is_err() {
//! #     std::thread::sleep(std::time::Duration::from_millis(5));
//! # }
//! # let url = format!("redis+unix://{}", sock.display());
//!
//! // url: "redis://127.0.0.1:6379/", "redis+unix:///run/redis.sock", …
//! let m = Redis::connect(&url)?;
//! let d = m.dict("jobs")?; // a DictProxy, as `Manager::dict` gives
//! d.set(1, "one")?;
//! d.set(1.0, "uno")?; // the same key, as in Python
//! assert_eq!(d.to_string(), "{1: 'uno'}");
//! match d.get_item("missing") {
//!     Err(ManagerError::Raised(e)) => assert_eq!(e.kind(), ExceptionKind::KeyError),
//!     other => panic!("{other:?}"),
//! }
//! let q = m.queue("work", 0)?; // a QueueProxy
//! q.put("job")?;
//! assert_eq!(q.get()?.to_string(), "'job'");
//! # drop((d, q, m));
//! # server.kill().unwrap();
//! # server.wait().unwrap();
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), ManagerError>(())
//! ```
//!
//! # How objects are stored
//!
//! Every key of the object `name` starts with `{mp:<namespace>:<name>}`: the braces make it
//! the hash tag, so an object lives on one Redis Cluster slot and its scripts may touch all of
//! its keys. Each multi-step operation is one Lua script, atomic on the server. Values are
//! the crate's postcard encoding of [`Object`], or Python's pickle with
//! [`RedisOptions::pickle`] (feature `python`) for Python programs that read or write the
//! same keys; either is read back with the codec's bounds (whoever else writes the keys cannot
//! make a reader allocate without limit, and a pickle runs nothing).
//!
//! | type | Redis keys | notes |
//! |---|---|---|
//! | `dict` | HASH `keys`, HASH `values`, ZSET `order`, counter `seq` | insertion order at any size; keys compared as Python does (`1 == 1.0 == True`) through a canonical encoding |
//! | `list` | LIST `items` | `insert`, `del l[i]`, `pop(i)`: scripts; `sort`, `index`, slices, …: on a copy, in a `WATCH` transaction |
//! | `Namespace` | HASH `attrs` | |
//! | `Value` | STRING `value` | `update_with`, `compare_and_set` as optimistic compare-and-set scripts |
//! | `Queue`, `JoinableQueue` | LIST `items`, per consumer LIST `inflight:<id>` + lease key, SET `consumers`, counter `unfinished` | reliable queue with leases: see [`queue`](self#queues) |
//! | `Lock`, `RLock` | `owner` (token, TTL = lease), `held`, `fence` | a lease with an owner token and a fencing counter |
//! | `Semaphore`, `BoundedSemaphore` | counter `value` | |
//! | `Event` | `flag` | |
//!
//! Methods of a dict or list without a command of their own run on a copy by the manager's
//! own implementation, so that both backends answer alike, and write it back in a `WATCH`
//! transaction; they cost a read of the whole object.
//!
//! # Queues
//!
//! A `get` moves its item, in one step, into the consumer's own in-flight list (`LMOVE`, or
//! `BLMOVE` while it waits), so an item is never only in a client's memory. A consumer (a
//! proxy in one process) keeps a lease key alive from a heartbeat thread; one killed with an
//! item in hand stops renewing it, and once the lease ran out ([`RedisOptions::lease`]) the
//! next `get` anywhere gives that item back to the front of the queue. Delivery is at least
//! once. An item in hand is done when its consumer calls `task_done` (whose `unfinished`
//! counter lets `join` wait on any machine), or, for a `Queue`, asks for the next or drops
//! its proxy. Lists with leases were chosen over Streams with consumer groups because a
//! stream claims entries by idle time, which cannot tell a slow consumer from a dead one; a
//! lease renewed by a live process can.
//!
//! # Waiting
//!
//! A call that waits (`get`, `put` on a full queue, `acquire`, `Event.wait`, `join`) blocks on
//! the server (`BLMOVE`, or `BLPOP` on a wake list of its own that the change it waits for
//! pushes to), on a connection of its own whose reply time-out is the block time plus a
//! margin; it waits in slices of at most the lease, so it also notices expired leases. Nothing
//! polls, and an unreachable server is an error ([`ManagerError::Connect`] or
//! [`ManagerError::Disconnected`]) within [`RedisOptions::timeout`], never a hang.
//!
//! # Connections
//!
//! The proxies of a process share a small pool of connections per server and options. A
//! connection that broke (the server restarted) is replaced, and a call that failed on it
//! runs once more on the new one; connecting is tried three times. Auth and database come
//! from the URL (`redis://user:password@host:6379/2`, `redis+unix:///path/r.sock?pass=…`);
//! TLS (`rediss://host/`, and `rediss://host/#insecure` to skip checking the certificate) with
//! the feature `redis-tls`, through the system's OpenSSL.
//!
//! # Differences from the manager
//!
//! - **Named, and kept.** Objects live until [`Redis::delete`] or Redis forgets them; there
//!   are no reference counts, and a proxy that is dropped leaves the object in place.
//! - **Locks are leases.** A holder that dies keeps the lock until its lease runs out (the
//!   manager frees it at once). A lock is released by the thread that acquired it (each
//!   thread of a process has a token of its own, as each has its connection to a manager).
//! - **Durability is Redis's.** Replication is asynchronous and AOF `everysec` may lose the
//!   last second; queue data needs `maxmemory-policy noeviction`.
//! - Nested proxies (a proxy stored in a dict) and iterators (`__iter__`) are not supported.

mod dict;
mod encode;
mod fallback;
mod list;
mod object;
mod pool;
mod queue;
mod scripts;
mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redis::Value;

pub(crate) use object::RedisObject;
pub(crate) use object::Wire;

use crate::manager::{
    DictProxy, EventProxy, Exception, ListProxy, LockProxy, ManagerError, NamespaceProxy, Proxy,
    QueueProxy, SemaphoreProxy, ValueProxy,
};
use crate::object::Object;
use object::Plan;
use pool::Pool;

/// How a [`Redis`] handle connects and keeps its leases.
///
/// ```no_run
/// use std::time::Duration;
/// let m = multiproc::redis::Redis::options()
///     .namespace("staging")
///     .lease(Duration::from_secs(2))
///     .connect("redis+unix:///run/redis/redis.sock")?;
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    namespace: String,
    lease: Duration,
    timeout: Duration,
    encoding: encode::Encoding,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            namespace: "default".into(),
            lease: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            encoding: encode::Encoding::Postcard,
        }
    }
}

impl RedisOptions {
    /// The namespace of the objects' names (default `"default"`): programs that share
    /// objects use the same one.
    pub fn namespace(&mut self, ns: impl Into<String>) -> &mut Self {
        self.namespace = ns.into();
        self
    }

    /// How long a queue consumer or a lock holder that stopped renewing (it died) keeps its
    /// items or the lock (default 5 s; renewed at a third of it). At least 30 ms.
    pub fn lease(&mut self, lease: Duration) -> &mut Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The longest wait for connecting and for a reply (a blocking command gets its block
    /// time more); default 5 s.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Stores values in Python's pickle (protocol 4) instead of the crate's postcard
    /// encoding, so that Python programs read them with `pickle.loads` (and write them
    /// with `pickle.dumps`): a list's items, a queue's items, a dict's values and keys (the
    /// HASH `keys`, in the order of the ZSET `order`). Reading a pickle runs nothing: only
    /// plain data is accepted, as [`codec::pickle`](crate::codec::pickle) does. Programs
    /// sharing objects use the same encoding.
    ///
    /// ```no_run
    /// let m = multiproc::redis::Redis::options().pickle(true).connect("redis://127.0.0.1/")?;
    /// m.queue("jobs", 0)?.put("from Rust")?;
    /// // Python: pickle.loads(r.lpop("{mp:default:jobs}:items")) == 'from Rust'
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    #[cfg(feature = "python")]
    pub fn pickle(&mut self, yes: bool) -> &mut Self {
        self.encoding = if yes {
            encode::Encoding::Pickle
        } else {
            encode::Encoding::Postcard
        };
        self
    }

    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `redis+unix:///path?db=N`).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Connect`] when it cannot be reached, the URL is bad or the password
    /// is refused.
    pub fn connect(&self, url: &str) -> Result<Redis, ManagerError> {
        let shared = Shared::get(url, self)?;
        shared.pool.run(|c| redis::cmd("PING").query::<Value>(c))?;
        Ok(Redis { shared })
    }
}

/// What a heartbeat renews.
#[derive(Clone, Debug)]
pub(crate) enum Renew {
    /// A queue consumer's lease key.
    Lease,
    /// A held lock (its owner key), if still held by `token`.
    Lock { token: String },
}

#[derive(Default)]
struct Leases {
    keys: HashMap<String, Renew>,
    /// The process whose heartbeat thread renews them (a child made by `fork` has no such
    /// thread, and starts its own).
    beating: Option<u32>,
}

/// One server and set of options, shared by the handles and proxies of this process.
pub(crate) struct Shared {
    pool: Pool,
    url: String,
    namespace: String,
    lease: Duration,
    encoding: encode::Encoding,
    leases: Mutex<Leases>,
    me: Weak<Shared>,
}

/// The servers this process uses: a proxy that arrives uses the same connections.
static SHARED: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

impl Shared {
    fn get(url: &str, options: &RedisOptions) -> Result<Arc<Shared>, ManagerError> {
        let mut all = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|s| s.strong_count() > 0);
        let found = all.iter().filter_map(Weak::upgrade).find(|s| {
            s.url == url
                && s.namespace == options.namespace
                && s.lease == options.lease
                && s.pool.timeout == options.timeout
                && s.encoding == options.encoding
        });
        if let Some(s) = found {
            return Ok(s);
        }
        let pool = Pool::new(url, options.timeout)?;
        let s = Arc::new_cyclic(|me| Shared {
            pool,
            url: url.to_owned(),
            namespace: options.namespace.clone(),
            lease: options.lease,
            encoding: options.encoding,
            leases: Mutex::new(Leases::default()),
            me: me.clone(),
        });
        all.push(Arc::downgrade(&s));
        Ok(s)
    }

    /// Renews `key` from now on (every third of the lease), until [`forget`](Self::forget).
    fn renew(&self, key: String, what: Renew) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        leases.keys.insert(key, what);
        if leases.beating != Some(std::process::id()) {
            leases.beating = Some(std::process::id());
            let me = self.me.clone();
            let every = self.lease / 3;
            let started = std::thread::Builder::new()
                .name("multiproc-redis-lease".into())
                .spawn(move || heartbeat(&me, every));
            if started.is_err() {
                leases.beating = None;
            }
        }
    }

    fn forget(&self, key: &str) {
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .remove(key);
    }
}

/// Renews the leases of `shared` every `every`, until it is gone or has none.
fn heartbeat(shared: &Weak<Shared>, every: Duration) {
    loop {
        std::thread::sleep(every);
        let Some(s) = shared.upgrade() else {
            return;
        };
        let keys: Vec<(String, Renew)> = {
            let mut leases = s.leases.lock().unwrap_or_else(PoisonError::into_inner);
            if leases.keys.is_empty() {
                leases.beating = None;
                return;
            }
            leases
                .keys
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect()
        };
        let ms = u64::try_from(s.lease.as_millis()).unwrap_or(u64::MAX);
        let mut p = redis::pipe();
        for (key, what) in keys {
            match what {
                Renew::Lease => {
                    p.cmd("SET").arg(key).arg("1").arg("PX").arg(ms).ignore();
                }
                Renew::Lock { token } => {
                    let mut cmd = scripts::call(scripts::S::LockRenew, &[&key]);
                    cmd.arg(token).arg(ms);
                    p.add_command(cmd).ignore();
                }
            }
        }
        // A server that is away now is tried again at the next beat.
        let _ = s.pool.run(|c| p.exec(c));
    }
}

/// The manager's built-in types that have no Redis form.
const NOT_ON_REDIS: &[&str] = &["Array", "Condition", "Barrier", "Iterator"];

/// A connection to a Redis server that holds named objects, with the manager's proxy types.
///
/// Every constructor opens the object of that name, creating it if it does not exist yet;
/// opening a name that holds another type is a `TypeError`. Handles are cheap to clone and
/// share their connections.
///
/// # Examples
///
/// Two programs, perhaps on two machines, share a work queue and a results dict:
///
/// ```no_run
/// use multiproc::redis::Redis;
///
/// // Program 1
/// let m = Redis::connect("redis://10.0.0.5:6379/")?;
/// let jobs = m.queue("jobs", 0)?;
/// for n in 0..10 {
///     jobs.put(n)?;
/// }
///
/// // Program 2
/// let m = Redis::connect("redis://10.0.0.5:6379/")?;
/// let (jobs, results) = (m.queue("jobs", 0)?, m.dict("results")?);
/// while let Some(n) = jobs.get_timeout(std::time::Duration::from_secs(1))? {
///     let n = n.as_i64().unwrap_or(0);
///     results.set(n, n * n)?;
/// }
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Clone)]
pub struct Redis {
    shared: Arc<Shared>,
}

impl Redis {
    /// Connects to the Redis server at `url` with the default options (namespace
    /// `"default"`, 5 s leases and time-outs).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Connect`] when it cannot be reached.
    pub fn connect(url: &str) -> Result<Redis, ManagerError> {
        RedisOptions::default().connect(url)
    }

    /// Options for [`RedisOptions::connect`].
    pub fn options() -> RedisOptions {
        RedisOptions::default()
    }

    /// Opens the object `name` of the manager's type `typeid` (one of
    /// [`BUILTIN_TYPEIDS`](crate::manager::BUILTIN_TYPEIDS) but `Array`, `Condition`,
    /// `Barrier` and `Iterator`), as an untyped proxy.
    ///
    /// # Errors
    ///
    /// `TypeError` for another type or a name that holds another type.
    pub fn open(&self, typeid: &str, name: &str) -> Result<Proxy, ManagerError> {
        self.open_with(typeid, name, &[])
    }

    fn open_with(
        &self,
        typeid: &str,
        name: &str,
        init: &[(&str, Vec<u8>)],
    ) -> Result<Proxy, ManagerError> {
        if NOT_ON_REDIS.contains(&typeid) {
            return Err(ManagerError::Raised(Exception::type_error(format!(
                "a {typeid} is not available on Redis"
            ))));
        }
        if !crate::manager::BUILTIN_TYPEIDS.contains(&typeid) {
            return Err(ManagerError::Raised(Exception::type_error(format!(
                "no managed type is registered as {typeid:?}"
            ))));
        }
        let o = RedisObject::open(Arc::clone(&self.shared), typeid, name, init)?;
        Ok(Proxy::from_redis(o))
    }

    fn typed<P: TryFrom<Proxy>>(&self, p: Proxy) -> Result<P, ManagerError> {
        P::try_from(p).map_err(|_| ManagerError::Protocol("a proxy of another type".into()))
    }

    /// The `dict` named `name`.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when Redis cannot be reached, `TypeError` when `name` holds another
    /// type.
    pub fn dict(&self, name: &str) -> Result<DictProxy, ManagerError> {
        self.typed(self.open("dict", name)?)
    }

    /// The `list` named `name`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn list(&self, name: &str) -> Result<ListProxy, ManagerError> {
        self.typed(self.open("list", name)?)
    }

    /// The `Namespace` named `name`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn namespace(&self, name: &str) -> Result<NamespaceProxy, ManagerError> {
        self.typed(self.open("Namespace", name)?)
    }

    /// The `Value` named `name`, set to `initial` if it is new (the type code is kept for its
    /// `repr`, as in Python).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn value(
        &self,
        name: &str,
        typecode: &str,
        initial: impl Into<Object>,
    ) -> Result<ValueProxy, ManagerError> {
        let c = self.shared.encoding;
        let code = encode::value(c, &Object::from(typecode))?;
        let p = self.open_with("Value", name, &[("typecode", code)])?;
        let key = format!("{{mp:{}:{name}}}:value", self.shared.namespace);
        let bytes = encode::value(c, &initial.into())?;
        self.shared.pool.run(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(bytes.as_slice())
                .arg("NX")
                .query::<Value>(c)
        })?;
        self.typed(p)
    }

    /// The `Queue` named `name` (`maxsize` 0: no limit; the creator's `maxsize` holds).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn queue(&self, name: &str, maxsize: usize) -> Result<QueueProxy, ManagerError> {
        let p = self.open_with("Queue", name, &[("limit", maxsize.to_string().into())])?;
        self.typed(p)
    }

    /// The `JoinableQueue` named `name`: `task_done` and `join` work across processes and
    /// machines.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn joinable_queue(&self, name: &str, maxsize: usize) -> Result<QueueProxy, ManagerError> {
        let limit = maxsize.to_string().into();
        let p = self.open_with("JoinableQueue", name, &[("limit", limit)])?;
        self.typed(p)
    }

    /// The `Lock` named `name`: a lease (see the [module documentation](self)).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn lock(&self, name: &str) -> Result<LockProxy, ManagerError> {
        self.typed(self.open("Lock", name)?)
    }

    /// The `RLock` named `name`, re-entrant for the handle that holds it.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn rlock(&self, name: &str) -> Result<LockProxy, ManagerError> {
        self.typed(self.open("RLock", name)?)
    }

    /// The `Semaphore` named `name`, with `value` permits if it is new (`bounded`: a
    /// `BoundedSemaphore`, which refuses to be released past `value`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn semaphore(
        &self,
        name: &str,
        value: u32,
        bounded: bool,
    ) -> Result<SemaphoreProxy, ManagerError> {
        let typeid = if bounded {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        };
        let bound = if bounded { i64::from(value) } else { -1 };
        let p = self.open_with(typeid, name, &[("limit", bound.to_string().into())])?;
        let key = format!("{{mp:{}:{name}}}:value", self.shared.namespace);
        self.shared.pool.run(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("NX")
                .query::<Value>(c)
        })?;
        self.typed(p)
    }

    /// The `Event` named `name`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    pub fn event(&self, name: &str) -> Result<EventProxy, ManagerError> {
        self.typed(self.open("Event", name)?)
    }

    /// Deletes the object `name` (every key of it), whatever its type; whether there was one.
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when Redis cannot be reached.
    pub fn delete(&self, name: &str) -> Result<bool, ManagerError> {
        let glob: String = format!("{{mp:{}:{name}}}:", self.shared.namespace)
            .chars()
            .flat_map(|c| {
                let escape = matches!(c, '*' | '?' | '[' | ']' | '\\');
                escape.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect();
        let pattern = format!("{glob}*");
        self.shared.pool.run(|c| {
            let mut cursor = 0u64;
            let mut any = false;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                if !keys.is_empty() {
                    any = true;
                    redis::cmd("DEL").arg(&keys).exec(c)?;
                }
                if next == 0 {
                    return Ok(any);
                }
                cursor = next;
            }
        })
    }

    /// Runs many calls in few round trips (pipelined, in order): each `(proxy, method, args)`
    /// gives the method's value or the exception it raised. Calls of one command each (most
    /// dict, list, Namespace and Value methods, `put` on an unbounded queue) go together;
    /// others (waits, read-modify-writes) run in their turn.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Protocol`] for a proxy of another backend; the other variants when
    /// Redis cannot be reached.
    ///
    /// ```no_run
    /// let m = multiproc::redis::Redis::connect("redis://127.0.0.1/")?;
    /// let d = m.dict("squares")?;
    /// let calls = (0..100).map(|i| (d.as_proxy(), "__setitem__", vec![i.into(), (i * i).into()]));
    /// assert!(m.pipeline(calls)?.iter().all(Result::is_ok));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn pipeline<'a>(
        &self,
        calls: impl IntoIterator<Item = (&'a Proxy, &'a str, Vec<Object>)>,
    ) -> Result<Vec<Result<Object, Exception>>, ManagerError> {
        const GROUP: usize = 8192;
        let calls = calls.into_iter();
        let room = calls.size_hint().0.min(GROUP);
        let mut out = Vec::with_capacity(calls.size_hint().0);
        let mut pipe = redis::Pipeline::with_capacity(room);
        let mut finishes: Vec<object::Finish> = Vec::with_capacity(room);
        let no_kwargs = crate::object::Dict::new();
        let flush = |pipe: &mut redis::Pipeline,
                     finishes: &mut Vec<object::Finish>,
                     out: &mut Vec<Result<Object, Exception>>|
         -> Result<(), ManagerError> {
            if finishes.is_empty() {
                return Ok(());
            }
            let replies: Vec<Value> = self.shared.pool.run_batch(|c| pipe.query(c))?;
            pipe.clear();
            for (finish, reply) in finishes.drain(..).zip(replies) {
                out.push(raised(finish(reply))?);
            }
            Ok(())
        };
        for (proxy, method, args) in calls {
            let Some(o) = proxy.redis_object() else {
                return Err(ManagerError::Protocol(
                    "a proxy of another backend in a Redis pipeline".into(),
                ));
            };
            match o.plan(method, args, &no_kwargs) {
                Plan::One(cmd, finish) => {
                    pipe.add_command(cmd);
                    finishes.push(finish);
                    if finishes.len() >= GROUP {
                        flush(&mut pipe, &mut finishes, &mut out)?;
                    }
                }
                Plan::Steps(run) => {
                    flush(&mut pipe, &mut finishes, &mut out)?;
                    out.push(raised(run())?);
                }
                Plan::Done(r) => {
                    flush(&mut pipe, &mut finishes, &mut out)?;
                    out.push(raised(r)?);
                }
            }
        }
        flush(&mut pipe, &mut finishes, &mut out)?;
        Ok(out)
    }

    /// The server, as the client names it (`host:port` or a socket path).
    pub fn address(&self) -> &str {
        &self.shared.pool.address
    }
}

/// A call's exception as a result of its own; other failures as the pipeline's.
fn raised(r: Result<Object, ManagerError>) -> Result<Result<Object, Exception>, ManagerError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(ManagerError::Raised(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("server", &self.shared.pool.address)
            .field("namespace", &self.shared.namespace)
            .finish_non_exhaustive()
    }
}
