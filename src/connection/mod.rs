//! Framed messages between processes and machines, wire-compatible with Python's
//! `multiprocessing.connection`.
//!
//! - [`pipe`] makes two connected [`Connection`]s (Python's `Pipe`).
//! - [`Listener`] and [`Client`] connect unrelated processes over Unix sockets (paths or Linux
//!   abstract names) or TCP, optionally authenticated with Python's authkey handshake.
//! - [`wait`] waits for the first of several connections to have something to read.
//!
//! Every message is a frame: a 4-byte big-endian signed length and the payload, or `-1` and
//! an 8-byte big-endian length for payloads over 2³¹−1 bytes. [`Connection::send_bytes`] and
//! [`Connection::recv_bytes`] exchange raw payloads with Python's methods of the same names.
//! [`Connection::send`] and [`Connection::recv`] encode typed values with postcard, which
//! carries no type information: the two ends agree on each message's type, as with any serde
//! format (one enum for several kinds of message).
//!
//! # Differences from Python
//!
//! - Every receive is bounded by a maximum frame size ([`DEFAULT_MAX_FRAME`], configurable);
//!   Python has none.
//! - The authkey handshake has a timeout ([`DEFAULT_HANDSHAKE_TIMEOUT`]), and
//!   [`Listener::accept`] runs clients' handshakes side by side; a stalled client blocks
//!   Python's `accept` forever. [`Listener::accept_raw`] leaves the handshake to the caller.
//! - The HMAC-MD5 handshake of Python ≤ 3.11 is refused unless enabled with
//!   `allow_legacy_md5`.
//! - [`wait`] returns indices rather than the objects.

mod accept;
mod address;
mod conn;
mod error;
pub(crate) mod frame;
mod handshake;
mod listener;
mod reader;
mod wait;

pub use accept::{TryHandshakeError, Unauthenticated};
pub use address::{Address, AddressParseError};
pub use conn::{Codec, Connection, DEFAULT_MAX_FRAME, DEFAULT_SPIN, pipe};
pub use error::{AcceptError, AuthError, BindError, ConnectError, RecvError, SendError};
pub use listener::{
    Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, Listener, ListenerOptions,
};
pub use wait::{Waitable, wait};
