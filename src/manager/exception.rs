//! Exceptions raised by the methods of managed objects, named as Python names them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::object::Object;

/// The type of an [`Exception`]: the Python exception a method raised.
///
/// The names are Python's, so that a Python client of the manager raises the same exception
/// it would raise on a local object (`KeyError`, `queue.Empty`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExceptionKind {
    /// `KeyError`: a missing dict key.
    KeyError,
    /// `IndexError`: an index out of range.
    IndexError,
    /// `ValueError`: a value not found, or of the right type but wrong.
    ValueError,
    /// `TypeError`: an argument of the wrong type, or the wrong number of arguments.
    TypeError,
    /// `AttributeError`: a missing attribute of a `Namespace`, or a method the object does not
    /// have.
    AttributeError,
    /// `StopIteration`: an iterator is exhausted.
    StopIteration,
    /// `MemoryError`: the result would be larger than the server allows for one call.
    MemoryError,
    /// `OverflowError`: a number too large for the operation.
    OverflowError,
    /// `RuntimeError`: releasing a lock that is not held, waiting on a condition without its
    /// lock.
    RuntimeError,
    /// `queue.Empty`: `get` found nothing in time.
    Empty,
    /// `queue.Full`: `put` found no room in time.
    Full,
    /// `queue.ShutDown` (Python 3.13): the queue was shut down.
    ShutDown,
    /// `threading.BrokenBarrierError`: a barrier was broken, aborted or reset.
    BrokenBarrierError,
}

impl ExceptionKind {
    /// The exception's module and name in Python (`("builtins", "KeyError")`).
    pub fn python_name(self) -> (&'static str, &'static str) {
        match self {
            Self::KeyError => ("builtins", "KeyError"),
            Self::IndexError => ("builtins", "IndexError"),
            Self::ValueError => ("builtins", "ValueError"),
            Self::TypeError => ("builtins", "TypeError"),
            Self::AttributeError => ("builtins", "AttributeError"),
            Self::StopIteration => ("builtins", "StopIteration"),
            Self::MemoryError => ("builtins", "MemoryError"),
            Self::OverflowError => ("builtins", "OverflowError"),
            Self::RuntimeError => ("builtins", "RuntimeError"),
            Self::Empty => ("_queue", "Empty"),
            Self::Full => ("queue", "Full"),
            Self::ShutDown => ("queue", "ShutDown"),
            Self::BrokenBarrierError => ("threading", "BrokenBarrierError"),
        }
    }
}

/// An exception raised by a method of a managed object: its [kind](ExceptionKind) and its
/// arguments, as Python's exception objects carry them (`KeyError('zz')` has the one argument
/// `'zz'`).
///
/// `Display` prints what Python's `str(exc)` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    kind: ExceptionKind,
    args: Vec<Object>,
}

impl Exception {
    /// An exception of `kind` with the given arguments.
    pub fn new(kind: ExceptionKind, args: Vec<Object>) -> Self {
        Exception { kind, args }
    }

    /// An exception of `kind` whose one argument is the message `msg`.
    pub fn msg(kind: ExceptionKind, msg: impl Into<String>) -> Self {
        Self::new(kind, vec![Object::Str(msg.into())])
    }

    /// `TypeError(msg)`.
    pub(crate) fn type_error(msg: impl Into<String>) -> Self {
        Self::msg(ExceptionKind::TypeError, msg)
    }

    /// The exception's type.
    pub fn kind(&self) -> ExceptionKind {
        self.kind
    }

    /// The exception's arguments (Python's `exc.args`).
    pub fn args(&self) -> &[Object] {
        &self.args
    }
}

impl fmt::Display for Exception {
    /// Python's `str(exc)`: the one argument (its `repr` for a `KeyError`, as Python shows a
    /// missing key), nothing for none, the tuple of them for several.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.args.as_slice() {
            [] => Ok(()),
            [Object::Str(s)] if self.kind != ExceptionKind::KeyError => f.write_str(s),
            [one] => write!(f, "{one}"),
            many => write!(f, "{}", Object::Tuple(many.to_vec())),
        }
    }
}

impl std::error::Error for Exception {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    #[test]
    fn str_of_an_exception_is_pythons() {
        let key = Exception::new(ExceptionKind::KeyError, vec![obj!("zz")]);
        assert_eq!(key.to_string(), "'zz'");
        assert_eq!(key.args(), [obj!("zz")]);
        let index = Exception::msg(ExceptionKind::IndexError, "list index out of range");
        assert_eq!(index.to_string(), "list index out of range");
        let stop = Exception::new(ExceptionKind::StopIteration, vec![]);
        assert_eq!(stop.to_string(), "");
        let two = Exception::new(ExceptionKind::ValueError, vec![obj!(1), obj!("a")]);
        assert_eq!(two.to_string(), "(1, 'a')");
        assert_eq!(index.kind().python_name(), ("builtins", "IndexError"));
    }
}
