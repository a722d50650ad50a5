//! Lock-free shared memory used from several threads at once: `RawValue`, `RawArray` and
//! `SharedMemory` through their safe methods.
//!
//! Each test races writers against readers on purpose. Run under ThreadSanitizer (see
//! `RELIABILITY.md`), none of them may report a data race; run normally, they check what a
//! racing reader is promised: a value of one copy unit (its alignment, at most 8 bytes) is
//! never torn.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use multiproc::shm::{RawArray, RawValue, SharedMemory};

/// Rounds per writer: enough to overlap with the reader many times.
const ROUNDS: u32 = 20_000;

multiproc::shared_struct! {
    /// A struct with 7 padding bytes after `tag` (copied field by field).
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Padded { pub tag: u8, pub value: u64 }
}

/// Runs `write(i)` for `i` in `0..ROUNDS` on one thread while `read()` runs on another until
/// the writer is done.
fn race(write: impl Fn(u32) + Sync, read: impl Fn() + Sync) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..ROUNDS {
                write(i);
            }
            done.store(true, Ordering::Release);
        });
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                read();
            }
        });
    });
}

#[test]
fn raw_value_of_one_unit_is_never_torn() {
    let _leaks = common::leak_check();
    let v = RawValue::new(0u64).unwrap();
    race(
        |i| v.store(if i % 2 == 0 { u64::MAX } else { 0 }),
        || {
            let x = v.load();
            assert!(x == 0 || x == u64::MAX, "torn: {x:#x}");
        },
    );
}

#[test]
fn raw_value_of_several_units_has_whole_units() {
    let _leaks = common::leak_check();
    let v = RawValue::new([0u64; 4]).unwrap();
    race(
        |i| v.store([u64::from(i % 2) * u64::MAX; 4]),
        || {
            for unit in v.load() {
                assert!(unit == 0 || unit == u64::MAX, "torn unit: {unit:#x}");
            }
        },
    );
}

#[test]
fn raw_value_of_a_padded_struct_is_copied_by_field() {
    let _leaks = common::leak_check();
    let v = RawValue::new(Padded { tag: 0, value: 0 }).unwrap();
    race(
        |i| {
            v.store(Padded {
                tag: (i % 2) as u8,
                value: u64::from(i % 2) * u64::MAX,
            })
        },
        || {
            let p = v.load();
            assert!(p.tag <= 1 && (p.value == 0 || p.value == u64::MAX), "{p:?}");
        },
    );
}

#[test]
fn raw_array_bulk_and_element_access_race_soundly() {
    let _leaks = common::leak_check();
    let a = RawArray::<u32>::new(1024).unwrap();
    race(
        |i| {
            a.write(0, &[i; 1024]).unwrap();
            a.set((i % 1024) as usize, u32::MAX).unwrap();
        },
        || {
            let v = a.to_vec();
            let mut out = [0u32; 16];
            a.read(100, &mut out).unwrap();
            assert!(v.len() == 1024 && a.get(1023).is_some());
        },
    );
}

#[test]
fn shared_memory_read_and_write_race_soundly() {
    let _leaks = common::leak_check();
    let shm = SharedMemory::create(4096).unwrap();
    race(
        |i| shm.write_at(0, &[(i % 251) as u8; 4096]).unwrap(),
        || {
            let mut out = [0u8; 4096];
            shm.read_at(0, &mut out).unwrap();
        },
    );
}
