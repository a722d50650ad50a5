//! Readiness polling for servers: an `epoll(7)` set of descriptors, each with a token, and a
//! waker another thread can ring.
//!
//! # References
//! - [`epoll(7)`](https://man7.org/linux/man-pages/man7/epoll.7.html)
//! - [`eventfd(2)`](https://man7.org/linux/man-pages/man2/eventfd.2.html)
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

/// What a registered descriptor is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Readable (or closed).
    Read,
    /// Writable.
    Write,
    /// Readable or writable.
    ReadWrite,
    /// Nothing but errors and hang-ups.
    Nothing,
}

impl Interest {
    /// The interest in reading, writing, both or neither.
    pub fn of(read: bool, write: bool) -> Self {
        match (read, write) {
            (true, true) => Interest::ReadWrite,
            (true, false) => Interest::Read,
            (false, true) => Interest::Write,
            (false, false) => Interest::Nothing,
        }
    }

    fn flags(self) -> EventFlags {
        match self {
            Interest::Read => EventFlags::IN | EventFlags::RDHUP,
            Interest::Write => EventFlags::OUT,
            Interest::ReadWrite => EventFlags::IN | EventFlags::RDHUP | EventFlags::OUT,
            Interest::Nothing => EventFlags::empty(),
        }
    }
}

/// One readiness report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    /// The token the descriptor was registered with.
    pub token: u64,
    /// Something to read, or the peer closed, or an error: a read will tell.
    pub readable: bool,
    /// Room to write.
    pub writable: bool,
}

/// A set of descriptors watched together (level-triggered).
pub(crate) struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    /// An empty set.
    pub fn new() -> io::Result<Self> {
        Ok(Poller {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        })
    }

    /// Watches `fd` under `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        Ok(epoll::add(
            &self.epoll,
            fd,
            EventData::new_u64(token),
            interest.flags(),
        )?)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        Ok(epoll::modify(
            &self.epoll,
            fd,
            EventData::new_u64(token),
            interest.flags(),
        )?)
    }

    /// Stops watching `fd` (closing it does too).
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        Ok(epoll::delete(&self.epoll, fd)?)
    }

    /// Waits until a descriptor is ready or `deadline` passes (`None`: no limit), and fills
    /// `out` with what is ready (empty at the deadline).
    pub fn wait(&self, out: &mut Vec<Ready>, deadline: Option<Instant>) -> io::Result<()> {
        out.clear();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        let timeout = deadline.map(super::timespec_until);
        loop {
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        out.extend(events.iter().map(|e| {
            let flags = e.flags;
            Ready {
                token: e.data.u64(),
                readable: flags.intersects(
                    EventFlags::IN | EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR,
                ),
                writable: flags.intersects(EventFlags::OUT | EventFlags::ERR),
            }
        }));
        Ok(())
    }
}

/// A descriptor that another thread makes readable to wake a [`Poller`].
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A waker, not rung.
    pub fn new() -> io::Result<Self> {
        Ok(Waker {
            fd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    /// Makes the descriptor readable until [`reset`](Self::reset).
    pub fn wake(&self) -> io::Result<()> {
        match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
            // The counter is full: it is rung already.
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the ring back.
    pub fn reset(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One `recv` that does not wait, appending at most `limit` bytes to `out` (into its spare
/// capacity): `Some(0)` at end of stream, `None` when nothing is there.
pub(crate) fn recv_append(
    sock: BorrowedFd<'_>,
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<usize>> {
    let n = out.spare_capacity_mut().len().min(limit);
    loop {
        match rustix::net::recv(
            sock,
            &mut out.spare_capacity_mut()[..n],
            RecvFlags::DONTWAIT,
        ) {
            Ok(((init, _), _)) => {
                let got = init.len();
                // SAFETY: `recv` initialised the first `got` bytes of the spare capacity, which
                // directly follow the vector's initialised elements.
                unsafe { out.set_len(out.len() + got) };
                return Ok(Some(got));
            }
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `send` that does not wait (`MSG_DONTWAIT | MSG_NOSIGNAL`): the bytes written, 0 when the
/// socket's buffer is full.
pub(crate) fn send_nowait(sock: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(sock, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::AGAIN) => return Ok(0),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
