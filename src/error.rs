//! The umbrella error type.

use crate::codec::CodecError;
use crate::process::{JoinError, StartError};

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
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
