//! One behaviour suite for the manager's proxies, run against both homes of their objects: a
//! manager server (`Manager::start_thread`) and Redis (a `redis-server` of the test's own). The
//! same code must see the same answers and the same Python exceptions from both.
#![cfg(feature = "redis")]

mod common;
mod redis_server;

use std::time::Duration;

use multiproc::manager::{
    Acquired, DictProxy, EventProxy, ExceptionKind, ListProxy, LockProxy, Manager, ManagerError,
    NamespaceProxy, QueueProxy, SemaphoreProxy, ValueProxy,
};
use multiproc::object::{Dict, Slice};
use multiproc::redis::Redis;
use multiproc::{Object, obj};
use redis_server::RedisServer;

/// Where the objects live: the constructors both backends have (names matter to Redis only).
trait Home {
    fn dict(&self, name: &str) -> DictProxy;
    fn list(&self, name: &str) -> ListProxy;
    fn namespace(&self, name: &str) -> NamespaceProxy;
    fn value(&self, name: &str, typecode: &str, v: Object) -> ValueProxy;
    fn queue(&self, name: &str, maxsize: usize) -> QueueProxy;
    fn joinable_queue(&self, name: &str) -> QueueProxy;
    fn lock(&self, name: &str, reentrant: bool) -> LockProxy;
    fn semaphore(&self, name: &str, n: u32, bounded: bool) -> SemaphoreProxy;
    fn event(&self, name: &str) -> EventProxy;
}

impl Home for Manager {
    fn dict(&self, _: &str) -> DictProxy {
        Manager::dict(self).unwrap()
    }
    fn list(&self, _: &str) -> ListProxy {
        Manager::list(self, Vec::<i64>::new()).unwrap()
    }
    fn namespace(&self, _: &str) -> NamespaceProxy {
        Manager::namespace(self, Dict::new()).unwrap()
    }
    fn value(&self, _: &str, typecode: &str, v: Object) -> ValueProxy {
        Manager::value(self, typecode, v).unwrap()
    }
    fn queue(&self, _: &str, maxsize: usize) -> QueueProxy {
        Manager::queue(self, maxsize).unwrap()
    }
    fn joinable_queue(&self, _: &str) -> QueueProxy {
        Manager::joinable_queue(self, 0).unwrap()
    }
    fn lock(&self, _: &str, reentrant: bool) -> LockProxy {
        if reentrant {
            self.rlock().unwrap()
        } else {
            Manager::lock(self).unwrap()
        }
    }
    fn semaphore(&self, _: &str, n: u32, bounded: bool) -> SemaphoreProxy {
        Manager::semaphore(self, n, bounded).unwrap()
    }
    fn event(&self, _: &str) -> EventProxy {
        Manager::event(self).unwrap()
    }
}

impl Home for Redis {
    fn dict(&self, name: &str) -> DictProxy {
        Redis::dict(self, name).unwrap()
    }
    fn list(&self, name: &str) -> ListProxy {
        Redis::list(self, name).unwrap()
    }
    fn namespace(&self, name: &str) -> NamespaceProxy {
        Redis::namespace(self, name).unwrap()
    }
    fn value(&self, name: &str, typecode: &str, v: Object) -> ValueProxy {
        Redis::value(self, name, typecode, v).unwrap()
    }
    fn queue(&self, name: &str, maxsize: usize) -> QueueProxy {
        Redis::queue(self, name, maxsize).unwrap()
    }
    fn joinable_queue(&self, name: &str) -> QueueProxy {
        Redis::joinable_queue(self, name, 0).unwrap()
    }
    fn lock(&self, name: &str, reentrant: bool) -> LockProxy {
        if reentrant {
            self.rlock(name).unwrap()
        } else {
            Redis::lock(self, name).unwrap()
        }
    }
    fn semaphore(&self, name: &str, n: u32, bounded: bool) -> SemaphoreProxy {
        Redis::semaphore(self, name, n, bounded).unwrap()
    }
    fn event(&self, name: &str) -> EventProxy {
        Redis::event(self, name).unwrap()
    }
}

/// Runs `check` against a manager on a thread, then against a fresh Redis (and, with the
/// feature `python`, one more storing pickles).
fn on_both(check: fn(&dyn Home)) {
    let _leaks = common::leak_check();
    {
        let manager = Manager::start_thread().unwrap();
        check(&manager);
    }
    let server = RedisServer::start();
    let redis = Redis::connect(&server.url).unwrap();
    check(&redis);
    // And with values pickled for Python readers.
    #[cfg(feature = "python")]
    {
        let server = RedisServer::start();
        let redis = Redis::options().pickle(true).connect(&server.url).unwrap();
        check(&redis);
    }
}

/// The exception `r` raised: its kind and Python's `str`.
fn raised<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> (ExceptionKind, String) {
    match r {
        Err(ManagerError::Raised(e)) => (e.kind(), e.to_string()),
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[test]
fn dict_keeps_order_and_python_keys() {
    on_both(|h| {
        let d = h.dict("d");
        d.set(1, "1").unwrap();
        d.set("2", 2).unwrap();
        d.set(0.25, ()).unwrap();
        assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
        // 1.0 and True are the key 1: the first key stays, in its place.
        d.set(1.0, "uno").unwrap();
        d.set(true, "one").unwrap();
        assert_eq!(d.to_string(), "{1: 'one', '2': 2, 0.25: None}");
        assert_eq!(
            raised(d.get_item("zz")),
            (ExceptionKind::KeyError, "'zz'".into())
        );
        assert_eq!(raised(d.delete("zz")).0, ExceptionKind::KeyError);
        assert_eq!(d.get("zz").unwrap(), None);
        assert!(d.contains(1.0).unwrap());
        assert!(!d.contains("1").unwrap());
        assert_eq!(d.len().unwrap(), 3);
        // A key deleted and set again goes to the end.
        d.delete("2").unwrap();
        d.set("2", 22).unwrap();
        assert_eq!(d.to_string(), "{1: 'one', 0.25: None, '2': 22}");
        let p = d.as_proxy();
        assert_eq!(p.call("keys", vec![]).unwrap(), obj!([1, 0.25, "2"]));
        assert_eq!(p.call("pop", vec![obj!(0.25)]).unwrap(), Object::None);
        assert_eq!(p.call("pop", vec![obj!("x"), obj!(7)]).unwrap(), obj!(7));
        assert_eq!(
            p.call("setdefault", vec![obj!("s"), obj!(5)]).unwrap(),
            obj!(5)
        );
        assert_eq!(
            p.call("setdefault", vec![obj!("s"), obj!(6)]).unwrap(),
            obj!(5)
        );
        assert_eq!(p.call("popitem", vec![]).unwrap(), obj!(("s", 5)));
        p.call("update", vec![obj!({"u": 1, 2: [3]})]).unwrap();
        assert_eq!(d.copy().unwrap().len(), 4);
        assert_eq!(
            raised(d.set(obj!([1]), 1)),
            (ExceptionKind::TypeError, "unhashable type: 'list'".into())
        );
        // Atomic updates.
        assert_eq!(d.update_with("hits", "add", 1).unwrap(), obj!(1));
        assert_eq!(d.update_with("hits", "add", 2).unwrap(), obj!(3));
        assert_eq!(d.update_with("log", "append", "a").unwrap(), obj!(1));
        assert!(d.compare_and_set("hits", 3.0, 10).unwrap());
        assert!(!d.compare_and_set("hits", 3, 11).unwrap());
        assert!(d.compare_and_set("new", (), "made").unwrap());
        assert_eq!(d.get_item("hits").unwrap(), obj!(10));
        p.call("clear", vec![]).unwrap();
        assert!(d.is_empty().unwrap());
        assert_eq!(
            raised(p.call("popitem", vec![])),
            (
                ExceptionKind::KeyError,
                "'popitem(): dictionary is empty'".into()
            )
        );
    });
}

#[test]
fn dict_keeps_insertion_order_past_a_small_hash() {
    on_both(|h| {
        let d = h.dict("big");
        // Past Redis's compact encoding of a hash (512 fields): order must hold still.
        let keys: Vec<i64> = (0..700).map(|i| (i * 7919) % 1000).collect();
        for &k in &keys {
            d.set(k, k).unwrap();
        }
        let got = d.as_proxy().call("keys", vec![]).unwrap();
        assert_eq!(got, Object::from(keys));
    });
}

#[test]
fn list_indexing_and_methods() {
    on_both(|h| {
        let l = h.list("l");
        for i in 0..5 {
            l.append(i).unwrap();
        }
        let p = l.as_proxy();
        p.call("extend", vec![obj!([5, 6])]).unwrap();
        assert_eq!(l.get(-1).unwrap(), obj!(6));
        assert_eq!(l.get(0).unwrap(), obj!(0));
        assert_eq!(
            raised(l.get(7)),
            (ExceptionKind::IndexError, "list index out of range".into())
        );
        assert_eq!(raised(l.get(-8)).0, ExceptionKind::IndexError);
        l.set(-1, "six").unwrap();
        assert_eq!(
            raised(l.set(9, 0)),
            (
                ExceptionKind::IndexError,
                "list assignment index out of range".into()
            )
        );
        p.call("insert", vec![obj!(1), obj!("ins")]).unwrap();
        p.call("insert", vec![obj!(-100), obj!("first")]).unwrap();
        p.call("insert", vec![obj!(100), obj!("last")]).unwrap();
        assert_eq!(
            l.to_string(),
            "['first', 0, 'ins', 1, 2, 3, 4, 5, 'six', 'last']"
        );
        assert_eq!(p.call("pop", vec![]).unwrap(), obj!("last"));
        assert_eq!(p.call("pop", vec![obj!(0)]).unwrap(), obj!("first"));
        assert_eq!(p.call("pop", vec![obj!(1)]).unwrap(), obj!("ins"));
        assert_eq!(
            raised(p.call("pop", vec![obj!(50)])),
            (ExceptionKind::IndexError, "pop index out of range".into())
        );
        p.call("__delitem__", vec![obj!(-2)]).unwrap();
        assert_eq!(l.to_string(), "[0, 1, 2, 3, 4, 'six']");
        assert_eq!(p.call("index", vec![obj!(3.0)]).unwrap(), obj!(3));
        assert_eq!(
            raised(p.call("index", vec![obj!(99)])).0,
            ExceptionKind::ValueError
        );
        assert_eq!(p.call("count", vec![obj!(true)]).unwrap(), obj!(1));
        assert!(p.call("__contains__", vec![obj!("six")]).unwrap() == true);
        p.call("remove", vec![obj!("six")]).unwrap();
        l.reverse().unwrap();
        assert_eq!(l.to_string(), "[4, 3, 2, 1, 0]");
        p.call("sort", vec![]).unwrap();
        assert_eq!(l.slice(Slice::range(1..3)).unwrap(), vec![obj!(1), obj!(2)]);
        assert_eq!(l.slice(Slice::new(None, None, -2)).unwrap().len(), 3);
        l.set_slice(Slice::range(0..2), vec!["a", "b", "c"])
            .unwrap();
        l.del_slice(Slice::new(None, None, 2)).unwrap();
        assert_eq!(l.to_string(), "['b', 2, 4]");
        assert_eq!(l.len().unwrap(), 3);
        p.call("clear", vec![]).unwrap();
        assert_eq!(
            raised(p.call("pop", vec![])),
            (ExceptionKind::IndexError, "pop from empty list".into())
        );
        assert_eq!(l.to_vec().unwrap(), Vec::<Object>::new());
    });
}

#[test]
fn namespace_and_value() {
    on_both(|h| {
        let ns = h.namespace("ns");
        ns.set("b", "x").unwrap();
        ns.set("a", 1).unwrap();
        assert_eq!(ns.get("a").unwrap(), obj!(1));
        assert_eq!(ns.to_string(), "Namespace(a=1, b='x')");
        assert_eq!(
            raised(ns.get("nope")),
            (
                ExceptionKind::AttributeError,
                "'Namespace' object has no attribute 'nope'".into()
            )
        );
        ns.delete("b").unwrap();
        assert_eq!(raised(ns.delete("b")).0, ExceptionKind::AttributeError);

        let v = h.value("v", "i", obj!(5));
        assert_eq!(v.get().unwrap(), obj!(5));
        assert_eq!(v.to_string(), "Value('i', 5)");
        v.set(7).unwrap();
        assert_eq!(v.update_with("add", 3).unwrap(), obj!(10));
        assert!(v.compare_and_set(10.0, 1).unwrap());
        assert!(!v.compare_and_set(10, 2).unwrap());
        assert_eq!(v.get().unwrap(), obj!(1));
        assert_eq!(
            raised(v.update_with("add", "s")).0,
            ExceptionKind::TypeError
        );
    });
}

#[test]
fn queue_order_empty_full_and_timeouts() {
    on_both(|h| {
        let q = h.queue("q", 0);
        for i in 0..5 {
            q.put(i).unwrap();
        }
        assert_eq!(q.qsize().unwrap(), 5);
        let got: Vec<Object> = (0..5).map(|_| q.get().unwrap()).collect();
        assert_eq!(Object::List(got), obj!([0, 1, 2, 3, 4]));
        assert_eq!(q.get_nowait().unwrap(), None);
        assert_eq!(
            raised(q.as_proxy().call("get_nowait", vec![])).0,
            ExceptionKind::Empty
        );
        let start = std::time::Instant::now();
        assert_eq!(q.get_timeout(Duration::from_millis(60)).unwrap(), None);
        assert!(start.elapsed() >= Duration::from_millis(60));
        // A waiting get gets what another thread puts.
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.get_timeout(Duration::from_secs(10)).unwrap());
        std::thread::sleep(Duration::from_millis(30));
        q.put("late").unwrap();
        assert_eq!(t.join().unwrap(), Some(obj!("late")));

        let b = h.queue("bounded", 2);
        assert!(b.put_nowait(1).unwrap());
        assert!(b.put_nowait(2).unwrap());
        assert!(!b.put_nowait(3).unwrap());
        assert!(!b.put_timeout(3, Duration::from_millis(30)).unwrap());
        assert!(b.as_proxy().call("full", vec![]).unwrap() == true);
        // A waiting put goes in when a get makes room.
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.put_timeout(3, Duration::from_secs(10)).unwrap());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.get().unwrap(), obj!(1));
        assert!(t.join().unwrap());
        assert_eq!(b.get().unwrap(), obj!(2));
        assert_eq!(b.get().unwrap(), obj!(3));
    });
}

#[test]
fn locks_events_and_semaphores() {
    on_both(|h| {
        let l = h.lock("l", false);
        l.acquire().unwrap();
        assert!(!l.try_acquire().unwrap());
        assert!(!l.acquire_timeout(Duration::from_millis(20)).unwrap());
        l.release().unwrap();
        assert_eq!(raised(l.release()).0, ExceptionKind::RuntimeError);
        assert_eq!(l.acquire_robust(None).unwrap(), Acquired::Yes);
        // Another thread waits for it, and gets it at the release.
        let l2 = h.lock("l", false);
        let t = std::thread::spawn(move || {
            let got = l2.acquire_timeout(Duration::from_secs(10)).unwrap();
            l2.release().unwrap();
            got
        });
        std::thread::sleep(Duration::from_millis(30));
        l.release().unwrap();
        assert!(t.join().unwrap());

        let r = h.lock("r", true);
        r.acquire().unwrap();
        r.acquire().unwrap();
        // Re-entrant for its holder only: another thread with the same proxy waits.
        let r2 = r.clone();
        let other = std::thread::spawn(move || r2.acquire_timeout(Duration::from_millis(50)));
        assert!(!other.join().unwrap().unwrap());
        r.release().unwrap();
        r.release().unwrap();
        assert_eq!(raised(r.release()).0, ExceptionKind::RuntimeError);

        let e = h.event("e");
        assert!(!e.is_set().unwrap());
        assert!(!e.wait(Some(Duration::from_millis(20))).unwrap());
        let e2 = e.clone();
        let t = std::thread::spawn(move || e2.wait(Some(Duration::from_secs(10))).unwrap());
        std::thread::sleep(Duration::from_millis(30));
        e.set().unwrap();
        assert!(t.join().unwrap());
        assert!(e.wait(None).unwrap());
        e.clear().unwrap();
        assert!(!e.is_set().unwrap());

        let s = h.semaphore("s", 2, true);
        s.acquire().unwrap();
        s.acquire().unwrap();
        assert!(!s.acquire_timeout(Duration::from_millis(20)).unwrap());
        s.release(1).unwrap();
        assert!(s.acquire_timeout(Duration::from_secs(1)).unwrap());
        s.release(2).unwrap();
        assert_eq!(raised(s.release(1)).0, ExceptionKind::ValueError);
    });
}

#[test]
fn joinable_queue_counts_unfinished_tasks() {
    on_both(|h| {
        let q = h.joinable_queue("jq");
        // Nothing unfinished: join returns at once.
        q.join().unwrap();
        q.put("a").unwrap();
        q.put("b").unwrap();
        let (q2, done) = (
            q.clone(),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        );
        let done2 = std::sync::Arc::clone(&done);
        let joiner = std::thread::spawn(move || {
            q2.join().unwrap();
            done2.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(q.get().unwrap(), obj!("a"));
        assert_eq!(q.get().unwrap(), obj!("b"));
        q.task_done().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "one task unfinished"
        );
        q.task_done().unwrap();
        joiner.join().unwrap();
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(raised(q.task_done()).0, ExceptionKind::ValueError);
        // A plain Queue counts its tasks too, as Python's queue.Queue.
        let plain = h.queue("plain", 0);
        assert_eq!(raised(plain.task_done()).0, ExceptionKind::ValueError);
        plain.put(1).unwrap();
        assert_eq!(plain.get().unwrap(), obj!(1));
        plain.task_done().unwrap();
        plain.join().unwrap();
    });
}
