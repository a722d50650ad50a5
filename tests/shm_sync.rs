//! Every synchronisation primitive across real processes, with timeouts, and what happens when
//! a participant is killed.

mod common;

use std::time::{Duration, Instant};

use multiproc::Process;
use multiproc::shm::RawValue;
use multiproc::sync::{
    Barrier, BarrierWaitError, BoundedSemaphore, Condition, Event, Lock, ReleaseError, Semaphore,
    TryLockError,
};

mod shm_util;

use shm_util::wait_until_stopped;

multiproc::test_support!();

const LONG: Duration = Duration::from_secs(30);

/// Waits (with a watchdog) until `flag` reads 1.
fn wait_for(flag: &RawValue<u32>) {
    let start = Instant::now();
    while flag.load() == 0 {
        assert!(start.elapsed() < LONG, "child never got ready");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn sem_child((sem, ready): (Semaphore, RawValue<u32>)) -> (bool, bool) {
    // Nothing to take yet: a short wait times out.
    let early = sem.acquire_timeout(Duration::from_millis(20));
    ready.store(1);
    (early, sem.acquire_timeout(LONG))
}

#[test]
fn semaphore_across_processes() {
    let _leaks = common::leak_check();
    let sem = Semaphore::new(0).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(sem_child, (sem.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    std::thread::sleep(Duration::from_millis(20));
    sem.release().unwrap();
    assert_eq!(p.join().unwrap(), (false, true));
    assert_eq!(sem.value(), 0);
}

fn take_and_die((sem, ready): (Semaphore, RawValue<u32>)) {
    sem.acquire();
    ready.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn semaphore_permit_of_a_killed_holder_is_not_returned() {
    let _leaks = common::leak_check();
    let sem = Semaphore::new(1).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(take_and_die, (sem.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    p.kill().unwrap();
    let _ = p.join();
    assert_eq!(sem.value(), 0);
    assert!(!sem.acquire_timeout(Duration::from_millis(20)));
}

fn over_release(sem: BoundedSemaphore) -> Result<(), ReleaseError> {
    sem.acquire();
    sem.release()?;
    sem.release()
}

#[test]
fn bounded_semaphore_refuses_in_the_child() {
    let _leaks = common::leak_check();
    let sem = BoundedSemaphore::new(1).unwrap();
    let r = Process::start(over_release, sem.clone())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r, Err(ReleaseError::TooManyReleases));
    assert_eq!(sem.value(), 1);
}

fn event_child((ev, done): (Event, Event)) -> (bool, bool) {
    let early = ev.wait_timeout(Duration::from_millis(20));
    done.set();
    (early, ev.wait_timeout(LONG))
}

#[test]
fn event_across_processes() {
    let _leaks = common::leak_check();
    let ev = Event::new().unwrap();
    let started = Event::new().unwrap();
    let p = Process::start(event_child, (ev.clone(), started.clone())).unwrap();
    assert!(started.wait_timeout(LONG));
    ev.set();
    assert_eq!(p.join().unwrap(), (false, true));
    ev.clear();
    assert!(!ev.is_set());
}

fn cond_child((cond, value, ready): (Condition, RawValue<u32>, Event)) -> u32 {
    let g = cond.lock().unwrap();
    ready.set();
    let (g, ok) = cond
        .wait_while_timeout(g, LONG, || value.load() < 3)
        .unwrap();
    assert!(ok);
    let v = value.load();
    drop(g);
    v
}

#[test]
fn condition_across_processes() {
    let _leaks = common::leak_check();
    let cond = Condition::new().unwrap();
    let value = RawValue::new(0u32).unwrap();
    let ready = Event::new().unwrap();
    let p = Process::start(cond_child, (cond.clone(), value.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG));
    for i in 1..=3 {
        let g = cond.lock().unwrap();
        value.store(i);
        cond.notify_all(&g);
    }
    assert_eq!(p.join().unwrap(), 3);
    // A wait with nobody notifying times out, with the lock held again afterwards.
    let g = cond.lock().unwrap();
    let (_g, in_time) = cond.wait_timeout(g, Duration::from_millis(20)).unwrap();
    assert!(!in_time);
}

fn hold_condition((cond, ready): (Condition, Event)) {
    let _g = cond.lock().unwrap();
    ready.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn condition_holder_killed_is_reported() {
    let _leaks = common::leak_check();
    let cond = Condition::new().unwrap();
    let ready = Event::new().unwrap();
    let p = Process::start(hold_condition, (cond.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG));
    assert!(matches!(
        cond.lock_timeout(Duration::from_millis(20)),
        Err(TryLockError::TimedOut)
    ));
    p.kill().unwrap();
    let _ = p.join();
    let g = cond.lock().unwrap_err().into_inner();
    g.clear_poison();
}

fn lock_child((lock, ready, release): (Lock, Event, Event)) {
    let _g = lock.acquire().unwrap();
    ready.set();
    assert!(release.wait_timeout(LONG));
}

#[test]
fn lock_timeouts_across_processes() {
    let _leaks = common::leak_check();
    let lock = Lock::new().unwrap();
    let (ready, release) = (Event::new().unwrap(), Event::new().unwrap());
    let p = Process::start(lock_child, (lock.clone(), ready.clone(), release.clone())).unwrap();
    assert!(ready.wait_timeout(LONG));
    assert!(matches!(lock.try_acquire(), Err(TryLockError::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        lock.acquire_timeout(Duration::from_millis(30)),
        Err(TryLockError::TimedOut)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    release.set();
    assert!(lock.acquire_timeout(LONG).is_ok());
    p.join().unwrap();
}

fn barrier_child((b, rounds): (Barrier, u32)) -> Vec<u32> {
    (0..rounds).map(|_| b.wait_timeout(LONG).unwrap()).collect()
}

#[test]
fn barrier_across_processes() {
    let _leaks = common::leak_check();
    let b = Barrier::new(3).unwrap();
    let rounds = 20;
    let p1 = Process::start(barrier_child, (b.clone(), rounds)).unwrap();
    let p2 = Process::start(barrier_child, (b.clone(), rounds)).unwrap();
    let mine = barrier_child((b.clone(), rounds));
    let (a, c) = (p1.join().unwrap(), p2.join().unwrap());
    for i in 0..rounds as usize {
        let mut idx = [mine[i], a[i], c[i]];
        idx.sort();
        assert_eq!(idx, [0, 1, 2]);
    }
}

fn barrier_wait_long(b: Barrier) -> Result<u32, BarrierWaitError> {
    b.wait_timeout(LONG)
}

fn barrier_wait_short(b: Barrier) -> Result<u32, BarrierWaitError> {
    b.wait_timeout(Duration::from_millis(50))
}

#[test]
fn barrier_abort_and_timeout_across_processes() {
    let _leaks = common::leak_check();
    // abort() in the parent wakes a waiting child.
    let b = Barrier::new(2).unwrap();
    let p = Process::start(barrier_wait_long, b.clone()).unwrap();
    let t = Instant::now();
    while b.n_waiting() == 0 {
        assert!(t.elapsed() < LONG);
        std::thread::sleep(Duration::from_millis(1));
    }
    b.abort();
    assert_eq!(p.join().unwrap(), Err(BarrierWaitError::Broken));
    // A child's timeout breaks the barrier for the parent, too.
    b.reset();
    let p = Process::start(barrier_wait_short, b.clone()).unwrap();
    assert_eq!(p.join().unwrap(), Err(BarrierWaitError::TimedOut));
    assert_eq!(b.wait(), Err(BarrierWaitError::Broken));
}

fn barrier_then_die((b, ready): (Barrier, Event)) {
    ready.set();
    let _ = b.wait();
}

#[test]
fn barrier_party_killed_while_waiting() {
    let _leaks = common::leak_check();
    let b = Barrier::new(3).unwrap();
    let ready = Event::new().unwrap();
    let p = Process::start(barrier_then_die, (b.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG));
    let t = Instant::now();
    while b.n_waiting() == 0 {
        assert!(t.elapsed() < LONG);
        std::thread::sleep(Duration::from_millis(1));
    }
    p.kill().unwrap();
    let _ = p.join();
    // The dead party still counts as arrived; the third never comes: our timeout breaks it.
    assert_eq!(
        b.wait_timeout(Duration::from_millis(50)),
        Err(BarrierWaitError::TimedOut)
    );
    b.reset();
    assert_eq!(b.n_waiting(), 0);
}

fn sem_wait_forever((sem, ready): (Semaphore, RawValue<u32>)) {
    ready.store(1);
    sem.acquire();
}

/// The next message on `rx`, or `None` if none came within the watchdog.
fn within_watchdog<R: Send + 'static>(
    rx: &std::sync::mpsc::Receiver<R>,
    watchdog: Duration,
) -> Option<R> {
    rx.recv_timeout(watchdog).ok()
}

#[test]
fn semaphore_wakeup_reaches_a_live_waiter_when_the_woken_one_dies() {
    let _leaks = common::leak_check();
    let sem = Semaphore::new(0).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(sem_wait_forever, (sem.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    std::thread::sleep(Duration::from_millis(300)); // the child sleeps first in the kernel
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = sem.clone();
    let t = std::thread::spawn(move || {
        s2.acquire();
        let _ = tx.send(());
    });
    std::thread::sleep(Duration::from_millis(300)); // this thread sleeps second
    sem.release().unwrap(); // wakes one sleeper: the child
    p.kill().unwrap(); // which dies before it can take the permit
    let _ = p.join();
    let got = within_watchdog(&rx, Duration::from_secs(10));
    if got.is_none() {
        let free = sem.value();
        sem.release().unwrap(); // let the thread finish
        t.join().unwrap();
        // If the child took the permit before it died, nothing was lost.
        assert_eq!(free, 0, "a permit was free but the live waiter slept on");
    } else {
        t.join().unwrap();
    }
}

fn cond_wait_for_token((cond, tokens, ready): (Condition, RawValue<u32>, RawValue<u32>)) {
    let g = cond.lock().unwrap();
    ready.store(1);
    let _g = cond.wait_while(g, || tokens.load() == 0).unwrap();
    tokens.store(tokens.load() - 1);
}

#[test]
fn condition_notify_reaches_a_live_waiter_when_the_woken_one_dies() {
    let _leaks = common::leak_check();
    let cond = Condition::new().unwrap();
    let tokens = RawValue::new(0u32).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(
        cond_wait_for_token,
        (cond.clone(), tokens.clone(), ready.clone()),
    )
    .unwrap();
    wait_for(&ready);
    // The child released the lock only to sleep: once we hold it, the child is waiting.
    drop(cond.lock().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let (tx, rx) = std::sync::mpsc::channel();
    let (c2, t2) = (cond.clone(), tokens.clone());
    let ready2 = RawValue::new(0u32).unwrap();
    let r2 = ready2.clone();
    let t = std::thread::spawn(move || {
        let g = c2.lock().unwrap();
        r2.store(1);
        // On a slow machine the child may take the lock again before it is killed: then this
        // waiter is told that the holder died, which is no lost notification.
        let _g = c2
            .wait_while(g, || t2.load() == 0)
            .unwrap_or_else(|died| died.into_inner());
        t2.store(t2.load() - 1);
        let _ = tx.send(());
    });
    wait_for(&ready2);
    drop(cond.lock().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    {
        let g = cond.lock().unwrap();
        tokens.store(1);
        cond.notify(&g); // wakes the child, queued first
    }
    p.kill().unwrap(); // which dies before it takes the lock again
    let _ = p.join();
    let got = within_watchdog(&rx, Duration::from_secs(10));
    if got.is_none() {
        let g = cond.lock().unwrap_or_else(|e| e.into_inner());
        let left = tokens.load();
        tokens.store(left + 1);
        cond.notify_all(&g);
        drop(g);
        t.join().unwrap();
        assert_eq!(left, 0, "a token was there but the live waiter slept on");
    } else {
        t.join().unwrap();
    }
}

fn event_wait((ev, ready): (Event, RawValue<u32>)) -> bool {
    ready.store(1);
    ev.wait_timeout(Duration::from_secs(20))
}

#[test]
fn event_set_then_clear_wakes_a_waiter() {
    let _leaks = common::leak_check();
    let ev = Event::new().unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(event_wait, (ev.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    std::thread::sleep(Duration::from_millis(300)); // the child sleeps in the kernel
    let pid = rustix::process::Pid::from_raw(p.pid() as i32).unwrap();
    // Stopped, the child cannot look at the flag between set() and clear().
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    wait_until_stopped(p.pid(), LONG);
    ev.set();
    ev.clear();
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    assert!(p.join().unwrap(), "the waiter slept through set()");
}

#[test]
fn condition_accepts_its_guard_through_another_mapping() {
    let _leaks = common::leak_check();
    let c = Condition::new().unwrap();
    let c2 = Condition::from_descriptor(c.descriptor().unwrap()).unwrap();
    let g = c.lock().unwrap();
    c2.notify(&g);
    let (g, in_time) = c2.wait_timeout(g, Duration::from_millis(10)).unwrap();
    assert!(!in_time);
    drop(g);
}

fn barrier_wait_once((b, ready): (Barrier, RawValue<u32>)) -> Result<u32, BarrierWaitError> {
    ready.store(1);
    b.wait_timeout(LONG)
}

#[test]
fn barrier_waiter_of_an_aborted_generation_sees_broken_after_many_resets() {
    let _leaks = common::leak_check();
    let b = Barrier::new(2).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(barrier_wait_once, (b.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    let start = Instant::now();
    while b.n_waiting() == 0 {
        assert!(start.elapsed() < LONG, "the child never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Stop the child in its wait, end its generation broken, and reset many times.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(p.pid() as i32).unwrap(),
        rustix::process::Signal::STOP,
    )
    .unwrap();
    wait_until_stopped(p.pid(), LONG);
    b.abort();
    for _ in 0..200 {
        b.reset();
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(p.pid() as i32).unwrap(),
        rustix::process::Signal::CONT,
    )
    .unwrap();
    assert_eq!(p.join().unwrap(), Err(BarrierWaitError::Broken));
}
