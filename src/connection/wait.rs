//! [`wait`]: the first of several connections to have something to read.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::conn::Connection;
use super::listener::Listener;

/// Something [`wait`] can wait on: it becomes ready when reading from it would not block.
pub trait Waitable {
    /// The descriptor that becomes readable.
    fn wait_fd(&self) -> BorrowedFd<'_>;

    /// Whether it is ready without looking at the descriptor (data already buffered).
    fn ready_now(&self) -> bool {
        false
    }
}

impl Waitable for Connection {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn ready_now(&self) -> bool {
        self.has_buffered()
    }
}

/// Ready when a client is waiting to be accepted.
impl Waitable for Listener {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

/// Ready when the process has ended (its [`sentinel`](crate::Process::sentinel)), so that one
/// `wait` can watch connections and children together, as with Python's `Process.sentinel`.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::{Process, Waitable, wait};
///
/// fn nap(ms: u64) {
///     std::thread::sleep(std::time::Duration::from_millis(ms));
/// }
///
/// let (_tx, rx) = multiproc::pipe(true)?;
/// let p = Process::start(nap, 20)?;
/// let watched: [&dyn Waitable; 2] = [&rx, &p];
/// assert_eq!(wait(&watched, None)?, [1]); // the child ended; nothing came through the pipe
/// p.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<R> Waitable for crate::Process<R> {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.sentinel()
    }
}

impl Waitable for crate::Descriptor {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl<T: Waitable + ?Sized> Waitable for &T {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        (**self).wait_fd()
    }

    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
}

impl<T: Waitable + ?Sized> Waitable for &mut T {
    fn wait_fd(&self) -> BorrowedFd<'_> {
        (**self).wait_fd()
    }

    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
}

/// Waits until at least one of `objects` is ready to read (a message, or end of stream, is
/// waiting), at most `timeout` (`None`: until one is), and returns the indices of the ready
/// ones, in order. An empty result means the time ran out. As Python's
/// `multiprocessing.connection.wait`, which returns the objects themselves.
///
/// # Errors
///
/// When `poll(2)` fails.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let (mut a1, b1) = multiproc::pipe(true)?;
/// let (_a2, b2) = multiproc::pipe(true)?;
/// assert!(multiproc::wait(&[&b1, &b2], Some(Duration::from_millis(10)))?.is_empty());
/// a1.send_bytes(b"x")?;
/// assert_eq!(multiproc::wait(&[&b1, &b2], None)?, [0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait<W: Waitable>(objects: &[W], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let now: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].ready_now())
        .collect();
    let timeout = if now.is_empty() {
        timeout
    } else {
        Some(Duration::ZERO)
    };
    let fds: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.wait_fd()).collect();
    let mut ready = crate::sys::net::poll_readable(&fds, timeout)?;
    ready.extend(now);
    ready.sort_unstable();
    ready.dedup();
    Ok(ready)
}
