//! Unix sockets that carry descriptors (streams, and the datagram pairs of queues).
//!
//! Descriptors ride as `SCM_RIGHTS` ancillary data on the first byte of a message; the receiver
//! must read that byte with [`recv_with_fds`] to get them. Every received descriptor is created
//! with `FD_CLOEXEC` (`MSG_CMSG_CLOEXEC`), so none leaks into unrelated children.
//!
//! # References
//! - [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html), `SCM_RIGHTS`
//! - [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
//!   [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html)

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// The most descriptors one message may carry (`SCM_MAX_FD` in the kernel).
pub(crate) const MAX_FDS: usize = 253;

/// A connected pair of Unix stream sockets, both `FD_CLOEXEC`.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A connected pair of Unix datagram sockets (`SOCK_DGRAM`), both `FD_CLOEXEC`, each with a
/// send buffer of `sndbuf` bytes as far as the system allows (`net.core.wmem_max`). A datagram
/// sent on one arrives at the other.
pub(crate) fn datagram_pair(sndbuf: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    for s in [&a, &b] {
        // The system's default buffer only costs capacity.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(s, sndbuf);
    }
    Ok((a, b))
}

/// Sends one datagram of `bytes` with `fds` attached, without waiting: `Ok(false)` when the
/// socket's buffer is full.
pub(crate) fn send_datagram(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<bool> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a message can carry at most {MAX_FDS} descriptors"),
        ));
    }
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    loop {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
            debug_assert!(pushed, "cmsg buffer sized for MAX_FDS");
        }
        let iov = [IoSlice::new(bytes)];
        match rustix::net::sendmsg(
            sock,
            &iov,
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends every byte of `bufs` (in order) with `fds` attached to the first byte.
///
/// Uses `MSG_NOSIGNAL`: a closed peer is an `EPIPE` error, never a `SIGPIPE`.
pub(crate) fn send_all_with_fds(
    sock: BorrowedFd<'_>,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message can carry at most {MAX_FDS} descriptors, not {}",
                fds.len()
            ),
        ));
    }
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if total == 0 && !fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors need at least one byte to travel with",
        ));
    }
    let mut sent = 0usize;
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut first = true;
    while sent < total || (first && total == 0) {
        // Build the remaining slices, skipping what was already sent.
        let mut skip = sent;
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len());
        for b in bufs {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            iov.push(IoSlice::new(&b[skip..]));
            skip = 0;
        }
        let mut control = SendAncillaryBuffer::new(&mut space);
        if first && !fds.is_empty() {
            let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
            debug_assert!(pushed, "cmsg buffer sized for MAX_FDS");
        }
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => {
                sent += n;
                first = false;
                if total == 0 {
                    break;
                }
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes unless the peer closes first, collecting any descriptors that
/// arrive with them into `fds`. Returns how many bytes were read: less than `buf.len()` only at
/// end of stream.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match recv_some(sock, &mut buf[got..], fds)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Reads exactly `buf.len()` bytes (no descriptors expected) unless the peer closes first.
/// Returns how many bytes were read.
pub(crate) fn read_full<Fd: AsFd>(fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
    let fd = fd.as_fd();
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => continue,
            Err(Errno::CONNRESET) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Waits until `fd` is readable (or closed), at most `timeout` (`None`: forever).
/// Returns `false` on time-out.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    Ok(poll_in(&[fd], timeout.and_then(super::deadline_after))?[0])
}

/// Waits until at least one of `fds` is readable (or closed, or, for a pidfd, ended), until
/// `deadline` (`None`: forever). Returns which are ready: all `false` on time-out.
pub(crate) fn poll_in(
    fds: &[BorrowedFd<'_>],
    deadline: Option<std::time::Instant>,
) -> io::Result<Vec<bool>> {
    poll(fds, rustix::event::PollFlags::IN, deadline)
}

/// `poll(2)` for `events` on every one of `fds` until `deadline` (`None`: forever), retried on
/// `EINTR`. Returns which are ready (or in error, or hung up): all `false` on time-out.
pub(crate) fn poll(
    fds: &[BorrowedFd<'_>],
    events: rustix::event::PollFlags,
    deadline: Option<std::time::Instant>,
) -> io::Result<Vec<bool>> {
    use rustix::event::PollFd;
    let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(fd, events)).collect();
    loop {
        let ts = deadline.map(super::timespec_until);
        match rustix::event::poll(&mut pfds, ts.as_ref()) {
            Ok(_) => return Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Room for the largest `SCM_RIGHTS` message the crate accepts.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// One `recvmsg` on a Unix socket: returns the bytes read (0 at end of stream) and appends the
/// descriptors that came with them to `fds`. Descriptors the kernel could not deliver are an
/// error (see [`recv_some_fds`] for a receive that keeps the bytes).
pub(crate) fn recv_some(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    recv_some_with(sock, buf, fds, false)
}

/// [`recv_some`], failing with `WouldBlock` instead of waiting when `nowait` is set
/// (`MSG_DONTWAIT`).
pub(crate) fn recv_some_with(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nowait: bool,
) -> io::Result<usize> {
    match recv_some_fds(sock, buf, fds, nowait)? {
        (n, None) => Ok(n),
        (_, Some(lost)) => Err(lost),
    }
}

/// One `recvmsg` on a Unix socket, as [`recv_some_with`], that also reports descriptors lost
/// on the way: `(bytes read, None)`, or `(bytes read, Some(why))` when the kernel truncated
/// the control data (`MSG_CTRUNC`). The bytes were taken from the stream either way.
///
/// The kernel truncates when this process cannot install every descriptor (`RLIMIT_NOFILE`
/// reached: `why` is then `EMFILE`, "too many open files"), or when they do not fit the control
/// buffer (more than [`MAX_FDS`]). The descriptors that did arrive are in `fds`.
pub(crate) fn recv_some_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nowait: bool,
) -> io::Result<(usize, Option<io::Error>)> {
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    let flags = if nowait {
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT
    } else {
        RecvFlags::CMSG_CLOEXEC
    };
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, flags) {
            Ok(msg) => {
                for m in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(rights) = m {
                        fds.extend(rights);
                    }
                }
                if msg.flags.contains(ReturnFlags::CTRUNC) {
                    return Ok((msg.bytes, Some(why_truncated(sock))));
                }
                return Ok((msg.bytes, None));
            }
            Err(Errno::INTR) => continue,
            // A peer that closed with data of ours still unread resets the connection: for us
            // that is the end of the stream like any other close.
            Err(Errno::CONNRESET) => return Ok((0, None)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Why the control data of a receive on `sock` was truncated. Called while the descriptors
/// that did arrive are still open: if one more descriptor cannot be made, the process is at
/// its limit.
fn why_truncated(sock: BorrowedFd<'_>) -> io::Error {
    match rustix::io::fcntl_dupfd_cloexec(sock, 0) {
        Err(e @ (Errno::MFILE | Errno::NFILE)) => e.into(),
        // The probe closes at once.
        Ok(_probe) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the message carried more descriptors than the {MAX_FDS} a receive accepts"),
        ),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    /// `net` builds on this module (for `MAX_FDS` and `poll`), so this one must not reach back.
    #[test]
    fn socket_does_not_import_net() {
        let src = include_str!("socket.rs");
        let reach_back = ["super::", "net::"].concat();
        assert!(!src.contains(&reach_back), "sys/socket.rs uses sys/net.rs");
        assert!(!src.contains(&["crate::sys::", "net"].concat()));
    }
}
