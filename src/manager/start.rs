//! Starting a manager's server: in a child process ([`Manager::start`]) or on a thread
//! ([`Manager::start_thread`]), with the options of [`ManagerOptions`].
//!
//! The child gets, beside its address and authkey, one end of a socketpair that it serves as
//! an authenticated client already joined to the parent's session: the other end is the
//! parent's first connection, so starting costs the child's start and one round trip, with no
//! handshake (nobody else holds the pair, so there is nothing to authenticate).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::client::{Link, Manager, ManagerError, Serving};
use super::custom::{Factory, FactoryRef, Types};
use super::exception::{Exception, ExceptionKind};
use super::limits::Limits;
use super::protocol::Reply;
use super::server::{DEFAULT_MAX_REQUEST, Running, Shared};
use super::table::Table;
use crate::codec;
use crate::connection::{Address, Connection, Listener, pipe};
use crate::process::Process;

/// The options of a manager this process starts: the types of your own it serves, and how
/// much memory its objects may hold.
///
/// [`Manager::start`] and [`Manager::start_thread`] are `Manager::options().start()` and
/// `Manager::options().start_thread()`.
///
/// # Examples
///
/// ```
/// use multiproc::manager::{Call, Exception, Manager, Managed};
/// use multiproc::object::Object;
///
/// struct Greeter;
///
/// impl Managed for Greeter {
///     fn exposed(&self) -> &'static [&'static str] {
///         &["greet"]
///     }
///     fn call(&mut self, call: Call) -> Result<Object, Exception> {
///         let (who,): (String,) = call.args_as()?;
///         Ok(format!("hello, {who}").into())
///     }
///     fn value(&self) -> Object {
///         Object::None
///     }
/// }
///
/// fn greeter(call: Call) -> Result<Box<dyn Managed>, Exception> {
///     call.arity(0, 0)?;
///     Ok(Box::new(Greeter))
/// }
///
/// let manager = Manager::options().register("Greeter", greeter).start_thread()?;
/// let g = manager.create("Greeter", vec![])?;
/// assert_eq!(g.call("greet", vec!["world".into()])?, multiproc::obj!("hello, world"));
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManagerOptions {
    types: Types,
    limits: Limits,
    /// The first registration that failed: reported by `start`.
    refused: Option<String>,
}

impl ManagerOptions {
    /// Options with nothing registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves objects made by `factory` under `typeid`, as Python's
    /// `BaseManager.register(typeid, callable)`: clients make one with
    /// [`Manager::create`]`(typeid, args)`. See [`Managed`](super::Managed).
    ///
    /// A typeid of a built-in type (`"dict"`, `"Queue"`, …) or one registered already makes
    /// [`start`](Self::start) fail. For [`start`](Self::start), `factory` must be linked into
    /// the executable, as a process's target must.
    pub fn register(&mut self, typeid: &'static str, factory: Factory) -> &mut Self {
        if let Err(e) = self.types.register(typeid, factory)
            && self.refused.is_none()
        {
            self.refused = Some(e);
        }
        self
    }

    /// The most one object may hold, about (default 1 GiB): a call that would grow an object
    /// past it, or create a larger one, raises `MemoryError` and changes nothing. Sizes count
    /// the bytes of strings and bytes plus 32 bytes per item; an object is counted at up to
    /// about twice the most it held since it was last measured, never less than it holds.
    ///
    /// ```
    /// use multiproc::manager::{ExceptionKind, Manager, ManagerError};
    /// let manager = Manager::options().max_object_size(1 << 20).start_thread()?;
    /// let l = manager.list(Vec::<i32>::new())?;
    /// l.append(vec![0u8; 1000].as_slice())?;
    /// let err = l.append(vec![0u8; 2 << 20].as_slice()).unwrap_err();
    /// assert!(matches!(err, ManagerError::Raised(e) if e.kind() == ExceptionKind::MemoryError));
    /// assert_eq!(l.len()?, 1);
    /// # Ok::<(), ManagerError>(())
    /// ```
    pub fn max_object_size(&mut self, bytes: usize) -> &mut Self {
        self.limits.object = bytes;
        self
    }

    /// The most all objects together may hold, about (default: no limit), counted as for
    /// [`max_object_size`](Self::max_object_size); past it, calls that would add raise
    /// `MemoryError`.
    ///
    /// ```
    /// use multiproc::manager::{ExceptionKind, Manager, ManagerError};
    /// let manager = Manager::options().max_memory(1 << 20).start_thread()?;
    /// let a = manager.dict()?;
    /// let big = vec![1u8; 600_000];
    /// a.set("k", big.as_slice())?;
    /// let b = manager.dict()?;
    /// let err = b.set("k", big.as_slice()).unwrap_err();
    /// assert!(matches!(err, ManagerError::Raised(e) if e.kind() == ExceptionKind::MemoryError));
    /// drop(a); // frees its bytes
    /// b.set("k", big.as_slice())?;
    /// # Ok::<(), ManagerError>(())
    /// ```
    pub fn max_memory(&mut self, bytes: usize) -> &mut Self {
        self.limits.total = bytes;
        self
    }

    fn check(&self) -> Result<(), ManagerError> {
        match &self.refused {
            Some(e) => Err(ManagerError::Start(e.clone())),
            None => Ok(()),
        }
    }

    /// Starts a server with these options in a child process (a daemon: it dies with this
    /// process), listening on a private abstract Unix socket with a random authkey, and
    /// connects to it.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Start`] when a registration was refused, or the child cannot start
    /// or bind.
    pub fn start(&self) -> Result<Manager, ManagerError> {
        self.check()?;
        let setup = Setup {
            types: self.types.to_wire().map_err(ManagerError::Start)?,
            limits: self.limits,
        };
        let (address, authkey) = private_address()?;
        let mut session = [0u8; 16];
        crate::sys::net::random(&mut session).map_err(|e| ManagerError::Start(e.to_string()))?;
        let (ours, theirs) = pipe(true).map_err(|e| ManagerError::Start(e.to_string()))?;
        let child = Process::builder().daemon(true).start(
            serve_in_child,
            (address.to_string(), authkey.clone(), session, theirs, setup),
        )?;
        let link = Link::adopt(address, authkey, session, ours);
        // The first round trip: the server is up (and bound), or says why not.
        let manager = Manager {
            link,
            serving: Serving::Child(Some(child)),
        };
        match manager.link.value(None, "dummy", vec![]) {
            Ok(_) => Ok(manager),
            Err(ManagerError::Raised(e)) => Err(ManagerError::Start(e.to_string())),
            Err(e) => Err(ManagerError::Start(format!(
                "the server process ended: {e}"
            ))),
        }
    }

    /// Starts a server with these options on a new thread of this process, on a private
    /// abstract Unix socket with a random authkey, and connects to it. Child processes reach
    /// it through the proxies they are given.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Start`] when a registration was refused, or the socket or the thread
    /// cannot be made.
    pub fn start_thread(&self) -> Result<Manager, ManagerError> {
        self.check()?;
        let (address, authkey) = private_address()?;
        let listener = bind(&address, &authkey)?;
        let table = Table::new(self.types.clone(), self.limits);
        let running = Running::spawn_with(listener, table, DEFAULT_MAX_REQUEST)
            .map_err(|e| ManagerError::Start(e.to_string()))?;
        Ok(Manager {
            link: Link::shared(&address, &authkey, false)?,
            serving: Serving::Thread(running),
        })
    }
}

/// What a server process needs beside its address: the registered types and the limits.
#[derive(Serialize, Deserialize)]
struct Setup {
    types: Vec<(String, FactoryRef)>,
    limits: Limits,
}

/// A random abstract socket name and a random authkey for a private server.
fn private_address() -> Result<(Address, Vec<u8>), ManagerError> {
    let mut bytes = [0u8; 48];
    crate::sys::net::random(&mut bytes).map_err(|e| ManagerError::Start(e.to_string()))?;
    let name: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok((
        Address::abstract_name(format!("multiproc-manager-{name}")),
        bytes[16..].to_vec(),
    ))
}

fn bind(address: &Address, authkey: &[u8]) -> Result<Listener, ManagerError> {
    Listener::options()
        .authkey(authkey)
        .max_frame(DEFAULT_MAX_REQUEST)
        .backlog(super::server::BACKLOG)
        .bind(address.clone())
        .map_err(|e| ManagerError::Start(e.to_string()))
}

/// The server process: binds and serves, its starter's connection first, until asked to stop.
/// What fails before it serves is the answer to the starter's first request.
fn serve_in_child(
    (address, authkey, session, mut first, setup): (String, Vec<u8>, [u8; 16], Connection, Setup),
) {
    let ready = || -> Result<(Listener, Shared), String> {
        let address: Address = address.parse().map_err(|e| format!("{e}"))?;
        let listener = bind(&address, &authkey).map_err(|e| e.to_string())?;
        let table = Table::new(Types::from_wire(setup.types)?, setup.limits);
        let shared = Shared::with_table(table).map_err(|e| e.to_string())?;
        Ok((listener, shared))
    };
    match ready() {
        Ok((listener, shared)) => {
            let (sock, _) = first.into_stream();
            let first = Some((sock, session.to_vec()));
            let _ =
                super::server::run_with(&listener, &Arc::new(shared), DEFAULT_MAX_REQUEST, first);
        }
        Err(why) => {
            let why = Reply::Error(Exception::msg(ExceptionKind::RuntimeError, why));
            let mut bytes = Vec::new();
            if codec::encode_plain_into(&why, &mut bytes).is_ok() {
                let _ = first.send_bytes(&bytes);
            }
        }
    }
}

impl Manager {
    /// Options for a manager this process starts (types of your own, see
    /// [`ManagerOptions`]).
    ///
    /// ```
    /// let manager = multiproc::manager::Manager::options().start_thread()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn options() -> ManagerOptions {
        ManagerOptions::default()
    }

    /// Starts a server in a child process (a daemon: it dies with this process) listening on
    /// a private abstract Unix socket with a random authkey, and connects to it.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Start`] when the child cannot start or bind.
    pub fn start() -> Result<Manager, ManagerError> {
        Self::options().start()
    }

    /// Starts a server on a new thread of this process, on a private abstract Unix socket
    /// with a random authkey, and connects to it. Child processes reach it through the
    /// proxies they are given.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Start`] when the socket or the thread cannot be made.
    pub fn start_thread() -> Result<Manager, ManagerError> {
        Self::options().start_thread()
    }
}
