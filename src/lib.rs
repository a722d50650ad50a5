//! Python's `multiprocessing` for Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod connection;
mod descriptor;
pub mod object;
pub(crate) mod sys;

pub use codec::CodecError;
pub use descriptor::Descriptor;
pub use object::Object;
