//! Errors of starting and joining processes.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::codec::CodecError;

/// A panic in a child process, as reported to [`Process::join`](crate::Process::join).
///
/// The child sends the panic to its parent instead of printing it, and exits with code 1: the
/// report is a value of `join`, as with [`std::thread::JoinHandle::join`], and a caller that
/// expects the panic sees no noise. The child prints it on its standard error only when the
/// parent has gone and cannot be told. (Python prints a child's traceback in the child; print
/// the error `join` returns to get the same.) Panics in other threads of the child are printed
/// as usual.
///
/// A [`Process`](crate::Process) dropped without `join` prints its child's report on this
/// process's standard error, once the child has ended. A report sent to a parent that then
/// exits without joining or dropping the handle is not printed anywhere.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::{JoinError, Process};
///
/// fn fail(_: ()) {
///     panic!("out of cheese")
/// }
///
/// match Process::start(fail, ()).unwrap().join() {
///     Err(JoinError::Panicked(info)) => {
///         assert_eq!(info.message(), "out of cheese");
///         assert!(info.location().is_some());
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicInfo {
    message: String,
    location: Option<String>,
    backtrace: Option<String>,
}

impl PanicInfo {
    pub(crate) fn new(
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    ) -> Self {
        PanicInfo {
            message,
            location,
            backtrace,
        }
    }

    /// The child's backtrace of the panic, when the child was asked for one (`RUST_BACKTRACE`
    /// set to `1` or `full` in its environment, as for any Rust panic).
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// The panic message (the payload of `panic!`, when it was a string).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panic happened, as `file:line:column`, when known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}

impl fmt::Display for PanicInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "child process panicked at {loc}: {}", self.message),
            None => write!(f, "child process panicked: {}", self.message),
        }
    }
}

impl std::error::Error for PanicInfo {}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The spawn start method re-executes this program, whose `main` must call
    /// [`init`](crate::init) first (or, in a test binary, invoke
    /// [`test_support!`](crate::test_support)); neither happened in this process.
    #[error(
        "the spawn start method needs multiproc::init() at the top of main \
         (or multiproc::test_support!() in a test binary)"
    )]
    InitNotCalled,
    /// The spawn method finds the target by its offset inside the executable; this target (or
    /// this crate) lives in a shared library loaded at an address of its own. Use
    /// [`StartMethod::Fork`](crate::StartMethod::Fork), or link the code into the executable.
    #[error(
        "the target function is not part of the executable, so a re-executed child cannot find it"
    )]
    TargetNotInExecutable,
    /// The arguments could not be encoded.
    #[error("cannot encode the arguments: {0}")]
    Encode(#[source] CodecError),
    /// The operating system refused to create the process (`fork`, `exec`, `pidfd_open`, …).
    #[error("cannot create the process: {0}")]
    Os(#[source] io::Error),
    /// The child did not take its arguments within the start-up timeout, or ended first.
    #[error("the child did not start: {0}")]
    NotStarted(String),
}

/// How a joined process failed to return a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The target function panicked.
    #[error("{0}")]
    Panicked(PanicInfo),
    /// The process exited without returning (it called `std::process::exit`, or the runtime
    /// aborted) with this exit code.
    #[error("the child process exited with code {0} before returning")]
    Exited(i32),
    /// The process was killed by this signal (for example `SIGKILL` = 9) before returning.
    #[error("the child process was killed by signal {0} before returning")]
    Killed(i32),
    /// The child ended without a report, and its exit status cannot be known: it was collected
    /// elsewhere. This happens in a program that ignores `SIGCHLD` (or sets `SA_NOCLDWAIT`: the
    /// kernel then discards a child's status the moment it ends) or that reaps every child with
    /// `waitpid(-1, …)`. What the child reported still arrives (its result, its panic); only
    /// how it ended without a report (killed, `std::process::exit`) is lost.
    #[error(
        "the child process ended without returning, and its exit status was collected elsewhere \
         (SIGCHLD is ignored, or another part of the program reaps children)"
    )]
    StatusUnknown,
    /// The child never reached its entry point: it ended or stalled during start-up (its `main`
    /// may not call [`init`](crate::init) first, or it crashed before).
    #[error("the child process did not start: {0}")]
    NotStarted(String),
    /// The child ran, but its arguments or its result could not be decoded or encoded.
    #[error("cannot transfer a value between the processes: {0}")]
    Codec(String),
    /// Reading from or waiting for the child failed.
    #[error("cannot wait for the child process: {0}")]
    Io(#[from] io::Error),
}

impl JoinError {
    /// The child's exit code in Python's convention (negative: killed by that signal), where the
    /// error carries one.
    pub fn exitcode(&self) -> Option<i32> {
        match self {
            JoinError::Panicked(_) => Some(1),
            JoinError::Exited(c) => Some(*c),
            JoinError::Killed(s) => Some(-s),
            _ => None,
        }
    }
}

/// [`Process::join_timeout`](crate::Process::join_timeout) failed.
#[derive(thiserror::Error)]
pub enum JoinTimeoutError<R> {
    /// The process is still running; here is its handle back.
    #[error("timed out waiting for the child process")]
    Timeout(crate::Process<R>),
    /// The process ended without a value.
    #[error(transparent)]
    Failed(JoinError),
}

impl<R> fmt::Debug for JoinTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinTimeoutError::Timeout(p) => f.debug_tuple("Timeout").field(p).finish(),
            JoinTimeoutError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}
