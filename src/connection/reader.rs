//! [`Reader`]: the buffered receiving half of a connection.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use super::frame::{FrameError, Transport, parse_header};
use crate::sys::socket;

/// Size of a [`Reader`]'s buffer: frames up to this size (header included) are read through
/// it, often several per system call; larger payloads go straight into their destination.
pub(crate) const READ_BUF: usize = 32 * 1024;

/// How much memory a large frame gets before its bytes arrive; more is added as they do, so a
/// peer that announces a huge frame and sends nothing costs little.
const FIRST_ALLOC: usize = 64 * 1024 * 1024;

/// The receiving half of a connection: a buffer in front of the descriptor that cuts the
/// stream into frames and keeps each frame's descriptors with it.
///
/// Descriptors arrive attached to the first byte of their frame's header, and the kernel ends a
/// `recvmsg` right after the part of the stream that carried them. So the descriptors of one
/// read belong to the last frame that starts within the bytes of that read; they are kept,
/// keyed by that frame's stream offset, until the frame is taken. Descriptors anywhere else
/// (which no well-behaved peer sends) are closed.
#[derive(Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`, always the first byte of a frame.
    offset: u64,
    /// Received descriptors, by the stream offset of the frame they belong to.
    fds: std::collections::VecDeque<(u64, Vec<OwnedFd>)>,
    /// How long a receive on a socket polls (yielding the CPU between tries) before it sleeps.
    pub(crate) spin: std::time::Duration,
}

/// The next frame, as [`Reader::next_frame`] found it.
enum Next {
    /// Whole in the buffer: `h` header bytes, `total` bytes with the header.
    Buffered { h: usize, total: usize },
    /// Larger than the buffer: `h` header bytes (buffered), `len` payload bytes.
    Large { h: usize, len: u64 },
}

impl Reader {
    /// Whether a byte of the next frame is already buffered.
    pub(crate) fn has_buffered(&self) -> bool {
        self.end > self.start
    }

    /// The bytes read from the stream and not yet taken as frames (descriptors that came with
    /// them are closed).
    pub(crate) fn into_buffered(self) -> Vec<u8> {
        // A copy of what is there, not the whole read buffer: a server holding many idle
        // clients keeps a few bytes each, not 32 KiB.
        self.buf[self.start..self.end].to_vec()
    }

    /// Reads once more from `fd` into the buffer, making room for `want` bytes from `start`.
    /// Returns the number of bytes read: 0 at end of stream.
    fn fill(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        want: usize,
        deadline: Option<std::time::Instant>,
    ) -> Result<usize, FrameError> {
        if self.buf.len() < READ_BUF {
            // Empty, or shrunk to what it held (see `shrink`).
            self.buf.resize(READ_BUF, 0);
        }
        if self.start > 0 && (self.end == self.buf.len() || self.buf.len() - self.start < want) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if !socket::wait_readable(fd, Some(left))? {
                return Err(FrameError::TimedOut);
            }
        }
        let begin = self.end;
        let mut fds = Vec::new();
        let spin = if deadline.is_none() && t != Transport::Pipe {
            self.spin
        } else {
            std::time::Duration::ZERO
        };
        let (n, lost) = read_once(fd, t, &mut self.buf[begin..], &mut fds, spin)?;
        if let Some(why) = lost {
            // The frame the descriptors belong to cannot be delivered whole, and its bytes are
            // gone from the socket: close what arrived and give up on the stream.
            drop(fds);
            self.start = 0;
            self.end = 0;
            self.fds.clear();
            return Err(FrameError::DescriptorsLost(why));
        }
        if !fds.is_empty() {
            self.attach(begin, begin + n, fds);
        }
        self.end += n;
        Ok(n)
    }

    /// Files descriptors that came with `buf[begin..end]` under the last frame starting there.
    fn attach(&mut self, begin: usize, end: usize, fds: Vec<OwnedFd>) {
        let mut pos = self.start;
        let mut last = None;
        while pos < end {
            if pos >= begin {
                last = Some(pos);
            }
            match parse_header(&self.buf[pos..end]) {
                Ok(Some((h, len))) => {
                    match usize::try_from(len)
                        .ok()
                        .and_then(|l| pos.checked_add(h)?.checked_add(l))
                    {
                        Some(next) => pos = next,
                        None => break,
                    }
                }
                _ => break,
            }
        }
        if let Some(at) = last {
            self.fds
                .push_back((self.offset + (at - self.start) as u64, fds));
        }
    }

    /// Takes the descriptors of the frame at stream offset `at`, closing strays before it.
    fn take_fds(&mut self, at: u64) -> Vec<OwnedFd> {
        while let Some((off, _)) = self.fds.front() {
            if *off < at {
                self.fds.pop_front();
            } else if *off == at {
                return self.fds.pop_front().map(|(_, f)| f).unwrap_or_default();
            } else {
                break;
            }
        }
        Vec::new()
    }

    /// Makes sure the next frame's header is buffered; returns `(header length, payload
    /// length)`. Refuses payloads over `max` before reading any of them.
    fn header(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        max: u64,
        deadline: Option<std::time::Instant>,
    ) -> Result<(usize, u64), FrameError> {
        loop {
            if let Some((h, len)) = parse_header(&self.buf[self.start..self.end])? {
                if len > max {
                    return Err(FrameError::TooLarge { len, max });
                }
                return Ok((h, len));
            }
            let have = self.end - self.start;
            if self.fill(fd, t, 12, deadline)? == 0 {
                return Err(if have == 0 {
                    FrameError::Closed
                } else {
                    FrameError::Truncated {
                        got: have as u64,
                        expected: if have < 4 { 4 } else { 12 },
                    }
                });
            }
        }
    }

    /// Buffers the whole frame of `total` bytes (header included, at most [`READ_BUF`]).
    fn buffer_frame(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        h: usize,
        total: usize,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), FrameError> {
        while self.end - self.start < total {
            let have = self.end - self.start;
            if self.fill(fd, t, total, deadline)? == 0 {
                return Err(FrameError::Truncated {
                    got: (have - h) as u64,
                    expected: (total - h) as u64,
                });
            }
        }
        Ok(())
    }

    /// Reads the next frame's header and, when the whole frame fits the buffer, the frame.
    fn next_frame(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        max: u64,
        deadline: Option<std::time::Instant>,
    ) -> Result<Next, FrameError> {
        let (h, len) = self.header(fd, t, max, deadline)?;
        match (h as u64)
            .checked_add(len)
            .filter(|&t| t <= READ_BUF as u64)
        {
            Some(total) => {
                let total = total as usize;
                self.buffer_frame(fd, t, h, total, deadline)?;
                Ok(Next::Buffered { h, total })
            }
            None => Ok(Next::Large { h, len }),
        }
    }

    /// Hands the buffered frame of [`Next::Buffered`] and its descriptors to `f`, then drops it
    /// from the buffer.
    fn take_buffered<R>(
        &mut self,
        h: usize,
        total: usize,
        f: impl FnOnce(&[u8], Vec<OwnedFd>) -> R,
    ) -> R {
        let fds = self.take_fds(self.offset);
        let r = f(&self.buf[self.start + h..self.start + total], fds);
        self.consume(total);
        r
    }

    /// Reads the next frame and hands its payload and descriptors to `f`. Small frames are
    /// handed over from the buffer, without a copy.
    pub(crate) fn read_with<R>(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        max: u64,
        deadline: Option<std::time::Instant>,
        f: impl FnOnce(&[u8], Vec<OwnedFd>) -> R,
    ) -> Result<R, FrameError> {
        match self.next_frame(fd, t, max, deadline)? {
            Next::Buffered { h, total } => Ok(self.take_buffered(h, total, f)),
            Next::Large { h, len } => {
                let mut v = Vec::new();
                let fds = self.read_large(fd, h, len, max, deadline, &mut v)?;
                Ok(f(&v, fds))
            }
        }
    }

    /// Reads the next frame's payload into `out` (replacing its contents); returns the frame's
    /// descriptors. Large payloads are read straight into `out`.
    pub(crate) fn read_into(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        max: u64,
        deadline: Option<std::time::Instant>,
        out: &mut Vec<u8>,
    ) -> Result<Vec<OwnedFd>, FrameError> {
        match self.next_frame(fd, t, max, deadline)? {
            Next::Buffered { h, total } => Ok(self.take_buffered(h, total, |bytes, fds| {
                out.clear();
                out.extend_from_slice(bytes);
                fds
            })),
            Next::Large { h, len } => self.read_large(fd, h, len, max, deadline, out),
        }
    }

    /// Reads the next frame's payload into `dst`: `Ok(Ok(len))`, or `Ok(Err(payload))` when
    /// `dst` is too short. Large payloads that fit are read straight into `dst`.
    pub(crate) fn read_into_slice(
        &mut self,
        fd: BorrowedFd<'_>,
        t: Transport,
        max: u64,
        dst: &mut [u8],
    ) -> Result<Result<usize, Vec<u8>>, FrameError> {
        let (h, len) = self.header(fd, t, max, None)?;
        let fits = len <= dst.len() as u64;
        let small = (h as u64)
            .checked_add(len)
            .is_some_and(|total| total <= READ_BUF as u64);
        if small || !fits {
            return self.read_with(fd, t, max, None, |bytes, _fds| {
                match dst.get_mut(..bytes.len()) {
                    Some(d) => {
                        d.copy_from_slice(bytes);
                        Ok(bytes.len())
                    }
                    None => Err(bytes.to_vec()),
                }
            });
        }
        let len = len as usize;
        let at = self.offset;
        drop(self.take_fds(at));
        let have = self.end - self.start - h;
        dst[..have].copy_from_slice(&self.buf[self.start + h..self.end]);
        self.offset += (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        let mut got = have;
        while got < len {
            let n = crate::sys::net::read_some(fd, &mut dst[got..len])?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    got: got as u64,
                    expected: len as u64,
                });
            }
            got += n;
            self.offset += n as u64;
        }
        Ok(Ok(len))
    }

    /// Gives the buffer's memory back but for the bytes it holds: a connection that waits
    /// for its peer (a handshake under way) keeps a few bytes, not [`READ_BUF`]. The next read
    /// makes it whole again.
    pub(crate) fn shrink(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.buf.truncate(self.end);
        self.buf.shrink_to_fit();
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads a frame larger than the buffer: what is buffered, then the rest straight into
    /// `out`, whose memory grows as the bytes arrive.
    #[allow(clippy::too_many_arguments)]
    fn read_large(
        &mut self,
        fd: BorrowedFd<'_>,
        h: usize,
        len: u64,
        max: u64,
        deadline: Option<std::time::Instant>,
        out: &mut Vec<u8>,
    ) -> Result<Vec<OwnedFd>, FrameError> {
        let len_usize = usize::try_from(len).map_err(|_| FrameError::TooLarge { len, max })?;
        let at = self.offset;
        let fds = self.take_fds(at);
        let oom = |_| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate frame buffer");
        out.clear();
        out.try_reserve_exact(len_usize.min(FIRST_ALLOC))
            .map_err(oom)?;
        // Everything buffered belongs to this frame: it is larger than the buffer.
        out.extend_from_slice(&self.buf[self.start + h..self.end]);
        self.offset += (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        while out.len() < len_usize {
            if out.len() == out.capacity() {
                let more = (len_usize - out.len()).min(out.capacity());
                out.try_reserve_exact(more).map_err(oom)?;
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if !socket::wait_readable(fd, Some(left))? {
                    return Err(FrameError::TimedOut);
                }
            }
            // Plain reads are fine on Unix sockets too: no descriptors travel inside a payload.
            let n = crate::sys::net::read_append(fd, out, len_usize - out.len())?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    got: out.len() as u64,
                    expected: len,
                });
            }
            self.offset += n as u64;
        }
        Ok(fds)
    }
}

/// One read from `fd` into `buf`, descriptors into `fds` (Unix sockets): the bytes read, and
/// why descriptors were lost if the kernel truncated them. With a non-zero `spin` (sockets
/// only), tries without waiting, yielding the CPU between tries, for up to `spin` before it
/// waits in the kernel: a peer on another CPU that answers quickly is then seen without the
/// cost of a cross-CPU wake-up, and a peer on the same CPU gets to run.
fn read_once(
    fd: BorrowedFd<'_>,
    t: Transport,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    spin: std::time::Duration,
) -> io::Result<(usize, Option<io::Error>)> {
    use crate::sys::net;
    let plain = |r: io::Result<usize>| r.map(|n| (n, None));
    if !spin.is_zero() {
        let start = std::time::Instant::now();
        loop {
            let r = match t {
                Transport::Unix => socket::recv_some_fds(fd, buf, fds, true),
                Transport::Tcp | Transport::Pipe => plain(net::recv_nowait(fd, buf)),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            if start.elapsed() >= spin {
                break;
            }
            net::yield_cpu();
        }
    }
    match t {
        Transport::Unix => socket::recv_some_fds(fd, buf, fds, false),
        Transport::Tcp | Transport::Pipe => plain(net::read_some(fd, buf)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::frame::{header, write_frame};
    use crate::testing::Rng;
    use std::os::fd::AsFd;

    /// A long-form header, as Python writes for payloads over 2 GiB.
    fn long_header(len: u64) -> Vec<u8> {
        [&[0xFF; 4][..], &len.to_be_bytes()].concat()
    }

    #[test]
    fn long_headers_are_read_for_any_payload_size() {
        // Python accepts the long form for any length, so must we; small and large payloads,
        // then a short-form frame to show the stream stays in step.
        let (a, b, mut r) = reader_pair();
        let big: Vec<u8> = (0..3 * READ_BUF as u32).map(|i| i as u8).collect();
        let writer = std::thread::spawn({
            let big = big.clone();
            move || {
                let small = [long_header(5), b"small".to_vec()].concat();
                let large = [long_header(big.len() as u64), big].concat();
                socket::send_all_with_fds(a.as_fd(), &[&small, &large], &[]).unwrap();
                write_frame(a.as_fd(), b"after", &[]).unwrap();
            }
        });
        let mut out = Vec::new();
        for want in [&b"small"[..], &big, b"after"] {
            r.read_into(b.as_fd(), Transport::Unix, u64::MAX, None, &mut out)
                .unwrap();
            assert!(out == want, "{} bytes instead of {}", out.len(), want.len());
        }
        writer.join().unwrap();
    }

    /// The long header of a 3 GiB frame, without 3 GiB: the stream announces it and ends
    /// after a few MiB.
    #[test]
    fn three_gib_long_header_is_refused_or_read_as_it_arrives() {
        const LEN: u64 = 3 << 30;
        let sent = 5 << 20;
        let announce = |a: OwnedFd| {
            std::thread::spawn(move || {
                let head = long_header(LEN);
                let _ = socket::send_all_with_fds(a.as_fd(), &[&head, &vec![7u8; sent]], &[]);
            })
        };
        // Over the default maximum: refused before any of the payload is read.
        let (a, b, mut r) = reader_pair();
        let w = announce(a);
        let mut out = Vec::new();
        let max = crate::connection::DEFAULT_MAX_FRAME;
        assert!(matches!(
            r.read_into(b.as_fd(), Transport::Unix, max, None, &mut out),
            Err(FrameError::TooLarge { len: LEN, max: m }) if m == max
        ));
        drop(b);
        w.join().unwrap();
        // Under a raised maximum: read as it arrives, in memory that grows with what came,
        // not with what was announced.
        let (a, b, mut r) = reader_pair();
        let w = announce(a);
        let err = r
            .read_into(b.as_fd(), Transport::Unix, 4 << 30, None, &mut out)
            .unwrap_err();
        w.join().unwrap();
        assert!(
            matches!(err, FrameError::Truncated { got, expected: LEN } if got == sent as u64),
            "{err}"
        );
        assert!(out.capacity() <= FIRST_ALLOC, "{}", out.capacity());
    }

    fn reader_pair() -> (OwnedFd, OwnedFd, Reader) {
        let (a, b) = socket::socketpair().unwrap();
        (a, b, Reader::default())
    }

    #[test]
    fn descriptors_stay_with_their_frame_when_frames_are_read_together() {
        let (a, b, mut r) = reader_pair();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        // Small, small-with-fd, large-with-fd, small: all written before any read.
        write_frame(a.as_fd(), b"one", &[]).unwrap();
        write_frame(a.as_fd(), b"two", &[f.as_fd()]).unwrap();
        let big = vec![7u8; 3 * READ_BUF];
        let t = std::thread::spawn({
            let a = a.try_clone().unwrap();
            let f = f.try_clone().unwrap();
            move || {
                write_frame(a.as_fd(), &big, &[f.as_fd(), f.as_fd()]).unwrap();
                write_frame(a.as_fd(), b"four", &[]).unwrap();
            }
        });
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..4 {
            let fds = r
                .read_into(b.as_fd(), Transport::Unix, u64::MAX, None, &mut out)
                .unwrap();
            counts.push((out.len(), fds.len()));
        }
        t.join().unwrap();
        assert_eq!(counts, [(3, 0), (3, 1), (3 * READ_BUF, 2), (4, 0)]);
    }

    #[test]
    fn stray_descriptors_are_closed() {
        let (a, b, mut r) = reader_pair();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        // A header without descriptors, then its payload with descriptors attached.
        socket::send_all_with_fds(a.as_fd(), &[&5i32.to_be_bytes()], &[]).unwrap();
        let mut out = Vec::new();
        // Let the header arrive alone first.
        assert!(socket::wait_readable(b.as_fd(), None).unwrap());
        r.fill(b.as_fd(), Transport::Unix, 4, None).unwrap();
        socket::send_all_with_fds(a.as_fd(), &[b"hello"], &[f.as_fd()]).unwrap();
        let fds = r
            .read_into(b.as_fd(), Transport::Unix, 100, None, &mut out)
            .unwrap();
        assert_eq!((out.as_slice(), fds.len()), (&b"hello"[..], 0));
        write_frame(a.as_fd(), b"next", &[]).unwrap();
        let fds = r
            .read_into(b.as_fd(), Transport::Unix, 100, None, &mut out)
            .unwrap();
        assert_eq!((out.as_slice(), fds.len()), (&b"next"[..], 0));
    }

    #[test]
    fn random_streams_give_frames_or_errors_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300u32 {
            let (a, b, mut r) = reader_pair();
            let mut stream = Vec::new();
            // Valid frames and random bytes, mixed.
            for _ in 0..(rng.next() % 8) {
                if rng.next().is_multiple_of(3) {
                    let n = (rng.next() % 64) as usize;
                    stream.extend((0..n).map(|_| rng.next() as u8));
                } else {
                    let n = (rng.next() % 2000) as usize;
                    let mut h = [0u8; 12];
                    stream.extend_from_slice(header(n, &mut h));
                    stream.extend((0..n).map(|_| rng.next() as u8));
                }
            }
            let cut = (rng.next() as usize) % (stream.len() + 1);
            let writer = std::thread::spawn(move || {
                let _ = socket::send_all_with_fds(a.as_fd(), &[&stream[..cut]], &[]);
                let _ = socket::send_all_with_fds(a.as_fd(), &[&stream[cut..]], &[]);
            });
            let max = if round.is_multiple_of(2) {
                1500
            } else {
                u64::MAX >> 1
            };
            let mut out = Vec::new();
            loop {
                match r.read_into(b.as_fd(), Transport::Unix, max, None, &mut out) {
                    Ok(_) => assert!(out.len() as u64 <= max),
                    Err(FrameError::Closed) => break,
                    Err(
                        FrameError::TooLarge { .. }
                        | FrameError::BadLength(_)
                        | FrameError::Truncated { .. },
                    ) => break,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            writer.join().unwrap();
        }
    }
}
