//! The parent's handle on a child: its state, signals, and joining it.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::threads::{UNREAPED, reaper};
use super::{
    Builder, Control, FORKED, JoinError, JoinTimeoutError, MAX_CONTROL, ProcessInfo, SIGKILL,
    SIGTERM, StartError,
};
use crate::codec;
use crate::connection::frame::{self, FrameError};
use crate::sys::process::{self as os, Ended};
use crate::sys::socket;

/// What the parent knows of a running child, shared with the reaper and the child list.
pub(super) struct Inner {
    pub(super) pid: u32,
    pub(super) pidfd: OwnedFd,
    pub(super) name: String,
    pub(super) daemon: bool,
    pub(super) exit: Mutex<Option<Ended>>,
}

impl Inner {
    /// How the child ended (reaping it), `None` while it runs.
    pub(super) fn status(&self) -> Option<Ended> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none() {
            *exit = os::pidfd_reap(self.pidfd.as_fd(), false).ok().flatten();
        }
        *exit
    }

    /// Whether the child has ended (reaping it).
    pub(super) fn has_ended(&self) -> bool {
        self.status().is_some()
    }

    /// The exit code if the child has ended and its status is known (reaping it).
    pub(super) fn exitcode(&self) -> Option<i32> {
        match self.status() {
            Some(Ended::Code(c)) => Some(c),
            _ => None,
        }
    }

    /// Waits for the child to end (at most `timeout`); how it ended, or `None` on time-out.
    /// The lock is not held while waiting, so other threads can still ask.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> std::io::Result<Option<Ended>> {
        if let Some(end) = self.status() {
            return Ok(Some(end));
        }
        if !os::pidfd_wait_exit(self.pidfd.as_fd(), timeout)? {
            return Ok(None);
        }
        Ok(self.status())
    }
}

/// Where a [`Process`] is in its conversation with the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Waiting for the child's `Started`.
    Starting,
    /// Waiting for the child's report.
    Running,
    /// Joined: whatever the child reported has been taken.
    Done,
}

/// A child process running a function; [`join`](Process::join) returns what the function
/// returned.
///
/// Created by [`Process::start`] or [`Process::builder`]. The handle is `Send` and `Sync`;
/// `join` consumes it. Dropping it without joining leaves the child running (see the
/// [module documentation](crate::process)).
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::Process;
///
/// fn task(mut data: Vec<i32>) -> Vec<i32> {
///     data.push(666);
///     data
/// }
///
/// let data_list = vec![];
/// let p = Process::start(task, data_list.clone()).unwrap();
/// assert_eq!(p.join().unwrap(), vec![666]);
/// assert!(data_list.is_empty()); // the child changed its own copy only
/// ```
pub struct Process<R> {
    pub(super) inner: Arc<Inner>,
    pub(super) sock: OwnedFd,
    pub(super) stage: Stage,
    /// When the child must have reached its entry point (`None`: no limit).
    pub(super) started_by: Option<Instant>,
    pub(super) startup_timeout: Duration,
    pub(super) max_result: u64,
    pub(super) _result: PhantomData<fn() -> R>,
}

// Handles are shared between threads like Python's: pin it down.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Process<()>>();
    send_sync::<Builder>();
    send_sync::<ProcessInfo>();
};

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .field("daemon", &self.inner.daemon)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Starts `target(args)` in a new process with the default settings (spawn method, not a
    /// daemon, generated name). See [`Builder::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn shout(s: String) -> String {
    ///     s.to_uppercase()
    /// }
    ///
    /// let p = multiproc::Process::start(shout, "hey".to_owned()).unwrap();
    /// assert_eq!(p.join().unwrap(), "HEY");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Builder::start`].
    pub fn start<A>(target: fn(A) -> R, args: A) -> Result<Self, StartError>
    where
        A: Serialize + DeserializeOwned,
    {
        Builder::new().start(target, args)
    }

    /// Waits for the child to finish and returns what its function returned.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the panic message when the function panicked (the child
    /// exits with code 1); [`JoinError::Exited`] or [`JoinError::Killed`] when the child ended
    /// without returning; [`JoinError::NotStarted`] when it never reached its entry point within
    /// the start-up timeout; [`JoinError::Codec`] when the result could not be transferred (with
    /// the text of the failing serde implementation); [`JoinError::StatusUnknown`] when the
    /// child ended without a report and this program's handling of `SIGCHLD` discarded its exit
    /// status (see the [module documentation](crate::process)).
    pub fn join(self) -> Result<R, JoinError> {
        match self.join_deadline(None) {
            Ok(r) => Ok(r),
            Err(JoinTimeoutError::Failed(e)) => Err(e),
            Err(JoinTimeoutError::Timeout(_)) => unreachable!("no deadline, no time-out"),
        }
    }

    /// Waits at most `timeout` for the child to finish.
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError::Timeout`] hands the process back when it is still running;
    /// [`JoinTimeoutError::Failed`] as [`join`](Process::join). Once the child has begun sending
    /// its result, the result is read to the end even if that takes longer than `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// use std::time::Duration;
    /// use multiproc::{JoinTimeoutError, Process};
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let p = Process::start(nap, 60_000).unwrap();
    /// let p = match p.join_timeout(Duration::from_millis(50)) {
    ///     Err(JoinTimeoutError::Timeout(p)) => p,
    ///     other => panic!("{other:?}"),
    /// };
    /// p.terminate().unwrap();
    /// assert_eq!(p.join().unwrap_err().exitcode(), Some(-15));
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<R, JoinTimeoutError<R>> {
        // A time-out too large to represent waits forever.
        self.join_deadline(Instant::now().checked_add(timeout))
    }

    fn join_deadline(mut self, deadline: Option<Instant>) -> Result<R, JoinTimeoutError<R>> {
        let mut buf = Vec::new();
        let mut fds = Vec::new();
        loop {
            let limit = match (self.stage, self.started_by) {
                (Stage::Starting, Some(s)) => Some(deadline.map_or(s, |d| d.min(s))),
                _ => deadline,
            };
            let mut watch = Watch::new(self.sock.as_fd(), self.inner.pidfd.as_fd());
            let control = match watch.read_frame(MAX_CONTROL, &mut buf, &mut fds, limit) {
                Ok(true) => codec::decode::<Control>(&buf, Vec::new())
                    .map_err(|e| JoinError::Codec(format!("bad message from the child: {e}"))),
                Ok(false) => {
                    if self.stage == Stage::Starting
                        && self.started_by.is_some_and(|s| Instant::now() >= s)
                    {
                        let _ = self.kill();
                        let _ = self.inner.wait(None);
                        self.stage = Stage::Done;
                        return Err(JoinTimeoutError::Failed(JoinError::NotStarted(format!(
                            "it did not reach its entry point within {:?}; does its main() \
                             call multiproc::init() first?",
                            self.startup_timeout
                        ))));
                    }
                    return Err(JoinTimeoutError::Timeout(self));
                }
                Err(FrameError::Closed) => Err(self.ended()),
                Err(e) => Err(protocol_error(e)),
            };
            let failure = match (self.stage, control) {
                (Stage::Starting, Ok(Control::Started)) => {
                    self.stage = Stage::Running;
                    continue;
                }
                (Stage::Running, Ok(Control::Returned)) => {
                    // The result's descriptors may have arrived with the control frame.
                    let value = match watch.read_frame(self.max_result, &mut buf, &mut fds, None) {
                        Ok(_) => codec::decode::<R>(&buf, std::mem::take(&mut fds))
                            .map_err(|e| JoinError::Codec(e.to_string())),
                        Err(FrameError::TooLarge { len, max }) => Err(JoinError::Codec(format!(
                            "the result is {len} bytes, more than the maximum of {max}"
                        ))),
                        Err(FrameError::Closed | FrameError::Truncated { .. }) => Err(self.ended()),
                        Err(e) => Err(protocol_error(e)),
                    };
                    let _ = self.inner.wait(None);
                    self.stage = Stage::Done;
                    return value.map_err(JoinTimeoutError::Failed);
                }
                (Stage::Running, Ok(Control::Panicked(info))) => JoinError::Panicked(info),
                (Stage::Running, Ok(Control::Failed(msg))) => JoinError::Codec(msg),
                (_, Ok(other)) => JoinError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unexpected message from the child: {other:?}"),
                )),
                (_, Err(e)) => e,
            };
            let _ = self.inner.wait(None);
            self.stage = Stage::Done;
            return Err(JoinTimeoutError::Failed(failure));
        }
    }

    /// The child closed its end without a report: it ended. Why?
    fn ended(&self) -> JoinError {
        let code = match self.inner.wait(None) {
            Ok(Some(Ended::Code(code))) => code,
            Ok(Some(Ended::Unknown)) => return JoinError::StatusUnknown,
            Ok(None) => return JoinError::Io(std::io::ErrorKind::UnexpectedEof.into()),
            Err(e) => return JoinError::Io(e),
        };
        match (self.stage, code) {
            (_, c) if c < 0 => JoinError::Killed(-c),
            (Stage::Starting, code) => JoinError::NotStarted(format!(
                "it ended with exit code {code} before reaching its entry point; does its main() \
                 call multiproc::init() first?"
            )),
            (Stage::Running | Stage::Done, c) => JoinError::Exited(c),
        }
    }
}

fn protocol_error(e: FrameError) -> JoinError {
    JoinError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        e.to_string(),
    ))
}

/// Reads the child's frames without trusting end-of-stream alone: a process the child forked may
/// hold its end of the socket open, so the child's exit (its pidfd) ends the stream too.
struct Watch<'a> {
    sock: BorrowedFd<'a>,
    pidfd: BorrowedFd<'a>,
    exited: bool,
}

impl<'a> Watch<'a> {
    fn new(sock: BorrowedFd<'a>, pidfd: BorrowedFd<'a>) -> Self {
        Watch {
            sock,
            pidfd,
            exited: false,
        }
    }

    /// Fills `buf`; returns how much arrived (less at end of stream: the socket closed, or the
    /// child ended and everything it wrote has been read).
    fn fill(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match crate::sys::net::recv_some_with(self.sock, &mut buf[got..], fds, true) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.exited {
                        // Everything the child wrote before it ended is already here.
                        break;
                    }
                    self.wait(None)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// Waits until the socket is readable or the child has ended; `false` on time-out.
    fn wait(&mut self, deadline: Option<Instant>) -> std::io::Result<bool> {
        let ready = socket::poll_in(&[self.sock, self.pidfd], deadline)?;
        self.exited |= ready[1];
        Ok(ready[0] || ready[1])
    }

    /// Reads one frame into `buf` (descriptors into `fds`): `Ok(false)` when `deadline` passed
    /// before it began. Once it has begun, the rest is waited for without limit (the child is
    /// writing it, or has ended).
    fn read_frame(
        &mut self,
        max: u64,
        buf: &mut Vec<u8>,
        fds: &mut Vec<OwnedFd>,
        deadline: Option<Instant>,
    ) -> Result<bool, FrameError> {
        if deadline.is_some() && !self.wait(deadline)? {
            return Ok(false);
        }
        let len = frame::read_header(max, |b| self.fill(b, fds))?;
        frame::read_payload(len, buf, |b| self.fill(b, fds))?;
        Ok(true)
    }
}

pub(super) fn read_control(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fds: &mut Vec<OwnedFd>,
) -> Result<Control, FrameError> {
    frame::read_frame(sock, MAX_CONTROL, buf, fds)?;
    codec::decode::<Control>(buf, Vec::new()).map_err(|e| {
        FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        ))
    })
}

impl Process<()> {
    /// Starts configuring a process (the same as [`Builder::new`]).
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<R> Process<R> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the child is a daemon (killed when this process dies).
    pub fn daemon(&self) -> bool {
        self.inner.daemon
    }

    /// Whether the child is still running. This holds even when its exit status cannot be
    /// known (see [`exitcode`](Process::exitcode)).
    pub fn is_alive(&self) -> bool {
        !self.inner.has_ended()
    }

    /// The child's exit code once it has ended, in Python's convention: `0` for success, `1`
    /// after a panic, the code given to `std::process::exit`, or minus the signal number that
    /// killed it (`-9` for `SIGKILL`). `None` while it runs, and also once it has ended if its
    /// status could not be collected ([`JoinError::StatusUnknown`]: this program ignores
    /// `SIGCHLD`, or reaps children elsewhere); [`is_alive`](Process::is_alive) tells the two
    /// apart.
    pub fn exitcode(&self) -> Option<i32> {
        self.inner.exitcode()
    }

    /// Asks the child to end with `SIGTERM`. Nothing happens if it has already ended.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn terminate(&self) -> std::io::Result<()> {
        os::pidfd_signal(self.inner.pidfd.as_fd(), SIGTERM)
    }

    /// Kills the child with `SIGKILL`. Nothing happens if it has already ended.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn kill(&self) -> std::io::Result<()> {
        os::pidfd_signal(self.inner.pidfd.as_fd(), SIGKILL)
    }

    /// A descriptor that becomes readable when the child ends (a pidfd), like Python's
    /// `Process.sentinel`, for use with `poll(2)`-style multiplexing.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.inner.pidfd.as_fd()
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let unjoined = self.stage != Stage::Done;
        if self.inner.has_ended() {
            if unjoined {
                print_unjoined_report(&self.inner, self.sock.as_fd());
            }
            return;
        }
        if FORKED.load(Ordering::Relaxed) {
            // A forked child starts no helper thread (see `FORKED`): the next start or
            // `active_children()` reaps it, as Python does.
            UNREAPED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.inner.clone());
        } else if let Ok(r) = reaper() {
            // The reaper prints the child's panic report, if it sends one: nobody will join it.
            let sock = if unjoined {
                crate::sys::dup(self.sock.as_fd()).ok()
            } else {
                None
            };
            r.adopt(Orphan {
                inner: self.inner.clone(),
                sock,
            });
        }
        // (Without a thread to spare, the child stays a zombie until this process exits.)
    }
}

/// A child whose [`Process`] was dropped while it ran, and the socket its report may arrive on.
pub(super) struct Orphan {
    pub(super) inner: Arc<Inner>,
    pub(super) sock: Option<OwnedFd>,
}

/// Prints the panic (or transfer failure) a child reported, when nobody joined it: a dropped
/// handle must not make the report vanish. Reads only what has already arrived.
pub(super) fn print_unjoined_report(inner: &Inner, sock: BorrowedFd<'_>) {
    let mut watch = Watch::new(sock, inner.pidfd.as_fd());
    let mut buf = Vec::new();
    let mut fds = Vec::new();
    loop {
        match watch.read_frame(MAX_CONTROL, &mut buf, &mut fds, Some(Instant::now())) {
            Ok(true) => {}
            _ => return,
        }
        let what = match codec::decode::<Control>(&buf, Vec::new()) {
            Ok(Control::Started) => continue,
            Ok(Control::Panicked(info)) => {
                let bt = info
                    .backtrace()
                    .map(|b| format!("\nstack backtrace:\n{b}"))
                    .unwrap_or_default();
                format!("{info}{bt}")
            }
            Ok(Control::Failed(msg)) => msg,
            _ => return,
        };
        eprintln!(
            "multiproc: {} (pid {}), dropped without join: {what}",
            inner.name, inner.pid
        );
        return;
    }
}
