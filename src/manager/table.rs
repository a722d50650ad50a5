//! The server's table of objects: who holds a reference to what, and the one lock per object
//! that makes its calls atomic.
//!
//! Every reference belongs to a client (a connection's session), so that when a client goes
//! away, cleanly or killed, [`Table::release_client`] drops exactly the references it held and
//! frees the objects nobody else holds: Python's manager keeps such objects until the server
//! stops. Objects published under a name are held by the server itself.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::exception::{Exception, ExceptionKind};
use super::referent::{Call, Outcome, Referent};
use crate::object::Object;

/// The identity of an object on one server; never reused while the server runs.
pub(crate) type ObjectId = u64;

/// Who holds a reference: a client session, or the server (named objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    /// The server: published objects live as long as the server.
    Server,
    /// A client session.
    Client(u64),
}

/// What a call returns to the server loop.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// A value.
    Value(Object),
    /// A new object, registered with one reference held by the caller.
    Proxy(ProxyInfo),
}

/// What a client needs to build a proxy of an object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProxyInfo {
    /// The object.
    pub id: ObjectId,
    /// Its type's name in the registry.
    pub typeid: &'static str,
    /// The methods a proxy may call.
    pub exposed: &'static [&'static str],
}

struct Entry {
    referent: Arc<Mutex<Box<dyn Referent>>>,
    typeid: &'static str,
    exposed: &'static [&'static str],
    /// References by holder; the object is freed when none is left.
    refs: HashMap<Holder, usize>,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<ObjectId, Entry>,
    /// The objects each holder references, for releasing a client at once.
    held: HashMap<Holder, HashSet<ObjectId>>,
    next_id: ObjectId,
}

/// The objects of one server.
#[derive(Default)]
pub(crate) struct Table {
    inner: Mutex<Inner>,
}

/// The `KeyError` Python's server raises for an unknown object id, a message for humans.
fn unknown(id: ObjectId) -> Exception {
    Exception::msg(
        ExceptionKind::KeyError,
        format!("no object {id:#x} on this manager (released, or never created)"),
    )
}

/// A poisoned lock means a method panicked half-way; the table's own state is updated in
/// single steps that cannot panic half-way, so it stays consistent and is used as it is.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    /// Registers `referent` with one reference held by `holder`.
    pub fn insert(&self, holder: Holder, referent: Box<dyn Referent>) -> ProxyInfo {
        let mut t = lock(&self.inner);
        t.next_id += 1;
        let id = t.next_id;
        let info = ProxyInfo {
            id,
            typeid: referent.typeid(),
            exposed: referent.exposed(),
        };
        t.objects.insert(
            id,
            Entry {
                referent: Arc::new(Mutex::new(referent)),
                typeid: info.typeid,
                exposed: info.exposed,
                refs: HashMap::from([(holder, 1)]),
            },
        );
        t.held.entry(holder).or_default().insert(id);
        info
    }

    /// Adds a reference to `id` for `holder` (a proxy was copied, or arrived in a message).
    pub fn incref(&self, holder: Holder, id: ObjectId) -> Result<ProxyInfo, Exception> {
        let mut t = lock(&self.inner);
        let entry = t.objects.get_mut(&id).ok_or_else(|| unknown(id))?;
        *entry.refs.entry(holder).or_default() += 1;
        let info = ProxyInfo {
            id,
            typeid: entry.typeid,
            exposed: entry.exposed,
        };
        t.held.entry(holder).or_default().insert(id);
        Ok(info)
    }

    /// Drops one reference of `holder` to `id`, freeing the object when it was the last.
    pub fn decref(&self, holder: Holder, id: ObjectId) -> Result<(), Exception> {
        let freed = {
            let mut t = lock(&self.inner);
            let entry = t.objects.get_mut(&id).ok_or_else(|| unknown(id))?;
            let Some(n) = entry.refs.get_mut(&holder) else {
                return Err(Exception::msg(
                    ExceptionKind::KeyError,
                    format!("this client holds no reference to object {id:#x}"),
                ));
            };
            *n -= 1;
            if *n == 0 {
                entry.refs.remove(&holder);
                if let Some(h) = t.held.get_mut(&holder) {
                    h.remove(&id);
                }
            }
            Self::free_if_unheld(&mut t, id)
        };
        // Dropped outside the table's lock: a large object takes time to free.
        drop(freed);
        Ok(())
    }

    /// Drops every reference `holder` has (a client disconnected or died); returns how many
    /// objects were freed.
    pub fn release(&self, holder: Holder) -> usize {
        let freed: Vec<_> = {
            let mut t = lock(&self.inner);
            let ids = t.held.remove(&holder).unwrap_or_default();
            ids.into_iter()
                .filter_map(|id| {
                    t.objects.get_mut(&id)?.refs.remove(&holder);
                    Self::free_if_unheld(&mut t, id)
                })
                .collect()
        };
        freed.len()
    }

    fn free_if_unheld(t: &mut Inner, id: ObjectId) -> Option<Entry> {
        if t.objects.get(&id)?.refs.is_empty() {
            t.objects.remove(&id)
        } else {
            None
        }
    }

    /// The number of live objects (Python's `_number_of_objects()`).
    pub fn len(&self) -> usize {
        lock(&self.inner).objects.len()
    }

    /// Runs a method of object `id` on behalf of `holder`, under the object's own lock, so
    /// that calls on one object are atomic with respect to each other while calls on other
    /// objects run alongside. A new object the method returns is registered for `holder`.
    pub fn call(&self, holder: Holder, id: ObjectId, call: Call) -> Result<Answer, Exception> {
        let referent = {
            let t = lock(&self.inner);
            Arc::clone(&t.objects.get(&id).ok_or_else(|| unknown(id))?.referent)
        };
        let outcome = lock(&referent).dispatch(call)?;
        Ok(match outcome {
            Outcome::Value(v) => Answer::Value(v),
            Outcome::Referent(r) => Answer::Proxy(self.insert(holder, r)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::create;

    fn new_dict(t: &Table, holder: Holder) -> ObjectId {
        t.insert(holder, create("dict", Call::new("", vec![])).unwrap())
            .id
    }

    #[test]
    fn an_object_lives_while_someone_holds_it() {
        let t = Table::default();
        let (a, b) = (Holder::Client(1), Holder::Client(2));
        let id = new_dict(&t, a);
        t.incref(b, id).unwrap();
        t.decref(a, id).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.decref(a, id).is_err(), "a holds nothing any more");
        t.decref(b, id).unwrap();
        assert_eq!(t.len(), 0);
        let err = t.call(b, id, Call::new("__len__", vec![])).unwrap_err();
        assert_eq!(err.kind(), ExceptionKind::KeyError);
    }

    #[test]
    fn a_departed_client_releases_what_it_held() {
        let t = Table::default();
        let (gone, stays) = (Holder::Client(1), Holder::Client(2));
        let shared = new_dict(&t, gone);
        t.incref(stays, shared).unwrap();
        let own = new_dict(&t, gone);
        t.incref(gone, own).unwrap(); // two references, one client
        let named = new_dict(&t, Holder::Server);
        t.incref(gone, named).unwrap();
        // An iterator the client got back is its own too.
        let iter = t.call(gone, own, Call::new("__iter__", vec![])).unwrap();
        assert!(matches!(
            iter,
            Answer::Proxy(ProxyInfo {
                typeid: "Iterator",
                ..
            })
        ));
        assert_eq!(t.len(), 4);
        assert_eq!(t.release(gone), 2, "its dict and its iterator");
        assert_eq!(t.len(), 2, "the shared and the named objects remain");
        assert_eq!(t.release(gone), 0);
        t.call(stays, shared, Call::new("__len__", vec![])).unwrap();
        t.call(stays, named, Call::new("__len__", vec![])).unwrap();
    }

    #[test]
    fn calls_on_one_object_are_atomic() {
        let t = Arc::new(Table::default());
        let id = new_dict(&t, Holder::Server);
        let n = 4;
        let rounds = 500;
        let threads: Vec<_> = (0..n)
            .map(|c| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        let key = Object::from(c * rounds + i);
                        let set = Call::new("__setitem__", vec![key, Object::None]);
                        t.call(Holder::Client(c), id, set).unwrap();
                        let args = vec!["hits".into(), "add".into(), 1.into()];
                        t.call(Holder::Client(c), id, Call::new("update_with", args))
                            .unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let len = t.call(Holder::Server, id, Call::new("__len__", vec![]));
        assert_eq!(len.unwrap(), Answer::Value(Object::from(n * rounds + 1)));
        let hits = Call::new("__getitem__", vec!["hits".into()]);
        let hits = t.call(Holder::Server, id, hits).unwrap();
        assert_eq!(
            hits,
            Answer::Value(Object::from(n * rounds)),
            "no update lost"
        );
    }
}
