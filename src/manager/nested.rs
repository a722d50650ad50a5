//! Proxies stored inside managed objects (`d['x'] = m.list()`): the container holds a
//! reference to each object it names, so an object lives while a container holds a proxy of
//! it, and is freed when the entry goes and no proxy of it remains.
//!
//! A call that hands proxies to a container, or changes a container that holds some, is
//! followed by a scan of the container's contents, and its references are set to what it
//! holds then ([`Holder::Object`]). A reference the container gave up is kept a moment longer
//! ([`Holder::Handover`], [`HANDOVER`]): the caller that took the proxy out (`pop`,
//! `Queue.get`) takes its own reference when it reads the reply, and must find the object
//! still there.

use std::collections::HashMap;
use std::time::Duration;

use super::table::ObjectId;
use crate::object::Object;

/// How long a reference a container gave up is kept for the taker of the proxy.
pub(crate) const HANDOVER: Duration = Duration::from_secs(10);

/// The objects the proxy references inside `objects` name, with how often each is named.
pub(crate) fn proxies_in<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
) -> HashMap<ObjectId, usize> {
    let mut found = HashMap::new();
    let mut todo: Vec<&Object> = objects.into_iter().collect();
    while let Some(o) = todo.pop() {
        match o {
            Object::Proxy(p) => *found.entry(p.id).or_default() += 1,
            Object::List(v) | Object::Tuple(v) => todo.extend(v),
            Object::Dict(d) => todo.extend(d.values()),
            _ => {}
        }
    }
    found
}

/// Whether `objects` hold a proxy reference anywhere (no allocation for scalars).
pub(crate) fn has_proxy<'a>(objects: impl IntoIterator<Item = &'a Object>) -> bool {
    let mut todo: Vec<&Object> = Vec::new();
    for o in objects {
        match o {
            Object::Proxy(_) => return true,
            Object::List(_) | Object::Tuple(_) | Object::Dict(_) => todo.push(o),
            _ => {}
        }
    }
    while let Some(o) = todo.pop() {
        match o {
            Object::Proxy(_) => return true,
            Object::List(v) | Object::Tuple(v) => todo.extend(v),
            Object::Dict(d) => todo.extend(d.values()),
            _ => {}
        }
    }
    false
}

/// Methods that never change what an object holds: no scan after them.
pub(crate) fn reads_only(method: &str) -> bool {
    matches!(
        method,
        "__getitem__"
            | "get"
            | "__len__"
            | "__contains__"
            | "keys"
            | "values"
            | "items"
            | "copy"
            | "__str__"
            | "__repr__"
            | "#GETVALUE"
            | "count"
            | "index"
            | "__iter__"
            | "__reversed__"
            | "__add__"
            | "__mul__"
            | "__rmul__"
            | "__getattribute__"
            | "qsize"
            | "empty"
            | "full"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ProxyRef;

    #[test]
    fn finds_every_reference_with_its_count() {
        let p = |id| Object::from(ProxyRef::new("list", id));
        let mut d = crate::object::Dict::new();
        d.insert("a", p(1)).unwrap();
        d.insert(
            "b",
            Object::List(vec![p(2), p(1), Object::Tuple(vec![p(3)])]),
        )
        .unwrap();
        let o = Object::Dict(d);
        let found = proxies_in([&o]);
        assert_eq!(found, HashMap::from([(1, 2), (2, 1), (3, 1)]));
        assert!(has_proxy([&o]));
        assert!(!has_proxy([&crate::obj!([1, {"a": (2,)}])]));
    }

    use crate::manager::create;
    use crate::manager::referent::{Call, Holder};
    use crate::manager::table::{Answer, Table};

    fn new(t: &Table, who: Holder, typeid: &str) -> ObjectId {
        t.insert(who, create(typeid, Call::new("", vec![])).unwrap())
            .id
    }

    fn call(t: &Table, id: ObjectId, who: Holder, method: &str, args: Vec<Object>) -> Object {
        let c = Call {
            who,
            ..Call::new(method, args)
        };
        match t.call(id, c, who).0.unwrap() {
            Answer::Value(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stored_proxy_keeps_its_object_until_the_entry_goes() {
        let t = Table::default();
        let a = Holder::Client(1);
        let d = new(&t, a, "dict");
        let l = new(&t, a, "list");
        let r = Object::from(ProxyRef::new("list", l));
        call(&t, d, a, "__setitem__", vec!["x".into(), r.clone()]);
        call(
            &t,
            d,
            a,
            "__setitem__",
            vec!["y".into(), Object::List(vec![r.clone()])],
        );
        t.decref(a, l).unwrap();
        assert_eq!(t.len(), 2, "the dict holds the list");
        call(&t, d, a, "__delitem__", vec!["x".into()]);
        assert_eq!(t.len(), 2, "still named under 'y'");
        call(&t, d, a, "__setitem__", vec!["y".into(), 1.into()]);
        assert_eq!(t.len(), 1, "no entry names it: freed");
        // A container freed frees what only it held, down a chain.
        let inner = new(&t, a, "list");
        let mid = new(&t, a, "dict");
        call(
            &t,
            mid,
            a,
            "__setitem__",
            vec!["l".into(), ProxyRef::new("list", inner).into()],
        );
        call(
            &t,
            d,
            a,
            "__setitem__",
            vec!["m".into(), ProxyRef::new("dict", mid).into()],
        );
        t.decref(a, inner).unwrap();
        t.decref(a, mid).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.release(a).0,
            3,
            "the dict, then what it held, then what that held"
        );
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_proxy_taken_out_survives_until_the_taker_holds_it() {
        let t = Table::default();
        let (a, b) = (Holder::Client(1), Holder::Client(2));
        let d = new(&t, a, "dict");
        let l = new(&t, a, "list");
        call(
            &t,
            d,
            a,
            "__setitem__",
            vec!["x".into(), ProxyRef::new("list", l).into()],
        );
        t.decref(a, l).unwrap();
        let got = call(&t, d, b, "pop", vec!["x".into()]);
        assert_eq!(got, Object::from(ProxyRef::new("list", l)));
        assert_eq!(t.len(), 2, "kept for the taker");
        t.incref(b, l).unwrap();
        let later = std::time::Instant::now() + HANDOVER * 2;
        assert!(t.next_deadline().is_some());
        let _ = t.expire(later);
        assert_eq!(t.len(), 2, "the taker holds it now");
        t.decref(b, l).unwrap();
        assert_eq!(t.len(), 1);
        // Through a queue to a getter that was waiting.
        let q = new(&t, a, "Queue");
        let l = new(&t, a, "list");
        let c = Call {
            who: b,
            ..Call::new("get", vec![])
        };
        assert_eq!(t.call(q, c, b).0.unwrap(), Answer::Waiting);
        let c = Call {
            who: a,
            ..Call::new("put", vec![ProxyRef::new("list", l).into()])
        };
        let woken = t.call(q, c, a).1;
        assert_eq!(woken.len(), 1);
        t.decref(a, l).unwrap();
        assert_eq!(t.len(), 3, "the dict, the queue and the list in transit");
        let _ = t.expire(later);
        assert_eq!(t.len(), 2, "nobody took it");
    }
}
