//! Processes: real children, started, joined, killed and counted.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use multiproc::{Descriptor, JoinError, JoinTimeoutError, Process, StartMethod};

multiproc::test_support!();

fn add(args: (i64, i64)) -> i64 {
    args.0 + args.1
}

fn task(mut data: Vec<i32>) -> Vec<i32> {
    data.push(666);
    data
}

fn boom(msg: String) -> u8 {
    panic!("{msg}")
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn echo_len(data: Vec<u8>) -> (usize, u64) {
    let sum = data.iter().map(|&b| u64::from(b)).sum();
    (data.len(), sum)
}

fn write_through(fd: Descriptor) -> usize {
    let mut f = fd.into_file();
    f.write_all(b"written by the child").unwrap();
    20
}

fn identity(_: ()) -> (String, u32, Option<u32>, bool) {
    let me = multiproc::current_process();
    let parent = multiproc::parent_process().map(|p| p.pid());
    (me.name().to_owned(), me.pid(), parent, me.daemon())
}

#[test]
fn result_round_trip() {
    let _leaks = common::leak_check();
    let p = Process::start(add, (40, 2)).unwrap();
    assert!(p.pid() > 0);
    assert_ne!(p.pid(), std::process::id());
    assert_eq!(p.join().unwrap(), 42);
}

#[test]
fn child_memory_is_its_own() {
    let _leaks = common::leak_check();
    let data_list: Vec<i32> = vec![];
    let p = Process::start(task, data_list.clone()).unwrap();
    assert_eq!(p.join().unwrap(), vec![666]);
    assert!(data_list.is_empty());
}

#[test]
fn panic_message_reaches_join() {
    let _leaks = common::leak_check();
    let p = Process::start(boom, "the child gave up".to_owned()).unwrap();
    match p.join() {
        Err(JoinError::Panicked(info)) => {
            assert_eq!(info.message(), "the child gave up");
            assert!(info.location().unwrap().contains("process.rs"), "{info}");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn exit_codes() {
    let _leaks = common::leak_check();
    let p = Process::start(exit_with, 7).unwrap();
    let err = p.join().unwrap_err();
    assert!(matches!(err, JoinError::Exited(7)), "{err:?}");
    assert_eq!(err.exitcode(), Some(7));

    let p = Process::start(sleep_ms, 60_000).unwrap();
    p.terminate().unwrap();
    let err = p.join().unwrap_err();
    assert!(matches!(err, JoinError::Killed(15)), "{err:?}");
    assert_eq!(err.exitcode(), Some(-15));

    let p = Process::start(sleep_ms, 60_000).unwrap();
    p.kill().unwrap();
    assert!(matches!(p.join().unwrap_err(), JoinError::Killed(9)));

    let p = Process::start(boom, "x".into()).unwrap();
    assert_eq!(p.join().unwrap_err().exitcode(), Some(1));
}

#[test]
fn exitcode_and_is_alive() {
    let _leaks = common::leak_check();
    let p = Process::start(sleep_ms, 60_000).unwrap();
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.kill().unwrap();
    let watchdog = Instant::now();
    while p.is_alive() {
        assert!(
            watchdog.elapsed() < Duration::from_secs(30),
            "child did not die"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.exitcode(), Some(-9));
    // Signals to an ended child are not errors.
    p.terminate().unwrap();
    p.kill().unwrap();
}

#[test]
fn join_timeout_hands_the_process_back() {
    let _leaks = common::leak_check();
    let p = Process::start(sleep_ms, 300).unwrap();
    let started = Instant::now();
    let p = match p.join_timeout(Duration::from_millis(20)) {
        Err(JoinTimeoutError::Timeout(p)) => p,
        other => panic!("expected a time-out, got {other:?}"),
    };
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), 300);
}

#[test]
fn hundred_children_at_once() {
    let _leaks = common::leak_check();
    let procs: Vec<_> = (0..100)
        .map(|i| Process::start(add, (i, 1000)).unwrap())
        .collect();
    let results: Vec<i64> = procs.into_iter().map(|p| p.join().unwrap()).collect();
    assert_eq!(results, (0..100).map(|i| i + 1000).collect::<Vec<_>>());
}

#[test]
fn big_argument() {
    let _leaks = common::leak_check();
    let data: Vec<u8> = (0..64 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let p = Process::start(echo_len, data).unwrap();
    assert_eq!(p.join().unwrap(), (64 * 1024 * 1024, sum));
}

#[test]
fn descriptor_as_argument() {
    let _leaks = common::leak_check();
    let path = std::env::temp_dir().join(format!("multiproc-test-fd-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let p = Process::start(write_through, Descriptor::from(file.try_clone().unwrap())).unwrap();
    assert_eq!(p.join().unwrap(), 20);
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "written by the child");
}

#[test]
fn names_and_parents() {
    let _leaks = common::leak_check();
    let p = Process::builder()
        .name("worker-7")
        .daemon(true)
        .start(identity, ())
        .unwrap();
    let pid = p.pid();
    assert_eq!(p.name(), "worker-7");
    assert!(p.daemon());
    let (name, child_pid, parent, daemon) = p.join().unwrap();
    assert_eq!(
        (name.as_str(), child_pid, parent, daemon),
        ("worker-7", pid, Some(std::process::id()), true)
    );

    let p = Process::start(identity, ()).unwrap();
    assert!(p.name().starts_with("Process-"), "{}", p.name());
    let expected = p.name().to_owned();
    assert_eq!(p.join().unwrap().0, expected);
    assert_eq!(multiproc::current_process().name(), "MainProcess");
    assert!(multiproc::parent_process().is_none());
}

#[test]
fn fork_method() {
    let _leaks = common::leak_check();
    let p = Process::builder()
        .method(StartMethod::Fork)
        .start(add, (1, 2))
        .unwrap();
    assert_eq!(p.join().unwrap(), 3);
    let p = Process::builder()
        .method(StartMethod::Fork)
        .start(boom, "forked".into())
        .unwrap();
    assert!(matches!(p.join(), Err(JoinError::Panicked(i)) if i.message() == "forked"));
    let p = Process::builder()
        .method(StartMethod::Fork)
        .name("f")
        .start(identity, ())
        .unwrap();
    let pid = p.pid();
    assert_eq!(
        p.join().unwrap(),
        ("f".to_owned(), pid, Some(std::process::id()), false)
    );
}

#[test]
fn active_children_lists_running_ones() {
    let _leaks = common::leak_check();
    let p = Process::start(sleep_ms, 60_000).unwrap();
    assert!(
        multiproc::active_children()
            .iter()
            .any(|c| c.pid() == p.pid())
    );
    p.kill().unwrap();
    let pid = p.pid();
    let _ = p.join();
    assert!(!multiproc::active_children().iter().any(|c| c.pid() == pid));
}

fn zombie_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim().chars().next()
}

#[test]
fn dropped_process_leaves_no_zombie() {
    let _leaks = common::leak_check();
    let p = Process::start(sleep_ms, 50).unwrap();
    let pid = p.pid();
    drop(p);
    let watchdog = Instant::now();
    loop {
        match zombie_state(pid) {
            None => break, // reaped
            Some(_) => {
                assert!(
                    watchdog.elapsed() < Duration::from_secs(30),
                    "pid {pid} never reaped"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// In a child: starts a daemon grandchild from a thread that ends at once, reports the
/// grandchild's pid through a file named after this child's pid, then waits to be killed.
fn start_daemon_and_wait(fork: bool) {
    let method = if fork {
        StartMethod::Fork
    } else {
        StartMethod::Spawn
    };
    let gc = std::thread::spawn(move || {
        let p = Process::builder()
            .daemon(true)
            .method(method)
            .start(sleep_ms, 120_000)
            .unwrap();
        let pid = p.pid();
        std::mem::forget(p);
        pid
    })
    .join()
    .unwrap();
    // The thread that started the daemon has ended; the daemon must still be running.
    std::thread::sleep(Duration::from_millis(100));
    let path = std::env::temp_dir().join(format!("multiproc-test-gc-{}", std::process::id()));
    std::fs::write(&path, gc.to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

fn daemon_dies_with_killed_parent(fork: bool) {
    let parent = Process::start(start_daemon_and_wait, fork).unwrap();
    let path = std::env::temp_dir().join(format!("multiproc-test-gc-{}", parent.pid()));
    let watchdog = Instant::now();
    let gc: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            watchdog.elapsed() < Duration::from_secs(30),
            "no grandchild reported"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&path);
    assert!(
        matches!(zombie_state(gc), Some(s) if s != 'Z'),
        "the daemon died with the thread that started it"
    );
    parent.kill().unwrap();
    assert!(matches!(parent.join(), Err(JoinError::Killed(9))));
    // The grandchild is re-parented and then killed; init (or the sub-reaper) reaps it.
    let watchdog = Instant::now();
    while matches!(zombie_state(gc), Some(s) if s != 'Z') {
        assert!(
            watchdog.elapsed() < Duration::from_secs(30),
            "daemon {gc} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn spawned_daemon_dies_with_killed_parent() {
    let _leaks = common::leak_check();
    daemon_dies_with_killed_parent(false);
}

#[test]
fn forked_daemon_dies_with_killed_parent() {
    let _leaks = common::leak_check();
    daemon_dies_with_killed_parent(true);
}
