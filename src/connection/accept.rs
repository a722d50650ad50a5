//! Accepting in two steps: the socket first ([`Listener::accept_raw`]), the authkey handshake
//! after ([`Unauthenticated`]), so that a silent or slow client costs nobody else its wait.
//!
//! [`Listener::accept`] itself keeps every handshake under way in a [`Pending`] set and drives
//! them all from one `poll(2)`, returning the first client that finishes.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::Listener;
use super::conn::Connection;
use super::error::AuthError;
use super::handshake::Handshake;
use super::wait::Waitable;

/// A client accepted by [`Listener::accept_raw`] that has not passed the authkey handshake
/// yet: nothing can be sent or received on it but the handshake.
///
/// The listener's challenge is already sent. Finish with [`handshake`](Self::handshake) (waits
/// until the listener's handshake timeout, counted from the accept), with
/// [`handshake_timeout`](Self::handshake_timeout), on any thread; or step it with
/// [`try_handshake`](Self::try_handshake), which never waits, whenever its descriptor is
/// readable: one thread can then drive many clients with [`wait`](super::wait) or its own
/// `poll(2)`.
///
/// A listener without an authkey hands out clients whose handshake is a no-op.
///
/// # Examples
///
/// The handshake runs on its own thread, so the accepting thread goes on at once:
///
/// ```
/// use multiproc::{Address, Client, Listener};
/// let listener = Listener::options().authkey(b"k").bind("127.0.0.1:0".parse::<Address>()?)?;
/// let address = listener.address().clone();
/// let client = std::thread::spawn(move || {
///     Client::new().authkey(b"k").connect(&address).unwrap().send_bytes(b"hi").unwrap();
/// });
/// let pending = listener.accept_raw()?;
/// let served = std::thread::spawn(move || pending.handshake().unwrap().recv_bytes().unwrap());
/// assert_eq!(served.join().unwrap(), b"hi");
/// client.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Unauthenticated(Box<Inner>);

/// Boxed, so that the client travels cheaply inside [`TryHandshakeError::WouldBlock`].
struct Inner {
    conn: Connection,
    handshake: Option<Handshake>,
    deadline: Option<Instant>,
}

impl fmt::Debug for Unauthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unauthenticated")
            .field("conn", &self.0.conn)
            .field("handshake", &self.0.handshake)
            .field("deadline", &self.0.deadline)
            .finish()
    }
}

/// Why [`Unauthenticated::try_handshake`] did not return a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryHandshakeError {
    /// The client has not said enough yet; try again when its descriptor is readable. The
    /// client is handed back.
    #[error("the handshake is waiting for the peer")]
    WouldBlock(Unauthenticated),
    /// The handshake failed (and the client was disconnected), or its deadline passed.
    #[error("authentication failed: {0}")]
    Failed(#[from] AuthError),
}

impl Unauthenticated {
    pub(super) fn new(
        conn: Connection,
        handshake: Option<Handshake>,
        deadline: Option<Instant>,
    ) -> Self {
        Unauthenticated(Box::new(Inner {
            conn,
            handshake,
            deadline,
        }))
    }

    /// Runs the rest of the handshake, waiting for the client until the deadline (the
    /// listener's [`handshake_timeout`](super::ListenerOptions::handshake_timeout) after the
    /// accept), and returns the authenticated connection.
    ///
    /// # Errors
    ///
    /// As [`Listener::accept`]: wrong key, legacy MD5 not enabled, garbage, time-out
    /// ([`AuthError::TimedOut`]).
    pub fn handshake(self) -> Result<Connection, AuthError> {
        let Inner {
            mut conn,
            handshake,
            deadline,
        } = *self.0;
        if let Some(mut h) = handshake {
            h.run(&mut conn, deadline)?;
        }
        Ok(conn)
    }

    /// As [`handshake`](Self::handshake), with the deadline `timeout` from now instead
    /// (`None`: wait forever, as Python).
    ///
    /// # Errors
    ///
    /// As [`handshake`](Self::handshake).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Result<Connection, AuthError> {
        self.0.deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.handshake()
    }

    /// Takes the handshake as far as what the client has sent allows, without waiting: the
    /// connection once it has passed, or the client back while it has more to say.
    ///
    /// # Errors
    ///
    /// [`TryHandshakeError::WouldBlock`] with the client when the handshake needs more from
    /// it; [`TryHandshakeError::Failed`] when it failed or its deadline has passed.
    ///
    /// # Examples
    ///
    /// One thread drives a client's handshake between other work:
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::connection::TryHandshakeError;
    /// use multiproc::{Address, Client, Listener, wait};
    /// let listener = Listener::options().authkey(b"k").bind("127.0.0.1:0".parse::<Address>()?)?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || Client::new().authkey(b"k").connect(&address));
    /// let mut pending = listener.accept_raw()?;
    /// let conn = loop {
    ///     wait(&[&pending], Some(Duration::from_millis(100)))?;
    ///     match pending.try_handshake() {
    ///         Ok(conn) => break conn,
    ///         Err(TryHandshakeError::WouldBlock(p)) => pending = p,
    ///         Err(e) => return Err(e.into()),
    ///     }
    /// };
    /// assert!(client.join().unwrap().is_ok());
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_handshake(mut self) -> Result<Connection, TryHandshakeError> {
        let inner = &mut *self.0;
        let done = match &mut inner.handshake {
            None => true,
            Some(h) => h.advance(&mut inner.conn)?,
        };
        if done {
            Ok(self.0.conn)
        } else if inner.deadline.is_some_and(|d| Instant::now() >= d) {
            Err(AuthError::TimedOut.into())
        } else {
            Err(TryHandshakeError::WouldBlock(self))
        }
    }

    /// When the handshake times out (`None`: never).
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }
}

impl AsFd for Unauthenticated {
    /// The client's socket: readable when [`try_handshake`](Unauthenticated::try_handshake)
    /// may get further.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.conn.as_fd()
    }
}

/// Ready when [`try_handshake`](Unauthenticated::try_handshake) may get further.
impl Waitable for Unauthenticated {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.0.conn.as_fd()
    }
}

/// The most handshakes [`Listener::accept`] keeps under way; past it, the oldest is dropped to
/// make room, so a flood of silent clients cannot hold descriptors without bound.
pub(super) const MAX_PENDING: usize = 256;

/// Handshakes under way inside a listener, oldest first.
#[derive(Debug, Default)]
pub(super) struct Pending(Vec<Unauthenticated>);

impl Pending {
    /// Accepts clients and drives every handshake under way until one client passes (its
    /// connection) or fails (its error): whichever happens first. A silent client delays
    /// the others only by the few system calls its own socket costs.
    pub(super) fn accept(&mut self, l: &Listener) -> Result<Connection, super::AcceptError> {
        loop {
            let now = Instant::now();
            if let Some(i) = self
                .0
                .iter()
                .position(|p| p.deadline().is_some_and(|d| d <= now))
            {
                drop(self.0.remove(i));
                return Err(AuthError::TimedOut.into());
            }
            let deadline = self.0.iter().filter_map(|p| p.deadline()).min();
            let mut fds = vec![l.as_fd()];
            fds.extend(self.0.iter().map(|p| p.as_fd()));
            let ready =
                crate::sys::socket::poll_in(&fds, deadline).map_err(super::AcceptError::Io)?;
            let (waiting, listener_ready) = (std::mem::take(&mut self.0), ready[0]);
            let mut outcome = None;
            for (p, ready) in waiting.into_iter().zip(&ready[1..]) {
                if !ready || outcome.is_some() {
                    self.0.push(p);
                    continue;
                }
                match p.try_handshake() {
                    Ok(c) => outcome = Some(Ok(c)),
                    Err(TryHandshakeError::WouldBlock(p)) => self.0.push(p),
                    Err(TryHandshakeError::Failed(e)) => outcome = Some(Err(e.into())),
                }
            }
            if let Some(r) = outcome {
                return r;
            }
            if listener_ready && let Some(p) = l.try_accept_raw()? {
                match p.try_handshake() {
                    Ok(c) => return Ok(c),
                    Err(TryHandshakeError::WouldBlock(p)) => {
                        if self.0.len() >= MAX_PENDING {
                            drop(self.0.remove(0));
                        }
                        self.0.push(p);
                    }
                    Err(TryHandshakeError::Failed(e)) => return Err(e.into()),
                }
            }
        }
    }
}
