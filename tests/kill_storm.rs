//! Kill storms: worker processes that use a lock-protected `Value` and `Array`, a `Pipe`, a
//! manager proxy, or that are a `Pool`'s workers are SIGKILLed at random moments, over and
//! over, and replaced. The survivors keep working, every shared structure passes its
//! consistency check, and the accounting is exact: what a worker acknowledged is there once,
//! and every pool task completes exactly once or reports its worker's death. (The queue has its
//! own storm in `tests/queue_storm.rs`.) The `#[ignore]`d variants run far more kills:
//! `cargo test --release --test kill_storm -- --ignored`.

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, Manager, Server};
use multiproc::obj;
use multiproc::pool::{Pool, TaskError, WorkerExit};
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

/// What a pool storm's tasks share with the test: how many times each task ran to its end
/// (`runs[task]`), and the pids of the workers that ran the latest tasks (`busy`), which the
/// killer aims at.
type PoolShared = (RawArray<u64>, RawArray<u64>);

/// Tasks a pool storm may run in all (the size of `runs`).
const POOL_TASKS: usize = 1 << 18;
/// Entries of `busy`.
const BUSY: usize = 8;
const POOL_WORKERS: usize = 3;

static POOL_SHARED: OnceLock<PoolShared> = OnceLock::new();

/// The workers' initializer: keeps the shared arrays for the tasks.
fn pool_init(shared: PoolShared) {
    let _ = POOL_SHARED.set(shared);
}

/// How long task `i` works: none for a quarter of the tasks (they travel in chunks), else up
/// to 2 ms.
fn pool_work(i: u64) -> Duration {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if h >> 62 == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(h >> 53)
    }
}

/// Task `i`: tells which worker runs it, works a little, counts its run; `3i + 1`.
fn pool_task(i: u64) -> u64 {
    let (runs, busy) = POOL_SHARED.get().expect("the initializer ran");
    busy.set(i as usize % BUSY, u64::from(std::process::id()))
        .unwrap();
    std::thread::sleep(pool_work(i));
    let slot = i as usize;
    runs.set(slot, runs.get(slot).unwrap() + 1).unwrap();
    3 * i + 1
}

/// Sends SIGKILL to `pid` if it is a live child of this process; whether it did. (The pid is
/// pinned by a pidfd before it is checked, so a pid reused meanwhile is never hit.)
fn kill_child(pid: u32) -> bool {
    use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
    let Some(p) = Pid::from_raw(pid as i32) else {
        return false;
    };
    let Ok(fd) = pidfd_open(p, PidfdFlags::empty()) else {
        return false;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // pid (comm) state ppid ...
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ours = fields.get(1) == Some(&std::process::id().to_string().as_str());
    ours && fields[0] != "Z" && pidfd_send_signal(&fd, Signal::KILL).is_ok()
}

/// Kills workers seen running a task, at random moments, until `kills` were killed. Workers
/// still starting are left alone: the pool gives a slot up after three deaths in a row during
/// start-up, by design, and the storm is about deaths at work.
fn pool_killer(pool: &Pool, busy: &RawArray<u64>, kills: u64, seed: u64, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    let mut killed = HashSet::new();
    while (killed.len() as u64) < kills && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_micros(rng.below(10_000)));
        let pid = busy.get(rng.below(BUSY as u64) as usize).unwrap() as u32;
        if pid != 0
            && !killed.contains(&pid)
            && pool.worker_pids().contains(&pid)
            && kill_child(pid)
        {
            killed.insert(pid);
        }
    }
    stop.store(true, Ordering::Relaxed);
}

/// What became of a task, as its call reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Not reported (yet, or its `map` failed on an earlier task).
    Unknown,
    Done,
    WorkerDied,
}

/// The test's side of a pool storm: every task's outcome, checked as it comes.
struct PoolBook<'a> {
    runs: &'a RawArray<u64>,
    outcome: Vec<Outcome>,
    next: u64,
}

impl PoolBook<'_> {
    /// Task ids for a call of `n` tasks.
    fn take(&mut self, n: u64) -> std::ops::Range<u64> {
        let start = self.next;
        self.next += n;
        assert!(
            self.next as usize <= POOL_TASKS,
            "the storm ran out of tasks"
        );
        self.outcome.resize(self.next as usize, Outcome::Unknown);
        start..self.next
    }

    /// Records the result of task `id`, the task `index` of its call: a right value after
    /// exactly one run, or the death of its worker by SIGKILL; reported once.
    fn record(&mut self, id: u64, index: u64, r: Result<u64, TaskError>) {
        let slot = &mut self.outcome[id as usize];
        assert_eq!(*slot, Outcome::Unknown, "task {id} reported twice");
        match r {
            Ok(v) => {
                assert_eq!(v, 3 * id + 1, "task {id}'s result");
                let runs = self.runs.get(id as usize).unwrap();
                assert_eq!(runs, 1, "task {id} completed after {runs} runs");
                *slot = Outcome::Done;
            }
            Err(TaskError::WorkerDied { task, exit, .. }) => {
                assert_eq!(task, index, "task {id}'s error names another task");
                assert_eq!(exit, WorkerExit::Signal(9), "task {id}");
                *slot = Outcome::WorkerDied;
            }
            Err(e) => panic!("task {id}: {e}"),
        }
    }

    /// One call of `n` tasks, by `map_results`, `imap`, `imap_unordered`, `apply_async` or
    /// `map`, chosen by `how`; every task is reported once (but after a failed `map`).
    fn call(&mut self, pool: &Pool, how: u64, n: u64) {
        let ids = self.take(n);
        let start = ids.start;
        match how {
            0 => {
                for (k, r) in pool.map_results(pool_task, ids).into_iter().enumerate() {
                    self.record(start + k as u64, k as u64, r);
                }
            }
            1 => {
                for (k, r) in pool.imap(pool_task, ids).enumerate() {
                    self.record(start + k as u64, k as u64, r);
                }
            }
            2 => {
                for r in pool.imap_unordered(pool_task, ids) {
                    let k = match &r {
                        Ok(v) => (v - 1) / 3 - start,
                        Err(TaskError::WorkerDied { task, .. }) => *task,
                        Err(e) => panic!("a task of {start}..: {e}"),
                    };
                    self.record(start + k, k, r);
                }
            }
            3 => {
                let pending: Vec<_> = ids.map(|i| (i, pool.apply_async(pool_task, i))).collect();
                for (i, r) in pending {
                    self.record(i, 0, r.get());
                }
            }
            _ => match pool.map(pool_task, ids.clone()) {
                Ok(values) => {
                    assert_eq!(values.len() as u64, n);
                    for (i, v) in ids.zip(values) {
                        self.record(i, i - start, Ok(v));
                    }
                }
                Err(e @ TaskError::WorkerDied { task, .. }) => {
                    self.record(start + task, task, Err(e))
                }
                Err(e) => panic!("map of {start}..: {e}"),
            },
        }
        if how != 4 {
            let reported = self.outcome[start as usize..]
                .iter()
                .all(|o| *o != Outcome::Unknown);
            assert!(reported, "a task of {start}.. was never reported");
        }
    }
}

/// Fails the test if it is not dropped within `limit`: a storm that hangs says so.
struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

impl Watchdog {
    fn new(what: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("{what}: still running after {limit:?}");
                std::process::exit(101);
            }
        });
        Watchdog(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.0.take().map(|tx| tx.send(()));
    }
}

/// Pool workers are SIGKILLed at random while `map`, `imap`, `imap_unordered`, `apply_async`
/// and `map_results` calls run: every task completes exactly once or reports its worker's
/// death, and the pool replaces its workers and stays usable.
fn pool_storm(kills: usize, seed: u64) {
    let _watch = Watchdog::new("pool storm", Duration::from_secs(60 + kills as u64));
    let shared: PoolShared = (
        RawArray::new(POOL_TASKS).unwrap(),
        RawArray::new(BUSY).unwrap(),
    );
    let (runs, busy) = &shared;
    let pool = Pool::builder()
        .processes(POOL_WORKERS)
        .initializer(pool_init, shared.clone())
        .build()
        .unwrap();
    let mut book = PoolBook {
        runs,
        outcome: Vec::new(),
        next: 0,
    };
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| pool_killer(&pool, busy, kills as u64, seed, &stop));
        let _stop = StopOnExit(&stop);
        let mut rng = Rng::new(seed ^ 0x5eed);
        while !stop.load(Ordering::Relaxed) {
            book.call(&pool, rng.below(5), 1 + rng.below(48));
            calls.fetch_add(1, Ordering::Relaxed);
        }
    });
    // The pool replaced every killed worker and is usable.
    let start = Instant::now();
    while pool.worker_pids().len() < POOL_WORKERS {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "workers not replaced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A worker killed while idle at the storm's end may be found dead only when it is given a
    // task (that task reports its death): within a few maps, one completes whole.
    let usable = (0..=POOL_WORKERS).any(|_| {
        let start = book.outcome.len();
        book.call(&pool, 0, 100);
        book.outcome[start..].iter().all(|o| *o == Outcome::Done)
    });
    assert!(usable, "no map of 100 tasks completed after the storm");
    // Once every worker has exited, no task ran more than once, and a task that completed
    // ran exactly once.
    pool.join();
    let mut died = 0;
    for (id, o) in book.outcome.iter().enumerate() {
        let n = runs.get(id).unwrap();
        match o {
            Outcome::Done => assert_eq!(n, 1, "task {id} completed after {n} runs"),
            _ => assert!(n <= 1, "task {id}, {o:?}, ran {n} times"),
        }
        died += u64::from(*o == Outcome::WorkerDied);
    }
    assert!(died > 0, "no kill landed inside a task");
    println!(
        "pool storm: {kills} workers killed during {} calls of {} tasks; {died} tasks reported \
         WorkerDied, {} completed",
        calls.load(Ordering::Relaxed),
        book.outcome.len(),
        book.outcome.iter().filter(|o| **o == Outcome::Done).count()
    );
}

/// Stops the killer when the storm's calls end, also by a panic (so that the scope can end
/// and report it).
struct StopOnExit<'a>(&'a AtomicBool);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
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
    pool_storm(30): pool_workers_killed_at_random_fail_only_their_tasks, long_pool_storm;
}
