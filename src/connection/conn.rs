//! [`Connection`]: one end of a framed, message-oriented stream.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{RecvError, SendError, is_disconnect};
use super::frame::{self, FrameError, Transport};
use super::reader::Reader;
use crate::codec;

/// The maximum frame size a new connection accepts: 1 GiB.
///
/// Python has no limit. Memory for a frame is reserved in steps as its bytes arrive, so a peer
/// that announces a large frame and sends nothing costs little; the limit bounds what a peer
/// that does send can make the receiver hold. Change it per connection with
/// [`Connection::set_max_frame`], or on [`Listener`](super::Listener) and
/// [`Client`](super::Client).
pub const DEFAULT_MAX_FRAME: u64 = 1 << 30;

/// How [`Connection::send`] and [`Connection::recv`] encode values.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "python")] {
/// use multiproc::connection::Codec;
/// let (mut a, mut b) = multiproc::pipe(true)?;
/// b.set_codec(Codec::Pickle);
/// // What Python's `Connection.send((1, "two"))` puts on the wire:
/// a.send_bytes(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00K\x01\x8c\x03two\x94\x86\x94.")?;
/// assert_eq!(b.recv::<(i32, String)>()?, (1, "two".to_owned()));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// postcard: compact and fast, with descriptor-carrying objects on Unix sockets. For Rust
    /// peers. The default.
    #[default]
    Postcard,
    /// Python's pickle (protocol 4) for plain data, as Python's `Connection.send` and `recv`
    /// use: see [`codec::pickle`](crate::codec::pickle). Needs the `python` feature.
    #[cfg(feature = "python")]
    Pickle,
}

/// How long a receive on a Unix-socket connection tries again before it sleeps, unless
/// changed with [`Connection::set_spin`]: 50 µs. TCP connections and pipes sleep at once.
///
/// Measured on a 2-CPU virtual machine (`benches/connection.rs`): a round trip between
/// processes on two CPUs drops from ~73 µs to ~27 µs under load, and stays as fast on one
/// CPU, where yielding lets the peer run.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Buffers for outgoing messages are kept between sends up to this size.
const KEEP_WBUF: usize = 1 << 20;

/// One end of a connection: messages in both directions (or one, for a one-way
/// [`pipe`](super::pipe)), each a frame of Python's `multiprocessing.connection`.
///
/// Made by [`pipe`](super::pipe), [`Listener::accept`](super::Listener::accept) and
/// [`Client::connect`](super::Client::connect). Typed messages ([`send`](Self::send),
/// [`recv`](Self::recv)) are encoded with postcard, which carries no type information: both
/// ends agree on the type of each message (see [`recv`](Self::recv)). Raw ones
/// ([`send_bytes`](Self::send_bytes), [`recv_bytes`](Self::recv_bytes)) are the bytes
/// themselves, and match Python's `Connection.send_bytes`/`recv_bytes` exactly.
///
/// A peer that closes its end makes receives fail with [`RecvError::Disconnected`] and sends
/// with [`SendError::Disconnected`]; neither hangs nor panics.
///
/// # Threads
///
/// A `Connection` is `Send` and `Sync`. Sending and receiving take `&mut self`, so one end is
/// used by one thread at a time, as the borrow checker enforces; [`poll`](Self::poll) takes
/// `&self`.
///
/// # Sending a connection
///
/// A `Connection` is itself serializable through the crate's codec: it can be a
/// [`Process`](crate::Process) argument or part of a message on a Unix-socket connection, and arrives
/// usable (as a duplicate of the same socket or pipe). Through `serde` anywhere else, or on a
/// connection that cannot carry descriptors (TCP, pipes), it refuses with an error. A
/// connection holding received but unread data refuses too: that data would be lost.
///
/// # Examples
///
/// ```
/// let (mut a, mut b) = multiproc::pipe(true)?;
/// a.send(&(1, "two", vec![3.0]))?;
/// let (x, y, z): (i32, String, Vec<f64>) = b.recv()?;
/// assert_eq!((x, y.as_str(), z), (1, "two", vec![3.0]));
///
/// b.send_bytes(b"raw bytes")?;
/// assert_eq!(a.recv_bytes()?, b"raw bytes");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Connection {
    fd: OwnedFd,
    transport: Transport,
    readable: bool,
    writable: bool,
    max_frame: u64,
    codec: Codec,
    broken: bool,
    reader: Reader,
    wbuf: Vec<u8>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("transport", &self.transport)
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .field("max_frame", &self.max_frame)
            .field("codec", &self.codec)
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(fd: OwnedFd, transport: Transport, readable: bool, writable: bool) -> Self {
        let mut reader = Reader::default();
        if transport == Transport::Unix {
            reader.spin = DEFAULT_SPIN;
        }
        Connection {
            fd,
            transport,
            readable,
            writable,
            max_frame: DEFAULT_MAX_FRAME,
            codec: Codec::Postcard,
            broken: false,
            reader,
            wbuf: Vec::new(),
        }
    }

    /// Sends `value`, encoded with the connection's [`Codec`] (postcard unless set).
    ///
    /// Descriptor-carrying objects of this crate (a [`Connection`],
    /// [`Descriptor`](crate::Descriptor), …) travel with it on Unix-socket connections, with
    /// postcard.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when the peer closed its end; [`SendError::Encode`] when
    /// the value cannot be encoded, or holds descriptors and this connection cannot carry
    /// them (TCP, pipes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// a.send(&vec![Some(1u8), None])?;
    /// assert_eq!(b.recv::<Vec<Option<u8>>>()?, [Some(1), None]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        #[cfg(feature = "python")]
        if self.codec == Codec::Pickle {
            let bytes = codec::pickle::to_vec(value)
                .map_err(|e| SendError::Encode(codec::CodecError::Encode(e.to_string())))?;
            return self.send_bytes(&bytes);
        }
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        buf.resize(12, 0);
        let fds = if self.transport.carries_fds() {
            codec::encode_into(value, &mut buf)
        } else {
            codec::encode_plain_into(value, &mut buf).map(|()| Vec::new())
        };
        let fds = match fds {
            Ok(f) => f,
            Err(e) => {
                self.wbuf = buf;
                return Err(SendError::Encode(e));
            }
        };
        let mut h = [0u8; 12];
        let h = frame::header(buf.len() - 12, &mut h);
        let off = 12 - h.len();
        buf[off..12].copy_from_slice(h);
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let r = frame::write_all(self.fd.as_fd(), self.transport, &[&buf[off..]], &borrowed);
        if buf.capacity() <= KEEP_WBUF {
            self.wbuf = buf;
        }
        r.map_err(SendError::from)
    }

    /// Receives a value sent by [`send`](Self::send), read as a `T`.
    ///
    /// Blocks until a whole message has arrived.
    ///
    /// # Both ends agree on the type
    ///
    /// postcard, the default [`Codec`], carries no type information (nor do bincode or
    /// ipc-channel's channels): as with any serde format, the message's type is a contract
    /// between the two ends. `recv` checks that the bytes make exactly one `T` (every byte
    /// used, strings valid UTF-8, `bool`s, `char`s, `Option`s and enum variants in range) and
    /// fails with [`RecvError::Decode`] otherwise; a message of another type whose bytes also
    /// read as a `T` is not detected, and gives a wrong value. To send several kinds of
    /// message on one connection, make them the variants of one enum, so that each message
    /// names its kind. `Codec::Pickle` (feature `python`) is self-describing: a value of another kind is an
    /// error there.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] when the peer closed its end; [`RecvError::Decode`] when
    /// the bytes do not make a `T` (the connection stays usable); [`RecvError::TooLarge`] for
    /// a message over the maximum frame size; see [`RecvError`] for the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// a.send("hello")?;
    /// let s: String = b.recv()?;
    /// assert_eq!(s, "hello");
    ///
    /// // Bytes that cannot be a `String` are an error...
    /// a.send(&[0xffu8])?;
    /// assert!(matches!(b.recv::<String>(), Err(multiproc::RecvError::Decode(_))));
    /// // ...but a `u32` whose bytes also read as an `i64` is not: the type is the contract.
    /// a.send(&5u32)?;
    /// assert_eq!(b.recv::<i64>()?, -3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        self.check_readable()?;
        let decode: fn(&[u8], Vec<OwnedFd>) -> Result<T, codec::CodecError> = match self.codec {
            Codec::Postcard => codec::decode::<T>,
            #[cfg(feature = "python")]
            Codec::Pickle => |bytes, _fds| {
                codec::pickle::from_slice::<T>(bytes)
                    .map_err(|e| codec::CodecError::Decode(e.to_string()))
            },
        };
        let r = self.reader.read_with(
            self.fd.as_fd(),
            self.transport,
            self.max_frame,
            None,
            decode,
        );
        match r {
            Ok(v) => v.map_err(RecvError::Decode),
            Err(e) => Err(self.frame_error(e)),
        }
    }

    /// Sends `buf` as one message: the bytes themselves, as Python's
    /// `Connection.send_bytes`.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when the peer closed its end.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(false)?; // b sends, a receives
    /// b.send_bytes(b"hello")?;
    /// assert_eq!(a.recv_bytes()?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes(&mut self, buf: &[u8]) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        frame::write_frame_with(self.fd.as_fd(), self.transport, buf, &mut self.wbuf)
            .map_err(SendError::from)
    }

    /// Sends several messages in one system call where the transport allows (a socket), for
    /// pipelined requests.
    pub(crate) fn send_many_bytes(&mut self, bufs: &[&[u8]]) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        match self.transport {
            Transport::Pipe => {
                for b in bufs {
                    self.send_bytes(b)?;
                }
                Ok(())
            }
            _ => frame::write_frames(self.fd.as_fd(), bufs, &[]).map_err(SendError::from),
        }
    }

    /// Sends the part `range` of `buf` as one message, as Python's
    /// `send_bytes(buf, offset, size)`.
    ///
    /// # Errors
    ///
    /// [`SendError::OutOfBounds`] when `range` is not within `buf`; otherwise as
    /// [`send_bytes`](Self::send_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// a.send_bytes_range(b"0123456789", 2..5)?;
    /// assert_eq!(b.recv_bytes()?, b"234");
    /// assert!(a.send_bytes_range(b"0123", 2..9).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes_range(
        &mut self,
        buf: &[u8],
        range: impl RangeBounds<usize>,
    ) -> Result<(), SendError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => Some(buf.len()),
        };
        match (start, end) {
            (Some(s), Some(e)) if s <= e && e <= buf.len() => self.send_bytes(&buf[s..e]),
            (s, e) => Err(SendError::OutOfBounds {
                start: s.unwrap_or(usize::MAX),
                end: e.unwrap_or(usize::MAX),
                len: buf.len(),
            }),
        }
    }

    /// Receives one message as bytes, as Python's `Connection.recv_bytes`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), without [`RecvError::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// a.send_bytes(b"")?;
    /// assert_eq!(b.recv_bytes()?, b"");
    /// drop(a);
    /// assert!(matches!(b.recv_bytes(), Err(multiproc::RecvError::Disconnected)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv_bytes_max(usize::MAX)
    }

    /// Receives one message of at most `maxlength` bytes, as Python's
    /// `recv_bytes(maxlength)`.
    ///
    /// # Errors
    ///
    /// [`RecvError::TooLarge`] for a longer message: like Python, which closes the connection
    /// then, the message is not read and later receives fail with [`RecvError::Broken`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// a.send_bytes(b"0123456789")?;
    /// assert!(matches!(b.recv_bytes_max(4), Err(multiproc::RecvError::TooLarge { len: 10, max: 4 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_max(&mut self, maxlength: usize) -> Result<Vec<u8>, RecvError> {
        let mut v = Vec::new();
        self.recv_bytes_to_vec_max(&mut v, maxlength)?;
        Ok(v)
    }

    /// Receives one message into `buf` (replacing its contents), reusing its memory.
    ///
    /// # Errors
    ///
    /// As [`recv_bytes`](Self::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// let mut buf = Vec::with_capacity(1024);
    /// for word in ["one", "two"] {
    ///     a.send_bytes(word.as_bytes())?;
    ///     b.recv_bytes_to_vec(&mut buf)?;
    ///     assert_eq!(buf, word.as_bytes());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_to_vec(&mut self, buf: &mut Vec<u8>) -> Result<(), RecvError> {
        self.recv_bytes_to_vec_max(buf, usize::MAX)
    }

    fn recv_bytes_to_vec_max(
        &mut self,
        buf: &mut Vec<u8>,
        maxlength: usize,
    ) -> Result<(), RecvError> {
        self.check_readable()?;
        let max = self.max_frame.min(maxlength as u64);
        match self
            .reader
            .read_into(self.fd.as_fd(), self.transport, max, None, buf)
        {
            // Descriptors sent with a message read as bytes are closed.
            Ok(_fds) => Ok(()),
            Err(e) => Err(self.frame_error(e)),
        }
    }

    /// Receives one message into `buf`, returning its length, as Python's
    /// `recv_bytes_into`.
    ///
    /// # Errors
    ///
    /// [`RecvError::BufferTooShort`] (holding the whole message) when `buf` is too short; the
    /// connection stays usable. Otherwise as [`recv_bytes`](Self::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// let mut buf = [0u8; 8];
    /// a.send_bytes(b"abc")?;
    /// let n = b.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"abc");
    /// a.send_bytes(b"0123456789")?;
    /// match b.recv_bytes_into(&mut buf) {
    ///     Err(multiproc::RecvError::BufferTooShort(msg)) => assert_eq!(msg, b"0123456789"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.check_readable()?;
        match self
            .reader
            .read_into_slice(self.fd.as_fd(), self.transport, self.max_frame, buf)
        {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(message)) => Err(RecvError::BufferTooShort(message)),
            Err(e) => Err(self.frame_error(e)),
        }
    }

    /// Whether a message (or the end of the stream) is ready to be received, waiting at most
    /// `timeout` (`None`: until one is), as Python's `poll`.
    ///
    /// `Some(Duration::ZERO)` checks without waiting.
    ///
    /// # Errors
    ///
    /// When this end only sends, or the system call fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut a, b) = multiproc::pipe(true)?;
    /// assert!(!b.poll(Some(Duration::from_millis(10)))?);
    /// a.send_bytes(b"x")?;
    /// assert!(b.poll(Some(Duration::ZERO))?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&self, timeout: Option<Duration>) -> std::io::Result<bool> {
        if !self.readable {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "polling a send-only connection",
            ));
        }
        if self.reader.has_buffered() {
            return Ok(true);
        }
        Ok(!crate::sys::net::poll_readable(&[self.fd.as_fd()], timeout)?.is_empty())
    }

    /// Closes this end, reporting errors that dropping it would hide. Dropping a
    /// `Connection` closes it too.
    ///
    /// # Errors
    ///
    /// When `close(2)` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, mut b) = multiproc::pipe(true)?;
    /// a.close()?;
    /// assert!(matches!(b.recv_bytes(), Err(multiproc::RecvError::Disconnected)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(self) -> std::io::Result<()> {
        crate::sys::net::close(self.fd)
    }

    /// The largest message this end accepts, in bytes ([`DEFAULT_MAX_FRAME`] unless set).
    pub fn max_frame(&self) -> u64 {
        self.max_frame
    }

    /// Sets the largest message this end accepts. Longer messages fail with
    /// [`RecvError::TooLarge`] before any of their bytes is read.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// b.set_max_frame(4);
    /// a.send_bytes(b"12345")?;
    /// assert!(matches!(b.recv_bytes(), Err(multiproc::RecvError::TooLarge { len: 5, max: 4 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_frame(&mut self, max: u64) {
        self.max_frame = max;
    }

    /// How [`send`](Self::send) and [`recv`](Self::recv) encode values.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Sets how [`send`](Self::send) and [`recv`](Self::recv) encode values: `Codec::Pickle`
    /// talks with Python's `Connection.send`/`recv`.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    /// How long a receive keeps trying before it sleeps ([`DEFAULT_SPIN`] on Unix sockets,
    /// zero elsewhere).
    pub fn spin(&self) -> Duration {
        self.reader.spin
    }

    /// Lets receives on a socket connection try again for up to `spin`, yielding the CPU
    /// between tries, before they sleep in the kernel. When the peer runs on another CPU and
    /// answers within that time, a round trip avoids two cross-CPU wake-ups (tens of
    /// microseconds on virtual machines); when it runs on the same CPU, yielding lets it run.
    /// The cost is CPU time spent trying while the peer is slow. No effect on pipes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut a, mut b) = multiproc::pipe(true)?;
    /// b.set_spin(Duration::from_micros(50));
    /// a.send_bytes(b"x")?;
    /// assert_eq!(b.recv_bytes()?, b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_spin(&mut self, spin: Duration) {
        self.reader.spin = spin;
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether descriptor-carrying objects can travel on this connection (Unix sockets).
    pub fn carries_descriptors(&self) -> bool {
        self.transport.carries_fds()
    }

    /// Whether received bytes wait in this end's buffer (a message, or part of one).
    pub(crate) fn has_buffered(&self) -> bool {
        self.reader.has_buffered()
    }

    fn check_readable(&self) -> Result<(), RecvError> {
        if !self.readable {
            Err(RecvError::NotReadable)
        } else if self.broken {
            Err(RecvError::Broken)
        } else {
            Ok(())
        }
    }

    fn frame_error(&mut self, e: FrameError) -> RecvError {
        match e {
            FrameError::Closed => RecvError::Disconnected,
            FrameError::Io(e) if is_disconnect(&e) => RecvError::Disconnected,
            FrameError::Io(e) => RecvError::Io(e),
            FrameError::TimedOut => RecvError::Io(std::io::ErrorKind::TimedOut.into()),
            FrameError::TooLarge { len, max } => {
                self.broken = true;
                RecvError::TooLarge { len, max }
            }
            FrameError::Truncated { got, expected } => {
                self.broken = true;
                RecvError::Truncated { got, expected }
            }
            FrameError::BadLength(n) => {
                self.broken = true;
                RecvError::BadLength(n)
            }
            FrameError::DescriptorsLost(why) => {
                self.broken = true;
                RecvError::DescriptorsLost(why)
            }
        }
    }

    /// Sends one message made of `parts`, with `fds` attached, without first copying large
    /// parts into one buffer: for a protocol that lays out its own messages (the pool's).
    pub(crate) fn send_parts(
        &mut self,
        parts: &[&[u8]],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), SendError> {
        if !self.writable {
            return Err(SendError::NotWritable);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut h = [0u8; 12];
        let h = frame::header(len, &mut h);
        if len <= frame::COALESCE {
            let buf = &mut self.wbuf;
            buf.clear();
            buf.extend_from_slice(h);
            for p in parts {
                buf.extend_from_slice(p);
            }
            return frame::write_all(self.fd.as_fd(), self.transport, &[buf], fds)
                .map_err(SendError::from);
        }
        let mut bufs: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        bufs.push(h);
        bufs.extend_from_slice(parts);
        frame::write_all(self.fd.as_fd(), self.transport, &bufs, fds).map_err(SendError::from)
    }

    /// Receives one message into `buf` (replacing its contents, reusing its memory) and returns
    /// the descriptors sent with it: the receiving side of [`send_parts`](Self::send_parts).
    pub(crate) fn recv_parts(&mut self, buf: &mut Vec<u8>) -> Result<Vec<OwnedFd>, RecvError> {
        self.check_readable()?;
        match self
            .reader
            .read_into(self.fd.as_fd(), self.transport, self.max_frame, None, buf)
        {
            Ok(fds) => Ok(fds),
            Err(e) => Err(self.frame_error(e)),
        }
    }

    /// The socket, and the bytes already read from it that no receive has taken: for a server
    /// that frames the stream itself from here on.
    pub(crate) fn into_stream(self) -> (OwnedFd, Vec<u8>) {
        (self.fd, self.reader.into_buffered())
    }

    /// Receives one message of at most `max` bytes by `deadline`; descriptors are closed.
    /// For the handshake.
    pub(crate) fn recv_raw(
        &mut self,
        max: u64,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, FrameError> {
        let mut v = Vec::new();
        let r = self
            .reader
            .read_into(self.fd.as_fd(), self.transport, max, deadline, &mut v);
        if r.is_err() {
            // A handshake that waits for its peer holds what the peer has sent, no more.
            self.reader.shrink();
        }
        r?;
        Ok(v)
    }
}

impl AsFd for Connection {
    /// The socket or pipe. Bytes already read into the connection's buffer are not visible
    /// on it: check [`Connection::poll`] before waiting on the descriptor.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// A descriptor serialized through the codec's out-of-band list.
struct FdOut<'a>(BorrowedFd<'a>);

impl Serialize for FdOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}

struct FdIn(OwnedFd);

impl<'de> Deserialize<'de> for FdIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        codec::deserialize_fd(d).map(FdIn)
    }
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.reader.has_buffered() {
            return Err(S::Error::custom(
                "a connection holding received but unread data cannot be sent",
            ));
        }
        let transport: u8 = match self.transport {
            Transport::Unix => 0,
            Transport::Tcp => 1,
            Transport::Pipe => 2,
        };
        let codec: u8 = match self.codec {
            Codec::Postcard => 0,
            #[cfg(feature = "python")]
            Codec::Pickle => 1,
        };
        let spin_ns = u64::try_from(self.reader.spin.as_nanos()).unwrap_or(u64::MAX);
        let mut t = s.serialize_tuple(7)?;
        t.serialize_element(&FdOut(self.fd.as_fd()))?;
        t.serialize_element(&transport)?;
        t.serialize_element(&self.readable)?;
        t.serialize_element(&self.writable)?;
        t.serialize_element(&self.max_frame)?;
        t.serialize_element(&codec)?;
        t.serialize_element(&spin_ns)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (fd, transport, readable, writable, max_frame, codec, spin_ns) =
            <(FdIn, u8, bool, bool, u64, u8, u64)>::deserialize(d)?;
        let codec = match codec {
            0 => Codec::Postcard,
            #[cfg(feature = "python")]
            1 => Codec::Pickle,
            n => return Err(D::Error::custom(format!("unknown codec {n}"))),
        };
        let transport = match transport {
            0 => Transport::Unix,
            1 => Transport::Tcp,
            2 => Transport::Pipe,
            n => return Err(D::Error::custom(format!("unknown connection kind {n}"))),
        };
        let mut c = Connection::new(fd.0, transport, readable, writable);
        c.max_frame = max_frame;
        c.codec = codec;
        c.reader.spin = Duration::from_nanos(spin_ns);
        Ok(c)
    }
}

/// Two connected [`Connection`]s, as Python's `multiprocessing.Pipe(duplex)`.
///
/// With `duplex` both ends send and receive (a Unix `socketpair`, which also carries
/// descriptor-carrying objects). Without it, the first end only receives and the second only
/// sends (a `pipe(2)`, which carries plain data only). Writing to a one-way pipe whose
/// reader is gone raises `SIGPIPE`, which Rust programs ignore by default (the send then fails
/// with [`SendError::Disconnected`]); a program that restores the default action is killed
/// instead, as with any pipe.
///
/// # Errors
///
/// When the process is out of descriptors.
///
/// # Examples
///
/// ```
/// let (mut rx, mut tx) = multiproc::pipe(false)?;
/// tx.send(&42u64)?;
/// assert_eq!(rx.recv::<u64>()?, 42);
/// assert!(!rx.writable() && !tx.readable());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "Pipe")]
pub fn pipe(duplex: bool) -> std::io::Result<(Connection, Connection)> {
    if duplex {
        let (a, b) = crate::sys::socket::socketpair()?;
        Ok((
            Connection::new(a, Transport::Unix, true, true),
            Connection::new(b, Transport::Unix, true, true),
        ))
    } else {
        let (r, w) = crate::sys::net::pipe()?;
        Ok((
            Connection::new(r, Transport::Pipe, true, false),
            Connection::new(w, Transport::Pipe, false, true),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_convert_into_the_umbrella_error() {
        fn run() -> Result<u8, crate::Error> {
            let (mut a, mut b) = pipe(true)?;
            a.send(&1u8)?;
            drop(a);
            let one: u8 = b.recv()?;
            let _: u8 = b.recv()?;
            Ok(one)
        }
        assert!(matches!(
            run(),
            Err(crate::Error::Recv(RecvError::Disconnected))
        ));
    }

    #[cfg(feature = "python")]
    #[test]
    fn pickle_refuses_descriptors_and_keeps_the_connection() {
        let (mut a, mut b) = pipe(true).unwrap();
        a.set_codec(Codec::Pickle);
        b.set_codec(Codec::Pickle);
        let (c, _d) = pipe(true).unwrap();
        let err = a.send(&c).unwrap_err();
        assert!(matches!(err, SendError::Encode(_)), "{err}");
        a.send(&vec![(1, "x")]).unwrap();
        assert_eq!(
            b.recv::<Vec<(i32, String)>>().unwrap(),
            [(1, "x".to_owned())]
        );
        a.send_bytes(b"not a pickle").unwrap();
        assert!(matches!(b.recv::<u8>(), Err(RecvError::Decode(_))));
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Connection>();
        check::<super::super::Listener>();
        check::<super::super::Client>();
    }

    #[test]
    fn recv_bytes_into_reads_large_messages_in_place() {
        let (mut a, mut b) = pipe(true).unwrap();
        let msg: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let t = std::thread::spawn(move || {
            a.send_bytes(&msg).unwrap();
            a.send_bytes(&msg).unwrap();
            a.send_bytes(b"after").unwrap();
            msg
        });
        let mut buf = vec![0u8; 400_000];
        let n = b.recv_bytes_into(&mut buf).unwrap();
        let second = b.recv_bytes_into(&mut buf[n..n + 1000]);
        assert_eq!(b.recv_bytes().unwrap(), b"after");
        let msg = t.join().unwrap();
        assert_eq!(&buf[..n], &msg[..]);
        match second {
            Err(RecvError::BufferTooShort(m)) => assert_eq!(m, msg),
            other => panic!("{other:?}"),
        }
    }
}
