//! Locks and shared values across real processes: exact counts, holders killed with SIGKILL,
//! segments received as the wrong type.

mod common;

use std::time::{Duration, Instant};

use multiproc::shm::{Array, AttachError, RawValue, Value};
use multiproc::sync::{Lock, RLock, TryLockError};
use multiproc::{Descriptor, JoinError, Process};

multiproc::test_support!();

const INCREMENTS: u64 = 200_000;

fn add_many(v: Value<u64>) {
    for _ in 0..INCREMENTS {
        *v.lock().unwrap() += 1;
    }
}

#[test]
fn two_processes_count_exactly() {
    let _leaks = common::leak_check();
    let v = Value::new(0u64).unwrap();
    let p = Process::start(add_many, v.clone()).unwrap();
    add_many(v.clone());
    p.join().unwrap();
    assert_eq!(v.load(), 2 * INCREMENTS);
}

/// Waits (with a watchdog) until `flag` reads 1.
fn wait_for(flag: &RawValue<u32>) {
    let start = Instant::now();
    while flag.load() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "child never got ready"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn hold_value_forever((v, ready): (Value<u64>, RawValue<u32>)) {
    let mut g = v.lock().unwrap();
    *g = 7;
    ready.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn value_holder_killed_is_reported() {
    let _leaks = common::leak_check();
    let v = Value::new(0u64).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(hold_value_forever, (v.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    assert!(matches!(v.try_lock(), Err(TryLockError::WouldBlock)));
    p.kill().unwrap();
    let err = p.join().unwrap_err();
    assert!(matches!(err, JoinError::Killed(9)), "{err:?}");
    // The next acquire succeeds, and says what happened.
    let died = v
        .lock_timeout(Duration::from_secs(10))
        .expect_err("the dead holder must be reported");
    let TryLockError::OwnerDied(died) = died else {
        panic!("expected OwnerDied, got {died:?}");
    };
    let mut g = died.into_inner();
    assert_eq!(*g, 7, "the data the dead holder wrote is there");
    *g = 0;
    g.clear_poison();
    drop(g);
    assert!(!v.is_poisoned());
    assert_eq!(*v.lock().unwrap(), 0);
}

fn hold_lock_forever((lock, ready): (Lock, RawValue<u32>)) {
    let _g = lock.acquire().unwrap();
    ready.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn hold_rlock_forever((lock, ready): (RLock, RawValue<u32>)) {
    let _a = lock.acquire().unwrap();
    let _b = lock.acquire().unwrap();
    ready.store(1);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn lock_holder_killed_while_we_wait() {
    let _leaks = common::leak_check();
    let lock = Lock::new().unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(hold_lock_forever, (lock.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    // Block in acquire (in another thread) before the holder dies, so the kernel's wake-up of a
    // sleeping waiter is what is tested.
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let r = lock.acquire_timeout(Duration::from_secs(30));
            let got = matches!(r, Err(TryLockError::OwnerDied(_)));
            (got, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let killed_at = Instant::now();
    p.kill().unwrap();
    let _ = p.join();
    let (owner_died, acquired_at) = waiter.join().unwrap();
    assert!(owner_died);
    assert!(acquired_at >= killed_at, "acquired before the holder died");
    // Everyone after is told as well, until the poison is cleared.
    assert!(lock.is_poisoned());
    let g = lock.acquire().unwrap_err().into_inner();
    g.clear_poison();
    drop(g);
    assert!(lock.acquire().is_ok());
}

#[test]
fn rlock_holder_killed_is_reported() {
    let _leaks = common::leak_check();
    let lock = RLock::new().unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::start(hold_rlock_forever, (lock.clone(), ready.clone())).unwrap();
    wait_for(&ready);
    p.kill().unwrap();
    let _ = p.join();
    let g = lock.acquire().unwrap_err().into_inner();
    // Recursion works after recovery.
    let inner = lock.acquire().unwrap_err().into_inner();
    inner.clear_poison();
    drop(inner);
    drop(g);
    assert!(lock.acquire().is_ok());
}

fn open_as_i64(fd: Descriptor) -> String {
    match Value::<i64>::from_descriptor(fd) {
        Ok(_) => "opened".to_owned(),
        Err(e @ AttachError::WrongType { .. }) => e.to_string(),
        Err(e) => format!("other error: {e}"),
    }
}

#[test]
fn wrong_type_fails_cleanly_in_the_child() {
    let _leaks = common::leak_check();
    let v = Value::new(1.0f64).unwrap();
    let msg = Process::start(open_as_i64, v.descriptor().unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert!(msg.contains("not a Value of i64"), "{msg}");
    let a = Array::<i64>::new(1).unwrap();
    let msg = Process::start(open_as_i64, a.descriptor().unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert!(msg.contains("holds a Array"), "{msg}");
    let file = Descriptor::from(std::fs::File::open("/proc/self/exe").unwrap());
    let msg = Process::start(open_as_i64, file).unwrap().join().unwrap();
    assert!(msg.contains("not a multiproc"), "{msg}");
}

fn negate(arr: Array<i32>) {
    for x in arr.lock().unwrap().iter_mut() {
        *x = -*x;
    }
}

#[allow(clippy::approx_constant)] // the seed's own literal
fn set_pi(num: Value<f64>) {
    num.store(3.1415927);
}

#[test]
fn seed_program_two() {
    let _leaks = common::leak_check();
    let num = Value::new(0.0f64).unwrap();
    let arr = Array::from_values(0..10i32).unwrap();
    Process::start(set_pi, num.clone()).unwrap().join().unwrap();
    Process::start(negate, arr.clone()).unwrap().join().unwrap();
    assert_eq!(format!("{}", num.load()), "3.1415927");
    assert_eq!(
        format!("{:?}", arr.to_vec()),
        "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"
    );
}

/// Handles are shared between threads like Python's objects; pinned here so that a change in
/// their parts cannot silently take it away.
#[test]
fn handles_are_send_and_sync() {
    let _leaks = common::leak_check();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Value<f64>>();
    send_sync::<Array<i32>>();
    send_sync::<RawValue<u8>>();
    send_sync::<multiproc::shm::RawArray<u8>>();
    send_sync::<multiproc::shm::SharedMemory>();
    send_sync::<Lock>();
    send_sync::<RLock>();
    send_sync::<multiproc::sync::Semaphore>();
    send_sync::<multiproc::sync::BoundedSemaphore>();
    send_sync::<multiproc::sync::Event>();
    send_sync::<multiproc::sync::Condition>();
    send_sync::<multiproc::sync::Barrier>();
}

multiproc::shared_struct! {
    /// A `ctypes.Structure` with a fixed array inside.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Particle {
        pub pos: [f64; 3],
        pub id: u32,
        pub alive: u8,
    }
}

fn move_particles(ps: Array<Particle>) -> u32 {
    let mut g = ps.lock().unwrap();
    for p in g.iter_mut() {
        p.pos[0] += 1.0;
        p.alive ^= 1;
    }
    g.iter().map(|p| p.id).sum()
}

#[test]
fn shared_structs_cross_processes() {
    let _leaks = common::leak_check();
    let ps = Array::from_values((0..4).map(|i| Particle {
        pos: [f64::from(i), 0.0, 0.0],
        id: i,
        alive: 0,
    }))
    .unwrap();
    let sum = Process::start(move_particles, ps.clone())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, 6);
    let back = ps.to_vec();
    assert_eq!(back[3].pos, [4.0, 0.0, 0.0]);
    assert!(back.iter().all(|p| p.alive == 1));
    // sharedctypes.copy: an independent copy.
    let raw = multiproc::shm::RawArray::from_values(back.clone()).unwrap();
    let copy = raw.copy().unwrap();
    raw.set(
        0,
        Particle {
            pos: [9.0; 3],
            id: 9,
            alive: 0,
        },
    )
    .unwrap();
    assert_eq!(copy.get(0), Some(back[0]));
    // A struct of another type is refused.
    assert!(Array::<[f64; 4]>::from_descriptor(ps.descriptor().unwrap()).is_err());
}

#[test]
fn forked_holder_killed_is_reported() {
    let _leaks = common::leak_check();
    let v = Value::new(0u64).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = Process::builder()
        .method(multiproc::StartMethod::Fork)
        .start(hold_value_forever, (v.clone(), ready.clone()))
        .unwrap();
    wait_for(&ready);
    p.kill().unwrap();
    let _ = p.join();
    let g = v.lock().unwrap_err().into_inner();
    assert_eq!(*g, 7);
}

fn increment_forever((v, ready): (Value<u64>, RawValue<u32>)) {
    ready.store(1);
    loop {
        let mut g = v.lock().unwrap_or_else(|e| e.into_inner());
        *g += 1;
    }
}

/// A holder killed at an arbitrary moment (inside or outside the lock, or in the middle of
/// locking or unlocking) never leaves the lock stuck: the next acquire always returns, and
/// reports a death exactly when the lock was held.
#[test]
fn killed_at_random_moments_never_blocks() {
    let _leaks = common::leak_check();
    let v = Value::new(0u64).unwrap();
    for round in 0..20u64 {
        let ready = RawValue::new(0u32).unwrap();
        let p = Process::start(increment_forever, (v.clone(), ready.clone())).unwrap();
        wait_for(&ready);
        std::thread::sleep(Duration::from_micros(500 + round * 137 % 900));
        p.kill().unwrap();
        let _ = p.join();
        let g = match v.lock_timeout(Duration::from_secs(10)) {
            Ok(g) => g,
            Err(TryLockError::OwnerDied(d)) => {
                let g = d.into_inner();
                g.clear_poison();
                g
            }
            Err(e) => panic!("round {round}: the lock is stuck: {e}"),
        };
        drop(g);
    }
    assert!(v.load() > 0);
}

/// Forgets a guard, drops the last handle of its lock, then uses a new lock: the C library's
/// per-thread list of held robust mutexes still points into the first lock's memory.
fn forget_guard_then_drop_lock(_: ()) -> Vec<u8> {
    let a = Lock::new().unwrap();
    std::mem::forget(a.acquire().unwrap());
    drop(a);
    // A segment of the same size would land where `a` was if `a` had been unmapped.
    let other = multiproc::shm::RawArray::<u8>::new(48).unwrap();
    let b = Lock::new().unwrap();
    drop(b.acquire().unwrap());
    other.to_vec()
}

#[test]
fn forgotten_guard_keeps_its_lock_mapped() {
    let _leaks = common::leak_check();
    let bytes = Process::start(forget_guard_then_drop_lock, ())
        .unwrap()
        .join()
        .unwrap();
    assert!(
        bytes.iter().all(|&b| b == 0),
        "a lock operation wrote into an unrelated segment: {bytes:?}"
    );
}

struct AcquireOnDrop(Lock);

impl Drop for AcquireOnDrop {
    fn drop(&mut self) {
        // Taken and released while the thread unwinds from a panic that did not hold it.
        let _g = self.0.acquire().unwrap();
    }
}

#[test]
fn panic_outside_the_lock_does_not_poison_it() {
    let _leaks = common::leak_check();
    let lock = Lock::new().unwrap();
    let other = lock.clone();
    let r = std::thread::spawn(move || {
        let _d = AcquireOnDrop(other);
        panic!("a panic while the lock is not held");
    })
    .join();
    assert!(r.is_err());
    assert!(!lock.is_poisoned());
}
