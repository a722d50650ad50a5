//! The manager with real processes: proxies in children, atomic updates from many
//! processes, waiting calls, and clients killed while they wait or hold a lock.

mod common;

use std::time::Duration;

use multiproc::manager::{DictProxy, ExceptionKind, ListProxy, Manager, ManagerError, Proxy};
use multiproc::object::Dict;
use multiproc::{Object, Process, obj};

multiproc::test_support!();

fn seed_child((d, l): (DictProxy, ListProxy)) {
    d.set(1, "1").unwrap();
    d.set("2", 2).unwrap();
    d.set(0.25, ()).unwrap();
    l.reverse().unwrap();
}

#[test]
fn a_child_changes_what_the_parent_sees() {
    let _leaks = common::leak_check();
    for manager in [Manager::start().unwrap(), Manager::start_thread().unwrap()] {
        let d = manager.dict().unwrap();
        let l = manager.list((0..10).collect::<Vec<i32>>()).unwrap();
        Process::start(seed_child, (d.clone(), l.clone()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
        assert_eq!(l.to_string(), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
        assert_eq!(manager.number_of_objects().unwrap(), 2);
        drop((d, l));
        assert_eq!(
            manager.number_of_objects().unwrap(),
            0,
            "freed with their proxies"
        );
    }
}

#[test]
fn python_exceptions_reach_the_caller() {
    let _leaks = common::leak_check();
    let manager = Manager::start_thread().unwrap();
    let d = manager.dict().unwrap();
    match d.get_item("zz") {
        Err(ManagerError::Raised(e)) => {
            assert_eq!(e.kind(), ExceptionKind::KeyError);
            assert_eq!(e.to_string(), "'zz'");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.get("zz").unwrap(), None);
    let l = manager.list(obj!([1])).unwrap();
    let err = l.get(5).unwrap_err();
    assert_eq!(err.to_string(), "IndexError: list index out of range");
    let err = manager.create("os.system", vec![]).unwrap_err();
    assert!(matches!(err, ManagerError::Raised(e) if e.kind() == ExceptionKind::TypeError));
}

fn add_many((d, n): (DictProxy, u32)) {
    for _ in 0..n {
        d.update_with("hits", "add", 1).unwrap();
    }
}

#[test]
fn increments_from_many_processes_are_all_counted() {
    let _leaks = common::leak_check();
    let manager = Manager::start().unwrap();
    let d = manager.dict().unwrap();
    let children: Vec<_> = (0..6)
        .map(|_| Process::start(add_many, (d.clone(), 300)).unwrap())
        .collect();
    for c in children {
        c.join().unwrap();
    }
    assert_eq!(d.get_item("hits").unwrap(), obj!(1800));
}

fn take_one(q: Proxy) -> Object {
    q.call("get", vec![]).unwrap()
}

fn hold_then_hang((lock, q): (Proxy, Proxy)) {
    assert_eq!(lock.call("acquire", vec![]).unwrap(), obj!(true));
    q.call("put", vec!["holding".into()]).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_get_waits_for_a_put_from_another_process() {
    let _leaks = common::leak_check();
    let manager = Manager::start().unwrap();
    let q = manager.create("Queue", vec![]).unwrap();
    let p = Process::start(take_one, q.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // The waiting child does not block this client.
    assert_eq!(q.call("qsize", vec![]).unwrap(), obj!(0));
    q.call("put", vec![obj!(["沐风", 666, "精易"])]).unwrap();
    assert_eq!(p.join().unwrap().to_string(), "['沐风', 666, '精易']");
    let timeout = q.call("get", vec![true.into(), 0.05.into()]).unwrap_err();
    assert!(matches!(timeout, ManagerError::Raised(e) if e.kind() == ExceptionKind::Empty));
}

#[test]
fn a_killed_client_gives_back_its_lock_and_its_objects() {
    let _leaks = common::leak_check();
    let manager = Manager::start().unwrap();
    let lock = manager.create("Lock", vec![]).unwrap();
    let q = manager.create("Queue", vec![]).unwrap();
    let before = manager.number_of_objects().unwrap();
    let p = Process::start(hold_then_hang, (lock.clone(), q.clone())).unwrap();
    assert_eq!(q.call("get", vec![]).unwrap(), obj!("holding"));
    let d = manager.dict().unwrap();
    // A blocked acquire waits for the holder; killing it hands the lock over.
    let waiter = std::thread::spawn({
        let lock = lock.clone();
        move || lock.call("acquire_robust", vec![]).unwrap()
    });
    std::thread::sleep(Duration::from_millis(50));
    p.kill().unwrap();
    assert!(p.join().is_err());
    assert_eq!(waiter.join().unwrap(), obj!(2), "told the owner died");
    // The server goes on serving, and the child's references are gone.
    d.set("still", "serving").unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), before + 1);
}

#[test]
fn threads_of_one_process_never_wait_for_each_others_calls() {
    let _leaks = common::leak_check();
    let manager = Manager::start_thread().unwrap();
    let q = manager.create("Queue", vec![]).unwrap();
    let getter = std::thread::spawn({
        let q = q.clone();
        move || q.call("get", vec![]).unwrap()
    });
    std::thread::sleep(Duration::from_millis(50));
    // The getter waits on its own connection; this put does not queue behind it.
    q.call("put", vec!["x".into()]).unwrap();
    assert_eq!(getter.join().unwrap(), obj!("x"));
    // A reference taken on one connection is given back on another: one session.
    let before = manager.number_of_objects().unwrap();
    let copies: Vec<Proxy> = (0..4).map(|_| q.clone()).collect();
    std::thread::scope(|s| {
        for c in copies {
            s.spawn(move || drop(c));
        }
    });
    assert_eq!(manager.number_of_objects().unwrap(), before);
    q.call("qsize", vec![]).unwrap();
}

/// A separate client: connects by address and key, takes two jobs, counts them.
fn remote_worker((address, key): (String, Vec<u8>)) -> Vec<Object> {
    let manager = Manager::connect(address.parse::<multiproc::Address>().unwrap(), key).unwrap();
    let jobs = manager.get("jobs").unwrap();
    let state = DictProxy::try_from(manager.get("state").unwrap()).unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(jobs.call("get", vec![]).unwrap());
        state.update_with("done", "add", 1).unwrap();
    }
    got
}

#[test]
fn multiproc_serve_serves_separate_clients_and_stops_on_sigterm() {
    let _leaks = common::leak_check();
    let server = common::Serve::start(&["jobs=Queue", "state=dict"], b"s3cret\n");
    let address = server.address.clone();
    let addr: multiproc::Address = address.parse().unwrap();

    assert!(matches!(
        Manager::connect(addr.clone(), b"wrong"),
        Err(ManagerError::Connect(_))
    ));
    let manager = Manager::connect(addr, b"s3cret").unwrap();
    let jobs = manager.get("jobs").unwrap();
    for i in 0..4 {
        jobs.call("put", vec![i.into()]).unwrap();
    }
    let workers: Vec<_> = (0..2)
        .map(|_| Process::start(remote_worker, (address.clone(), b"s3cret".to_vec())).unwrap())
        .collect();
    let mut got: Vec<i64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .map(|o| o.as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, [0, 1, 2, 3]);
    let state = DictProxy::try_from(manager.get("state").unwrap()).unwrap();
    assert_eq!(state.get_item("done").unwrap(), obj!(4));
    assert!(manager.get("nothing").is_err());
    // Its clients cannot stop it; dropping a connected handle leaves it serving.
    drop(manager);
    let manager = Manager::connect(address.parse::<multiproc::Address>().unwrap(), b"s3cret");
    assert_eq!(manager.unwrap().number_of_objects().unwrap(), 2);

    server.stop();
}

#[test]
fn a_pipeline_runs_many_calls_in_order() {
    let _leaks = common::leak_check();
    let manager = Manager::start().unwrap();
    let l = manager.list(obj!([])).unwrap();
    let mut calls: Vec<(&Proxy, &str, Vec<Object>)> = (0..1000)
        .map(|i| (l.as_proxy(), "append", vec![i.into()]))
        .collect();
    calls.push((l.as_proxy(), "__getitem__", vec![5000.into()]));
    calls.push((l.as_proxy(), "__len__", vec![]));
    let results = manager.pipeline(calls).unwrap();
    assert_eq!(results.len(), 1002);
    let err = results[1000].as_ref().unwrap_err();
    assert_eq!(err.kind(), ExceptionKind::IndexError);
    assert_eq!(results[1001].as_ref().unwrap(), &obj!(1000));
    assert_eq!(l.get(999).unwrap(), obj!(999));
    let other = Manager::start_thread().unwrap();
    let foreign = other.dict().unwrap();
    let mixed = vec![(foreign.as_proxy(), "__len__", vec![])];
    assert!(matches!(
        manager.pipeline(mixed),
        Err(ManagerError::Protocol(_))
    ));
}

fn lock_and_wait(
    (lock, ev): (
        multiproc::manager::LockProxy,
        multiproc::manager::EventProxy,
    ),
) {
    lock.acquire().unwrap();
    ev.set().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn typed_proxies_speak_rust() {
    let _leaks = common::leak_check();
    use multiproc::manager::Acquired;
    let manager = Manager::start().unwrap();
    let q = manager.queue(1).unwrap();
    q.put("a").unwrap();
    assert!(!q.put_nowait("b").unwrap(), "full");
    assert!(!q.put_timeout("b", Duration::from_millis(20)).unwrap());
    assert_eq!(q.get().unwrap(), obj!("a"));
    assert_eq!(q.get_timeout(Duration::from_millis(20)).unwrap(), None);
    assert_eq!(q.qsize().unwrap(), 0);

    let jq = manager.joinable_queue(0).unwrap();
    jq.put(1).unwrap();
    jq.get().unwrap();
    jq.task_done().unwrap();
    jq.join().unwrap();
    assert!(jq.task_done().is_err());

    let lock = manager.lock().unwrap();
    let ev = manager.event().unwrap();
    let p = Process::start(lock_and_wait, (lock.clone(), ev.clone())).unwrap();
    assert!(ev.wait(Some(Duration::from_secs(30))).unwrap());
    assert!(!lock.try_acquire().unwrap());
    assert_eq!(
        lock.acquire_robust(Some(Duration::from_millis(20)))
            .unwrap(),
        Acquired::No
    );
    p.kill().unwrap();
    let _ = p.join();
    assert_eq!(lock.acquire_robust(None).unwrap(), Acquired::OwnerDied);
    lock.release().unwrap();

    let ns = manager.namespace(Dict::new()).unwrap();
    ns.set("name", "Bob").unwrap();
    assert_eq!(ns.get("name").unwrap(), obj!("Bob"));
    assert_eq!(ns.to_string(), "Namespace(name='Bob')");
    let v = manager.value("i", 7).unwrap();
    assert_eq!(v.update_with("add", 1).unwrap(), obj!(8));
    assert!(v.compare_and_set(8, 0).unwrap());
    assert_eq!(v.to_string(), "Value('i', 0)");

    let sem = manager.semaphore(1, true).unwrap();
    sem.acquire().unwrap();
    assert!(!sem.acquire_timeout(Duration::from_millis(10)).unwrap());
    sem.release(1).unwrap();
    assert!(sem.release(1).is_err(), "bounded");

    let c = manager.condition().unwrap();
    c.acquire().unwrap();
    assert!(!c.wait(Some(Duration::from_millis(10))).unwrap());
    c.notify(1).unwrap();
    c.release().unwrap();

    let b = manager.barrier(1).unwrap();
    assert_eq!(b.wait(None).unwrap(), 0);
    b.abort().unwrap();
    assert!(b.broken().unwrap());
    assert!(
        DictProxy::try_from(Proxy::from(b)).is_err(),
        "a barrier is not a dict"
    );
}

/// `threads` threads of one client process, each adding 1 to a shared counter `rounds` times
/// at once: the process opens a connection per call in flight.
fn crowd((d, threads, rounds): (DictProxy, u32, u32)) {
    let start = std::sync::Barrier::new(threads as usize);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start.wait();
                for _ in 0..rounds {
                    d.update_with("n", "add", 1).unwrap();
                }
            });
        }
    });
}

fn many_clients(processes: u32, threads: u32, rounds: u32) {
    let manager = Manager::start().unwrap();
    let d = manager.dict().unwrap();
    let children: Vec<_> = (0..processes)
        .map(|_| Process::start(crowd, (d.clone(), threads, rounds)).unwrap())
        .collect();
    for c in children {
        c.join().unwrap();
    }
    assert_eq!(
        d.get_item("n").unwrap(),
        obj!(i64::from(processes * threads * rounds)),
        "every increment of every client counted"
    );
    assert_eq!(
        manager.number_of_objects().unwrap(),
        1,
        "the clients' references are gone"
    );
}

#[test]
fn two_hundred_concurrent_clients_lose_nothing() {
    let _leaks = common::leak_check();
    many_clients(4, 50, 20);
}

/// 1000 concurrent connections × 100 operations (`cargo test --release -- --ignored`).
#[test]
#[ignore]
fn a_thousand_concurrent_clients_lose_nothing() {
    let _leaks = common::leak_check();
    many_clients(8, 125, 100);
}

#[test]
fn twenty_client_processes_lose_no_increment() {
    let _leaks = common::leak_check();
    many_clients(20, 1, 200);
}

/// 100 client processes × 1000 increments each (`cargo test --release -- --ignored`).
#[test]
#[ignore]
fn a_hundred_client_processes_lose_no_increment() {
    let _leaks = common::leak_check();
    many_clients(100, 1, 1000);
}

fn pass_on((inbox, outbox): (multiproc::Queue<DictProxy>, multiproc::Queue<DictProxy>)) {
    let d = inbox.get().unwrap();
    d.set("seen by", std::process::id()).unwrap();
    outbox.put(d).unwrap();
}

#[test]
fn proxies_travel_through_shared_memory_queues() {
    let _leaks = common::leak_check();
    let manager = Manager::start().unwrap();
    let d = manager.dict().unwrap();
    let (inbox, outbox) = (
        multiproc::Queue::new().unwrap(),
        multiproc::Queue::new().unwrap(),
    );
    let p = Process::start(pass_on, (inbox.clone(), outbox.clone())).unwrap();
    inbox.put(d.clone()).unwrap();
    let back: DictProxy = outbox.get().unwrap();
    let pid = p.pid();
    p.join().unwrap();
    assert_eq!(back.get_item("seen by").unwrap(), obj!(i64::from(pid)));
    assert_eq!(d.to_string(), back.to_string(), "the same object");
}

fn count_in_fork(d: DictProxy) {
    for _ in 0..50 {
        d.update_with("n", "add", 1).unwrap();
    }
}

#[test]
fn forked_children_use_connections_of_their_own() {
    let _leaks = common::leak_check();
    let manager = Manager::start().unwrap();
    let d = manager.dict().unwrap();
    d.set("n", 0).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Process::builder()
                .method(multiproc::StartMethod::Fork)
                .start(count_in_fork, d.clone())
                .unwrap()
        })
        .collect();
    // Meanwhile this process uses its own connection.
    for _ in 0..50 {
        d.update_with("n", "add", 1).unwrap();
    }
    for c in children {
        c.join().unwrap();
    }
    assert_eq!(d.get_item("n").unwrap(), obj!(200));
}

/// A lock belongs to the connection that took it; a process has a pool of connections, and
/// more threads than the pool keeps idle. Each thread's lock calls must still go through the
/// connection that holds its lock: mutual exclusion holds and an `RLock` is re-entered.
#[test]
fn locks_exclude_across_more_threads_than_pooled_connections() {
    let _leaks = common::leak_check();
    let manager = Manager::start_thread().unwrap();
    let d = manager.dict().unwrap();
    let lock = manager.lock().unwrap();
    let rlock = manager.rlock().unwrap();
    const THREADS: i64 = 100;
    const ROUNDS: i64 = 20;
    let start = std::sync::Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (d, lock, rlock, start) = (&d, &lock, &rlock, &start);
            s.spawn(move || {
                start.wait();
                for _ in 0..ROUNDS {
                    let (guard, key) = if t % 2 == 0 {
                        (lock, "plain")
                    } else {
                        (rlock, "reentrant")
                    };
                    // Without its own connection, a re-entry would wait forever: bounded here.
                    assert!(guard.acquire_timeout(Duration::from_secs(60)).unwrap());
                    if t % 2 == 1 {
                        // Re-entered by its holder.
                        assert!(rlock.acquire_timeout(Duration::from_secs(30)).unwrap());
                    }
                    // A read then a write: exact only if the lock excludes.
                    let n = d.get(key).unwrap().unwrap_or(obj!(0)).as_i64().unwrap();
                    d.set(key, n + 1).unwrap();
                    if t % 2 == 1 {
                        rlock.release().unwrap();
                    }
                    guard.release().unwrap();
                }
            });
        }
    });
    assert_eq!(d.get_item("plain").unwrap(), obj!(THREADS / 2 * ROUNDS));
    assert_eq!(d.get_item("reentrant").unwrap(), obj!(THREADS / 2 * ROUNDS));
}

/// A server on a Unix path may go without an authkey; an empty key reaches it.
#[test]
fn an_empty_authkey_reaches_a_server_bound_without_one() {
    let _leaks = common::leak_check();
    let path = std::env::temp_dir().join(format!("multiproc-nokey-{}.sock", std::process::id()));
    let server = multiproc::manager::Server::bind(
        format!("unix:{}", path.display())
            .parse::<multiproc::Address>()
            .unwrap(),
        None,
    )
    .unwrap();
    server.publish("d", "dict", vec![]).unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());
    let manager = Manager::connect(address, b"").unwrap();
    let d = DictProxy::try_from(manager.get("d").unwrap()).unwrap();
    d.set("k", 1).unwrap();
    assert_eq!(d.get_item("k").unwrap(), obj!(1));
    drop((d, manager));
    stopper.stop();
    serving.join().unwrap().unwrap();
    let _ = std::fs::remove_file(&path);
}

fn add_one(d: DictProxy) {
    d.update_with("n", "add", 1).unwrap();
}

/// A child forked while another thread connects to a manager (and holds the process's
/// registry of connections for a moment) must not wait for a lock nobody will release.
#[test]
fn forks_while_other_threads_connect_never_hang() {
    let _leaks = common::leak_check();
    let server = multiproc::manager::Server::bind(
        "127.0.0.1:0".parse::<multiproc::Address>().unwrap(),
        Some(b"k"),
    )
    .unwrap();
    server.publish("d", "dict", vec![]).unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());
    let manager = Manager::connect(address.clone(), b"k").unwrap();
    let d = DictProxy::try_from(manager.get("d").unwrap()).unwrap();
    let other_server = multiproc::manager::Server::bind(
        "127.0.0.1:0".parse::<multiproc::Address>().unwrap(),
        Some(b"k"),
    )
    .unwrap();
    let other_address = other_server.address().clone();
    let other_stopper = other_server.stopper();
    let other_serving = std::thread::spawn(move || other_server.serve_forever());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Each connection makes a new link (the last one is gone), and registers it.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let other = Manager::connect(other_address.clone(), b"k").unwrap();
                drop(other);
            }
        });
        for _ in 0..30 {
            let child = Process::builder()
                .method(multiproc::StartMethod::Fork)
                .start(add_one, d.clone())
                .unwrap();
            if let Err(e) = child.join_timeout(Duration::from_secs(60)) {
                panic!("a forked child: {e}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(d.get_item("n").unwrap(), obj!(30));
    drop((d, manager));
    for (stopper, serving) in [(stopper, serving), (other_stopper, other_serving)] {
        stopper.stop();
        serving.join().unwrap().unwrap();
    }
}

/// Containers that hold each other (`a.append(b); b.append(a)`) are freed once no client and
/// no reachable container holds any of them, with what hangs off them; while a client's dict
/// still names one, all of them live.
#[test]
fn a_cycle_of_containers_is_freed_when_nobody_reaches_it() {
    let _leaks = common::leak_check();
    let manager = Manager::start_thread().unwrap();
    let d = manager.dict().unwrap();
    let before = manager.number_of_objects().unwrap();
    let settle = |want: usize| {
        let start = std::time::Instant::now();
        while manager.number_of_objects().unwrap() != want {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} objects, {want} expected",
                manager.number_of_objects().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for kept in [false, true] {
        let a = manager.list(obj!([])).unwrap();
        let b = manager.list(obj!([])).unwrap();
        let c = manager.list(obj!([1, 2, 3])).unwrap();
        a.append(&b).unwrap();
        b.append(&a).unwrap();
        b.append(&c).unwrap();
        if kept {
            d.set("a", &a).unwrap();
        }
        drop((a, b, c));
        if kept {
            settle(before + 3);
            d.delete("a").unwrap();
        }
        settle(before);
    }
}
