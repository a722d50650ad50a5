//! Kill storms: worker processes that use a lock-protected `Value` and `Array`, a `Pipe`, or a
//! manager proxy are SIGKILLed at random moments, over and over, and replaced. The survivors
//! keep working, every shared structure passes its consistency check, and the accounting is
//! exact: what a worker acknowledged is there once. (The queue has its own storm in
//! `tests/queue_storm.rs`.) The `#[ignore]`d variants run far more kills:
//! `cargo test --release --test kill_storm -- --ignored`.

mod common;

use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, Manager, Server};
use multiproc::obj;
use multiproc::shm::{Array, RawArray, RawValue, Value};
use multiproc::{Address, Connection, Process, RecvError};

use common::Rng;

multiproc::test_support!();

const WORKERS: usize = 4;

/// Kills a worker and waits until it is gone: a killed process may run on for a moment, and
/// neither a check nor its replacement must race with it.
fn kill_and_wait(worker: &Process<()>) {
    worker.kill().unwrap();
    let start = Instant::now();
    while worker.is_alive() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a killed worker lives on"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Kills a worker, waits until it is gone, and reaps it.
fn end(worker: Process<()>) {
    kill_and_wait(&worker);
    assert!(worker.join().is_err(), "a worker ended by itself");
}

/// Workers are daemons: if a check fails, the test's end ends them too (they loop forever).
fn daemon() -> multiproc::Builder {
    let mut b = Process::builder();
    b.daemon(true);
    b
}

/// `[total, done by worker 0, done by worker 1, …]`; `total` is the sum of the others.
type Counters = [u64; 1 + WORKERS];

/// Everything a lock-storm worker touches: the counters, the array, the acknowledgements,
/// and two tallies: states found broken without an owner-died report (must stay 0) and
/// owner-died reports (the kills that landed inside a critical section).
type LockShared = (
    Value<Counters>,
    Array<u64>,
    RawArray<u64>,
    RawValue<u64>,
    RawValue<u64>,
);

/// Restores the counters' invariant after a holder died between its two increments.
fn repair(c: &mut Counters) {
    c[0] = c[1..].iter().sum();
}

/// Restores the array's invariant (every element equal) after a holder died mid-write.
fn repair_array(a: &mut [u64]) {
    let max = a.iter().copied().max().unwrap_or(0);
    a.fill(max);
}

/// Increments the counters and rewrites the whole array under their locks, forever; a state
/// found broken without an owner-died report is counted as a violation.
fn lock_worker((id, (v, a, acked, violations, died)): (usize, LockShared)) {
    loop {
        let done = {
            let mut c = match v.lock() {
                Ok(c) => {
                    if c[0] != c[1..].iter().sum::<u64>() {
                        violations.store(violations.load() + 1);
                    }
                    c
                }
                Err(owner_died) => {
                    died.store(died.load() + 1);
                    let c = owner_died.into_inner();
                    c.clear_poison();
                    c
                }
            };
            repair(&mut c);
            c[0] += 1;
            c[1 + id] += 1;
            c[1 + id]
        };
        acked.set(id, done).unwrap();
        let mut g = match a.lock() {
            Ok(g) => {
                if g.iter().any(|&x| x != g[0]) {
                    violations.store(violations.load() + 1);
                }
                g
            }
            Err(owner_died) => {
                died.store(died.load() + 1);
                let mut g = owner_died.into_inner();
                repair_array(&mut g);
                g.clear_poison();
                g
            }
        };
        let next = g[0] + 1;
        g.fill(next);
    }
}

/// Starts worker `id`; a killed worker's replacement goes on from the counters.
fn start_lock_worker(id: usize, shared: &LockShared) -> Process<()> {
    daemon().start(lock_worker, (id, shared.clone())).unwrap()
}

fn lock_storm(kills: usize, seed: u64) {
    let shared: LockShared = (
        Value::new([0; 1 + WORKERS]).unwrap(),
        Array::new(4096).unwrap(),
        RawArray::new(WORKERS).unwrap(),
        RawValue::new(0).unwrap(),
        RawValue::new(0).unwrap(),
    );
    let mut workers: Vec<_> = (0..WORKERS)
        .map(|id| start_lock_worker(id, &shared))
        .collect();
    let mut rng = Rng::new(seed);
    let watchdog = Instant::now();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        let id = rng.below(WORKERS as u64) as usize;
        kill_and_wait(&workers[id]);
        end(std::mem::replace(
            &mut workers[id],
            start_lock_worker(id, &shared),
        ));
        assert!(
            watchdog.elapsed() < Duration::from_secs(300),
            "storm too slow"
        );
    }
    // The survivors keep working: every worker moves on after the last kill.
    let (v, a, acked, violations, died) = &shared;
    let after_storm: Vec<u64> = (0..WORKERS).map(|i| acked.get(i).unwrap()).collect();
    let start = Instant::now();
    while (0..WORKERS).any(|i| acked.get(i).unwrap() <= after_storm[i]) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a worker stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    workers.into_iter().for_each(end);

    let mut c = v.lock().unwrap_or_else(|d| d.into_inner());
    repair(&mut c);
    for i in 0..WORKERS {
        let done = c[1 + i];
        let ack = acked.get(i).unwrap();
        // A worker killed between its increment and its acknowledgement did one more.
        assert!(
            done == ack || done == ack + 1,
            "worker {i}: {done} done, {ack} acknowledged"
        );
    }
    let mut g = a.lock().unwrap_or_else(|d| d.into_inner());
    repair_array(&mut g);
    assert!(g[0] > 0);
    assert_eq!(
        violations.load(),
        0,
        "a broken state without an owner-died report"
    );
    // Most kills land inside a critical section (the workers hold a lock most of the time).
    assert!(died.load() > 0, "no kill landed inside a critical section");
}

/// Message `i` of a pipe storm: its number, then bytes that depend on it.
fn message(i: u64) -> Vec<u8> {
    let len = (i * 7919 % 70_000) as usize;
    let mut m = i.to_le_bytes().to_vec();
    m.extend((0..len).map(|k| (k as u64 ^ i) as u8));
    m
}

/// Sends messages 0, 1, 2, … until killed.
fn pipe_writer(mut tx: Connection) {
    for i in 0.. {
        if tx.send_bytes(&message(i)).is_err() {
            return;
        }
    }
}

fn pipe_storm(rounds: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..rounds {
        let (mut rx, tx) = multiproc::pipe(true).unwrap();
        let writer = daemon().start(pipe_writer, tx).unwrap();
        let wanted = rng.below(200);
        let mut got = 0;
        while got < wanted {
            let m = rx.recv_bytes().unwrap();
            assert_eq!(m, message(got), "message {got} torn");
            got += 1;
        }
        writer.kill().unwrap();
        let _ = writer.join();
        // What arrives after the kill is whole messages in order, then the end of the stream
        // (the writer may have died mid-frame: that is an error, never a message).
        loop {
            match rx.recv_bytes() {
                Ok(m) => {
                    assert_eq!(m, message(got), "message {got} torn");
                    got += 1;
                }
                Err(RecvError::Disconnected | RecvError::Truncated { .. }) => break,
                Err(e) => panic!("after message {got}: {e}"),
            }
        }
    }
}

/// Increments `counts[id]` on the manager and acknowledges each increment, forever; each
/// worker also makes objects of its own, which the server must free when it dies.
fn manager_worker((id, address, acked): (usize, String, RawArray<u64>)) {
    let manager = Manager::connect(address.parse::<Address>().unwrap(), KEY).unwrap();
    let counts = DictProxy::try_from(manager.get("counts").unwrap()).unwrap();
    let _mine = manager.list(obj!([1, 2, 3])).unwrap();
    let _lock = manager.lock().unwrap();
    loop {
        let n = counts.update_with(id as i64, "add", 1).unwrap();
        acked.set(id, u64::try_from(n).unwrap()).unwrap();
    }
}

const KEY: &[u8] = b"storm";

fn manager_storm(kills: usize, seed: u64) {
    let server = Server::bind("127.0.0.1:0".parse::<Address>().unwrap(), Some(KEY)).unwrap();
    server.publish("counts", "dict", vec![]).unwrap();
    let address = server.address().to_string();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());
    let manager = Manager::connect(address.parse::<Address>().unwrap(), KEY).unwrap();
    let counts = DictProxy::try_from(manager.get("counts").unwrap()).unwrap();
    let base_objects = manager.number_of_objects().unwrap();
    let acked = RawArray::<u64>::new(WORKERS).unwrap();
    let start_worker = |id: usize| {
        daemon()
            .start(manager_worker, (id, address.clone(), acked.clone()))
            .unwrap()
    };
    let mut workers: Vec<_> = (0..WORKERS).map(start_worker).collect();
    let mut rng = Rng::new(seed);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        let id = rng.below(WORKERS as u64) as usize;
        kill_and_wait(&workers[id]);
        end(std::mem::replace(&mut workers[id], start_worker(id)));
    }
    workers.into_iter().for_each(end);
    for i in 0..WORKERS {
        let done = u64::try_from(counts.get(i as i64).unwrap().unwrap_or(obj!(0))).unwrap();
        let ack = acked.get(i).unwrap();
        // Each killed call was applied once or not at all.
        assert!(
            done == ack || done == ack + 1,
            "worker {i}: {done} on the server, {ack} acknowledged"
        );
    }
    // The dead workers' lists and locks are freed once the server notices they are gone.
    let start = Instant::now();
    while manager.number_of_objects().unwrap() != base_objects {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} objects, {base_objects} before the storm",
            manager.number_of_objects().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop((counts, manager));
    stopper.stop();
    serving.join().unwrap().unwrap();
}

/// A storm's test in the suite, and its long `#[ignore]`d variant with 1000 kills.
macro_rules! storm_tests {
    ($($storm:ident($kills:literal): $name:ident, $long:ident;)*) => {$(
        #[test]
        fn $name() {
            let _leaks = common::leak_check();
            $storm($kills, line!().into());
        }

        #[test]
        #[ignore = "long: 1000 kills"]
        fn $long() {
            let _leaks = common::leak_check();
            $storm(1000, line!().into());
        }
    )*};
}

storm_tests! {
    lock_storm(60): lock_holders_killed_at_random_lose_no_acknowledged_increment, long_lock_storm;
    pipe_storm(40): pipe_writers_killed_mid_message_never_deliver_a_torn_one, long_pipe_storm;
    manager_storm(40): manager_clients_killed_mid_call_lose_nothing_acknowledged, long_manager_storm;
}
