//! Errors of connection operations, one type per operation.

use std::io;

use crate::codec::CodecError;

/// Why [`Connection::send`](super::Connection::send) or
/// [`send_bytes`](super::Connection::send_bytes) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer closed its end.
    #[error("sending on a disconnected connection")]
    Disconnected,
    /// The value could not be encoded, or it holds a descriptor-carrying object and the
    /// connection cannot carry descriptors (TCP, one-way pipes).
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// This end only receives (the read end of a one-way [`pipe`](super::pipe)).
    #[error("sending on a receive-only connection")]
    NotWritable,
    /// The range given to [`send_bytes_range`](super::Connection::send_bytes_range) is not
    /// within the buffer.
    #[error("range {start}..{end} is out of bounds for a buffer of {len} bytes")]
    OutOfBounds {
        /// First byte of the range.
        start: usize,
        /// End of the range (exclusive).
        end: usize,
        /// Length of the buffer.
        len: usize,
    },
    /// Any other failure of the operating system.
    #[error("send failed: {0}")]
    Io(#[source] io::Error),
}

/// Why a receive ([`Connection::recv`](super::Connection::recv),
/// [`recv_bytes`](super::Connection::recv_bytes), …) failed.
///
/// After [`TooLarge`](Self::TooLarge), [`Truncated`](Self::Truncated),
/// [`BadLength`](Self::BadLength) and [`DescriptorsLost`](Self::DescriptorsLost) the stream has lost its framing: every later receive on that
/// end fails with [`Broken`](Self::Broken), as Python closes the connection then.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The peer closed its end (between two messages).
    #[error("receiving on a disconnected connection")]
    Disconnected,
    /// The next message is longer than the receiver accepts (the connection's maximum frame
    /// size, or the limit given to [`recv_bytes_max`](super::Connection::recv_bytes_max)).
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Announced length of the message.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// The peer closed its end in the middle of a message.
    #[error("connection closed inside a message ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The length prefix is negative (and not the long-form marker `-1`).
    #[error("invalid message length {0}")]
    BadLength(i32),
    /// The message's bytes do not make one value of the requested type. The connection stays
    /// usable. postcard carries no type information, so a message of another type may also
    /// decode, as a wrong value: see [`Connection::recv`](super::Connection::recv).
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// The buffer given to [`recv_bytes_into`](super::Connection::recv_bytes_into) is too
    /// short; the whole message is handed back here. The connection stays usable.
    #[error("buffer too short for a message of {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// This end only sends (the write end of a one-way [`pipe`](super::pipe)).
    #[error("receiving on a send-only connection")]
    NotReadable,
    /// Descriptors sent with the message could not be received: the kernel drops them when
    /// this process has too many open files (`EMFILE`, the limit `RLIMIT_NOFILE`), and the
    /// source says so. The bytes that carried them are gone, so the connection is broken like
    /// after [`Truncated`](Self::Truncated); the descriptors that did arrive are closed.
    #[error("descriptors sent with a message were lost ({0}); the connection is broken")]
    DescriptorsLost(#[source] io::Error),
    /// An earlier receive failed in a way that lost the message boundaries.
    #[error("the connection lost its framing in an earlier receive")]
    Broken,
    /// Any other failure of the operating system.
    #[error("receive failed: {0}")]
    Io(#[source] io::Error),
}

/// Why the authkey handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer's answer to our challenge was wrong (wrong authkey); the peer was told
    /// `#FAILURE#`.
    #[error("digest received was wrong")]
    WrongDigest,
    /// The peer refused our answer to its challenge (wrong authkey).
    #[error("digest sent was rejected")]
    Rejected,
    /// The peer speaks the HMAC-MD5 handshake of Python 3.11 or older, and it is not enabled
    /// (`allow_legacy_md5`). The peer was answered `#FAILURE#`, so a Python peer raises
    /// `AuthenticationError`.
    #[error(
        "the peer uses the HMAC-MD5 handshake of Python 3.11 and older, which is refused \
         unless enabled with allow_legacy_md5"
    )]
    LegacyRefused,
    /// The peer did not follow the handshake protocol.
    #[error("handshake protocol error: {0}")]
    Protocol(String),
    /// The peer did not answer within the handshake timeout.
    #[error("handshake timed out")]
    TimedOut,
    /// The peer closed the connection during the handshake.
    #[error("the peer closed the connection during the handshake")]
    Disconnected,
    /// Any other failure of the operating system.
    #[error("handshake failed: {0}")]
    Io(#[source] io::Error),
}

/// Why [`Listener::bind`](super::Listener::bind) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The address is already in use (for a Unix path: the file exists).
    #[error("address {0} is already in use")]
    AddressInUse(String),
    /// Any other failure of the operating system.
    #[error("cannot listen on {address}: {source}")]
    Io {
        /// The address asked for.
        address: String,
        /// What the operating system said.
        source: io::Error,
    },
}

/// Why [`Listener::accept`](super::Listener::accept) failed. The listener keeps working.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The peer failed the authkey handshake (and was disconnected).
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// `accept` itself failed.
    #[error("accept failed: {0}")]
    Io(#[source] io::Error),
}

/// Why [`Client::connect`](super::Client::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The listener failed our authkey handshake, or we failed its.
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// Connecting failed (nobody listening, unreachable, …).
    #[error("cannot connect to {address}: {source}")]
    Io {
        /// The address asked for.
        address: String,
        /// What the operating system said.
        source: io::Error,
    },
}

/// Whether an I/O error means the peer is gone.
pub(crate) fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

impl From<io::Error> for SendError {
    fn from(e: io::Error) -> Self {
        if is_disconnect(&e) {
            SendError::Disconnected
        } else {
            SendError::Io(e)
        }
    }
}
