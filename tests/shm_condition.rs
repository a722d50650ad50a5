//! `Condition::notify`, `notify_n` and `notify_all` wake exactly the waiters they should, across
//! threads and processes.
//!
//! `notify_wakes_one_at_a_time`, `notify_all_wakes_every_waiter_and_timeouts_leave_no_trace`
//! and `notify_n_wakes_exactly_n` are ported from CPython's `Lib/test/_test_multiprocessing.py`
//! (class `_TestCondition`: `test_notify`, `test_notify_all`, `test_notify_n`; Python Software
//! Foundation License), with the same mix of one process and one thread per waiter pair and the
//! same `DELTA` pauses. Python's `assertReachesEventually` polls ten times; here the poll runs
//! under a watchdog instead, so a slow machine cannot fail a correct implementation.

mod common;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use multiproc::Process;
use multiproc::sync::{Condition, Semaphore};

mod shm_util;

use shm_util::wait_until_stopped;

multiproc::test_support!();

/// CPython's `DELTA`: how long a test waits to see that nothing more happens.
const DELTA: Duration = Duration::from_millis(100);
/// CPython's `TIMEOUT1`.
const TIMEOUT1: Duration = Duration::from_millis(100);
/// A watchdog for what must happen eventually.
const LONG: Duration = Duration::from_secs(30);

type Args = (Condition, Semaphore, Semaphore, Option<Duration>);

/// CPython's `_TestCondition.f`: announce the wait, wait (for at most `timeout`), count the
/// wake-up.
fn f((cond, sleeping, woken, timeout): Args) {
    let g = cond.lock().unwrap();
    sleeping.release().unwrap();
    let g = match timeout {
        Some(t) => cond.wait_timeout(g, t).unwrap().0,
        None => cond.wait(g).unwrap(),
    };
    woken.release().unwrap();
    drop(g);
}

/// A waiter pair as CPython starts it: one process and one thread.
struct Waiters {
    procs: Vec<Process<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Waiters {
    fn new() -> Self {
        Waiters {
            procs: Vec::new(),
            threads: Vec::new(),
        }
    }

    fn start_pair(&mut self, args: &Args) {
        self.procs.push(Process::start(f, args.clone()).unwrap());
        let args = args.clone();
        self.threads.push(std::thread::spawn(move || f(args)));
    }

    fn join(self) {
        for p in self.procs {
            p.join().unwrap();
        }
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

fn new_args(timeout: Option<Duration>) -> Args {
    (
        Condition::new().unwrap(),
        Semaphore::new(0).unwrap(),
        Semaphore::new(0).unwrap(),
        timeout,
    )
}

/// Takes `n` permits of `sem`, each within the watchdog.
fn acquire_n(sem: &Semaphore, n: usize) {
    for _ in 0..n {
        assert!(sem.acquire_timeout(LONG), "a waiter never started");
    }
}

/// CPython's `assertReachesEventually`: waits (under the watchdog) until `woken` reaches
/// `value`, then checks that it stays there for `DELTA`.
fn assert_reaches_eventually(woken: &Semaphore, value: u32) {
    let start = Instant::now();
    while woken.value() < value {
        assert!(
            start.elapsed() < LONG,
            "only {} of {value} woke",
            woken.value()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(DELTA);
    assert_eq!(woken.value(), value, "more waiters woke than were notified");
}

fn notify_n(cond: &Condition, n: u32) {
    let g = cond.lock().unwrap();
    cond.notify_n(&g, n);
}

#[test]
fn notify_wakes_one_at_a_time() {
    let _leaks = common::leak_check();
    let args = new_args(None);
    let (cond, sleeping, woken, _) = &args;
    let mut waiters = Waiters::new();
    waiters.start_pair(&args);
    // Wait for both to start sleeping.
    acquire_n(sleeping, 2);
    // Check that nobody has woken up.
    std::thread::sleep(DELTA);
    assert_eq!(woken.value(), 0);
    // Wake up one.
    notify_n(cond, 1);
    assert_reaches_eventually(woken, 1);
    // Wake up the other.
    notify_n(cond, 1);
    assert_reaches_eventually(woken, 2);
    waiters.join();
}

#[test]
fn notify_all_wakes_every_waiter_and_timeouts_leave_no_trace() {
    let _leaks = common::leak_check();
    let args = new_args(Some(TIMEOUT1));
    let (cond, sleeping, woken, _) = &args;
    let mut waiters = Waiters::new();
    // Some waiters that will time out.
    for _ in 0..3 {
        waiters.start_pair(&args);
    }
    acquire_n(sleeping, 6);
    // They all time out.
    acquire_n(woken, 6);
    assert_eq!(woken.value(), 0);
    // Some more, without a time-out.
    let args = (cond.clone(), sleeping.clone(), woken.clone(), None);
    for _ in 0..3 {
        waiters.start_pair(&args);
    }
    acquire_n(sleeping, 6);
    std::thread::sleep(DELTA);
    assert_eq!(woken.value(), 0);
    // Wake them all.
    notify_n(cond, u32::MAX);
    assert_reaches_eventually(woken, 6);
    waiters.join();
}

#[test]
fn notify_n_wakes_exactly_n() {
    let _leaks = common::leak_check();
    let args = new_args(None);
    let (cond, sleeping, woken, _) = &args;
    let mut waiters = Waiters::new();
    for _ in 0..3 {
        waiters.start_pair(&args);
    }
    acquire_n(sleeping, 6);
    std::thread::sleep(DELTA);
    assert_eq!(woken.value(), 0);
    // Wake some of them.
    notify_n(cond, 2);
    assert_reaches_eventually(woken, 2);
    // Wake the rest.
    notify_n(cond, 4);
    assert_reaches_eventually(woken, 6);
    // This does nothing more.
    notify_n(cond, 3);
    assert_reaches_eventually(woken, 6);
    waiters.join();
}

/// A waiter that starts after a notification does not take it: the notification belongs to
/// the waiters that were waiting when it was made.
#[test]
fn a_late_waiter_does_not_take_an_earlier_notification() {
    let _leaks = common::leak_check();
    let args = new_args(None);
    let (cond, sleeping, woken, _) = &args;
    let mut waiters = Waiters::new();
    waiters.start_pair(&args);
    acquire_n(sleeping, 2);
    {
        let g = cond.lock().unwrap();
        cond.notify(&g);
        // Still under the lock: a third waiter cannot start waiting before the notification.
    }
    assert_reaches_eventually(woken, 1);
    let late = {
        let args = args.clone();
        std::thread::spawn(move || f(args))
    };
    acquire_n(sleeping, 1);
    std::thread::sleep(DELTA);
    assert_eq!(
        woken.value(),
        1,
        "the late waiter returned without a notification"
    );
    notify_n(cond, 2);
    assert_reaches_eventually(woken, 3);
    waiters.join();
    late.join().unwrap();
}

fn wait_forever((cond, sleeping): (Condition, Semaphore)) {
    let g = cond.lock().unwrap();
    sleeping.release().unwrap();
    let _g = cond.wait(g);
    // Woken: sleep until killed, never returning the notification.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A waiter killed while it sleeps cannot take a notification away from a live one.
#[test]
fn notify_skips_a_waiter_killed_while_it_slept() {
    let _leaks = common::leak_check();
    let args = new_args(None);
    let (cond, sleeping, woken, _) = &args;
    let dead = Process::start(wait_forever, (cond.clone(), sleeping.clone())).unwrap();
    acquire_n(sleeping, 1);
    // Once we hold the lock, the child sleeps in `wait`.
    drop(cond.lock().unwrap());
    dead.kill().unwrap();
    let _ = dead.join();
    // The child waited longest, but is dead: the notification goes to the live waiter.
    let live = {
        let args = args.clone();
        std::thread::spawn(move || f(args))
    };
    acquire_n(sleeping, 1);
    notify_n(cond, 1);
    assert_reaches_eventually(woken, 1);
    live.join().unwrap();
}

/// More waiters than the condition tracks one by one: nobody sleeps through `notify_all`.
#[test]
fn notify_all_wakes_more_waiters_than_there_are_slots() {
    let _leaks = common::leak_check();
    let args = new_args(None);
    let (cond, sleeping, woken, _) = &args;
    let threads: Vec<_> = (0..70)
        .map(|_| {
            let args = args.clone();
            std::thread::spawn(move || f(args))
        })
        .collect();
    acquire_n(sleeping, 70);
    drop(cond.lock().unwrap());
    // The first 64 are woken exactly.
    notify_n(cond, 10);
    let start = Instant::now();
    while woken.value() < 10 {
        assert!(start.elapsed() < LONG, "a notification was lost");
        std::thread::sleep(Duration::from_millis(5));
    }
    notify_n(cond, u32::MAX);
    assert_reaches_eventually(woken, 70);
    for t in threads {
        t.join().unwrap();
    }
}

/// A waiter chosen by `notify` but killed before it could return does not swallow the
/// notification: a live waiter gets it, and only that one.
#[test]
fn a_notification_given_to_a_waiter_that_dies_is_handed_on() {
    let _leaks = common::leak_check();
    let args = new_args(None);
    let (cond, sleeping, woken, _) = &args;
    let chosen = Process::start(wait_forever, (cond.clone(), sleeping.clone())).unwrap();
    acquire_n(sleeping, 1);
    drop(cond.lock().unwrap()); // the child now sleeps in `wait`
    let live = {
        let args = args.clone();
        std::thread::spawn(move || f(args))
    };
    acquire_n(sleeping, 1);
    drop(cond.lock().unwrap()); // so does the thread, after the child
    // Stopped, the child cannot return from `wait`; the notification goes to it, the oldest.
    let pid = rustix::process::Pid::from_raw(chosen.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    wait_until_stopped(chosen.pid(), LONG);
    notify_n(cond, 1);
    std::thread::sleep(DELTA);
    assert_eq!(
        woken.value(),
        0,
        "the notification went to the younger waiter"
    );
    chosen.kill().unwrap();
    let _ = chosen.join();
    assert_reaches_eventually(woken, 1);
    live.join().unwrap();
}
