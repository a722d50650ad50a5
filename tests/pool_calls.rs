//! Per-call options of the pool with real worker processes: `chunksize` for one call, and the
//! `callback` / `error_callback` of `apply_async` and `map_async`.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use multiproc::pool::{Pool, TaskError};

multiproc::test_support!();

/// A task's input and the worker that ran it, after a little work (so that a chunk takes long
/// enough for the other worker to take the next one).
fn where_(x: u32) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(1));
    (x, std::process::id())
}

fn where_pair((a, b): (u32, u32)) -> (u32, u32) {
    where_(a + b)
}

/// Checks that the results come in chunks of `n` tasks: each aligned run of `n` ran on one
/// worker, in order; returns the workers seen.
fn assert_chunks_of(n: usize, results: &[(u32, u32)]) -> Vec<u32> {
    let mut pids: Vec<u32> = results.iter().map(|r| r.1).collect();
    for (k, block) in results.chunks(n).enumerate() {
        assert!(
            block.iter().all(|r| r.1 == block[0].1),
            "block {k} of {n} ran on several workers: {block:?}"
        );
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[test]
fn a_calls_chunksize_overrides_the_pools() {
    let _leaks = common::leak_check();
    // The pool's own rule sends one task per chunk.
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    let xs: Vec<u32> = (0..200).collect();

    let got = pool.chunksize(25).map(where_, &xs).unwrap();
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), xs);
    assert_chunks_of(25, &got);

    let got: Vec<(u32, u32)> = pool
        .chunksize(20)
        .imap(where_, &xs)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), xs);
    assert_chunks_of(20, &got);

    let pairs: Vec<(u32, u32)> = xs.iter().map(|&x| (x, 1)).collect();
    let got = pool.chunksize(10).starmap(where_pair, &pairs).unwrap();
    assert_eq!(got[199].0, 200);
    assert_chunks_of(10, &got);

    let got = pool
        .chunksize(50)
        .map_async(where_, xs.clone())
        .get()
        .unwrap();
    assert_chunks_of(50, &got);

    // Unordered: each chunk's tasks still come back together, in their order.
    let mut got: Vec<(u32, u32)> = pool
        .chunksize(40)
        .imap_unordered(where_, &xs)
        .map(Result::unwrap)
        .collect();
    for chunk in got.chunks(40) {
        let first = chunk[0].0;
        assert_eq!(first % 40, 0, "{chunk:?}");
        assert!(
            chunk
                .iter()
                .enumerate()
                .all(|(k, r)| r.0 == first + k as u32)
        );
        assert!(chunk.iter().all(|r| r.1 == chunk[0].1));
    }
    got.sort_unstable();
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), xs);

    // Without a per-call size the pool's own (one task a chunk) applies again, and zero counts
    // as one.
    let one = pool.chunksize(0).map(where_, 0..4).unwrap();
    assert_eq!(one.len(), 4);
    let mut it = pool.imap(where_, 0..1_000_000);
    assert_eq!(it.next().unwrap().unwrap().0, 0);
    drop(it);
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn picky(x: u32) -> u32 {
    assert!(x != 3, "no {x} please");
    x
}

/// Kills the calling worker with SIGKILL, from outside.
fn kill_myself(_: u32) -> u32 {
    let _ = Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What the callbacks saw: a label and the thread they ran on.
type Log = Arc<Mutex<Vec<(String, ThreadId)>>>;

fn note(log: &Log, what: String) {
    log.lock()
        .unwrap()
        .push((what, std::thread::current().id()));
}

#[test]
fn callbacks_run_in_order_of_completion_on_one_thread_before_the_result_is_ready() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let log: Log = Arc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let slow = pool
        .callback(move |v: &u64| note(&l1, format!("slow {v}")))
        .apply_async(nap, 400);
    let quick = pool
        .callback(move |v: &u64| note(&l2, format!("quick {v}")))
        .apply_async(nap, 1);
    let many = pool
        .callback(move |v: &Vec<u64>| note(&l3, format!("many {}", v.len())))
        .chunksize(1)
        .map_async(nap, vec![1u64; 5]);
    // Ready means the callback has run.
    assert_eq!(slow.get().unwrap(), 400);
    assert!(many.ready());
    assert!(quick.ready());
    assert_eq!(quick.get().unwrap(), 1);
    assert_eq!(many.get().unwrap(), [1; 5]);
    let log = log.lock().unwrap();
    let labels: Vec<&str> = log.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(labels.last(), Some(&"slow 400"), "{labels:?}");
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(labels.contains(&"quick 1") && labels.contains(&"many 5"));
    let thread = log[0].1;
    assert!(log.iter().all(|(_, t)| *t == thread));
    assert_ne!(thread, std::thread::current().id());
}

#[test]
fn error_callbacks_get_panics_and_dead_workers_and_the_pool_goes_on() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = mpsc::channel::<Result<String, TaskError>>();
    let (ok, err) = (tx.clone(), tx.clone());
    let r = pool
        .callback(move |v: &u32| ok.send(Ok(format!("{v}"))).unwrap())
        .error_callback(move |e| err.send(Err(e.clone())).unwrap())
        .apply_async(picky, 3);
    assert!(matches!(r.get(), Err(TaskError::Panicked { task: 0, .. })));
    match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
        Err(TaskError::Panicked { info, .. }) => assert_eq!(info.message(), "no 3 please"),
        other => panic!("{other:?}"),
    }

    // A map whose worker is killed: the error callback gets the first failed task's error, and
    // the result callback is not called.
    let ok = tx.clone();
    let err = tx.clone();
    let r = pool
        .callback(move |v: &Vec<u32>| ok.send(Ok(format!("{v:?}"))).unwrap())
        .error_callback(move |e| err.send(Err(e.clone())).unwrap())
        .chunksize(1)
        .map_async(kill_myself, vec![7]);
    assert!(matches!(
        r.get(),
        Err(TaskError::WorkerDied { task: 0, .. })
    ));
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap(),
        Err(TaskError::WorkerDied { task: 0, .. })
    ));

    // The replaced worker takes the next call, whose callback gets its value.
    let ok = tx.clone();
    let r = pool
        .callback(move |v: &u32| ok.send(Ok(format!("{v}"))).unwrap())
        .apply_async(picky, 4);
    assert_eq!(r.get().unwrap(), 4);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap(),
        "4"
    );
    drop(tx);
    pool.join();
    assert!(rx.recv().is_err(), "a callback ran twice");
}

#[test]
fn a_panicking_callback_keeps_the_result_and_the_callbacks_after_it() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let r = pool
        .callback(|v: &u32| panic!("callback refuses {v}"))
        .apply_async(picky, 5);
    assert_eq!(r.get().unwrap(), 5);
    let r = pool
        .error_callback(|e| panic!("error callback refuses {e}"))
        .apply_async(picky, 3);
    assert!(matches!(r.get(), Err(TaskError::Panicked { .. })));
    let (tx, rx) = mpsc::channel();
    let r = pool
        .callback(move |v: &Vec<u32>| tx.send(v.len()).unwrap())
        .map_async(picky, vec![1u32; 100]);
    assert_eq!(r.get().unwrap().len(), 100);
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), 100);
}

#[test]
fn terminate_hands_the_unfinished_calls_to_their_error_callbacks_first() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let log: Log = Arc::default();
    let results: Vec<_> = (0..3)
        .map(|k| {
            let l = log.clone();
            pool.error_callback(move |e| note(&l, format!("{k}: {e}")))
                .apply_async(nap, 60_000)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    pool.terminate();
    // Every error callback has run by the time terminate returns.
    assert_eq!(log.lock().unwrap().len(), 3, "{:?}", log.lock().unwrap());
    for r in results {
        assert!(r.ready());
        assert!(matches!(r.get(), Err(TaskError::Terminated { .. })));
    }
    // A call on the terminated pool is refused, through its error callback too.
    let (tx, rx) = mpsc::channel();
    let r = pool
        .error_callback(move |e| tx.send(e.to_string()).unwrap())
        .apply_async(nap, 1);
    assert!(r.get().is_err());
    assert!(!rx.recv_timeout(Duration::from_secs(60)).unwrap().is_empty());
}

#[test]
fn a_callback_may_drop_the_last_handle_on_its_pool() {
    let _leaks = common::leak_check();
    let pool = Arc::new(Pool::new(1).unwrap());
    let (tx, rx) = mpsc::channel();
    let mine = pool.clone();
    let r = pool
        .callback(move |v: &u64| {
            drop(mine);
            tx.send(*v).unwrap();
        })
        .apply_async(nap, 20);
    drop(pool);
    // The callback thread dropped the pool (terminating it) without waiting for itself.
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), 20);
    assert_eq!(r.get().unwrap(), 20);
}
