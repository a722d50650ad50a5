//! A manager server of your own: `multiproc serve`, or Python's
//! `BaseManager(address, authkey).get_server().serve_forever()`.

use std::sync::Arc;

use super::client::ManagerError;
use super::custom::Factory;
use super::referent::{Call, Holder};
use super::server::{DEFAULT_MAX_REQUEST, Shared, run};
use crate::connection::{Address, Listener};
use crate::object::{Dict, Object};

/// A manager server bound to an address, serving on the thread that calls
/// [`serve_forever`](Self::serve_forever).
///
/// Clients reach it with [`Manager::connect`](super::Manager::connect) and find what it
/// [publishes](Self::publish) with [`Manager::get`](super::Manager::get). Unlike the server of
/// [`Manager::start`](super::Manager::start), its clients cannot stop it: it stops on
/// [`Stopper::stop`] (or the signals of [`stop_on_termination_signals`](Self::stop_on_termination_signals)).
///
/// # Examples
///
/// ```
/// use multiproc::manager::{Manager, Server};
/// use multiproc::Address;
///
/// let server = Server::bind("127.0.0.1:0".parse::<Address>()?, Some(b"secret"))?;
/// server.publish("jobs", "Queue", vec![])?;
/// let address = server.address().clone();
/// let stopper = server.stopper();
/// let serving = std::thread::spawn(move || server.serve_forever());
///
/// let manager = Manager::connect(address, b"secret")?;
/// let jobs = manager.get("jobs")?;
/// jobs.call("put", vec!["first".into()])?;
/// assert_eq!(jobs.call("qsize", vec![])?, 1);
///
/// stopper.stop();
/// serving.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    listener: Listener,
    shared: Arc<Shared>,
    max_request: u64,
}

/// Stops a [`Server`] from another thread.
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

impl Stopper {
    /// Asks the server to stop; [`Server::serve_forever`] returns soon after, having released
    /// every client.
    pub fn stop(&self) {
        self.0.stop();
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stopper")
    }
}

impl Server {
    /// Binds `address` (Unix path, abstract name or TCP), requiring `authkey` of every client (required for TCP and abstract sockets).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Start`] when the address cannot be bound, or is TCP or abstract (no file permissions) without an authkey:
    /// a manager on the network without one would serve anyone who can reach it.
    pub fn bind(
        address: impl Into<Address>,
        authkey: Option<&[u8]>,
    ) -> Result<Server, ManagerError> {
        let address = address.into();
        let mut options = Listener::options();
        match authkey {
            Some(key) => {
                options.authkey(key);
            }
            None if matches!(address, Address::Tcp(_) | Address::Abstract(_)) => {
                return Err(ManagerError::Start(
                    "a manager on TCP or an abstract socket needs an authkey: anyone who can \
                     reach it could use it"
                        .into(),
                ));
            }
            None => {}
        }
        let listener = options
            .max_frame(DEFAULT_MAX_REQUEST)
            .backlog(super::server::BACKLOG)
            .bind(address)
            .map_err(|e| ManagerError::Start(e.to_string()))?;
        let mut shared = Shared::new().map_err(|e| ManagerError::Start(e.to_string()))?;
        shared.clients_may_stop = false;
        Ok(Server {
            listener,
            shared: Arc::new(shared),
            max_request: DEFAULT_MAX_REQUEST,
        })
    }

    /// The largest request a client may send (64 MiB by default); a larger one disconnects
    /// that client.
    pub fn set_max_request(&mut self, bytes: u64) {
        self.max_request = bytes;
    }

    /// The most one object may hold, about (default 1 GiB); see
    /// [`ManagerOptions::max_object_size`](super::ManagerOptions::max_object_size).
    ///
    /// ```
    /// let path = format!("/tmp/doc-max-object-{}.sock", std::process::id());
    /// let server = multiproc::manager::Server::bind(std::path::Path::new(&path), None)?;
    /// server.set_max_object_size(64 << 20);
    /// # drop(server);
    /// # let _ = std::fs::remove_file(&path);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_object_size(&self, bytes: usize) {
        let mut limits = self.shared.table.limits();
        limits.object = bytes;
        self.shared.table.set_limits(limits);
    }

    /// The most all objects together may hold, about (default: no limit); see
    /// [`ManagerOptions::max_memory`](super::ManagerOptions::max_memory). A server on the
    /// network should have one: without it, a client with the key may fill the memory.
    ///
    /// ```
    /// let path = format!("/tmp/doc-max-memory-{}.sock", std::process::id());
    /// let server = multiproc::manager::Server::bind(std::path::Path::new(&path), None)?;
    /// server.set_max_memory(1 << 30);
    /// # drop(server);
    /// # let _ = std::fs::remove_file(&path);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_memory(&self, bytes: usize) {
        let mut limits = self.shared.table.limits();
        limits.total = bytes;
        self.shared.table.set_limits(limits);
    }

    /// Also accepts the HMAC-MD5 handshake of Python 3.11 and older clients (off by default:
    /// MD5 is weak, and Python 3.12+ speaks HMAC-SHA256).
    ///
    /// ```
    /// use multiproc::manager::Server;
    ///
    /// let mut server = Server::bind("127.0.0.1:0".parse::<multiproc::Address>()?, Some(b"key"))?;
    /// server.allow_legacy_md5(true);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_legacy_md5(&mut self, allow: bool) {
        self.listener.set_legacy_md5(allow);
    }

    /// The address clients connect to (with the port chosen, for TCP port 0).
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// Creates an object of type `typeid` (`"dict"`, `"Queue"`, …, as
    /// [`Manager::create`](super::Manager::create)) that lives as long as the server, under
    /// `name`, for clients to find with [`Manager::get`](super::Manager::get): Python's
    /// `register('get_queue', callable=lambda: queue)` recipe.
    ///
    /// # Errors
    ///
    /// [`ManagerError::Raised`] for an unknown type or wrong arguments, or a name in use.
    pub fn publish(&self, name: &str, typeid: &str, args: Vec<Object>) -> Result<(), ManagerError> {
        let call = Call {
            who: Holder::Server,
            method: typeid.into(),
            args,
            kwargs: Dict::new(),
        };
        let referent = self
            .shared
            .table
            .create(typeid, call)
            .map_err(ManagerError::Raised)?;
        let mut names = self
            .shared
            .names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.contains_key(name) {
            return Err(ManagerError::Raised(super::Exception::msg(
                super::ExceptionKind::ValueError,
                format!("{name:?} is published already"),
            )));
        }
        let info = self.shared.table.insert(Holder::Server, referent);
        names.insert(name.to_owned(), info.id);
        Ok(())
    }

    /// Serves objects made by `factory` under `typeid`, for clients'
    /// [`Manager::create`](super::Manager::create) and for [`publish`](Self::publish): Python's
    /// `BaseManager.register(typeid, callable)`. See [`Managed`](super::Managed).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Start`] for the typeid of a built-in type or one registered already.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::manager::{Call, Exception, Managed, Manager, Server};
    /// use multiproc::object::Object;
    ///
    /// struct Total(i64);
    ///
    /// impl Managed for Total {
    ///     fn exposed(&self) -> &'static [&'static str] {
    ///         &["add"]
    ///     }
    ///     fn call(&mut self, call: Call) -> Result<Object, Exception> {
    ///         let (n,): (i64,) = call.args_as()?;
    ///         self.0 += n;
    ///         Ok(self.0.into())
    ///     }
    ///     fn value(&self) -> Object {
    ///         self.0.into()
    ///     }
    /// }
    ///
    /// fn total(call: Call) -> Result<Box<dyn Managed>, Exception> {
    ///     call.arity(0, 0)?;
    ///     Ok(Box::new(Total(0)))
    /// }
    ///
    /// let server = Server::bind("127.0.0.1:0".parse::<multiproc::Address>()?, Some(b"key"))?;
    /// server.register("Total", total)?;
    /// server.publish("sum", "Total", vec![])?;
    /// let (address, stopper) = (server.address().clone(), server.stopper());
    /// let serving = std::thread::spawn(move || server.serve_forever());
    ///
    /// let manager = Manager::connect(address, b"key")?;
    /// assert_eq!(manager.get("sum")?.call("add", vec![5.into()])?, multiproc::obj!(5));
    /// stopper.stop();
    /// serving.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register(&self, typeid: &'static str, factory: Factory) -> Result<(), ManagerError> {
        self.shared
            .table
            .types()
            .register(typeid, factory)
            .map_err(ManagerError::Start)
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.shared))
    }

    /// Makes `SIGTERM` and `SIGINT` stop the server cleanly: they are blocked in the calling
    /// thread (and the threads it starts afterwards) and taken by a thread of their own. Call
    /// it before the program starts other threads, which would otherwise still be ended by
    /// the signals.
    ///
    /// # Errors
    ///
    /// When the signal mask cannot be changed or the thread cannot start.
    pub fn stop_on_termination_signals(&self) -> std::io::Result<()> {
        let signals = crate::sys::signal::Termination::block()?;
        let stopper = self.stopper();
        std::thread::Builder::new()
            .name("multiproc-signals".into())
            .spawn(move || {
                if signals.wait().is_ok() {
                    stopper.stop();
                }
            })?;
        Ok(())
    }

    /// Serves clients until [`Stopper::stop`]; every client is released on the way out.
    ///
    /// # Errors
    ///
    /// When polling fails (out of memory or descriptors).
    pub fn serve_forever(&self) -> std::io::Result<()> {
        run(&self.listener, &self.shared, self.max_request)
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", self.address())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::connection::Client;
    use crate::manager::protocol::{Reply, Request};

    #[test]
    fn its_clients_cannot_stop_it() {
        let server = Server::bind("127.0.0.1:0".parse::<Address>().unwrap(), Some(b"k")).unwrap();
        let address = server.address().clone();
        let stopper = server.stopper();
        let serving = std::thread::spawn(move || server.serve_forever());
        let mut c = Client::new().authkey(b"k").connect(&address).unwrap();
        let ask = |c: &mut crate::Connection, method: &str| {
            let req = Request {
                id: None,
                method: method.into(),
                args: vec![],
                kwargs: Dict::new(),
            };
            let mut bytes = Vec::new();
            codec::encode_plain_into(&req, &mut bytes).unwrap();
            c.send_bytes(&bytes).unwrap();
            codec::decode::<Reply>(&c.recv_bytes().unwrap(), Vec::new()).unwrap()
        };
        assert!(matches!(ask(&mut c, "shutdown"), Reply::Error(_)));
        assert_eq!(ask(&mut c, "dummy"), Reply::Return(Object::None));
        stopper.stop();
        serving.join().unwrap().unwrap();
    }
}
