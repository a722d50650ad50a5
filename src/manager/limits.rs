//! How much memory a server's objects may hold: a bound per object and one for all of them,
//! so that a client cannot grow objects without limit.
//!
//! Sizes are approximate (the bytes of strings, bytes and big integers, plus 32 bytes per
//! item) and counted without walking the objects on every call: each object carries a bound
//! on its size, raised by what each call brings (its arguments; for a list's `*=`, copies of
//! the list), and measured exactly again when a call would pass a limit or the bound has
//! doubled since the object was last measured. An object is therefore counted at most at
//! about twice the most it held since its last measure, never below what it holds; removals
//! count once it is measured again. A call that measures a large object (more than the
//! server's long-call threshold in items) runs on a worker thread, as a long call does: an
//! object kept near its bound makes its own clients' growing calls slow, nobody else's.

use super::exception::{Exception, ExceptionKind};
use super::referent::Call;
use crate::object::Object;

/// The default bound on one object: 1 GiB.
pub(crate) const DEFAULT_MAX_OBJECT: usize = 1 << 30;

/// What each item counts for beside its own bytes.
pub(crate) use super::referent::SLOT;

/// Slack before an object whose bound has grown is measured again.
const REMEASURE_SLACK: usize = 1 << 20;

/// A server's bounds, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Limits {
    /// The most one object may hold.
    pub object: usize,
    /// The most all objects together may hold.
    pub total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            object: DEFAULT_MAX_OBJECT,
            total: usize::MAX,
        }
    }
}

/// Whether an object bounded by `bound` and measured at `measured` should be measured again.
pub(crate) fn stale(bound: usize, measured: usize) -> bool {
    bound > measured.saturating_mul(2).saturating_add(REMEASURE_SLACK)
}

/// The approximate size of `items`, or `None` as soon as it passes `budget` (so that
/// measuring costs no more than the budget allows).
pub(crate) fn weigh<'a>(
    items: impl IntoIterator<Item = &'a Object>,
    budget: usize,
) -> Option<usize> {
    let mut left = budget;
    let mut stack: Vec<&Object> = Vec::new();
    for o in items {
        if o.len().is_some() && !matches!(o, Object::Str(_) | Object::Bytes(_)) {
            stack.push(o);
            if !super::referent::fits_walk(&mut stack, &mut left) {
                return None;
            }
        } else {
            // A plain value: no walk (and no allocation) for the usual arguments.
            left = left.checked_sub(super::referent::own_size(o))?;
        }
    }
    Some(budget - left)
}

/// The size a call brings to its object: its arguments.
pub(crate) fn incoming(call: &Call) -> usize {
    let kwargs = call.kwargs.iter().flat_map(|(k, v)| [k, v]);
    weigh(call.args.iter().chain(kwargs), usize::MAX).unwrap_or(usize::MAX)
}

/// How many copies of itself the built-in call adds to an object of type `typeid` beyond its
/// arguments: a list's `l *= n` adds `n - 1`.
pub(crate) fn copies_added(typeid: &str, call: &Call) -> usize {
    match (typeid, call.method.as_str(), call.args.first()) {
        ("list", "__imul__", Some(Object::Int(n))) => {
            usize::try_from(*n).unwrap_or(0).saturating_sub(1)
        }
        _ => 0,
    }
}

/// The `MemoryError` of an object that would pass its bound.
pub(crate) fn object_too_large(limit: usize) -> Exception {
    Exception::msg(
        ExceptionKind::MemoryError,
        format!(
            "the object would hold more than the manager allows for one object ({limit} bytes)"
        ),
    )
}

/// The `MemoryError` of a server whose objects would pass their bound together.
pub(crate) fn server_full(limit: usize) -> Exception {
    Exception::msg(
        ExceptionKind::MemoryError,
        format!("the manager's objects would hold more than it allows ({limit} bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::custom::Types;
    use crate::manager::table::{Answer, Holder, ObjectId, Table};
    use crate::obj;

    const WHO: Holder = Holder::Client(1);

    fn table(object: usize, total: usize) -> Table {
        Table::new(Types::default(), Limits { object, total })
    }

    fn make(t: &Table, typeid: &str, args: Vec<Object>) -> Result<ObjectId, Exception> {
        let referent = t.create(typeid, Call::new(typeid, args))?;
        Ok(t.try_insert(WHO, referent)?.id)
    }

    fn call(t: &Table, id: ObjectId, method: &str, args: Vec<Object>) -> Result<Object, Exception> {
        let c = Call {
            who: WHO,
            ..Call::new(method, args)
        };
        match t.call(id, c, WHO).0? {
            Answer::Value(v) => Ok(v),
            other => panic!("{other:?}"),
        }
    }

    fn memory_error(r: Result<impl std::fmt::Debug, Exception>) {
        match r {
            Err(e) => assert_eq!(e.kind(), ExceptionKind::MemoryError, "{e}"),
            Ok(v) => panic!("not refused: {v:?}"),
        }
    }

    #[test]
    fn an_object_grows_up_to_its_bound_and_again_once_emptied() {
        let t = table(1 << 20, usize::MAX);
        let l = make(&t, "list", vec![]).unwrap();
        let chunk = Object::Bytes(vec![7; 100_000]);
        for _ in 0..10 {
            call(&t, l, "append", vec![chunk.clone()]).unwrap();
        }
        memory_error(call(&t, l, "append", vec![chunk.clone()]));
        assert_eq!(call(&t, l, "__len__", vec![]).unwrap(), obj!(10));
        // Emptied, it is measured again when its bound says it is full: there is room.
        call(&t, l, "clear", vec![]).unwrap();
        for _ in 0..10 {
            call(&t, l, "append", vec![chunk.clone()]).unwrap();
        }
        // One request cannot make a larger object either.
        memory_error(make(&t, "list", vec![Object::List(vec![chunk; 11])]));
    }

    #[test]
    fn repetition_in_place_is_counted() {
        let t = table(1 << 20, usize::MAX);
        let l = make(&t, "list", vec![obj!([b"0123456789"])]).unwrap();
        call(&t, l, "__imul__", vec![obj!(1000)]).unwrap();
        memory_error(call(&t, l, "__imul__", vec![obj!(1000)]));
        assert_eq!(call(&t, l, "__len__", vec![]).unwrap(), obj!(1000));
    }

    #[test]
    fn all_objects_share_the_total_and_freed_ones_give_it_back() {
        let t = table(usize::MAX, 1 << 20);
        let big = Object::Bytes(vec![1; 600_000]);
        let a = make(&t, "dict", vec![]).unwrap();
        call(&t, a, "__setitem__", vec![obj!("k"), big.clone()]).unwrap();
        let b = make(&t, "dict", vec![]).unwrap();
        memory_error(call(&t, b, "__setitem__", vec![obj!("k"), big.clone()]));
        // A snapshot of a large object is an object too.
        let keys = crate::object::Dict::try_from_iter((0..6000).map(|i| (i, ()))).unwrap();
        let c = make(&t, "dict", vec![Object::Dict(keys)]).unwrap();
        memory_error(call(&t, c, "__iter__", vec![]));
        t.decref(WHO, a).unwrap();
        call(&t, b, "__setitem__", vec![obj!("k"), big]).unwrap();
        assert!(t.bytes() < 1 << 20, "{}", t.bytes());
    }

    #[test]
    fn a_queue_that_is_emptied_as_fast_as_it_is_filled_never_fills() {
        let t = table(1 << 20, 1 << 20);
        let q = make(&t, "Queue", vec![]).unwrap();
        let item = Object::Bytes(vec![3; 10_000]);
        for _ in 0..1000 {
            call(&t, q, "put", vec![item.clone()]).unwrap();
            call(&t, q, "get", vec![]).unwrap();
        }
        assert!(t.bytes() < 4 << 20);
    }

    #[test]
    fn a_value_grown_in_place_answers_its_length() {
        let t = table(1 << 20, usize::MAX);
        let d = make(&t, "dict", vec![]).unwrap();
        let s = Object::Str("x".repeat(100_000));
        call(&t, d, "__setitem__", vec![obj!("s"), obj!("")]).unwrap();
        for i in 1..=10 {
            let r = call(
                &t,
                d,
                "update_with",
                vec![obj!("s"), obj!("add"), s.clone()],
            );
            assert_eq!(r.unwrap(), Object::from(i * 100_000));
        }
        memory_error(call(&t, d, "update_with", vec![obj!("s"), obj!("add"), s]));
        let n = call(&t, d, "update_with", vec![obj!("n"), obj!("add"), obj!(2)]);
        assert_eq!(n.unwrap(), obj!(2));
    }

    #[test]
    fn measuring_a_large_object_is_a_long_call() {
        let t = table(8 << 20, usize::MAX);
        let items = Object::List(vec![Object::Bytes(vec![1; 1000]); 7000]);
        let l = make(&t, "list", vec![items]).unwrap();
        let cheap = |method: &str, args: Vec<Object>| {
            let c = Call {
                who: WHO,
                ..Call::new(method, args)
            };
            t.try_call(l, c, WHO, 100).is_ok()
        };
        assert!(cheap("__len__", vec![]), "nothing to measure");
        assert!(cheap("append", vec![obj!(1)]), "room left");
        // Past the bound: the call would measure 7 MB, so it goes where it delays nobody.
        assert!(!cheap("append", vec![Object::Bytes(vec![0; 2 << 20])]));
        memory_error(call(&t, l, "append", vec![Object::Bytes(vec![0; 2 << 20])]));
    }

    #[test]
    fn sizes_stop_at_the_budget() {
        let items = vec![Object::Bytes(vec![0; 100]); 1000];
        let all = weigh(&items, usize::MAX).unwrap();
        assert_eq!(all, 1000 * (100 + 32));
        assert_eq!(weigh(&items, all), Some(all));
        assert_eq!(weigh(&items, all - 1), None);
    }
}
