//! Listening and connecting sockets (Unix paths, Linux abstract names, TCP), pipes, and the
//! single-call reads and writes that connections are built on.
//!
//! Every descriptor made here is `FD_CLOEXEC`. Writes on sockets use `MSG_NOSIGNAL`, so a closed
//! peer is an `EPIPE` error and never a `SIGPIPE`.
//!
//! # Unix socket files are created `0600`
//!
//! On Linux, `bind(2)` creates the socket file with the mode of the socket's own inode, less the
//! umask. [`unix_listen`] therefore `fchmod`s the fresh socket to `0600` *before* binding: the
//! file never exists with wider permissions, with no window between `bind` and a later `chmod`.
//!
//! # References
//! - [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html),
//!   [`tcp(7)`](https://man7.org/linux/man-pages/man7/tcp.7.html),
//!   [`pipe(2)`](https://man7.org/linux/man-pages/man2/pipe.2.html),
//!   [`poll(2)`](https://man7.org/linux/man-pages/man2/poll.2.html),
//!   [`getrandom(2)`](https://man7.org/linux/man-pages/man2/getrandom.2.html)

#![allow(unsafe_code)]

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendAncillaryBuffer, SendFlags, SocketAddrUnix, SocketFlags,
    SocketType,
};

// Descriptor-carrying receives live in `socket`; process start-up reaches them through here.
pub(crate) use super::socket::recv_some_with;

/// A Unix socket address: a path, or a Linux abstract name.
pub(crate) enum UnixAddr<'a> {
    Path(&'a std::path::Path),
    Abstract(&'a [u8]),
}

fn unix_addr(addr: &UnixAddr<'_>) -> io::Result<SocketAddrUnix> {
    Ok(match addr {
        UnixAddr::Path(p) => SocketAddrUnix::new(*p)?,
        UnixAddr::Abstract(name) => SocketAddrUnix::new_abstract_name(name)?,
    })
}

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// A one-way pipe: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A listening Unix stream socket; a path is created with mode `0600` (see the module docs).
/// Non-blocking, for [`accept_nowait`].
pub(crate) fn unix_listen(addr: &UnixAddr<'_>, backlog: i32) -> io::Result<OwnedFd> {
    let a = unix_addr(addr)?;
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    if matches!(addr, UnixAddr::Path(_)) {
        rustix::fs::fchmod(&s, Mode::from_bits_truncate(0o600))?;
    }
    rustix::net::bind(&s, &a)?;
    rustix::net::listen(&s, backlog)?;
    Ok(s)
}

/// A Unix stream socket connected to `addr`.
pub(crate) fn unix_connect(addr: &UnixAddr<'_>) -> io::Result<OwnedFd> {
    let a = unix_addr(addr)?;
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    retry(|| rustix::net::connect(&s, &a))?;
    Ok(s)
}

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    }
}

/// A listening TCP socket with `SO_REUSEADDR` (as Python's `Listener` sets on POSIX),
/// non-blocking for [`accept_nowait`]. Returns the socket and the address it is bound to (the
/// real port when `addr` asked for 0).
pub(crate) fn tcp_listen(addr: &SocketAddr, backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    let s = rustix::net::socket_with(
        family(addr),
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::sockopt::set_socket_reuseaddr(&s, true)?;
    rustix::net::bind(&s, addr)?;
    rustix::net::listen(&s, backlog)?;
    let local = SocketAddr::try_from(rustix::net::getsockname(&s)?)
        .map_err(|_| io::Error::other("TCP socket has a non-IP local address"))?;
    Ok((s, local))
}

/// A TCP socket connected to `addr`, with `TCP_NODELAY`.
pub(crate) fn tcp_connect(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<OwnedFd> {
    let flags = if timeout.is_some() {
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
    } else {
        SocketFlags::CLOEXEC
    };
    let s = rustix::net::socket_with(family(addr), SocketType::STREAM, flags, None)?;
    match rustix::net::connect(&s, addr) {
        Ok(()) => {}
        // The connection goes on in the background (non-blocking, or interrupted): wait for its
        // outcome.
        Err(Errno::INPROGRESS | Errno::INTR) => {
            if !wait_writable(s.as_fd(), timeout)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer from {addr} within {timeout:?}"),
                ));
            }
            if let Some(e) = socket_error(&s)? {
                return Err(e);
            }
        }
        Err(e) => return Err(e.into()),
    }
    if timeout.is_some() {
        rustix::io::ioctl_fionbio(&s, false)?;
    }
    rustix::net::sockopt::set_tcp_nodelay(&s, true)?;
    Ok(s)
}

/// Waits until `fd` is writable, at most `timeout` (`None`: forever); `false` on time-out.
fn wait_writable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(super::deadline_after);
    Ok(super::socket::poll(&[fd], PollFlags::OUT, deadline)?[0])
}

fn socket_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    Ok(rustix::net::sockopt::socket_error(fd)?
        .err()
        .map(io::Error::from))
}

/// Accepts one connection from a non-blocking listening socket, if one is waiting: `None`
/// when none is (or another thread or process took it first). The connection is blocking and
/// `FD_CLOEXEC`; TCP connections get `TCP_NODELAY`.
pub(crate) fn accept_nowait(listener: BorrowedFd<'_>, tcp: bool) -> io::Result<Option<OwnedFd>> {
    let s = match retry(|| rustix::net::accept_with(listener, SocketFlags::CLOEXEC)) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        // The client gave up before we took it: as if it had never come.
        Err(e) if e.raw_os_error() == Some(Errno::CONNABORTED.raw_os_error()) => return Ok(None),
        Err(e) => return Err(e),
    };
    if tcp {
        rustix::net::sockopt::set_tcp_nodelay(&s, true)?;
    }
    Ok(Some(s))
}

/// One `recv` with `MSG_DONTWAIT` on a socket (no descriptors): `WouldBlock` when nothing is
/// there.
pub(crate) fn recv_nowait(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::net::recv(sock, &mut *buf, RecvFlags::DONTWAIT).map(|(n, _)| n))
}

/// Gives the CPU to another runnable thread, if any (`sched_yield(2)`).
pub(crate) fn yield_cpu() {
    rustix::thread::sched_yield();
}

/// One `read` (pipes and TCP): returns the bytes read, 0 at end of stream.
pub(crate) fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::io::read(fd, &mut *buf))
}

/// One `read` appending at most `limit` bytes to `out`, into its spare capacity (no zero-fill
/// first). Returns the bytes read, 0 at end of stream or when `out` has no spare capacity.
pub(crate) fn read_append(
    fd: BorrowedFd<'_>,
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<usize> {
    loop {
        let spare = out.spare_capacity_mut();
        let n = spare.len().min(limit);
        match rustix::io::read(fd, &mut spare[..n]) {
            Ok((init, _)) => {
                let got = init.len();
                // SAFETY: `read` initialised the first `got` bytes of the spare capacity, which
                // directly follow the vector's initialised elements.
                unsafe { out.set_len(out.len() + got) };
                return Ok(got);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `sendmsg` with `MSG_NOSIGNAL` and no ancillary data: returns the bytes written.
pub(crate) fn send_some(sock: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> io::Result<usize> {
    retry(|| {
        rustix::net::sendmsg(
            sock,
            iov,
            &mut SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        )
    })
}

/// One `send` with `MSG_NOSIGNAL`: returns the bytes written.
pub(crate) fn send_one(sock: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry(|| rustix::net::send(sock, buf, SendFlags::NOSIGNAL))
}

/// One `write` (pipes): returns the bytes written.
pub(crate) fn write_one(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry(|| rustix::io::write(fd, buf))
}

/// One `writev` (pipes): returns the bytes written.
///
/// A pipe whose reader is gone raises `SIGPIPE`; Rust programs ignore it by default and see
/// `EPIPE` instead.
pub(crate) fn write_some(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> io::Result<usize> {
    retry(|| rustix::io::writev(fd, iov))
}

/// Which of `fds` are readable (or closed, or in error), waiting at most `timeout`
/// (`None`: forever). An empty result means the time ran out.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<usize>> {
    // A timeout too long for an `Instant` is forever.
    let ready = super::socket::poll_in(fds, timeout.and_then(super::deadline_after))?;
    Ok(ready
        .iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| i)
        .collect())
}

/// Closes `fd`, reporting the error that dropping an `OwnedFd` ignores.
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` came out of an `OwnedFd`, so it is open and owned by nobody else; it is
    // not used after this call.
    let r = unsafe { libc::close(raw) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // On Linux the descriptor is released even when `close` is interrupted.
    if e.kind() == io::ErrorKind::Interrupted {
        Ok(())
    } else {
        Err(e)
    }
}

/// Fills `buf` with random bytes from the kernel.
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        got += retry(|| {
            rustix::rand::getrandom(&mut buf[got..], rustix::rand::GetRandomFlags::empty())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unix_socket_files_are_private() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("multiproc-net-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = unix_listen(&UnixAddr::Path(&path), 1).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::remove_file(&path).unwrap();
        drop(s);
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    #[test]
    fn random_bytes_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        random(&mut a).unwrap();
        random(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
