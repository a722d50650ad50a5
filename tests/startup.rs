//! Start-up failures, in a program with a plain `main` like a user's.
//!
//! The child is this same program re-executed. Files named after the parent's pid tell a child
//! to misbehave before it reaches `multiproc::init()`: stall, or exit. Environment variables
//! give a copy of this program the role of a parent that returns from `main` right after
//! starting a child.

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

/// Writes the file a parent that did not wait asked for.
fn touch(path: PathBuf) {
    std::fs::write(path, b"ran").unwrap();
}

/// The role of a program whose `main` starts a child and returns at once.
const QUICK_PARENT: &str = "MULTIPROC_STARTUP_QUICK_PARENT";

/// A non-daemon child runs its target even when its parent returns from `main` right after
/// `start`: run such parents many times, and wait (bounded) for each child's file.
fn children_outlive_a_parent_that_returns_at_once() {
    let dir = std::env::temp_dir().join(format!("multiproc-startup-quick-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let runs = 30;
    for i in 0..runs {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env(QUICK_PARENT, dir.join(i.to_string()))
            .status()
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let missing: Vec<usize> = (0..runs)
            .filter(|i| std::fs::read(dir.join(i.to_string())).ok().as_deref() != Some(b"ran"))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        missing.is_empty(),
        "the children of runs {missing:?} never ran"
    );
}

/// Panics once its parent has exited (it has been re-parented).
fn panic_when_orphaned(parent: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::process::parent_id() == parent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("an orphan's panic");
}

/// The role of a program whose `main` starts a child that panics after it has returned.
const ORPHAN_PANIC: &str = "MULTIPROC_STARTUP_ORPHAN_PANIC";

/// A child whose parent has gone prints its own panic: nobody else can.
fn an_orphans_panic_is_printed_by_the_orphan() {
    // `output` reads until every holder of the pipes (the orphan too) has closed them.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ORPHAN_PANIC, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("multiproc: Process-1 (pid ") && stderr.contains("an orphan's panic"),
        "{stderr}"
    );
}

fn main() {
    if std::env::var_os(ORPHAN_PANIC).is_some() {
        multiproc::init();
        Process::start(panic_when_orphaned, std::process::id()).unwrap();
        return;
    }
    if let Some(path) = std::env::var_os(QUICK_PARENT) {
        multiproc::init();
        Process::start(touch, PathBuf::from(path)).unwrap();
        return;
    }
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

    children_outlive_a_parent_that_returns_at_once();
    an_orphans_panic_is_printed_by_the_orphan();

    println!("7 passed, 0 failed");
}
