//! Pool supervision with real processes: workers killed, exiting, overrunning, retried,
//! recycled; initializers that fail; workers that die with their parent.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use multiproc::pool::{Pool, PoolError, TaskError, WorkerExit};
use multiproc::{Connection, Process};

multiproc::test_support!();

/// Kills the calling worker with SIGKILL, from outside (as the OOM killer or `kill -9` would).
fn kill_myself() -> ! {
    let _ = Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Ten milliseconds of work (so that the adaptive rule sends one task per chunk); task 5 has
/// its worker killed.
fn victim(i: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(10));
    if i == 5 {
        kill_myself();
    }
    i * 10
}

fn exits(i: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(10));
    if i == 2 {
        std::process::exit(3);
    }
    i
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

/// A pool of `n` workers, once all `n` have started (`build` returns once one is ready).
fn full_pool(n: usize) -> Pool {
    let pool = Pool::new(n).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool.worker_pids().len() < n {
        assert!(Instant::now() < deadline, "workers did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    pool
}

#[test]
fn a_killed_worker_fails_exactly_its_task_and_is_replaced() {
    let _leaks = common::leak_check();
    let pool = full_pool(2);
    let before = pool.worker_pids();
    let results = pool.map_results(victim, 0..20u64);
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            match r {
                Err(TaskError::WorkerDied { task: 5, pid, exit }) => {
                    assert_eq!(*exit, WorkerExit::Signal(9));
                    assert!(before.contains(pid), "{pid} not in {before:?}");
                    let text = r.as_ref().unwrap_err().to_string();
                    assert!(text.contains("SIGKILL"), "{text}");
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert_eq!(r.as_ref().unwrap(), &(i as u64 * 10));
        }
    }
    // Still usable, with a replacement worker.
    assert_eq!(pool.map(victim, [1u64, 2, 3]).unwrap(), [10, 20, 30]);
    let after = pool.worker_pids();
    assert_eq!(after.len(), 2);
    assert_ne!(before, after);
}

#[test]
fn a_worker_that_exits_gives_its_exit_code() {
    let _leaks = common::leak_check();
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = pool.imap(exits, 0..6u64).collect();
    assert!(matches!(
        results[2],
        Err(TaskError::WorkerDied {
            task: 2,
            exit: WorkerExit::Code(3),
            ..
        })
    ));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
}

#[test]
fn a_task_over_its_timeout_is_killed_with_its_worker() {
    let _leaks = common::leak_check();
    let pool = Pool::builder()
        .processes(2)
        .chunksize(1)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let results = pool.map_results(nap, [1u64, 60_000, 2, 3]);
    assert!(
        matches!(results[1], Err(TaskError::TimedOut { task: 1, .. })),
        "{results:?}"
    );
    assert_eq!(results[3].as_ref().unwrap(), &3);
    assert_eq!(pool.apply(nap, 4).unwrap(), 4);
}

/// Kills its worker the first time it runs for a given marker path, returns afterwards.
fn dies_once(marker: PathBuf) -> u8 {
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_ok()
    {
        kill_myself();
    }
    1
}

fn marker(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("multiproc-pool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn retries_run_a_lost_task_again() {
    let _leaks = common::leak_check();
    let m = marker("retry");
    let pool = Pool::builder().processes(1).retries(1).build().unwrap();
    assert_eq!(pool.apply(dies_once, m.clone()).unwrap(), 1);
    let _ = std::fs::remove_file(&m);
    let pool = Pool::builder().processes(1).build().unwrap();
    assert!(matches!(
        pool.apply(dies_once, m.clone()),
        Err(TaskError::WorkerDied { .. })
    ));
    let _ = std::fs::remove_file(&m);
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's children that are zombies.
fn zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me.to_string() {
            out.push(pid);
        }
    }
    out
}

#[test]
fn one_task_per_child_leaves_no_zombie_and_no_descriptor() {
    let _leaks = common::leak_check();
    // Other tests of this binary run pools at the same time: compare against a second run in
    // a fresh copy of the binary, alone.
    if std::env::var_os("MULTIPROC_TEST_POOL_ALONE").is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "one_task_per_child_leaves_no_zombie_and_no_descriptor",
                "--exact",
                "--test-threads=1",
            ])
            .env("MULTIPROC_TEST_POOL_ALONE", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        return;
    }
    let fds = open_fds();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .chunksize(1)
        .build()
        .unwrap();
    let pids = pool.map(pid, 0..1000u64).unwrap();
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 1000, "one worker per task");
    assert_eq!(zombies(), Vec::<u32>::new());
    pool.join();
    assert_eq!(zombies(), Vec::<u32>::new());
    assert_eq!(open_fds(), fds);
}

#[test]
fn terminate_while_tasks_run_returns_promptly() {
    let _leaks = common::leak_check();
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    let pending = pool.map_async(nap, vec![60_000u64; 4]);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    pool.terminate();
    // A watchdog, not a timing measurement: the naps last a minute.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(matches!(
        pending.get(),
        Err(TaskError::Terminated { task: 0 })
    ));
    assert!(matches!(pool.apply(nap, 1), Err(TaskError::Closed)));
}

fn refuse(why: String) {
    panic!("{why}");
}

#[test]
fn a_failing_initializer_is_an_error_not_a_respawn_loop() {
    let _leaks = common::leak_check();
    match Pool::builder()
        .processes(2)
        .initializer(refuse, "no database".to_owned())
        .build()
    {
        Err(PoolError::Init(msg)) => assert!(msg.contains("no database"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

/// Fails once the marker file exists.
fn fails_after(marker: PathBuf) {
    assert!(!marker.exists(), "the marker is there");
}

#[test]
fn replacements_whose_initializer_fails_are_given_up() {
    let _leaks = common::leak_check();
    let m = marker("init");
    let pool = Pool::builder()
        .processes(1)
        .initializer(fails_after, m.clone())
        .build()
        .unwrap();
    std::fs::write(&m, b"").unwrap();
    // The worker dies; its replacements fail three times; then no worker is left.
    let r = pool.map_results(victim, [5u64, 1, 2]);
    assert!(
        matches!(r[0], Err(TaskError::WorkerDied { task: 0, .. })),
        "{r:?}"
    );
    match &r[1] {
        Err(TaskError::NoWorkers { task: 1, reason }) => {
            assert!(reason.contains("the marker is there"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(pool.worker_pids().is_empty());
    // Later calls fail at once rather than wait for workers that will not come.
    assert!(matches!(
        pool.map_async(victim, vec![1u64]).get(),
        Err(TaskError::NoWorkers { .. })
    ));
    let _ = std::fs::remove_file(&m);
}

/// In a child: starts a pool, reports its workers' pids, waits to be killed.
fn pool_parent(mut report: Connection) {
    let pool = full_pool(2);
    report.send(&pool.worker_pids()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if pids.iter().all(|&p| is_gone(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn workers_die_with_a_sigkilled_parent() {
    let _leaks = common::leak_check();
    let (mut mine, theirs) = multiproc::pipe(true).unwrap();
    let parent = Process::start(pool_parent, theirs).unwrap();
    let workers: Vec<u32> = mine.recv().unwrap();
    assert_eq!(workers.len(), 2);
    assert!(!workers.iter().any(|&p| is_gone(p)));
    parent.kill().unwrap();
    assert!(parent.join().is_err());
    assert!(
        wait_gone(&workers),
        "workers {workers:?} outlived their parent"
    );
}

/// Hangs once the marker file exists.
fn hangs_after(marker: PathBuf) {
    if marker.exists() {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn terminate_kills_a_replacement_stuck_in_its_initializer() {
    let _leaks = common::leak_check();
    let m = marker("stuck");
    let pool = Pool::builder()
        .processes(1)
        .initializer(hangs_after, m.clone())
        .build()
        .unwrap();
    std::fs::write(&m, b"").unwrap();
    let r = pool.apply(victim, 5);
    assert!(matches!(r, Err(TaskError::WorkerDied { .. })), "{r:?}");
    // The replacement now sleeps in its initializer.
    let started = Instant::now();
    pool.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "terminate waited"
    );
    let _ = std::fs::remove_file(&m);
}
