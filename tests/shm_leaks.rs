//! After shared objects are created, sent to children, used by a killed holder and dropped,
//! this process holds no more descriptors than before, none of them a segment, and nothing
//! it named is left in `/dev/shm`.

mod common;

use std::path::Path;
use std::time::Duration;

use multiproc::Process;
use multiproc::shm::{Array, RawArray, RawValue, SharedMemory, Value};
use multiproc::sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};

multiproc::test_support!();

/// The targets of this process's open descriptors.
fn open_fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

type Objects = (
    Value<u64>,
    Array<f64>,
    RawValue<i32>,
    RawArray<u8>,
    (Lock, RLock, Semaphore, Event, Condition, Barrier),
    SharedMemory,
);

fn use_everything(o: Objects) -> u64 {
    let (v, a, rv, ra, (lock, rlock, sem, ev, cond, barrier), shm) = o;
    *v.lock().unwrap() += 1;
    a.set(0, 1.0).unwrap();
    rv.store(2);
    ra.set(0, 3).unwrap();
    drop(lock.acquire().unwrap());
    drop(rlock.acquire().unwrap());
    sem.release().unwrap();
    ev.set();
    drop(cond.lock().unwrap());
    barrier.wait_timeout(Duration::from_secs(30)).unwrap();
    shm.write_at(0, b"x").unwrap();
    v.load()
}

fn hold_and_hang((v, ev): (Value<u64>, Event)) {
    let _g = v.lock().unwrap();
    ev.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn nothing_leaks() {
    let _leaks = common::leak_check();
    let before = open_fds();
    let name;
    {
        let v = Value::new(0u64).unwrap();
        let shm = SharedMemory::create(4096).unwrap();
        name = shm.name().to_owned();
        let objects: Objects = (
            v.clone(),
            Array::new(1000).unwrap(),
            RawValue::new(0).unwrap(),
            RawArray::new(10).unwrap(),
            (
                Lock::new().unwrap(),
                RLock::new().unwrap(),
                Semaphore::new(0).unwrap(),
                Event::new().unwrap(),
                Condition::new().unwrap(),
                Barrier::new(1).unwrap(),
            ),
            shm,
        );
        assert!(open_fds().iter().any(|f| f.starts_with("/memfd:")));
        let p = Process::start(use_everything, objects).unwrap();
        assert_eq!(p.join().unwrap(), 1);
        let ev = Event::new().unwrap();
        let p = Process::start(hold_and_hang, (v.clone(), ev.clone())).unwrap();
        assert!(ev.wait_timeout(Duration::from_secs(30)));
        p.kill().unwrap();
        let _ = p.join();
        assert!(v.lock().is_err());
    }
    let after = open_fds();
    assert!(
        !after
            .iter()
            .any(|f| f.starts_with("/memfd:") || f.starts_with("/dev/shm")),
        "{after:?}"
    );
    assert_eq!(before.len(), after.len(), "{before:?} {after:?}");
    assert!(!Path::new("/dev/shm").join(&name).exists());
}
