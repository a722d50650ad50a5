//! Python's `multiprocessing` for Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod connection;
mod descriptor;
pub(crate) mod sys;

pub use codec::CodecError;
pub use connection::{
    AcceptError, Address, AuthError, BindError, Client, ConnectError, Connection, Listener,
    RecvError, SendError, pipe, wait,
};
pub use descriptor::Descriptor;
