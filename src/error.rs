//! The umbrella error type.

use crate::codec::CodecError;
use crate::process::{JoinError, StartError};
use crate::shm::{AttachError, CreateError, OutOfBounds, SharedMemoryError};
use crate::sync::{BarrierWaitError, ReleaseError};

/// Any error of this crate, for code that does not need to tell them apart.
///
/// Every fallible operation has its own error type (so that, for example, a failed send can hand
/// the value back); each converts into this one with `?`.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// fn double(x: i32) -> i32 {
///     x * 2
/// }
///
/// fn run() -> Result<i32, multiproc::Error> {
///     let p = multiproc::Process::start(double, 21)?;
///     Ok(p.join()?)
/// }
///
/// assert_eq!(run().unwrap(), 42);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A process could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A process ended without a result.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A shared object could not be created.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// A received segment is not the object asked for.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// A named shared-memory segment could not be created, opened or unlinked.
    #[error(transparent)]
    SharedMemory(#[from] SharedMemoryError),
    /// An index past the end of a shared array or segment.
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
    /// A semaphore was released too many times.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A barrier was broken.
    #[error(transparent)]
    Barrier(#[from] BarrierWaitError),
    /// A message could not be sent on a connection.
    #[error(transparent)]
    Send(#[from] crate::connection::SendError),
    /// A manager call failed, or the manager could not be reached or started.
    #[error(transparent)]
    Manager(#[from] crate::manager::ManagerError),
    /// A message could not be received from a connection.
    #[error(transparent)]
    Recv(#[from] crate::connection::RecvError),
    /// A listener could not be created.
    #[error(transparent)]
    Bind(#[from] crate::connection::BindError),
    /// A listener could not accept a client (or the client failed the handshake).
    #[error(transparent)]
    Accept(#[from] crate::connection::AcceptError),
    /// A client could not connect (or the listener failed the handshake).
    #[error(transparent)]
    Connect(#[from] crate::connection::ConnectError),
    /// A queue could not be created or received.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// A value could not be taken from a queue.
    #[error(transparent)]
    Get(#[from] crate::queue::GetError),
    /// `JoinableQueue::task_done` was called too many times.
    #[error(transparent)]
    TaskDone(#[from] crate::queue::TaskDoneError),
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
