//! A Rust client of Python's own manager server.

use super::{Address, Link, Manager, ManagerError, Serving};

impl Manager {
    /// Connects to Python's own manager server (`SyncManager(address, authkey)
    /// .get_server().serve_forever()`, or a `BaseManager`'s) at `address`, speaking its
    /// pickled protocol: the same proxy types use its dict, list, Namespace, Value and Queue,
    /// Python's exceptions arrive typed ([`ExceptionKind`](crate::manager::ExceptionKind)), and every
    /// proxy decrefs its object when dropped. Each `create`, `incref` and `decref` opens a
    /// connection of its own, as Python's client does; the handshake of Python 3.11 (HMAC-MD5)
    /// is accepted.
    ///
    /// What Python's server cannot do is refused by it: [`Manager::pipeline`] sends the calls
    /// one by one, and the methods beyond Python's (`update_with`, …) raise.
    ///
    /// ```no_run
    /// use multiproc::manager::{ExceptionKind, Manager, ManagerError};
    ///
    /// // Python: SyncManager(address=('127.0.0.1', 50000), authkey=b'key').get_server().serve_forever()
    /// let m = Manager::connect_python("127.0.0.1:50000".parse::<multiproc::Address>()?, b"key")?;
    /// let d = m.dict()?;
    /// d.set("seen", 1)?;
    /// match d.get_item("missing") {
    ///     Err(ManagerError::Raised(e)) => assert_eq!(e.kind(), ExceptionKind::KeyError),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ManagerError::Connect`] when it cannot be reached or refuses the key.
    #[cfg(feature = "python")]
    pub fn connect_python(
        address: impl Into<Address>,
        authkey: impl AsRef<[u8]>,
    ) -> Result<Manager, ManagerError> {
        let link = Link::shared(&address.into(), authkey.as_ref(), true)?;
        link.value(None, "dummy", vec![])?;
        Ok(Manager {
            link,
            serving: Serving::Remote,
        })
    }
}
