//! The frame format of Python's `multiprocessing.connection`.
//!
//! A frame is a 4-byte big-endian signed length and the payload. Payloads longer than
//! `0x7FFF_FFFF` bytes use the long form: `FF FF FF FF` then an 8-byte big-endian length. A
//! zero-length frame is legal. Any other negative length desynchronises Python's reader and is
//! rejected here. End of stream before a header is a clean close; end of stream inside a frame is
//! an error.
//!
//! On Unix sockets, descriptors travel as `SCM_RIGHTS` on the first byte of the header.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::sys::socket;

/// Largest payload that fits the short header.
pub(crate) const SHORT_MAX: usize = 0x7FFF_FFFF;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The peer closed the stream between frames.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer closed the stream inside a frame.
    #[error("the connection closed inside a frame ({got} of {expected} bytes)")]
    Truncated { got: u64, expected: u64 },
    /// The header announces more than the receiver accepts.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: u64, max: u64 },
    /// A negative length other than the long-form marker.
    #[error("invalid frame length {0}")]
    BadLength(i32),
    /// The peer sent nothing for too long (only where a deadline applies: the handshake).
    #[error("timed out waiting for the peer")]
    TimedOut,
    /// Descriptors sent with a frame could not be received (the kernel truncated them, most
    /// often because this process has too many open files). The bytes that carried them are
    /// consumed, so the stream has lost its framing; the descriptors that did arrive are
    /// closed.
    #[error("descriptors sent with a message were lost: {0}")]
    DescriptorsLost(#[source] io::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes the header for a payload of `len` bytes into `out`, returning the used prefix.
pub(crate) fn header(len: usize, out: &mut [u8; 12]) -> &[u8] {
    if len > SHORT_MAX {
        out[..4].copy_from_slice(&(-1i32).to_be_bytes());
        out[4..].copy_from_slice(&(len as u64).to_be_bytes());
        &out[..12]
    } else {
        out[..4].copy_from_slice(&(len as i32).to_be_bytes());
        &out[..4]
    }
}

/// Sends one frame on a socket, with `fds` attached.
pub(crate) fn write_frame(
    sock: BorrowedFd<'_>,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut h = [0u8; 12];
    let h = header(payload.len(), &mut h);
    socket::send_all_with_fds(sock, &[h, payload], fds)
}

/// Sends several frames on a socket in one go, with `fds` attached to the first.
pub(crate) fn write_frames(
    sock: BorrowedFd<'_>,
    payloads: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut headers = vec![[0u8; 12]; payloads.len()];
    let mut bufs: Vec<&[u8]> = Vec::with_capacity(payloads.len() * 2);
    for (h, p) in headers.iter_mut().zip(payloads) {
        let len = header(p.len(), h).len();
        bufs.push(&h[..len]);
        bufs.push(p);
    }
    socket::send_all_with_fds(sock, &bufs, fds)
}

/// Reads one frame from a socket into `buf` (replacing its contents), collecting descriptors
/// into `fds`. Frames longer than `max` are refused before any of the payload is read.
///
/// Reads exactly one frame and nothing after it (no buffering), for one-off messages.
pub(crate) fn read_frame(
    sock: BorrowedFd<'_>,
    max: u64,
    buf: &mut Vec<u8>,
    fds: &mut Vec<OwnedFd>,
) -> Result<(), FrameError> {
    let len = read_header(max, |b| socket::recv_with_fds(sock, b, fds))?;
    read_payload(len, buf, |b| socket::read_full(sock, b))
}

/// Reads a frame header through `fill` (which fills the slice it is given unless the stream
/// ends, and returns how many bytes arrived): the payload length, at most `max`.
pub(crate) fn read_header(
    max: u64,
    mut fill: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> Result<u64, FrameError> {
    let mut h = [0u8; 12];
    match fill(&mut h[..4])? {
        0 => return Err(FrameError::Closed),
        4 => {}
        n => {
            return Err(FrameError::Truncated {
                got: n as u64,
                expected: 4,
            });
        }
    }
    let len = match parse_header(&h[..4])? {
        Some((_, len)) => len,
        None => {
            let n = fill(&mut h[4..])?;
            if n < 8 {
                return Err(FrameError::Truncated {
                    got: 4 + n as u64,
                    expected: 12,
                });
            }
            parse_header(&h)?.map_or(0, |(_, len)| len)
        }
    };
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Reads a payload of `len` bytes into `buf` (replacing its contents) through `fill`.
pub(crate) fn read_payload(
    len: u64,
    buf: &mut Vec<u8>,
    fill: impl FnOnce(&mut [u8]) -> io::Result<usize>,
) -> Result<(), FrameError> {
    let len_usize = usize::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: usize::MAX as u64,
    })?;
    buf.clear();
    buf.try_reserve_exact(len_usize)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate frame buffer"))?;
    buf.resize(len_usize, 0);
    let got = fill(buf)?;
    if got < len_usize {
        return Err(FrameError::Truncated {
            got: got as u64,
            expected: len,
        });
    }
    Ok(())
}

/// How bytes move on a connection's descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A Unix stream socket: descriptors travel as `SCM_RIGHTS`.
    Unix,
    /// A TCP socket: no descriptors.
    Tcp,
    /// One end of a `pipe(2)`: no descriptors.
    Pipe,
}

impl Transport {
    /// Whether descriptors can travel on this transport.
    pub(crate) fn carries_fds(self) -> bool {
        self == Transport::Unix
    }
}

/// Parses a frame header at the start of `b`: `(header length, payload length)`, or `None`
/// when `b` holds only part of it.
pub(crate) fn parse_header(b: &[u8]) -> Result<Option<(usize, u64)>, FrameError> {
    let Some(short) = b.get(..4) else {
        return Ok(None);
    };
    match i32::from_be_bytes([short[0], short[1], short[2], short[3]]) {
        -1 => Ok(b.get(4..12).map(|l| {
            let mut a = [0u8; 8];
            a.copy_from_slice(l);
            (12, u64::from_be_bytes(a))
        })),
        n if n < 0 => Err(FrameError::BadLength(n)),
        n => Ok(Some((4, n as u64))),
    }
}

/// Payloads up to this size are copied behind their header and written with one plain
/// `send`/`write`, which costs the kernel less than a gathering `sendmsg`.
pub(crate) const COALESCE: usize = 16 * 1024;

/// Writes one frame of `payload`, using `scratch` to put small payloads behind their header.
pub(crate) fn write_frame_with(
    fd: BorrowedFd<'_>,
    t: Transport,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    let mut h = [0u8; 12];
    let h = header(payload.len(), &mut h);
    if payload.len() <= COALESCE {
        scratch.clear();
        scratch.extend_from_slice(h);
        scratch.extend_from_slice(payload);
        write_all(fd, t, &[scratch], &[])
    } else {
        write_all(fd, t, &[h, payload], &[])
    }
}

/// Writes every byte of `bufs`, with `fds` attached to the first.
pub(crate) fn write_all(
    fd: BorrowedFd<'_>,
    t: Transport,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if !fds.is_empty() {
        if !t.carries_fds() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "descriptors can only travel on Unix-socket connections",
            ));
        }
        return socket::send_all_with_fds(fd, bufs, fds);
    }
    let mut iov_store: [std::io::IoSlice<'_>; 4] = [std::io::IoSlice::new(&[]); 4];
    let mut iov_vec;
    let mut iov: &mut [std::io::IoSlice<'_>] = if bufs.len() <= 4 {
        for (s, b) in iov_store.iter_mut().zip(bufs) {
            *s = std::io::IoSlice::new(b);
        }
        &mut iov_store[..bufs.len()]
    } else {
        iov_vec = bufs
            .iter()
            .map(|b| std::io::IoSlice::new(b))
            .collect::<Vec<_>>();
        &mut iov_vec
    };
    if let [one] = bufs {
        let mut rest: &[u8] = one;
        while !rest.is_empty() {
            let n = match t {
                Transport::Pipe => crate::sys::net::write_one(fd, rest)?,
                Transport::Unix | Transport::Tcp => crate::sys::net::send_one(fd, rest)?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
        }
        return Ok(());
    }
    while !iov.is_empty() {
        let n = match t {
            Transport::Pipe => crate::sys::net::write_some(fd, iov)?,
            Transport::Unix | Transport::Tcp => crate::sys::net::send_some(fd, iov)?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut iov, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn headers_match_python() {
        let mut h = [0u8; 12];
        assert_eq!(header(0, &mut h), &[0, 0, 0, 0]);
        assert_eq!(header(258, &mut h), &[0, 0, 1, 2]);
        assert_eq!(header(SHORT_MAX, &mut h), &[0x7F, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            header(SHORT_MAX + 1, &mut h),
            &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
        assert_eq!(
            header(3 << 30, &mut h),
            &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0xC0, 0, 0, 0]
        );
    }

    #[test]
    fn frames_round_trip_and_close_cleanly() {
        let (a, b) = socket::socketpair().unwrap();
        write_frame(a.as_fd(), b"hello", &[]).unwrap();
        write_frame(a.as_fd(), b"", &[]).unwrap();
        drop(a);
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        read_frame(b.as_fd(), 100, &mut buf, &mut fds).unwrap();
        assert_eq!(buf, b"hello");
        read_frame(b.as_fd(), 100, &mut buf, &mut fds).unwrap();
        assert!(buf.is_empty());
        assert!(matches!(
            read_frame(b.as_fd(), 100, &mut buf, &mut fds),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn bad_frames_are_refused() {
        let (a, b) = socket::socketpair().unwrap();
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        socket::send_all_with_fds(a.as_fd(), &[&(-2i32).to_be_bytes()], &[]).unwrap();
        assert!(matches!(
            read_frame(b.as_fd(), 100, &mut buf, &mut fds),
            Err(FrameError::BadLength(-2))
        ));
        write_frame(a.as_fd(), &[0; 101], &[]).unwrap();
        assert!(matches!(
            read_frame(b.as_fd(), 100, &mut buf, &mut fds),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        ));
        let (a, b) = socket::socketpair().unwrap();
        socket::send_all_with_fds(a.as_fd(), &[&10i32.to_be_bytes(), b"abc"], &[]).unwrap();
        drop(a);
        assert!(matches!(
            read_frame(b.as_fd(), 100, &mut buf, &mut fds),
            Err(FrameError::Truncated {
                got: 3,
                expected: 10
            })
        ));
    }

    #[test]
    fn descriptors_ride_on_the_header() {
        let (a, b) = socket::socketpair().unwrap();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        write_frame(a.as_fd(), b"x", &[f.as_fd(), f.as_fd()]).unwrap();
        write_frame(a.as_fd(), b"y", &[]).unwrap();
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        read_frame(b.as_fd(), 100, &mut buf, &mut fds).unwrap();
        assert_eq!((buf.as_slice(), fds.len()), (&b"x"[..], 2));
        read_frame(b.as_fd(), 100, &mut buf, &mut fds).unwrap();
        assert_eq!((buf.as_slice(), fds.len()), (&b"y"[..], 2));
    }
}
