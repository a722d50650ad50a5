//! Proxies stored inside managed objects: the reference a container keeps, and the working
//! proxy it reads back as.

use super::{Dict, ManagerError, Object, Proxy, Reply};

impl Proxy {
    /// A working proxy of the object a proxy reference names ([`Object::Proxy`], read back
    /// from a managed dict or list that holds it), on this proxy's manager; it takes a
    /// reference of its own.
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::manager::{ListProxy, Manager};
    ///
    /// let m = Manager::start_thread().unwrap();
    /// let d = m.dict().unwrap();
    /// d.set("x", &m.list(vec![1]).unwrap()).unwrap();
    /// let inner = d.as_proxy().resolve(&d.get_item("x").unwrap()).unwrap();
    /// let inner = ListProxy::try_from(inner).unwrap();
    /// inner.append(2).unwrap();
    /// assert_eq!(d.to_string(), format!("{{'x': <ListProxy object, typeid 'list' at {:#x}>}}", inner.as_proxy().id()));
    /// assert_eq!(inner.to_string(), "[1, 2]");
    /// ```
    ///
    /// # Errors
    ///
    /// [`ManagerError::Protocol`] when `o` is not a proxy reference; `KeyError` when the
    /// object is gone.
    pub fn resolve(&self, o: &Object) -> Result<Proxy, ManagerError> {
        let Object::Proxy(r) = o else {
            return Err(ManagerError::Protocol(format!("{o} is not a proxy")));
        };
        let Some((link, _)) = self.on_manager() else {
            return Err(ManagerError::Protocol(
                "proxies stored in objects are resolved on a manager, not in Redis".into(),
            ));
        };
        let link = link.current()?;
        let reply = link.request(None, "incref", vec![Object::from(r.id)], Dict::new())?;
        match reply {
            // Python's server answers an incref with None.
            Reply::Return(_) if link.python => Ok(Proxy::manager(link, r.id, r.typeid.clone())),
            reply => Proxy::from_reply(link, reply),
        }
    }

    /// The object's id on its manager.
    ///
    /// ```
    /// # multiproc::init();
    /// let m = multiproc::manager::Manager::start_thread().unwrap();
    /// let (a, b) = (m.dict().unwrap(), m.dict().unwrap());
    /// assert_ne!(a.as_proxy().id(), b.as_proxy().id());
    /// ```
    pub fn id(&self) -> u64 {
        self.on_manager().map_or(0, |(_, id)| id)
    }
}

impl From<&Proxy> for Object {
    /// A reference to the proxy's object, to store in a managed dict or list (Python's
    /// `d['x'] = proxy`): the container then keeps the object alive.
    fn from(p: &Proxy) -> Object {
        crate::object::ProxyRef::new(p.typeid.clone(), p.id()).into()
    }
}
