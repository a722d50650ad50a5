//! Every synchronisation primitive across real processes, with timeouts, and what happens when
//! a participant is killed.

use std::time::{Duration, Instant};

use multiproc::Process;
use multiproc::shm::RawValue;
use multiproc::sync::{
    Barrier, BarrierWaitError, BoundedSemaphore, Condition, Event, Lock, ReleaseError, Semaphore,
    TryLockError,
};

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
