//! The process pool with real worker processes: results, order, lazy input, async results,
//! panics.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use multiproc::pool::{GetTimeoutError, Pool, TaskError};

multiproc::test_support!();

fn square(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5555
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn picky(x: u32) -> u32 {
    assert!(x % 3 != 1, "no {x} please");
    x
}

#[test]
fn map_of_100k_items_equals_a_sequential_loop() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let got = pool.map(square, 0..100_000u64).unwrap();
    let want: Vec<u64> = (0..100_000u64).map(square).collect();
    assert_eq!(got, want);
    // Borrowed items work too, and the pool is reusable.
    let v: Vec<u64> = (0..1000).collect();
    assert_eq!(pool.map(square, &v).unwrap(), want[..1000]);
    let r = pool.map_async(square, v.clone());
    assert_eq!(r.get().unwrap(), want[..1000]);
    // Nothing in, nothing out.
    assert_eq!(pool.map(square, Vec::<u64>::new()).unwrap(), []);
    assert_eq!(pool.map_async(square, Vec::<u64>::new()).get().unwrap(), []);
    assert_eq!(pool.imap_unordered(square, 0..0u64).count(), 0);
}

#[test]
fn imap_keeps_input_order() {
    let _leaks = common::leak_check();
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    // Early items sleep longest, so they finish last.
    let naps = [80u64, 60, 40, 20, 0, 0, 0, 0];
    let got: Vec<u64> = pool.imap(nap, naps).map(Result::unwrap).collect();
    assert_eq!(got, naps);
}

#[test]
fn imap_unordered_does_not_wait_for_the_slowest() {
    let _leaks = common::leak_check();
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    let mut it = pool.imap_unordered(nap, [60_000u64, 1, 2, 3, 4]);
    let mut quick: Vec<u64> = (0..4).map(|_| it.next().unwrap().unwrap()).collect();
    quick.sort_unstable();
    assert_eq!(quick, [1, 2, 3, 4]);
    assert_eq!(it.completed(), 4);
    assert_eq!(it.left(), Some(1));
    drop(it);
    // The sixty-second nap is still running: terminating does not wait for it.
    pool.terminate();
}

#[test]
fn an_endless_input_streams_through_the_window() {
    let _leaks = common::leak_check();
    let pool = Pool::builder()
        .processes(2)
        .chunksize(1)
        .window(4)
        .build()
        .unwrap();
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = pulled.clone();
    let input = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let first: Vec<u64> = pool
        .imap(square, input)
        .take(10)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..10).map(square).collect::<Vec<_>>());
    // Ten taken, and at most a window of four chunks of one read ahead.
    let n = pulled.load(Ordering::Relaxed);
    assert!((10..=14).contains(&n), "read {n} items");
    // The adaptive default streams an endless input too.
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.imap(square, 0u64..).take(1000).count(), 1000);
}

#[test]
fn a_panic_is_that_tasks_error_and_imap_goes_on() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let got: Vec<Result<u32, TaskError>> = pool.imap(picky, 0..9u32).collect();
    for (i, r) in got.iter().enumerate() {
        if i % 3 == 1 {
            match r {
                Err(TaskError::Panicked { task, info }) => {
                    assert_eq!(*task, i as u64);
                    assert_eq!(info.message(), format!("no {i} please"));
                    assert!(info.location().unwrap().contains("pool.rs"));
                }
                other => panic!("task {i}: {other:?}"),
            }
        } else {
            assert_eq!(r.as_ref().unwrap(), &(i as u32));
        }
    }
    // `map` fails with the first failure in input order.
    match pool.map(picky, [0u32, 3, 4, 7]) {
        Err(TaskError::Panicked { task: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.apply(picky, 5).unwrap(), 5);
}

const INNER: &str = "MULTIPROC_TEST_POOL_QUIET";

#[test]
fn panics_in_tasks_print_nothing() {
    let _leaks = common::leak_check();
    if std::env::var_os(INNER).is_some() {
        let pool = Pool::new(2).unwrap();
        let r = pool.map_results(picky, 0..30u32);
        assert_eq!(r.iter().filter(|r| r.is_err()).count(), 10);
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "panics_in_tasks_print_nothing",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn async_results_wait_time_out_and_deliver() {
    let _leaks = common::leak_check();
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    let slow = pool.apply_async(nap, 300);
    let slow = match slow.get_timeout(Duration::from_millis(1)) {
        Err(GetTimeoutError::Timeout(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(slow.successful(), None);
    assert_eq!(slow.get().unwrap(), 300);
    let failed = pool.map_async(picky, vec![0u32, 1, 2]);
    failed.wait();
    assert_eq!(failed.successful(), Some(false));
    assert!(matches!(
        failed.get(),
        Err(TaskError::Panicked { task: 1, .. })
    ));
    let both = pool.starmap_async(add, vec![(1, 2), (3, 4)]);
    assert_eq!(both.get().unwrap(), [3, 7]);
}

fn add((a, b): (i64, i64)) -> i64 {
    a + b
}

#[test]
fn a_closed_pool_takes_no_new_work_but_finishes_the_old() {
    let _leaks = common::leak_check();
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    let pending = pool.map_async(nap, vec![20u64; 6]);
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(TaskError::Closed)));
    assert!(matches!(pool.map(square, [1u64]), Err(TaskError::Closed)));
    pool.join();
    assert_eq!(pending.get().unwrap(), [20; 6]);
}

#[test]
fn zero_processes_is_an_error() {
    let _leaks = common::leak_check();
    assert!(matches!(
        Pool::new(0),
        Err(multiproc::pool::PoolError::NoProcesses)
    ));
}

#[test]
fn forked_workers_run_tasks_too() {
    let _leaks = common::leak_check();
    let pool = Pool::builder()
        .processes(2)
        .method(multiproc::StartMethod::Fork)
        .build()
        .unwrap();
    assert_eq!(
        pool.map(square, 0..1000u64).unwrap(),
        (0..1000u64).map(square).collect::<Vec<_>>()
    );
    assert!(matches!(
        pool.apply(picky, 1),
        Err(TaskError::Panicked { task: 0, .. })
    ));
}

fn read_all(fd: multiproc::Descriptor) -> String {
    use std::io::Read;
    let mut s = String::new();
    fd.into_file().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn descriptors_travel_with_tasks() {
    let _leaks = common::leak_check();
    let path = std::env::temp_dir().join(format!("multiproc-pool-fd-{}", std::process::id()));
    std::fs::write(&path, "through the pool").unwrap();
    let pool = Pool::new(2).unwrap();
    let files: Vec<multiproc::Descriptor> = (0..3)
        .map(|_| std::fs::File::open(&path).unwrap().into())
        .collect();
    let got = pool.map(read_all, files).unwrap();
    assert_eq!(got, ["through the pool"; 3]);
    let _ = std::fs::remove_file(&path);
}
