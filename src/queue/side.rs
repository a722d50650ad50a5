//! Descriptors in messages: the side channel of a queue.
//!
//! Descriptors cannot pass through shared memory, so a queue has a second path for them: a
//! connected pair of Unix datagram sockets, created with the queue, whose two ends every handle
//! holds (they travel with the queue's segment). A producer whose message carries descriptors
//! (a [`Queue`](super::Queue), a [`Connection`](crate::Connection), ... inside the value) sends
//! them first, as `SCM_RIGHTS` on a datagram holding a number drawn from the segment, then puts
//! the message with that number at its end and its slot's kind marked. While in the channel
//! the descriptors belong to the kernel, so the producer may exit at once.
//!
//! The consumer that gets such a message takes its descriptors out of the channel by number.
//! The channel is a FIFO shared by all consumers, and messages are taken in another order than
//! their descriptors were sent, so the taker receives datagrams in turn and sends back (to the
//! end of the channel) those of other messages, until it finds its own, or comes back to the
//! first one it sent back (its own is lost: see below). Takers, and senders, work one at a
//! time: a mutex in the process and an open-file-description lock on a byte of the segment's
//! file across processes, which the kernel releases when its holder dies.
//!
//! The consumer of a small message takes its descriptors while it still holds the message's
//! slot: killed meanwhile, the message is delivered again, and its descriptors with it unless
//! the dead one had received them already (that `get` then fails with a decode error naming
//! the loss). A consumer killed while it holds another message's datagram loses those
//! descriptors, with the same error for that message; a producer killed between sending its
//! datagram and publishing its message leaves the datagram in the channel, where it stays
//! (passed over by takers) until the queue is gone. Either way nothing else stalls, and every
//! descriptor is closed by the kernel when the last handle goes.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use super::ring::{Backoff, Fail, Ring, Wait, fault};
use crate::sys::{ofd, socket};

/// The flag of a slot's kind: the message's last 8 bytes are the number of its descriptors in
/// the side channel.
pub(super) const KIND_FDS: u32 = 0x100;

/// The send buffer asked for each end: room for thousands of datagrams in flight.
const SNDBUF: usize = 4 << 20;

/// The two ends of a queue's side channel.
#[derive(Debug)]
pub(crate) struct Side {
    /// Where datagrams are sent.
    pub(super) tx: OwnedFd,
    /// Where they arrive.
    pub(super) rx: OwnedFd,
    /// One sender or taker at a time in this process (the file lock does not exclude the
    /// threads of one process).
    lock: Mutex<()>,
}

impl Side {
    /// A new side channel.
    pub(crate) fn new() -> std::io::Result<Side> {
        let (tx, rx) = socket::datagram_pair(SNDBUF)?;
        Ok(Side::from_fds(tx, rx))
    }

    /// The side channel of a received queue.
    pub(crate) fn from_fds(tx: OwnedFd, rx: OwnedFd) -> Side {
        Side {
            tx,
            rx,
            lock: Mutex::new(()),
        }
    }
}

impl Ring {
    /// Runs `f` on the side channel, alone among the queue's processes and threads. `None`
    /// without a side channel, or if the lock cannot be taken.
    fn side_locked<R>(&self, f: impl FnOnce(&Side) -> R) -> Option<R> {
        let side = self.side.as_ref()?;
        let _one = side.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Bytes 0..members of the file are the liveness locks; the next one is this lock.
        let byte = u64::from(self.raw.geometry().members);
        ofd::lock(&self.lockfd, byte).ok()?;
        fault::point(fault::SIDE_LOCKED);
        let r = f(side);
        let _ = ofd::unlock(&self.lockfd, byte);
        Some(r)
    }

    /// Whether this queue can carry descriptors.
    pub(crate) fn has_side(&self) -> bool {
        self.side.is_some()
    }

    /// Puts a message whose value carries `fds`.
    pub(crate) fn put_with_fds(
        &self,
        bytes: &mut Vec<u8>,
        fds: &[OwnedFd],
        wait: Wait,
    ) -> Result<(), Fail> {
        let len = bytes.len() as u64 + 8;
        if self.too_large(len) {
            return Err(Fail::TooLarge(len));
        }
        let id = self
            .raw
            .control()
            .fd_seq
            .0
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send_fds(id, fds, wait)?;
        fault::point(fault::SIDE_SENT);
        bytes.extend_from_slice(&id.to_le_bytes());
        let r = self.put_unchecked(bytes, KIND_FDS, wait);
        bytes.truncate(bytes.len() - 8);
        if r.is_err() {
            // Not put: take the descriptors back out of the channel (and close them).
            drop(self.take_fds(id));
        }
        r
    }

    /// Sends `fds` into the side channel under number `id`.
    fn send_fds(&self, id: u64, fds: &[OwnedFd], wait: Wait) -> Result<(), Fail> {
        let dgram = id.to_le_bytes();
        let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        let deadline = wait.deadline();
        let mut backoff = Backoff::new();
        loop {
            match self.side_locked(|side| socket::send_datagram(side.tx.as_fd(), &dgram, &fds)) {
                Some(Ok(true)) => return Ok(()),
                Some(Ok(false)) => {}
                None | Some(Err(_)) => return Err(Fail::Descriptors),
            }
            // The channel is full: wait for consumers to take some out.
            if matches!(wait, Wait::No) {
                return Err(Fail::WouldBlock);
            }
            if backoff.snooze() && !self.sleep(&self.raw.control().space, deadline, || true) {
                return Err(Fail::TimedOut);
            }
        }
    }

    /// Takes the descriptors sent under number `id` out of the side channel: `None` if they
    /// are not there (lost with a process that died holding them).
    pub(super) fn take_fds(&self, id: u64) -> Option<Vec<OwnedFd>> {
        self.side_locked(|side| {
            let mut first_sent_back = None;
            loop {
                let mut buf = [0u8; 8];
                let mut fds = Vec::new();
                match socket::recv_some_fds(side.rx.as_fd(), &mut buf, &mut fds, true) {
                    Ok((8, _)) => {}
                    // Not one of ours (or empty): dropped, descriptors closed.
                    Ok(_) => continue,
                    // Nothing left (or the channel is broken).
                    Err(_) => return None,
                }
                let got = u64::from_le_bytes(buf);
                if got == id {
                    return Some(fds);
                }
                fault::point(fault::SIDE_PASSING);
                let back: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                // There is room: this one was just taken out, and nobody sends meanwhile.
                let _ = socket::send_datagram(side.tx.as_fd(), &buf, &back);
                if first_sent_back == Some(got) {
                    return None;
                }
                first_sent_back.get_or_insert(got);
            }
        })
        .flatten()
    }

    /// Finishes getting a message with descriptors: its number is at its end; its
    /// descriptors go to `fds` (closed if `None`).
    pub(super) fn attach_fds(
        &self,
        out: &mut Vec<u8>,
        fds: Option<&mut Vec<OwnedFd>>,
    ) -> Result<(), Fail> {
        let Some(at) = out.len().checked_sub(8) else {
            return Err(Fail::Descriptors);
        };
        let id = u64::from_le_bytes(out[at..].try_into().unwrap_or_default());
        out.truncate(at);
        let got = self.take_fds(id).ok_or(Fail::Descriptors)?;
        if let Some(fds) = fds {
            *fds = got;
        }
        Ok(())
    }
}
