//! Start-up failures, in a program with a plain `main` like a user's.
//!
//! The child is this same program re-executed. Files named after the parent's pid tell a child
//! to misbehave before it reaches `multiproc::init()`: stall, or exit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use multiproc::{JoinError, Process, StartError};

fn flag(kind: &str, parent: u32) -> PathBuf {
    std::env::temp_dir().join(format!("multiproc-startup-{kind}-{parent}"))
}

fn noop(_: ()) {}

fn len(v: Vec<u8>) -> usize {
    v.len()
}

fn main() {
    if std::env::var_os("MULTIPROC_CHILD").is_some() {
        let parent = std::os::unix::process::parent_id();
        if flag("stall", parent).exists() {
            std::thread::sleep(Duration::from_secs(600));
        }
        if flag("exit", parent).exists() {
            std::process::exit(3);
        }
        if flag("early", parent).exists() {
            // A child whose main starts a process before `init` is refused, so it cannot start
            // children of its own without end.
            match Process::start(noop, ()) {
                Err(StartError::InitNotCalled) => std::process::exit(4),
                _ => std::process::exit(5),
            }
        }
    }

    // Before init: the spawn method refuses, since a child would not know it is one.
    match Process::start(noop, ()) {
        Err(StartError::InitNotCalled) => {}
        other => panic!("expected InitNotCalled, got {other:?}"),
    }

    multiproc::init();
    let me = std::process::id();
    // Flags left by an earlier run that failed half-way, under a pid that is ours now.
    for kind in ["stall", "exit", "early"] {
        let _ = std::fs::remove_file(flag(kind, me));
    }
    Process::start(noop, ()).unwrap().join().unwrap();

    // A child that stalls before its entry point is killed after the start-up timeout.
    std::fs::write(flag("stall", me), b"").unwrap();
    let started = Instant::now();
    let p = Process::builder()
        .startup_timeout(Duration::from_millis(300))
        .start(noop, ())
        .unwrap();
    let err = p.join().unwrap_err();
    assert!(matches!(err, JoinError::NotStarted(_)), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the time-out did not fire"
    );

    // With arguments too big for the socket buffer, `start` itself notices the stall.
    let big = vec![7u8; 16 << 20];
    let r = Process::builder()
        .startup_timeout(Duration::from_millis(300))
        .start(len, big);
    std::fs::remove_file(flag("stall", me)).unwrap();
    match r {
        Err(StartError::NotStarted(msg)) => assert!(msg.contains("init()"), "{msg}"),
        other => panic!("expected NotStarted, got {other:?}"),
    }

    // A child that exits before its entry point is reported with its exit code.
    std::fs::write(flag("exit", me), b"").unwrap();
    let p = Process::start(noop, ()).unwrap();
    let err = p.join().unwrap_err();
    std::fs::remove_file(flag("exit", me)).unwrap();
    match err {
        JoinError::NotStarted(msg) => assert!(msg.contains("exit code 3"), "{msg}"),
        other => panic!("expected NotStarted, got {other:?}"),
    }

    // A child that tries to start a process before `init` is refused.
    std::fs::write(flag("early", me), b"").unwrap();
    let err = Process::start(noop, ()).unwrap().join().unwrap_err();
    std::fs::remove_file(flag("early", me)).unwrap();
    match err {
        JoinError::NotStarted(msg) => assert!(msg.contains("exit code 4"), "{msg}"),
        other => panic!("expected NotStarted, got {other:?}"),
    }

    println!("5 passed, 0 failed");
}
