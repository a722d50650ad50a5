//! Framed messages between processes: the wire format of Python's `multiprocessing.connection`.

pub(crate) mod frame;
