//! The client side: a [`Manager`] handle and the proxies of the objects it holds.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod nested;
#[cfg(feature = "python")]
mod python;

use super::exception::Exception;
use super::protocol::{Outgoing, Reply};
use super::server::{DEFAULT_MAX_REQUEST, Running};
use super::table::ObjectId;
use crate::codec::{self, CodecError};
use crate::connection::{Address, Client, Connection};
use crate::object::{Dict, Object};
use crate::process::{JoinTimeoutError, Process, StartError};

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The method raised on the server, as Python's would (`KeyError`, `IndexError`, …).
    #[error("{kind}: {0}", kind = .0.kind().python_name().1)]
    Raised(Exception),
    /// The manager could not be reached, or the authkey was refused.
    #[error("cannot connect to the manager: {0}")]
    Connect(#[from] crate::connection::ConnectError),
    /// The connection to the manager failed (the server stopped or the network broke).
    #[error("lost the connection to the manager: {0}")]
    Disconnected(String),
    /// A request or reply could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The server's process or thread could not be started.
    #[error("cannot start the manager: {0}")]
    Start(String),
    /// A reply that does not fit the request (a server of another kind, or a bug).
    #[error("unexpected reply from the manager: {0}")]
    Protocol(String),
}

impl From<StartError> for ManagerError {
    fn from(e: StartError) -> Self {
        ManagerError::Start(e.to_string())
    }
}

/// This process's connections to a server, shared by its proxies.
///
/// A call takes an idle connection, or opens one if every connection is busy (another thread
/// waits on a `get`, say), so that threads never wait for each other's calls. All of them
/// belong to one session on the server, which holds the process's references together.
pub(super) struct Link {
    address: Address,
    authkey: Vec<u8>,
    /// The session's secret name.
    session: [u8; 16],
    idle: Mutex<Vec<Connection>>,
    /// The connections of threads that hold a lock through this link. A lock belongs to the
    /// connection that acquired it (as in Python, where each thread has a connection of its
    /// own), so until a thread has released what it acquired, its calls go through that
    /// connection, which no other thread uses and which is never closed meanwhile.
    held: Mutex<HashMap<ThreadId, Held>>,
    /// The number of entries in `held`. Only a thread itself puts its entry there, so a
    /// thread that reads 0 has none, and its call need not lock the map.
    holders: AtomicUsize,
    /// The process that made the link: a child made by `fork` has copies of the parent's
    /// connections, which it must never use (two processes on one stream corrupt it).
    pid: u32,
    /// The server is Python's own manager: pickled requests, no sessions, and control
    /// requests on connections of their own.
    python: bool,
}

/// The links of this process, by address: a proxy that arrives uses the link to its manager.
static LINKS: Mutex<Vec<std::sync::Weak<Link>>> = Mutex::new(Vec::new());

/// The registry of links, or `None` if it stays locked. A child made by `fork` while another
/// thread of its parent held the lock has a copy of it that nobody will ever unlock; the
/// lock is only held for a lookup or an insertion, so a short wait tells the two apart, and
/// such a child goes on with links of its own, unregistered.
fn links() -> Option<std::sync::MutexGuard<'static, Vec<std::sync::Weak<Link>>>> {
    let start = std::time::Instant::now();
    loop {
        match LINKS.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock)
                if start.elapsed() < Duration::from_millis(50) =>
            {
                std::thread::yield_now();
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

/// Idle connections kept for later calls; more are closed when returned.
const MAX_IDLE: usize = 64;

/// A thread's own connection while it holds locks.
struct Held {
    /// `None` while the thread's call is on it.
    conn: Option<Connection>,
    /// Acquires not yet released.
    count: u32,
}

/// What a call does to the locks its thread holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holding {
    /// Nothing.
    Unchanged,
    /// It may acquire one (`acquire` of a `Lock`, `RLock` or `Condition`).
    Acquire,
    /// It may release one.
    Release,
}

impl Holding {
    fn of(typeid: &str, method: &str) -> Holding {
        match (typeid, method) {
            ("Lock" | "RLock" | "Condition", "acquire" | "acquire_robust") => Holding::Acquire,
            ("Lock" | "RLock" | "Condition", "release") => Holding::Release,
            _ => Holding::Unchanged,
        }
    }

    /// The change in the count of locks held, given the reply.
    fn delta(self, reply: &Reply) -> i64 {
        match (self, reply) {
            // `acquire` answers `True` when it took the lock, `acquire_robust` 1 or 2.
            (Holding::Acquire, Reply::Return(Object::Bool(true) | Object::Int(1 | 2))) => 1,
            (Holding::Release, Reply::Return(_)) => -1,
            _ => 0,
        }
    }
}

impl Link {
    fn connect(address: &Address, authkey: &[u8], python: bool) -> Result<Arc<Link>, ManagerError> {
        let mut session = [0u8; 16];
        crate::sys::net::random(&mut session).map_err(|e| ManagerError::Start(e.to_string()))?;
        let link = Link {
            address: address.clone(),
            authkey: authkey.to_vec(),
            session,
            idle: Mutex::new(Vec::new()),
            held: Mutex::new(HashMap::new()),
            holders: AtomicUsize::new(0),
            pid: std::process::id(),
            python,
        };
        let conn = link.open()?;
        link.put_back(conn);
        Ok(Arc::new(link))
    }

    /// The link of a server this process started, through `conn`: a connection the server
    /// took as authenticated and joined to the session `session` (a socketpair handed to the
    /// server's process), so that the first call needs no handshake.
    pub(super) fn adopt(
        address: Address,
        authkey: Vec<u8>,
        session: [u8; 16],
        mut conn: Connection,
    ) -> Arc<Link> {
        conn.set_max_frame(DEFAULT_MAX_REQUEST);
        let link = Arc::new(Link {
            address,
            authkey,
            session,
            idle: Mutex::new(vec![conn]),
            held: Mutex::new(HashMap::new()),
            holders: AtomicUsize::new(0),
            pid: std::process::id(),
            python: false,
        });
        if let Some(mut links) = links() {
            links.retain(|l| l.strong_count() > 0);
            links.push(Arc::downgrade(&link));
        }
        link
    }

    /// A new connection, in the session.
    fn open(&self) -> Result<Connection, ManagerError> {
        let mut conn = self.raw()?;
        let (method, args) = if self.python {
            // Python's server serves one request per connection, except on this one.
            ("accept_connection", vec![Object::from("multiproc")])
        } else {
            ("session", vec![Object::Bytes(self.session.to_vec())])
        };
        match Self::exchange(
            &mut conn,
            self.python.then_some(&self.address),
            None,
            method,
            args,
            Dict::new(),
        )? {
            Reply::Return(_) => Ok(conn),
            Reply::Error(e) => Err(ManagerError::Raised(e)),
            Reply::Proxy { .. } => Err(ManagerError::Protocol("a proxy for a session".into())),
        }
    }

    /// A new connection, authenticated, in no session.
    fn raw(&self) -> Result<Connection, ManagerError> {
        let mut client = Client::new();
        // An empty key: a server bound without one (a Unix path), no handshake.
        if !self.authkey.is_empty() {
            // Python's 3.11 servers speak only the HMAC-MD5 handshake.
            client.authkey(&self.authkey).allow_legacy_md5(self.python);
        }
        let mut conn = client.connect(&self.address)?;
        conn.set_max_frame(DEFAULT_MAX_REQUEST);
        Ok(conn)
    }

    /// The link a call must go through: this one, or, in a child made by `fork` that
    /// inherited this one with its parent's connections, a link of the child's own.
    fn current(self: &Arc<Self>) -> Result<Arc<Link>, ManagerError> {
        if self.pid == std::process::id() {
            Ok(Arc::clone(self))
        } else {
            Link::shared(&self.address, &self.authkey, self.python)
        }
    }

    /// An idle connection, or a new one if every connection is busy.
    fn take(&self) -> Result<Connection, ManagerError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// One request and its reply on `conn`.
    fn exchange(
        conn: &mut Connection,
        python: Option<&Address>,
        id: Option<ObjectId>,
        method: &str,
        args: Vec<Object>,
        kwargs: Dict,
    ) -> Result<Reply, ManagerError> {
        let lost = |e: &dyn fmt::Display| ManagerError::Disconnected(e.to_string());
        #[cfg(feature = "python")]
        if let Some(address) = python {
            let typeid = match (method, args.first()) {
                ("create", Some(Object::Str(t))) => Some(t.clone()),
                _ => None,
            };
            let mut bytes = Vec::new();
            super::python::encode_request(address, id, method, args, kwargs, &mut bytes);
            conn.send_bytes(&bytes).map_err(|e| lost(&e))?;
            let bytes = conn.recv_bytes().map_err(|e| lost(&e))?;
            return super::python::read_reply(&bytes, method, typeid.as_deref())
                .map_err(ManagerError::Protocol);
        }
        #[cfg(not(feature = "python"))]
        let _ = python;
        let req = Outgoing {
            id,
            method,
            args,
            kwargs,
        };
        let mut bytes = Vec::new();
        codec::encode_plain_into(&req, &mut bytes)?;
        conn.send_bytes(&bytes).map_err(|e| lost(&e))?;
        let bytes = conn.recv_bytes().map_err(|e| lost(&e))?;
        Ok(codec::decode::<Reply>(&bytes, Vec::new())?)
    }

    /// Sends `requests` together and reads their replies, in order: one round trip for many
    /// calls. They go in groups small enough that the replies of one group fit the sockets'
    /// buffers while the next is written.
    fn pipeline(self: &Arc<Self>, requests: Vec<Outgoing<'_>>) -> Result<Vec<Reply>, ManagerError> {
        let link = self.current()?;
        link.pipeline_here(requests)
    }

    fn pipeline_here(&self, requests: Vec<Outgoing<'_>>) -> Result<Vec<Reply>, ManagerError> {
        const GROUP: usize = 256;
        if self.python {
            // Python's server answers one request at a time anyway.
            return requests
                .into_iter()
                .map(|r| self.request_here(r.id, r.method, r.args, r.kwargs, Holding::Unchanged))
                .collect();
        }
        let mut conn = self.take()?;
        let lost = |e: &dyn fmt::Display| ManagerError::Disconnected(e.to_string());
        let mut replies = Vec::with_capacity(requests.len());
        let mut encoded = Vec::new();
        let mut ends = Vec::with_capacity(GROUP);
        // One buffer for all the replies, not one each.
        let mut bytes = Vec::new();
        for group in requests.chunks(GROUP) {
            // One buffer for the group's requests, cut into frames.
            encoded.clear();
            ends.clear();
            for req in group {
                codec::encode_plain_into(req, &mut encoded)?;
                ends.push(encoded.len());
            }
            let starts = std::iter::once(0).chain(ends.iter().copied());
            let frames: Vec<&[u8]> = starts.zip(&ends).map(|(a, &b)| &encoded[a..b]).collect();
            conn.send_many_bytes(&frames).map_err(|e| lost(&e))?;
            for _ in group {
                conn.recv_bytes_to_vec(&mut bytes).map_err(|e| lost(&e))?;
                replies.push(codec::decode::<Reply>(&bytes, Vec::new())?);
            }
        }
        self.put_back(conn);
        Ok(replies)
    }

    /// The link of this process to `address`, made on first use.
    pub(super) fn shared(
        address: &Address,
        authkey: &[u8],
        python: bool,
    ) -> Result<Arc<Link>, ManagerError> {
        let find = |links: &mut Vec<std::sync::Weak<Link>>| {
            links.retain(|l| l.strong_count() > 0);
            links.iter().filter_map(std::sync::Weak::upgrade).find(|l| {
                l.address == *address
                    && l.authkey == authkey
                    && l.pid == std::process::id()
                    && l.python == python
            })
        };
        if let Some(l) = links().as_mut().and_then(|links| find(links)) {
            return Ok(l);
        }
        // Connected outside the registry's lock: it is never held for long.
        let l = Link::connect(address, authkey, python)?;
        if let Some(mut links) = links() {
            // Another thread may have made one meanwhile: all use the first.
            if let Some(first) = find(&mut links) {
                return Ok(first);
            }
            links.push(Arc::downgrade(&l));
        }
        Ok(l)
    }

    /// Sends a request and waits for its reply, on an idle connection or a new one.
    fn request(
        self: &Arc<Self>,
        id: Option<ObjectId>,
        method: &str,
        args: Vec<Object>,
        kwargs: Dict,
    ) -> Result<Reply, ManagerError> {
        self.request_holding(id, method, args, kwargs, Holding::Unchanged)
    }

    /// As [`request`](Self::request), for a call that may acquire or release a lock.
    fn request_holding(
        self: &Arc<Self>,
        id: Option<ObjectId>,
        method: &str,
        args: Vec<Object>,
        kwargs: Dict,
        holding: Holding,
    ) -> Result<Reply, ManagerError> {
        let link = self.current()?;
        link.request_here(id, method, args, kwargs, holding)
    }

    fn request_here(
        &self,
        id: Option<ObjectId>,
        method: &str,
        args: Vec<Object>,
        kwargs: Dict,
        holding: Holding,
    ) -> Result<Reply, ManagerError> {
        if self.python && id.is_none() {
            // Python's server closes a connection after its one control request.
            let mut conn = self.raw()?;
            return Self::exchange(&mut conn, Some(&self.address), id, method, args, kwargs);
        }
        let me = std::thread::current().id();
        // Nearly always nobody holds a lock: the map is then not locked at all.
        let had = self.holders.load(Ordering::Relaxed) > 0;
        let (own, count) = if had {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            match held.get_mut(&me) {
                Some(h) => (h.conn.take(), h.count),
                None => (None, 0),
            }
        } else {
            (None, 0)
        };
        let mut conn = match own {
            Some(c) => c,
            None => self.take()?,
        };
        let reply = match Self::exchange(
            &mut conn,
            self.python.then_some(&self.address),
            id,
            method,
            args,
            kwargs,
        ) {
            Ok(r) => r,
            Err(e) => {
                // The connection is dropped; the server releases what was held through it.
                if count > 0 {
                    self.forget(me);
                }
                return Err(e);
            }
        };
        let before = count;
        let count = u32::try_from((i64::from(count) + holding.delta(&reply)).max(0)).unwrap_or(0);
        if count > 0 {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.insert(
                me,
                Held {
                    conn: Some(conn),
                    count,
                },
            );
            self.holders.store(held.len(), Ordering::Relaxed);
        } else {
            if before > 0 {
                self.forget(me);
            }
            self.put_back(conn);
        }
        Ok(reply)
    }

    /// Drops the entry of thread `me` in `held`.
    fn forget(&self, me: ThreadId) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.remove(&me);
        self.holders.store(held.len(), Ordering::Relaxed);
    }

    pub(super) fn value(
        self: &Arc<Self>,
        id: Option<ObjectId>,
        method: &str,
        args: Vec<Object>,
    ) -> Result<Object, ManagerError> {
        into_value(self.request(id, method, args, Dict::new())?)
    }
}

/// The value of a reply that should be one.
fn into_value(reply: Reply) -> Result<Object, ManagerError> {
    match reply {
        Reply::Return(v) => Ok(v),
        Reply::Error(e) => Err(ManagerError::Raised(e)),
        Reply::Proxy { typeid, .. } => Err(ManagerError::Protocol(format!(
            "a {typeid} proxy where a value was expected"
        ))),
    }
}

/// A proxy of an object held by a manager: its methods run on the server.
///
/// The typed proxies ([`DictProxy`](super::DictProxy), [`QueueProxy`](super::QueueProxy), …) wrap this one; [`call`](Self::call)
/// reaches any method of any managed object. A proxy keeps its object alive on the server;
/// when the last proxy of an object is dropped, or its process ends (even killed), the server
/// frees it.
///
/// Proxies travel to child processes as arguments and through connections: the receiving
/// process connects to the manager (with the authkey, which travels inside the proxy) and takes
/// a reference of its own. Keep the sender's proxy until the receiver has its own, as in Python.
///
/// With the `redis` feature, a proxy from `multiproc::redis::Redis` has its object in
/// Redis instead: the same methods, with the same answers and exceptions.
pub struct Proxy {
    backend: Backend,
    typeid: String,
}

/// Where a proxy's object lives.
enum Backend {
    /// On a manager's server, under its id there.
    Manager { link: Arc<Link>, id: ObjectId },
    /// In Redis, under its name.
    #[cfg(feature = "redis")]
    Redis(Arc<crate::redis::RedisObject>),
}

impl Proxy {
    fn manager(link: Arc<Link>, id: ObjectId, typeid: String) -> Proxy {
        Proxy {
            backend: Backend::Manager { link, id },
            typeid,
        }
    }

    /// A proxy of the object `o` held in Redis.
    #[cfg(feature = "redis")]
    pub(crate) fn from_redis(o: Arc<crate::redis::RedisObject>) -> Proxy {
        Proxy {
            typeid: o.typeid().to_owned(),
            backend: Backend::Redis(o),
        }
    }

    /// The Redis object of a proxy from [`Redis`](crate::redis::Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn redis_object(&self) -> Option<&crate::redis::RedisObject> {
        match &self.backend {
            Backend::Redis(o) => Some(o),
            Backend::Manager { .. } => None,
        }
    }

    /// The link and id of a proxy of a manager's object.
    fn on_manager(&self) -> Option<(&Arc<Link>, ObjectId)> {
        match &self.backend {
            Backend::Manager { link, id } => Some((link, *id)),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => None,
        }
    }

    fn from_reply(link: Arc<Link>, reply: Reply) -> Result<Proxy, ManagerError> {
        match reply {
            Reply::Proxy { id, typeid, .. } => Ok(Proxy::manager(link, id, typeid)),
            Reply::Error(e) => Err(ManagerError::Raised(e)),
            Reply::Return(v) => Err(ManagerError::Protocol(format!(
                "the value {v} where a proxy was expected"
            ))),
        }
    }

    /// The object's type in the manager's registry (`"dict"`, `"list"`, …).
    pub fn typeid(&self) -> &str {
        &self.typeid
    }

    /// Calls `method` of the object with positional arguments, as Python's
    /// `proxy._callmethod(method, args)`.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Raised`] with the exception the method raised; the other variants when
    /// the manager cannot be reached.
    pub fn call(&self, method: &str, args: Vec<Object>) -> Result<Object, ManagerError> {
        self.call_kw(method, args, Dict::new())
    }

    /// As [`call`](Self::call), with keyword arguments too.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_kw(
        &self,
        method: &str,
        args: Vec<Object>,
        kwargs: Dict,
    ) -> Result<Object, ManagerError> {
        match &self.backend {
            Backend::Manager { link, id } => {
                let holding = Holding::of(&self.typeid, method);
                into_value(link.request_holding(Some(*id), method, args, kwargs, holding)?)
            }
            #[cfg(feature = "redis")]
            Backend::Redis(o) => o.call_kw(method, args, kwargs),
        }
    }

    /// A copy of the whole object (Python's `proxy._getvalue()`).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn get_value(&self) -> Result<Object, ManagerError> {
        self.call("#GETVALUE", vec![])
    }
}

impl Clone for Proxy {
    /// Another reference to the same object (the server counts it; a Redis object is
    /// shared by the clones, which act as one consumer and one lock holder).
    fn clone(&self) -> Self {
        match &self.backend {
            Backend::Manager { link, id } => {
                // If the server cannot be reached the copy is still a proxy, whose calls fail
                // as the original's do.
                let _ = link.request(None, "incref", vec![Object::from(*id)], Dict::new());
                Proxy::manager(Arc::clone(link), *id, self.typeid.clone())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(o) => Proxy::from_redis(Arc::clone(o)),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        match &self.backend {
            Backend::Manager { link, id } => {
                // A server that is gone has freed the object already.
                let _ = link.request(None, "decref", vec![Object::from(*id)], Dict::new());
            }
            // Named objects in Redis stay when their proxies go.
            #[cfg(feature = "redis")]
            Backend::Redis(_) => {}
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Manager { link, id } => f
                .debug_struct("Proxy")
                .field("typeid", &self.typeid)
                .field("id", id)
                .field("address", &link.address)
                .finish(),
            #[cfg(feature = "redis")]
            Backend::Redis(o) => f
                .debug_struct("Proxy")
                .field("typeid", &self.typeid)
                .field("redis", o)
                .finish(),
        }
    }
}

impl fmt::Display for Proxy {
    /// What Python's `str(proxy)` prints: the object's own `str`, asked of the server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.call("__str__", vec![]) {
            Ok(Object::Str(s)) => f.write_str(&s),
            Ok(other) => write!(f, "{other}"),
            Err(e) => write!(f, "<{} proxy: {e}>", self.typeid),
        }
    }
}

/// What a proxy is made of on the wire.
#[derive(Serialize, Deserialize)]
struct ProxyWire {
    address: String,
    authkey: Vec<u8>,
    id: ObjectId,
    typeid: String,
    python: bool,
}

/// A proxy on the wire: of a manager's object, or of one in Redis.
#[derive(Serialize, Deserialize)]
enum Wire {
    Manager(ProxyWire),
    #[cfg(feature = "redis")]
    Redis(crate::redis::Wire),
}

impl Serialize for Proxy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.backend {
            Backend::Manager { link, id } => Wire::Manager(ProxyWire {
                address: link.address.to_string(),
                authkey: link.authkey.clone(),
                id: *id,
                typeid: self.typeid.clone(),
                python: link.python,
            }),
            #[cfg(feature = "redis")]
            Backend::Redis(o) => Wire::Redis(o.wire()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Proxy {
    /// Connects to the manager (once per process) and takes a reference of its own; a proxy
    /// of a Redis object connects to Redis (once per process) and opens it by name.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
        let w = match Wire::deserialize(d)? {
            Wire::Manager(w) => w,
            #[cfg(feature = "redis")]
            Wire::Redis(w) => return w.open().map(Proxy::from_redis).map_err(D::Error::custom),
        };
        let address: Address = w.address.parse().map_err(D::Error::custom)?;
        let link = Link::shared(&address, &w.authkey, w.python).map_err(D::Error::custom)?;
        let reply = link
            .request(None, "incref", vec![Object::from(w.id)], Dict::new())
            .map_err(D::Error::custom)?;
        match reply {
            Reply::Error(e) => Err(D::Error::custom(format!(
                "the manager's object is gone: {e}"
            ))),
            _ => Ok(Proxy::manager(link, w.id, w.typeid)),
        }
    }
}

pub(super) fn len_of(o: Object) -> Result<usize, ManagerError> {
    o.as_i64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| ManagerError::Protocol(format!("{o} is not a length")))
}

/// Where a manager's server runs.
pub(super) enum Serving {
    /// Elsewhere: this handle only connected.
    Remote,
    /// On a thread of this process.
    Thread(Running),
    /// In a child process.
    Child(Option<Process<()>>),
}

/// A manager: a server holding shared objects, and this process's connection to it.
///
/// [`Manager::start`] runs the server in a child process, as Python's `Manager()`;
/// [`Manager::start_thread`] on a thread of this process; [`Manager::connect`] reaches one that
/// runs elsewhere. Dropping the handle that started a server stops it (Python's
/// `with Manager() as manager:`).
///
/// # Examples
///
/// The tutorial's manager program: a child changes a managed dict and list, the parent sees it.
///
/// ```
/// # multiproc::init();
/// use multiproc::manager::{DictProxy, ListProxy, Manager};
///
/// fn f((d, l): (DictProxy, ListProxy)) {
///     d.set(1, "1").unwrap();
///     d.set("2", 2).unwrap();
///     d.set(0.25, ()).unwrap();
///     l.reverse().unwrap();
/// }
///
/// let manager = Manager::start().unwrap();
/// let d = manager.dict().unwrap();
/// let l = manager.list((0..10).collect::<Vec<i32>>()).unwrap();
/// let p = multiproc::Process::start(f, (d.clone(), l.clone())).unwrap();
/// p.join().unwrap();
/// assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
/// assert_eq!(l.to_string(), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
/// ```
pub struct Manager {
    pub(super) link: Arc<Link>,
    pub(super) serving: Serving,
}

impl Manager {
    /// Connects to a manager that runs elsewhere (`multiproc serve`, or another program's
    /// server) at `address` with `authkey`. An empty `authkey` connects without the handshake,
    /// to a server bound without one (only a Unix path may be).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Connect`] when it cannot be reached or refuses the key.
    pub fn connect(
        address: impl Into<Address>,
        authkey: impl AsRef<[u8]>,
    ) -> Result<Manager, ManagerError> {
        let link = Link::shared(&address.into(), authkey.as_ref(), false)?;
        link.value(None, "dummy", vec![])?;
        Ok(Manager {
            link,
            serving: Serving::Remote,
        })
    }

    /// Creates an object of the registry's type `typeid` with constructor arguments `args`,
    /// and returns its proxy: `manager.create("Queue", vec![])` is Python's `manager.Queue()`.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Raised`] for an unknown type or wrong arguments.
    pub fn create(&self, typeid: &str, args: Vec<Object>) -> Result<Proxy, ManagerError> {
        self.create_kw(typeid, args, Dict::new())
    }

    /// As [`create`](Self::create), with keyword arguments too (`Namespace(a=1)`).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_kw(
        &self,
        typeid: &str,
        mut args: Vec<Object>,
        kwargs: Dict,
    ) -> Result<Proxy, ManagerError> {
        args.insert(0, typeid.into());
        let reply = self.link.request(None, "create", args, kwargs)?;
        Proxy::from_reply(Arc::clone(&self.link), reply)
    }

    /// The object a [`Server`](super::Server) published under `name`.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Raised`] with a `KeyError` when nothing is published under that name.
    pub fn get(&self, name: &str) -> Result<Proxy, ManagerError> {
        let reply = self
            .link
            .request(None, "lookup", vec![name.into()], Dict::new())?;
        Proxy::from_reply(Arc::clone(&self.link), reply)
    }

    /// Runs many calls in one round trip (pipelined, in order): each `(proxy, method, args)`
    /// gives the method's value or the exception it raised. For throughput: a call costs the
    /// server a few microseconds, a round trip tens.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Protocol`] when a proxy belongs to another manager; the other variants
    /// when the manager cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::manager::Manager;
    /// let manager = Manager::start_thread()?;
    /// let d = manager.dict()?;
    /// let calls = (0..100).map(|i| (d.as_proxy(), "__setitem__", vec![i.into(), (i * i).into()]));
    /// let results = manager.pipeline(calls)?;
    /// assert!(results.iter().all(Result::is_ok));
    /// assert_eq!(d.len()?, 100);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn pipeline<'a>(
        &self,
        calls: impl IntoIterator<Item = (&'a Proxy, &'a str, Vec<Object>)>,
    ) -> Result<Vec<Result<Object, Exception>>, ManagerError> {
        let mut requests = Vec::new();
        for (proxy, method, args) in calls {
            let Some((_, id)) = proxy
                .on_manager()
                .filter(|(link, _)| Arc::ptr_eq(link, &self.link))
            else {
                return Err(ManagerError::Protocol(
                    "a proxy of another manager in a pipeline".into(),
                ));
            };
            requests.push(Outgoing {
                id: Some(id),
                method,
                args,
                kwargs: Dict::new(),
            });
        }
        self.link
            .pipeline(requests)?
            .into_iter()
            .map(|r| match r {
                Reply::Return(v) => Ok(Ok(v)),
                Reply::Error(e) => Ok(Err(e)),
                Reply::Proxy { typeid, .. } => Err(ManagerError::Protocol(format!(
                    "a {typeid} proxy in a pipeline's replies"
                ))),
            })
            .collect()
    }

    /// How many objects the server holds (Python's `manager._number_of_objects()`).
    ///
    /// # Errors
    ///
    /// [`ManagerError`] when the manager cannot be reached.
    pub fn number_of_objects(&self) -> Result<usize, ManagerError> {
        len_of(self.link.value(None, "number_of_objects", vec![])?)
    }

    /// The manager's address.
    pub fn address(&self) -> &Address {
        &self.link.address
    }

    /// Stops the server this handle started and waits for it (also done on drop). A handle
    /// from [`connect`](Self::connect) leaves the server running.
    ///
    /// # Errors
    ///
    /// When the server's process did not end cleanly.
    pub fn shutdown(&mut self) -> Result<(), ManagerError> {
        match &mut self.serving {
            Serving::Remote => Ok(()),
            Serving::Thread(r) => r
                .stop()
                .map_err(|e| ManagerError::Disconnected(e.to_string())),
            Serving::Child(child) => {
                let Some(child) = child.take() else {
                    return Ok(());
                };
                let _ = self.link.request(None, "shutdown", vec![], Dict::new());
                match child.join_timeout(Duration::from_secs(5)) {
                    Ok(()) => Ok(()),
                    Err(JoinTimeoutError::Timeout(p)) => {
                        let _ = p.kill();
                        p.join()
                            .map_err(|e| ManagerError::Disconnected(e.to_string()))
                    }
                    Err(JoinTimeoutError::Failed(e)) => {
                        Err(ManagerError::Disconnected(e.to_string()))
                    }
                }
            }
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.link.address)
            .finish_non_exhaustive()
    }
}
