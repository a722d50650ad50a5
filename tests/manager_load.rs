//! Load on `multiproc serve`: many client processes, each with many threads (one connection
//! each while their calls are in flight), run mixed operations for a bounded time. Every
//! result is checked as it comes and every total at the end; afterwards the server holds no
//! more objects, descriptors or threads than before, and its memory is bounded. The
//! `#[ignore]`d variant holds 1000 concurrent connections:
//! `cargo test --release --test manager_load -- --ignored --nocapture` (it prints the server's
//! figures).

mod common;

use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, LockProxy, Manager, QueueProxy};
use multiproc::{Address, Process, obj};

multiproc::test_support!();

const KEY: &[u8] = b"load";

/// What one client process did: operations, increments, locked increments, puts, gets.
type Tally = [u64; 5];

/// `threads` threads, each running mixed operations on the published objects and on objects
/// of its own for `secs` seconds.
fn client((address, threads, secs): (String, u32, u64)) -> Tally {
    let manager = Manager::connect(address.parse::<Address>().unwrap(), KEY).unwrap();
    let state = DictProxy::try_from(manager.get("state").unwrap()).unwrap();
    let jobs = QueueProxy::try_from(manager.get("jobs").unwrap()).unwrap();
    let guard = LockProxy::try_from(manager.get("guard").unwrap()).unwrap();
    let start = std::sync::Barrier::new(threads as usize);
    let until = Instant::now() + Duration::from_secs(secs) + Duration::from_secs(5);
    let pid = std::process::id();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (manager, state, jobs, guard, start) =
                    (&manager, &state, &jobs, &guard, &start);
                s.spawn(move || {
                    let mine = manager.list(obj!([]));
                    // Every thread reaches the barrier, even one whose call failed.
                    start.wait();
                    let mine = mine.unwrap();
                    let run_until = Instant::now() + Duration::from_secs(secs);
                    let mut tally = [0u64; 5];
                    let mut i: i64 = 0;
                    while Instant::now() < run_until {
                        let key = format!("{pid}-{t}");
                        state.set(key.as_str(), i).unwrap();
                        assert_eq!(state.get_item(key.as_str()).unwrap(), obj!(i));
                        mine.append(i).unwrap();
                        assert_eq!(mine.len().unwrap(), i as usize + 1);
                        state.update_with("total", "add", 1).unwrap();
                        tally[1] += 1;
                        if i % 4 == 0 {
                            guard.acquire().unwrap();
                            // A plain read then write: exact only if the lock excludes.
                            let n = state.get("locked").unwrap().unwrap_or(obj!(0));
                            state.set("locked", n.as_i64().unwrap() + 1).unwrap();
                            guard.release().unwrap();
                            tally[2] += 1;
                        }
                        jobs.put(obj!((i64::from(pid), i64::from(t), i))).unwrap();
                        tally[3] += 1;
                        if jobs
                            .get_timeout(Duration::from_millis(1))
                            .unwrap()
                            .is_some()
                        {
                            tally[4] += 1;
                        }
                        tally[0] += 8;
                        i += 1;
                    }
                    assert!(Instant::now() < until, "a call took too long");
                    state.delete(format!("{pid}-{t}")).unwrap();
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut sum = [0u64; 5];
    for t in tallies {
        for (s, x) in sum.iter_mut().zip(t) {
            *s += x;
        }
    }
    sum
}

fn load(processes: u32, threads: u32, secs: u64, report: bool) {
    let server = common::Serve::start(&["state=dict", "jobs=Queue", "guard=Lock"], KEY);
    let address = server.address.clone();
    let pid = server.pid();

    let run = |processes: u32, threads: u32, secs: u64, sample: bool| {
        let clients: Vec<_> = (0..processes)
            .map(|_| {
                Process::builder()
                    .daemon(true)
                    .start(client, (address.clone(), threads, secs))
                    .unwrap()
            })
            .collect();
        // Sample the server while the clients are running.
        let during = sample.then(|| {
            std::thread::sleep(Duration::from_secs(secs / 2 + 1));
            common::process_figures(pid)
        });
        let mut total = [0u64; 5];
        for c in clients {
            for (t, x) in total.iter_mut().zip(c.join().unwrap()) {
                *t += x;
            }
        }
        (total, during)
    };
    // A first small round starts what the server starts once (its workers for long calls).
    let (warm_up, _) = run(1, 4, 1, false);
    let before = common::process_figures(pid);
    let (mut total, during) = run(processes, threads, secs, true);
    let during = during.unwrap();
    for (t, x) in total.iter_mut().zip(warm_up) {
        *t += x;
    }

    let manager = Manager::connect(address.parse::<Address>().unwrap(), KEY).unwrap();
    let state = DictProxy::try_from(manager.get("state").unwrap()).unwrap();
    let jobs = QueueProxy::try_from(manager.get("jobs").unwrap()).unwrap();
    assert_eq!(state.get_item("total").unwrap(), obj!(total[1] as i64));
    assert_eq!(state.get_item("locked").unwrap(), obj!(total[2] as i64));
    assert_eq!(
        jobs.qsize().unwrap() as u64,
        total[3] - total[4],
        "every put either got or still queued"
    );
    assert_eq!(state.len().unwrap(), 2, "every client's own keys deleted");
    // Each thread's own list is freed; the three published objects remain (and the proxies
    // just taken).
    let start = Instant::now();
    while manager.number_of_objects().unwrap() != 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "objects not freed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop((state, jobs, manager));
    let start = Instant::now();
    let after = loop {
        let after = common::process_figures(pid);
        if after.2 <= before.2 || start.elapsed() > Duration::from_secs(30) {
            break after;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        after.2 <= before.2,
        "descriptors: {before:?} before, {after:?} after"
    );
    assert!(
        after.1 <= before.1,
        "threads: {before:?} before, {after:?} after"
    );
    // Freed memory need not return to the system; it must not grow with the work done.
    assert!(
        after.0 < before.0 + 256 * 1024,
        "memory: {before:?} before, {after:?} after"
    );
    if report {
        eprintln!(
            "{} connections for {secs} s: {} operations checked ({:.0}/s); server \
             RSS {} KiB before, {} KiB during, {} KiB after; threads {} / {} / {}; \
             descriptors {} / {} / {}",
            processes * threads,
            total[0],
            total[0] as f64 / secs as f64,
            before.0,
            during.0,
            after.0,
            before.1,
            during.1,
            after.1,
            before.2,
            during.2,
            after.2,
        );
    }

    server.stop();
}

#[test]
fn a_hundred_connections_of_mixed_operations_are_all_checked() {
    let _leaks = common::leak_check();
    load(4, 25, 2, false);
}

/// 1000 concurrent connections (8 processes × 125 threads) for 20 s.
#[test]
#[ignore = "long: 1000 connections for 20 s"]
fn a_thousand_connections_of_mixed_operations_are_all_checked() {
    let _leaks = common::leak_check();
    load(8, 125, 20, true);
}
