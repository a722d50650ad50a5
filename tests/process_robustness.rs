//! Processes in hostile conditions: busy stdio locks in other threads, panics outside the
//! target, grandchildren that keep the parent's socket open, extreme time-outs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use multiproc::shm::SharedMemory;
use multiproc::{JoinError, Process, StartMethod};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

multiproc::test_support!();

fn one(_: ()) -> u32 {
    1
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn forked_child_exits_while_other_threads_hold_stdio() {
    let _leaks = common::leak_check();
    let stop = Arc::new(AtomicBool::new(false));
    // Threads that keep taking the stdout and stderr locks (without printing anything).
    let holders: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if i % 2 == 0 {
                        let _out = std::io::stdout().lock();
                        std::hint::spin_loop();
                    } else {
                        let _err = std::io::stderr().lock();
                        std::hint::spin_loop();
                    }
                }
            })
        })
        .collect();
    for _ in 0..60 {
        let p = Process::builder()
            .method(StartMethod::Fork)
            .start(one, ())
            .unwrap();
        match p.join_timeout(Duration::from_secs(20)) {
            Ok(v) => assert_eq!(v, 1),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                panic!("forked child did not finish: {e:?}");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in holders {
        h.join().unwrap();
    }
}

/// A result whose encoding panics: the panic happens outside the target function.
struct Bomb;

impl Serialize for Bomb {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("boom while encoding the result")
    }
}

impl<'de> Deserialize<'de> for Bomb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Bomb)
    }
}

fn bomb(_: ()) -> Bomb {
    Bomb
}

#[test]
fn panic_while_encoding_the_result_is_reported_and_stays_in_the_child() {
    let _leaks = common::leak_check();
    for method in [StartMethod::Fork, StartMethod::Spawn] {
        // Dropping this unlinks the name: a forked child that unwound into this test's frames
        // would drop its copy and unlink it.
        let shm = SharedMemory::create(64).unwrap();
        let r = Process::builder()
            .method(method)
            .start(bomb, ())
            .unwrap()
            .join();
        match r {
            Err(JoinError::Panicked(info)) => {
                assert_eq!(info.message(), "boom while encoding the result")
            }
            other => panic!("{method:?}: expected a panic report, got {:?}", other.err()),
        }
        assert!(
            SharedMemory::open(shm.name()).is_ok(),
            "{method:?}: the child ran our destructors"
        );
    }
}

fn grandchild_pid_file(child: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("multiproc-test-holder-{child}"))
}

/// Forks a grandchild (which inherits this child's end of the socket) that outlives this child,
/// reports its pid, and aborts.
fn abort_after_forking_grandchild(_: ()) {
    let g = Process::builder()
        .method(StartMethod::Fork)
        .start(sleep_ms, 60_000)
        .unwrap();
    std::fs::write(grandchild_pid_file(std::process::id()), g.pid().to_string()).unwrap();
    std::mem::forget(g);
    std::process::abort();
}

#[test]
fn join_returns_when_the_child_dies_though_a_grandchild_holds_its_socket() {
    let _leaks = common::leak_check();
    let started = Instant::now();
    let p = Process::start(abort_after_forking_grandchild, ()).unwrap();
    let child = p.pid();
    let err = p.join().unwrap_err();
    let elapsed = started.elapsed();
    // Leave nothing behind: the grandchild would sleep for a minute.
    let file = grandchild_pid_file(child);
    let pid = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    let _ = std::fs::remove_file(&file);
    assert!(matches!(err, JoinError::Killed(6)), "{err:?}");
    // Far below the grandchild's minute; generous for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(20),
        "join waited for the grandchild"
    );
}

fn seven_later(_: ()) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    7
}

/// In a forked child: a daemon grandchild, started and joined from the child's only thread
/// (a forked child of a multi-threaded parent must not start threads, and this crate starts
/// none there).
fn daemon_in_forked_child(_: ()) -> String {
    let p = Process::builder()
        .daemon(true)
        .start(seven_later, ())
        .unwrap();
    let dropped = Process::builder().start(seven_later, ()).unwrap();
    let dropped_pid = dropped.pid();
    drop(dropped);
    let joined = format!("{:?}", p.join());
    // The dropped one is reaped by a later `active_children()`, not by a helper thread.
    let watchdog = Instant::now();
    while multiproc::active_children()
        .iter()
        .any(|c| c.pid() == dropped_pid)
    {
        assert!(watchdog.elapsed() < Duration::from_secs(20), "never reaped");
        std::thread::sleep(Duration::from_millis(10));
    }
    joined
}

#[test]
fn daemon_and_dropped_children_of_a_forked_child() {
    let _leaks = common::leak_check();
    let p = Process::builder()
        .method(StartMethod::Fork)
        .start(daemon_in_forked_child, ())
        .unwrap();
    assert_eq!(p.join().unwrap(), "Ok(7)");
}

#[test]
fn huge_time_outs_mean_no_limit() {
    let _leaks = common::leak_check();
    let p = Process::builder()
        .startup_timeout(Duration::MAX)
        .start(sleep_ms, 0)
        .unwrap();
    p.join().unwrap();
    let p = Process::start(sleep_ms, 10).unwrap();
    p.join_timeout(Duration::MAX).unwrap();
}

/// Serializes unless it is 13; deserializes only even numbers.
#[derive(Debug)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("13 is unlucky"));
        }
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n % 2 == 1 {
            return Err(serde::de::Error::custom(format!("{n} is odd")));
        }
        Ok(Picky(n))
    }
}

fn take_picky(p: Picky) -> u32 {
    p.0
}

fn make_picky(n: u32) -> Vec<Picky> {
    vec![Picky(0), Picky(n)]
}

fn codec_message(e: JoinError) -> String {
    match e {
        JoinError::Codec(msg) => msg,
        other => panic!("expected a codec error, got {other:?}"),
    }
}

#[test]
fn custom_serde_errors_keep_their_text() {
    let _leaks = common::leak_check();
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        // The arguments fail to decode in the child (a forked child gets them unencoded).
        if method == StartMethod::Spawn {
            let p = Process::builder()
                .method(method)
                .start(take_picky, Picky(7))
                .unwrap();
            let msg = codec_message(p.join().unwrap_err());
            assert!(msg.contains("7 is odd"), "{msg}");
        }
        // The result fails to encode in the child.
        let p = Process::builder()
            .method(method)
            .start(make_picky, 13)
            .unwrap();
        let msg = codec_message(p.join().unwrap_err());
        assert!(msg.contains("13 is unlucky"), "{method:?}: {msg}");
        // The result fails to decode in the parent.
        let p = Process::builder()
            .method(method)
            .start(make_picky, 9)
            .unwrap();
        let msg = codec_message(p.join().unwrap_err());
        assert!(msg.contains("9 is odd"), "{method:?}: {msg}");
    }
}
