//! The Redis backend with real processes: a consumer killed with a message in hand, a lock
//! holder killed, `JoinableQueue.join` across processes, Redis restarted mid-test, and a
//! server that is not there.
#![cfg(feature = "redis")]

mod common;
mod redis_server;

use std::time::{Duration, Instant};

use multiproc::manager::{
    Acquired, DictProxy, EventProxy, ExceptionKind, LockProxy, ManagerError, QueueProxy,
};
use multiproc::redis::Redis;
use multiproc::{Object, Process, obj};
use redis_server::RedisServer;

multiproc::test_support!();

/// Short leases, so that the dead are found out quickly.
fn connect(server: &RedisServer) -> Redis {
    Redis::options()
        .lease(Duration::from_millis(300))
        .connect(&server.url)
        .unwrap()
}

fn take_one_and_hang((q, seen, got): (QueueProxy, DictProxy, EventProxy)) {
    let item = q.get().unwrap();
    seen.set("held", item).unwrap();
    got.set().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// Waits until `child` (running [`take_one_and_hang`]) holds `held`, kills it, and takes two
/// items, sorted by their text.
fn kill_holder_then_take_two(
    child: Process<()>,
    (q, seen, got): (&QueueProxy, &DictProxy, &EventProxy),
    held: Object,
) -> Vec<Object> {
    assert!(got.wait(Some(Duration::from_secs(20))).unwrap());
    assert_eq!(seen.get_item("held").unwrap(), held);
    child.kill().unwrap();
    assert!(child.join().is_err(), "killed");
    let mut two = vec![
        q.get_timeout(Duration::from_secs(10)).unwrap().unwrap(),
        q.get_timeout(Duration::from_secs(10)).unwrap().unwrap(),
    ];
    two.sort_by_key(|o| o.to_string());
    two
}

#[test]
fn a_killed_consumers_message_goes_to_another() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = connect(&server);
    let (q, seen, got) = (
        m.queue("jobs", 0).unwrap(),
        m.dict("seen").unwrap(),
        m.event("got").unwrap(),
    );
    q.put("a").unwrap();
    q.put("b").unwrap();
    let child = Process::start(take_one_and_hang, (q.clone(), seen.clone(), got.clone())).unwrap();
    // "b" is free now; "a" comes back once the dead consumer's lease has run out.
    let delivered = kill_holder_then_take_two(child, (&q, &seen, &got), obj!("a"));
    assert_eq!(delivered, vec![obj!("a"), obj!("b")]);
    assert_eq!(q.get_nowait().unwrap(), None, "each message once");
    assert_eq!(q.qsize().unwrap(), 0);
}

fn hold_and_hang((lock, got): (LockProxy, EventProxy)) {
    lock.acquire().unwrap();
    got.set().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_lock_holder_leaves_the_lock_at_lease_expiry() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = connect(&server);
    let (lock, got) = (m.lock("l").unwrap(), m.event("got").unwrap());
    let child = Process::start(hold_and_hang, (lock.clone(), got.clone())).unwrap();
    assert!(got.wait(Some(Duration::from_secs(20))).unwrap());
    // The holder is alive: its heartbeat keeps the lease beyond its length.
    assert!(!lock.acquire_timeout(Duration::from_millis(700)).unwrap());
    child.kill().unwrap();
    assert!(child.join().is_err(), "killed");
    assert_eq!(
        lock.acquire_robust(Some(Duration::from_secs(10))).unwrap(),
        Acquired::OwnerDied
    );
    let fence = lock.as_proxy().call("fencing_token", vec![]).unwrap();
    assert_eq!(fence, obj!(2), "one fencing token per acquire");
    lock.release().unwrap();
    assert_eq!(lock.acquire_robust(None).unwrap(), Acquired::Yes);
    lock.release().unwrap();
}

fn work((jobs, results): (QueueProxy, DictProxy)) -> u32 {
    let mut done = 0;
    while let Some(n) = jobs.get_timeout(Duration::from_secs(2)).unwrap() {
        results.update_with("sum", "add", n).unwrap();
        jobs.task_done().unwrap();
        done += 1;
    }
    done
}

#[test]
fn joinable_queue_joins_across_processes() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = connect(&server);
    let (jobs, results) = (m.joinable_queue("jobs", 0).unwrap(), m.dict("r").unwrap());
    for n in 0..20 {
        jobs.put(n).unwrap();
    }
    let workers: Vec<_> = (0..2)
        .map(|_| Process::start(work, (jobs.clone(), results.clone())).unwrap())
        .collect();
    jobs.join().unwrap();
    assert_eq!(results.get_item("sum").unwrap(), obj!(190));
    let done: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(done, 20);
    assert_eq!(
        match jobs.task_done() {
            Err(ManagerError::Raised(e)) => e.kind(),
            other => panic!("{other:?}"),
        },
        ExceptionKind::ValueError
    );
}

#[test]
fn a_restarted_server_gives_clear_errors_then_serves_again() {
    let _leaks = common::leak_check();
    let mut server = RedisServer::start();
    let m = Redis::options()
        .timeout(Duration::from_secs(2))
        .connect(&server.url)
        .unwrap();
    let d = m.dict("d").unwrap();
    d.set("k", 1).unwrap();
    server.stop();
    let start = Instant::now();
    match d.set("k", 2) {
        Err(ManagerError::Connect(_) | ManagerError::Disconnected(_)) => {}
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(10), "no hang");
    assert!(d.get_item("k").is_err());
    server.restart();
    // A get waiting on the server when it goes away fails too, and soon.
    let q = m.queue("waiting", 0).unwrap();
    let waiter = {
        let q = q.clone();
        std::thread::spawn(move || q.get_timeout(Duration::from_secs(60)))
    };
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    server.stop();
    assert!(waiter.join().unwrap().is_err());
    assert!(start.elapsed() < Duration::from_secs(20), "no hang");
    server.restart();
    // Nothing was saved: the dict is empty again, and works.
    assert_eq!(d.get("k").unwrap(), None);
    d.set("k", 3).unwrap();
    assert_eq!(d.get_item("k").unwrap(), obj!(3));
    let q = m.queue("q", 0).unwrap();
    q.put(1).unwrap();
    assert_eq!(q.get().unwrap(), obj!(1));
}

#[test]
fn an_unreachable_server_is_a_connect_error() {
    let _leaks = common::leak_check();
    let start = Instant::now();
    let err = Redis::connect("redis+unix:///nonexistent/multiproc/r.sock").unwrap_err();
    assert!(matches!(err, ManagerError::Connect(_)), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let err = Redis::connect("not a url").unwrap_err();
    assert!(matches!(err, ManagerError::Connect(_)), "{err:?}");
}

#[test]
fn a_server_that_never_answers_costs_one_timeout() {
    let _leaks = common::leak_check();
    let dir = std::env::temp_dir().join(format!("multiproc-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // Accepts and holds every connection, answering nothing, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            match c {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
    });
    let start = Instant::now();
    let err = Redis::options()
        .timeout(Duration::from_secs(1))
        .connect(&format!("redis+unix://{}", path.display()))
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, ManagerError::Connect(_)), "{err:?}");
    // Three tries of a connect and a reply each used to take six times the timeout.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(std::os::unix::net::UnixStream::connect(&path));
    held.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn objects_are_found_by_name_in_their_namespace() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let a = Redis::connect(&server.url).unwrap();
    let b = Redis::connect(&server.url).unwrap();
    let other = Redis::options()
        .namespace("other")
        .connect(&server.url)
        .unwrap();
    a.dict("shared").unwrap().set("x", 1).unwrap();
    assert_eq!(b.dict("shared").unwrap().get_item("x").unwrap(), obj!(1));
    assert_eq!(other.dict("shared").unwrap().get("x").unwrap(), None);
    match b.list("shared") {
        Err(ManagerError::Raised(e)) => assert_eq!(e.kind(), ExceptionKind::TypeError),
        other => panic!("{other:?}"),
    }
    assert!(a.delete("shared").unwrap());
    assert!(!a.delete("shared").unwrap());
    assert!(b.list("shared").is_ok(), "the name is free again");
    // The first creator's maxsize holds.
    let q = a.queue("bounded", 1).unwrap();
    let again = b.queue("bounded", 0).unwrap();
    assert!(q.put_nowait(1).unwrap());
    assert!(!again.put_nowait(2).unwrap());
}

#[test]
fn pipelines_batch_calls_in_order() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = Redis::connect(&server.url).unwrap();
    let d = m.dict("squares").unwrap();
    let l = m.list("l").unwrap();
    let mut calls = Vec::new();
    for i in 0..3000i64 {
        calls.push((d.as_proxy(), "__setitem__", vec![i.into(), (i * i).into()]));
    }
    calls.push((l.as_proxy(), "append", vec![obj!("x")]));
    // A call of several steps runs in its turn.
    calls.push((
        d.as_proxy(),
        "update_with",
        vec![obj!(2), obj!("add"), obj!(1)],
    ));
    calls.push((d.as_proxy(), "__getitem__", vec![obj!(2)]));
    calls.push((d.as_proxy(), "__getitem__", vec![obj!("missing")]));
    let results = m.pipeline(calls).unwrap();
    assert_eq!(results.len(), 3004);
    assert!(results[..3001].iter().all(Result::is_ok));
    assert_eq!(results[3001], Ok(obj!(5)));
    assert_eq!(results[3002], Ok(obj!(5)));
    assert_eq!(
        results[3003].as_ref().unwrap_err().kind(),
        ExceptionKind::KeyError
    );
    assert_eq!(d.len().unwrap(), 3000);
    assert_eq!(l.get(0).unwrap(), Object::from("x"));
}

#[test]
fn the_redis_queue_example_shares_work_between_programs() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    // Through cargo, so that the example is rebuilt if it is older than the library.
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--features",
            "redis",
            "--example",
            "redis_queue",
        ])
        .arg(&server.url)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "jobs done: 20\nsum of squares: 2470\ncounted by the clients: 20\n"
    );
}

#[test]
fn the_password_comes_with_the_url() {
    let _leaks = common::leak_check();
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let good = Redis::connect(&format!("{}?pass=s3cret", server.url)).unwrap();
    let d = good.dict("d").unwrap();
    d.set(1, "one").unwrap();
    assert_eq!(d.get_item(1.0).unwrap(), obj!("one"));
    for url in [format!("{}?pass=wrong", server.url), server.url.clone()] {
        let err = Redis::connect(&url).unwrap_err();
        assert!(matches!(err, ManagerError::Connect(_)), "{url}: {err:?}");
    }
}

#[test]
fn scripts_flushed_from_the_server_are_loaded_again() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = Redis::connect(&server.url).unwrap();
    let d = m.dict("d").unwrap();
    d.set(1, 1).unwrap();
    let flush = || {
        let mut raw = redis::Client::open(server.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("SCRIPT").arg("FLUSH").exec(&mut raw).unwrap();
    };
    flush();
    // A call of one script is sent again once the scripts are back.
    d.set(2, 2).unwrap();
    flush();
    // A pipeline is not (what ran before the script would run twice): it says so.
    let calls = (3..6).map(|i: i64| (d.as_proxy(), "__setitem__", vec![i.into(), i.into()]));
    match m.pipeline(calls) {
        Err(ManagerError::Protocol(msg)) => assert!(msg.contains("SCRIPT FLUSH"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let calls = (3..6).map(|i: i64| (d.as_proxy(), "__setitem__", vec![i.into(), i.into()]));
    assert!(m.pipeline(calls).unwrap().iter().all(Result::is_ok));
    assert_eq!(d.len().unwrap(), 5);
}

fn consume_until_idle((q, results): (QueueProxy, DictProxy)) {
    let me = i64::from(std::process::id());
    while let Some(n) = q.get_timeout(Duration::from_secs(2)).unwrap() {
        // The work: a kill now leaves the message in hand.
        std::thread::sleep(Duration::from_millis(3));
        results.set(n, me).unwrap();
    }
}

/// `n` messages, three consumers, `kills` of them SIGKILLed at random and replaced: every
/// message is handled (a killed consumer's by another), none is left.
fn storm(n: i64, kills: usize, seed: u64) {
    let server = RedisServer::start();
    let m = connect(&server);
    let (q, results) = (m.queue("storm", 0).unwrap(), m.dict("done").unwrap());
    for i in 0..n {
        q.put(i).unwrap();
    }
    let mut rng = common::Rng::new(seed);
    let start = || Process::start(consume_until_idle, (q.clone(), results.clone())).unwrap();
    let mut consumers: Vec<_> = (0..3).map(|_| start()).collect();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.below(80) + 20));
        let victim = consumers.remove(rng.below(consumers.len() as u64) as usize);
        victim.kill().unwrap();
        assert!(victim.join().is_err(), "killed");
        consumers.push(start());
    }
    for c in consumers {
        c.join().unwrap();
    }
    // At least once: every message was handled (a killed consumer's by another).
    assert_eq!(results.len().unwrap(), n as usize, "no message lost");
    assert_eq!(q.qsize().unwrap(), 0);
}

#[test]
fn consumers_killed_at_random_lose_no_message() {
    let _leaks = common::leak_check();
    storm(300, 6, 0x5eed_0013);
}

/// The long storm: `cargo test --release --features redis --test redis_process -- --ignored`.
#[test]
#[ignore = "a long storm: run it by name"]
fn long_redis_queue_storm() {
    let _leaks = common::leak_check();
    storm(20_000, 200, 0x5eed_0014);
}

#[test]
fn a_forked_consumer_is_a_consumer_of_its_own() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = connect(&server);
    let (q, seen, got) = (
        m.queue("jobs", 0).unwrap(),
        m.dict("seen").unwrap(),
        m.event("got").unwrap(),
    );
    for item in ["parent's", "child's", "last"] {
        q.put(item).unwrap();
    }
    // This thread is a consumer before the fork, with an item in hand.
    assert_eq!(q.get().unwrap(), obj!("parent's"));
    let child = Process::builder()
        .method(multiproc::StartMethod::Fork)
        .start(take_one_and_hang, (q.clone(), seen.clone(), got.clone()))
        .unwrap();
    // The child's item comes back: it was not in this process's hand, nor under its lease.
    let rest = kill_holder_then_take_two(child, (&q, &seen, &got), obj!("child's"));
    assert_eq!(rest, vec![obj!("child's"), obj!("last")]);
    assert_eq!(q.get_nowait().unwrap(), None);
}
