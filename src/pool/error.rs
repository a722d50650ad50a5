//! Errors of the pool: starting it, and the failure of one task.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CodecError;
use crate::process::{PanicInfo, StartError};

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerExit {
    /// It was killed by this signal (`9` for `SIGKILL`).
    Signal(i32),
    /// It exited with this code (for example through `std::process::exit`).
    Code(i32),
    /// It ended, and its exit status was collected elsewhere (this program ignores `SIGCHLD`).
    Unknown,
}

impl WorkerExit {
    /// The signal that killed the worker, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            WorkerExit::Signal(s) => Some(s),
            _ => None,
        }
    }

    /// The worker's exit code, if it exited rather than being killed.
    pub fn code(self) -> Option<i32> {
        match self {
            WorkerExit::Code(c) => Some(c),
            _ => None,
        }
    }
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkerExit::Signal(s) => match signal_name(s) {
                Some(name) => write!(f, "was killed by signal {s} ({name})"),
                None => write!(f, "was killed by signal {s}"),
            },
            WorkerExit::Code(c) => write!(f, "exited with code {c}"),
            WorkerExit::Unknown => f.write_str("ended (its exit status was collected elsewhere)"),
        }
    }
}

/// Why one task of a [`Pool`](super::Pool) gave no value.
///
/// Every variant that concerns a task names it by its index in the input (`task`), counted from
/// 0 for each call (`map`, `imap`, …); `apply` has the single task 0. A task's failure is that
/// task's alone: the pool stays usable, and the other tasks of the call complete.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::pool::{Pool, TaskError};
///
/// fn check(x: u32) -> u32 {
///     assert!(x != 2, "two is not allowed");
///     x
/// }
///
/// let pool = Pool::new(2).unwrap();
/// let results = pool.map_results(check, 0..4u32);
/// match &results[2] {
///     Err(TaskError::Panicked { task: 2, info }) => {
///         assert_eq!(info.message(), "two is not allowed")
///     }
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(results[3].as_ref().unwrap(), &3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked; the worker lives on.
    Panicked {
        /// The task's index in its call.
        task: u64,
        /// The panic's message and location.
        info: PanicInfo,
    },
    /// The worker process running the task ended before it returned: killed by a signal (the
    /// OOM killer, `kill -9`), or exited. A new worker replaced it. Tasks run in chunks (see
    /// [chunking](super#chunking)), and every task of the chunk the worker held gets this error.
    WorkerDied {
        /// The task's index in its call.
        task: u64,
        /// The worker's process id.
        pid: u32,
        /// How the worker ended.
        exit: WorkerExit,
    },
    /// The task ran longer than the [per-task time-out](super::Builder::timeout); its worker
    /// was killed and replaced.
    TimedOut {
        /// The task's index in its call.
        task: u64,
        /// The worker's process id.
        pid: u32,
        /// The time-out that passed.
        timeout: Duration,
    },
    /// The task's argument or result could not be encoded or decoded.
    Codec {
        /// The task's index in its call.
        task: u64,
        /// What the failing serde implementation said.
        message: String,
    },
    /// The pool was terminated (or dropped) before the task finished.
    Terminated {
        /// The task's index in its call.
        task: u64,
    },
    /// No worker can run: the initializer failed (or workers died during start-up) again and
    /// again, so the pool stopped replacing them.
    NoWorkers {
        /// The task's index in its call.
        task: u64,
        /// The last failure.
        reason: String,
    },
    /// The pool was closed: it takes no new work.
    Closed,
}

impl TaskError {
    /// The index of the task this error belongs to, when it belongs to one.
    pub fn task(&self) -> Option<u64> {
        match *self {
            TaskError::Panicked { task, .. }
            | TaskError::WorkerDied { task, .. }
            | TaskError::TimedOut { task, .. }
            | TaskError::Codec { task, .. }
            | TaskError::Terminated { task }
            | TaskError::NoWorkers { task, .. } => Some(task),
            TaskError::Closed => None,
        }
    }

    /// The same error for another task.
    pub(super) fn for_task(&self, index: u64) -> TaskError {
        let mut e = self.clone();
        match &mut e {
            TaskError::Panicked { task, .. }
            | TaskError::WorkerDied { task, .. }
            | TaskError::TimedOut { task, .. }
            | TaskError::Codec { task, .. }
            | TaskError::Terminated { task }
            | TaskError::NoWorkers { task, .. } => *task = index,
            TaskError::Closed => {}
        }
        e
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked { task, info } => match info.location() {
                Some(loc) => write!(f, "task {task} panicked at {loc}: {}", info.message()),
                None => write!(f, "task {task} panicked: {}", info.message()),
            },
            TaskError::WorkerDied { task, pid, exit } => {
                write!(f, "task {task}: its worker process {pid} {exit}")
            }
            TaskError::TimedOut { task, pid, timeout } => write!(
                f,
                "task {task} ran longer than {timeout:?}; its worker process {pid} was killed"
            ),
            TaskError::Codec { task, message } => write!(f, "task {task}: {message}"),
            TaskError::Terminated { task } => {
                write!(f, "task {task}: the pool was terminated before it finished")
            }
            TaskError::NoWorkers { task, reason } => {
                write!(
                    f,
                    "task {task}: the pool has no worker that can run: {reason}"
                )
            }
            TaskError::Closed => f.write_str("the pool is closed"),
        }
    }
}

impl std::error::Error for TaskError {}

/// Why a [`Pool`](super::Pool) could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("a pool needs at least one worker process")]
    NoProcesses,
    /// A worker process could not be started.
    #[error("cannot start a worker process: {0}")]
    Start(#[source] StartError),
    /// The initializer's arguments could not be encoded.
    #[error("cannot encode the initializer's arguments: {0}")]
    Encode(#[source] CodecError),
    /// The initializer failed in a worker (with its panic message), or the worker ended during
    /// its start-up; the pool gives up instead of replacing workers without end.
    #[error("a worker failed to start: {0}")]
    Init(String),
    /// The system refused a descriptor or a thread.
    #[error("cannot set up the pool: {0}")]
    Os(#[source] std::io::Error),
}

/// What a worker reports about a task that gave no value: the part of a [`TaskError`] the
/// worker knows. One pointer wide, so that a chunk's `Vec<Result<R, Fault>>` stays small and
/// converts in place.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Fault(Box<FaultKind>);

#[derive(Debug, Serialize, Deserialize)]
enum FaultKind {
    /// The task panicked.
    Panicked(PanicInfo),
    /// The result could not be encoded.
    Codec(String),
}

impl Fault {
    pub(super) fn panicked(info: PanicInfo) -> Fault {
        Fault(Box::new(FaultKind::Panicked(info)))
    }

    pub(super) fn codec(message: String) -> Fault {
        Fault(Box::new(FaultKind::Codec(message)))
    }

    pub(super) fn into_error(self, task: u64) -> TaskError {
        match *self.0 {
            FaultKind::Panicked(info) => TaskError::Panicked { task, info },
            FaultKind::Codec(message) => TaskError::Codec { task, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_deaths_name_the_signal() {
        let e = TaskError::WorkerDied {
            task: 7,
            pid: 42,
            exit: WorkerExit::Signal(9),
        };
        assert_eq!(
            e.to_string(),
            "task 7: its worker process 42 was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(e.for_task(8).task(), Some(8));
        assert_eq!(
            WorkerExit::Code(3).to_string(),
            "exited with code 3",
            "exit codes are named"
        );
        assert_eq!(
            WorkerExit::Signal(64).to_string(),
            "was killed by signal 64"
        );
        assert_eq!(TaskError::Closed.task(), None);
    }
}
