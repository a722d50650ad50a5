//! [`Listener`] and [`Client`]: connections between unrelated processes and machines.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::accept::{Pending, Unauthenticated};
use super::address::Address;
use super::conn::{Codec, Connection, DEFAULT_MAX_FRAME};
use super::error::{AcceptError, BindError, ConnectError};
use super::frame::Transport;
use super::handshake::Handshake;
use crate::sys::net::{self, UnixAddr};

/// How long a peer has for the whole authkey handshake by default (Python waits forever).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings shared by [`Listener`] and [`Client`].
#[derive(Clone)]
struct Options {
    authkey: Option<Arc<[u8]>>,
    legacy_md5: bool,
    max_frame: u64,
    handshake_timeout: Option<Duration>,
    codec: Codec,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            authkey: None,
            legacy_md5: false,
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            codec: Codec::Postcard,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("authkey", &self.authkey.as_ref().map(|_| "<secret>"))
            .field("legacy_md5", &self.legacy_md5)
            .field("max_frame", &self.max_frame)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("codec", &self.codec)
            .finish()
    }
}

impl Options {
    /// When a handshake starting now times out.
    fn deadline(&self) -> Option<Instant> {
        self.handshake_timeout
            .and_then(|t| Instant::now().checked_add(t))
    }

    /// A fresh connection on `fd` with these settings.
    fn connection(&self, fd: OwnedFd, transport: Transport) -> Connection {
        let mut c = Connection::new(fd, transport, true, true);
        c.set_max_frame(self.max_frame);
        c.set_codec(self.codec);
        c
    }
}

/// Settings for a [`Listener`]; made by [`Listener::options`], finished by
/// [`bind`](Self::bind).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let listener = multiproc::Listener::options()
///     .authkey(b"secret")
///     .max_frame(1 << 20)
///     .handshake_timeout(Some(Duration::from_secs(1)))
///     .bind("127.0.0.1:0".parse::<multiproc::Address>()?)?;
/// assert_ne!(listener.address().to_string(), "127.0.0.1:0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    opts: Options,
    backlog: i32,
}

impl ListenerOptions {
    /// Requires every client to pass the authkey handshake with `key` (Python's `authkey`).
    /// Without it, any peer that can reach the address is accepted.
    pub fn authkey(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.opts.authkey = Some(key.as_ref().into());
        self
    }

    /// Also accepts the HMAC-MD5 handshake of Python 3.11 and older. Off by default.
    pub fn allow_legacy_md5(&mut self, allow: bool) -> &mut Self {
        self.opts.legacy_md5 = allow;
        self
    }

    /// The largest message accepted connections receive ([`DEFAULT_MAX_FRAME`] by default).
    pub fn max_frame(&mut self, max: u64) -> &mut Self {
        self.opts.max_frame = max;
        self
    }

    /// How long a client has for the whole handshake, from its accept
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`] by default; `None` waits forever, as Python).
    pub fn handshake_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.opts.handshake_timeout = timeout;
        self
    }

    /// How accepted connections encode typed messages ([`Codec::Postcard`] by default).
    pub fn codec(&mut self, codec: Codec) -> &mut Self {
        self.opts.codec = codec;
        self
    }

    /// The length of the queue of connections not yet accepted (128 by default; Python's is
    /// 1).
    pub fn backlog(&mut self, backlog: i32) -> &mut Self {
        self.backlog = backlog;
        self
    }

    /// Listens on `address`. A TCP port 0 picks a free port ([`Listener::address`] tells
    /// which).
    ///
    /// # Errors
    ///
    /// [`BindError::AddressInUse`] when the address is taken (for a Unix path: the file
    /// exists); [`BindError::Io`] otherwise.
    pub fn bind(&self, address: impl Into<Address>) -> Result<Listener, BindError> {
        let address = address.into();
        let err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                BindError::AddressInUse(address.to_string())
            } else {
                BindError::Io {
                    address: address.to_string(),
                    source: e,
                }
            }
        };
        let (fd, bound, transport, unlink) = match &address {
            Address::Unix(p) => {
                let fd = net::unix_listen(&UnixAddr::Path(p), self.backlog).map_err(err)?;
                (fd, address.clone(), Transport::Unix, Some(p.clone()))
            }
            Address::Abstract(n) => {
                let fd = net::unix_listen(&UnixAddr::Abstract(n), self.backlog).map_err(err)?;
                (fd, address.clone(), Transport::Unix, None)
            }
            Address::Tcp(a) => {
                let (fd, local) = net::tcp_listen(a, self.backlog).map_err(err)?;
                (fd, Address::Tcp(local), Transport::Tcp, None)
            }
        };
        Ok(Listener {
            fd,
            address: bound,
            transport,
            opts: self.opts.clone(),
            unlink,
            pending: Mutex::default(),
        })
    }
}

/// A listening socket that hands out a [`Connection`] per client, as Python's
/// `multiprocessing.connection.Listener`.
///
/// With an authkey, [`accept`](Self::accept) runs Python's handshake (first challenging the
/// client, then answering its challenge) before returning the connection; a client that fails
/// it or sends garbage makes one `accept` fail, and the listener goes on. Handshakes run
/// side by side: a client that stalls holds up nobody but itself until its
/// [`handshake_timeout`](ListenerOptions::handshake_timeout), while `accept` returns the
/// clients that answer. [`accept_raw`](Self::accept_raw) and
/// [`try_accept_raw`](Self::try_accept_raw) leave the handshake to the caller, to run on
/// another thread or from a server's own poll loop.
///
/// `Listener` is `Send + Sync`: several threads may [`accept`](Self::accept) at once.
///
/// # Examples
///
/// Process 1 listens on a TCP port, process 2 (a thread here) connects:
///
/// ```
/// use multiproc::{Client, Listener};
/// let listener = Listener::options().authkey(b"secret").bind("127.0.0.1:0".parse::<multiproc::Address>()?)?;
/// let address = listener.address().clone();
/// let client = std::thread::spawn(move || {
///     let mut c = Client::new().authkey(b"secret").connect(&address).unwrap();
///     c.send(&[1, 2, 3]).unwrap();
/// });
/// let mut conn = listener.accept()?;
/// assert_eq!(conn.recv::<[i32; 3]>()?, [1, 2, 3]);
/// client.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    fd: OwnedFd,
    address: Address,
    transport: Transport,
    opts: Options,
    unlink: Option<PathBuf>,
    /// Handshakes under way, driven by whichever thread is in `accept`.
    pending: Mutex<Pending>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("options", &self.opts)
            .finish()
    }
}

impl Listener {
    /// Listens on `address` with default settings and no authkey.
    ///
    /// # Errors
    ///
    /// As [`ListenerOptions::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("multiproc-doc-{}", std::process::id());
    /// let l = multiproc::Listener::bind(multiproc::Address::abstract_name(name))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(address: impl Into<Address>) -> Result<Listener, BindError> {
        Self::options().bind(address)
    }

    /// Settings for a listener.
    pub fn options() -> ListenerOptions {
        ListenerOptions {
            opts: Options::default(),
            backlog: 128,
        }
    }

    /// Accepts (or refuses) Python 3.11's HMAC-MD5 handshake from now on, as
    /// [`ListenerOptions::allow_legacy_md5`].
    pub(crate) fn set_legacy_md5(&mut self, allow: bool) {
        self.opts.legacy_md5 = allow;
    }

    /// The address listened on (with the real port when port 0 was asked for).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Waits for a client and returns its connection, after the authkey handshake if one is
    /// set.
    ///
    /// Clients' handshakes run side by side, on the calling thread: a client that connects
    /// and says nothing (or too little) does not delay the next one, which is returned as soon
    /// as it has passed. A stalled client is dropped at its timeout, and that `accept` returns
    /// its error. At most 256 handshakes are kept under way; past that, the oldest is dropped
    /// to make room.
    ///
    /// # Errors
    ///
    /// [`AcceptError::Auth`] when a client fails the handshake (wrong key, legacy MD5 not
    /// enabled, garbage, time-out); [`AcceptError::Io`] when `accept` fails. Either way the
    /// listener keeps working, and the other handshakes under way go on.
    pub fn accept(&self) -> Result<Connection, AcceptError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.accept(self)
    }

    /// Waits for a client and returns it before the handshake, which the caller runs with
    /// [`Unauthenticated::handshake`] (on any thread) or steps with
    /// [`Unauthenticated::try_handshake`]. The listener's challenge is sent, and the
    /// handshake timeout starts, at once.
    ///
    /// # Errors
    ///
    /// [`AcceptError::Io`] when `accept` fails; [`AcceptError::Auth`] when the client is gone
    /// before the challenge reaches it.
    ///
    /// # Examples
    ///
    /// See [`Unauthenticated`].
    pub fn accept_raw(&self) -> Result<Unauthenticated, AcceptError> {
        loop {
            crate::sys::socket::wait_readable(self.fd.as_fd(), None).map_err(AcceptError::Io)?;
            if let Some(p) = self.try_accept_raw()? {
                return Ok(p);
            }
        }
    }

    /// As [`accept_raw`](Self::accept_raw), without waiting: `None` when no client is
    /// waiting. For servers that poll the listener with other descriptors.
    ///
    /// # Errors
    ///
    /// As [`accept_raw`](Self::accept_raw).
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("multiproc-try-accept-doc-{}", std::process::id());
    /// let l = multiproc::Listener::bind(multiproc::Address::abstract_name(name))?;
    /// assert!(l.try_accept_raw()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_accept_raw(&self) -> Result<Option<Unauthenticated>, AcceptError> {
        let tcp = self.transport == Transport::Tcp;
        let Some(fd) = net::accept_nowait(self.fd.as_fd(), tcp).map_err(AcceptError::Io)? else {
            return Ok(None);
        };
        let deadline = self.opts.deadline();
        let mut c = self.opts.connection(fd, self.transport);
        let handshake = match &self.opts.authkey {
            Some(key) => Some(Handshake::server(
                &mut c,
                key.clone(),
                self.opts.legacy_md5,
            )?),
            None => None,
        };
        Ok(Some(Unauthenticated::new(c, handshake, deadline)))
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.unlink {
            // Nothing to report from a destructor; the file may already be gone.
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Connects to a [`Listener`] (or a Python `multiprocessing.connection.Listener`), as Python's
/// `multiprocessing.connection.Client`. A builder: set the authkey and limits, then
/// [`connect`](Self::connect).
///
/// # Examples
///
/// ```
/// use multiproc::{Address, Client, Listener};
/// let name = format!("multiproc-client-doc-{}", std::process::id());
/// let listener = Listener::options().authkey(b"k").bind(Address::abstract_name(name.clone()))?;
/// let t = std::thread::spawn(move || listener.accept().unwrap().recv_bytes().unwrap());
/// let mut c = Client::new().authkey(b"k").connect(Address::abstract_name(name))?;
/// c.send_bytes(b"hi")?;
/// assert_eq!(t.join().unwrap(), b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    opts: Options,
    connect_timeout: Option<Duration>,
}

/// How long [`Client::connect`] waits for a TCP peer to answer, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Client {
    fn default() -> Self {
        Client {
            opts: Options::default(),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
        }
    }
}

impl Client {
    /// Default settings: no authkey.
    pub fn new() -> Self {
        Client::default()
    }

    /// Runs the authkey handshake with `key` on connecting (answering the listener's
    /// challenge, then challenging it). The listener must use the same key.
    pub fn authkey(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.opts.authkey = Some(key.as_ref().into());
        self
    }

    /// Also accepts the HMAC-MD5 handshake of Python 3.11 and older. Off by default.
    pub fn allow_legacy_md5(&mut self, allow: bool) -> &mut Self {
        self.opts.legacy_md5 = allow;
        self
    }

    /// The largest message the connection receives ([`DEFAULT_MAX_FRAME`] by default).
    pub fn max_frame(&mut self, max: u64) -> &mut Self {
        self.opts.max_frame = max;
        self
    }

    /// How long the listener has for the whole handshake ([`DEFAULT_HANDSHAKE_TIMEOUT`] by
    /// default; `None` waits forever, as Python).
    pub fn handshake_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.opts.handshake_timeout = timeout;
        self
    }

    /// How the connection encodes typed messages ([`Codec::Postcard`] by default;
    /// `Codec::Pickle` to talk with Python's `send`/`recv`).
    pub fn codec(&mut self, codec: Codec) -> &mut Self {
        self.opts.codec = codec;
        self
    }

    /// How long a TCP connection may take to be established ([`DEFAULT_CONNECT_TIMEOUT`] by
    /// default; `None` leaves it to the system, which retries for about two minutes). Unix
    /// sockets connect at once or fail.
    pub fn connect_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects to `address`, then runs the handshake if an authkey is set. TCP connections
    /// get `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Io`] when nobody listens there or the address is unreachable;
    /// [`ConnectError::Auth`] when the handshake fails.
    pub fn connect(&self, address: impl Into<Address>) -> Result<Connection, ConnectError> {
        let address = address.into();
        let err = |e| ConnectError::Io {
            address: address.to_string(),
            source: e,
        };
        let (fd, transport) = match &address {
            Address::Unix(p) => (
                net::unix_connect(&UnixAddr::Path(p)).map_err(err)?,
                Transport::Unix,
            ),
            Address::Abstract(n) => (
                net::unix_connect(&UnixAddr::Abstract(n)).map_err(err)?,
                Transport::Unix,
            ),
            Address::Tcp(a) => (
                net::tcp_connect(a, self.connect_timeout).map_err(err)?,
                Transport::Tcp,
            ),
        };
        let deadline = self.opts.deadline();
        let mut c = self.opts.connection(fd, transport);
        if let Some(key) = &self.opts.authkey {
            Handshake::client(key.clone(), self.opts.legacy_md5).run(&mut c, deadline)?;
        }
        Ok(c)
    }
}
