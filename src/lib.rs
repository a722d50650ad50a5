//! Python's `multiprocessing` for Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod connection;
mod descriptor;
pub mod process;
pub mod shm;
pub mod sync;
pub(crate) mod sys;

pub use codec::CodecError;
pub use descriptor::Descriptor;
#[doc(hidden)]
pub use process::__mark_test_harness;
pub use process::{
    Builder, JoinError, JoinTimeoutError, PanicInfo, Process, ProcessInfo, StartError, StartMethod,
    active_children, cpu_count, current_process, init, parent_process,
};
pub use shm::{Array, RawArray, RawValue, SharedMemory, ShmSafe, Value};
pub use sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, OwnerDied, RLock, Semaphore};
