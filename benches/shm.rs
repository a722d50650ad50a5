//! Shared values, arrays and locks, against the Python figures in the project's baselines:
//!
//! - `with lock: value += 1` by 2 processes (Python 3.11: 531k ops/s) and uncontended (1.34M);
//! - bulk write and read of a 10M-element `Array<f64>` (Python: 3.1e8 elem/s with memmove), and
//!   the lock-free copies of a `RawArray` beside a plain copy;
//! - `SharedMemory::read_at`/`write_at` (through the descriptor) beside a plain copy;
//! - `SharedMemory` create + attach + unlink (Python: 50–85 µs);
//! - the hand-over of a lock whose holder is killed (Python: never);
//! - a `Semaphore(1)` handed over among 2, 4 and 16 threads (how `release` should wake);
//! - a turn handed back and forth between two threads through a `Condition`.
//!
//! Run with `cargo bench --bench shm`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use multiproc::Process;
use multiproc::shm::{Array, RawArray, RawValue, SharedMemory, Value};
use multiproc::sync::{Condition, Event, Lock, Semaphore};

/// Increments done by each of the two processes per sample.
const PER_PROCESS: u64 = 1_000_000;

fn add_many((v, n): (Value<u64>, u64)) {
    for _ in 0..n {
        *v.lock().unwrap() += 1;
    }
}

fn fill(arr: Array<f64>) {
    let src = vec![1.5f64; arr.len()];
    arr.lock().unwrap().copy_from_slice(&src);
}

/// Attaches to the array (mapping it, without pre-faulting) and writes it; returns the time that
/// took inside the child, without the child's start-up.
fn fill_timed(arr: Array<f64>) -> u64 {
    let src = vec![1.5f64; arr.len()];
    let fd = arr.descriptor().unwrap();
    drop(arr);
    let t = Instant::now();
    let arr = Array::<f64>::from_descriptor(fd).unwrap();
    arr.lock().unwrap().copy_from_slice(&src);
    t.elapsed().as_nanos() as u64
}

fn locked_increment(c: &mut Criterion) {
    let mut g = c.benchmark_group("value_lock_increment");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    let v = Value::new(0u64).unwrap();
    g.bench_function("uncontended", |b| {
        b.iter(|| {
            *v.lock().unwrap() += 1;
        })
    });
    // Two processes, each doing PER_PROCESS increments; the time per increment of the pair.
    g.bench_function("two_processes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let v = Value::new(0u64).unwrap();
                let p = Process::start(add_many, (v.clone(), PER_PROCESS)).unwrap();
                // Let the child get going, then race it.
                while *v.lock().unwrap() == 0 {
                    std::hint::spin_loop();
                }
                let t = Instant::now();
                add_many((v.clone(), PER_PROCESS));
                p.join().unwrap();
                total += t.elapsed();
                assert_eq!(v.load(), 2 * PER_PROCESS);
                done += 2 * PER_PROCESS;
            }
            total.mul_f64(iters as f64 / done as f64)
        })
    });
    g.finish();
}

fn bulk_array(c: &mut Criterion) {
    const N: usize = 10_000_000;
    let mut g = c.benchmark_group("array_f64_10m");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((N * 8) as u64));
    let src = vec![2.5f64; N];
    let arr = Array::<f64>::new(N).unwrap();
    g.bench_function("write", |b| {
        b.iter(|| arr.lock().unwrap().copy_from_slice(black_box(&src)))
    });
    // Reference: the same copy into private, already-touched memory of this process.
    let mut private = vec![0.0f64; N];
    g.bench_function("write_private_reference", |b| {
        b.iter(|| private.copy_from_slice(black_box(&src)))
    });
    drop(private);
    let mut dst = vec![0.0f64; N];
    g.bench_function("read", |b| {
        b.iter(|| dst.copy_from_slice(&arr.lock().unwrap()))
    });
    // A fresh array each time, written by a child: creation, first touch and the write.
    g.bench_function("create_and_child_write", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let arr = Array::<f64>::new(N).unwrap();
                let p = Process::start(fill, arr.clone()).unwrap();
                p.join().unwrap();
                total += t.elapsed();
                assert_eq!(arr.get(N - 1), Some(1.5));
            }
            total
        })
    });
    // The child's own attach + write of an array the parent created (the baseline's "child
    // writes 64 MiB into shared memory" figure, here 80 MB).
    g.bench_function("child_attach_and_write", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let arr = Array::<f64>::new(N).unwrap();
                let p = Process::start(fill_timed, arr.clone()).unwrap();
                total += Duration::from_nanos(p.join().unwrap());
                assert_eq!(arr.get(N - 1), Some(1.5));
            }
            total
        })
    });
    g.finish();
}

/// Lock-free bulk copies of a `RawArray` (relaxed atomic units), beside a plain copy of the
/// same size in the same run: 8-byte elements (one unit each) and bytes (one unit each).
fn raw_array(c: &mut Criterion) {
    const N: usize = 10_000_000;
    let mut g = c.benchmark_group("raw_array");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((N * 8) as u64));
    let src = vec![2.5f64; N];
    let arr = RawArray::<f64>::new(N).unwrap();
    g.bench_function("f64_10m_write", |b| {
        b.iter(|| arr.write(0, black_box(&src)).unwrap())
    });
    let mut dst = vec![0.0f64; N];
    g.bench_function("f64_10m_read", |b| {
        b.iter(|| arr.read(0, black_box(&mut dst)).unwrap())
    });
    g.bench_function("f64_10m_plain_copy_reference", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    drop((arr, dst));
    let bytes = vec![7u8; N * 8];
    let arr = RawArray::<u8>::new(N * 8).unwrap();
    g.bench_function("u8_80m_write", |b| {
        b.iter(|| arr.write(0, black_box(&bytes)).unwrap())
    });
    let mut out = vec![0u8; N * 8];
    g.bench_function("u8_80m_read", |b| {
        b.iter(|| arr.read(0, black_box(&mut out)).unwrap())
    });
    g.finish();
}

fn shared_memory(c: &mut Criterion) {
    let mut g = c.benchmark_group("shared_memory");
    // read_at/write_at copy through the descriptor (pread/pwrite): small and bulk, beside a
    // plain copy of the same size between buffers of this process.
    const BULK: usize = 80_000_000;
    let shm = SharedMemory::create(BULK).unwrap();
    let src = vec![3u8; BULK];
    let mut dst = vec![0u8; BULK];
    for (name, len) in [("64b", 64usize), ("80m", BULK)] {
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("write_at_{name}"), |b| {
            b.iter(|| shm.write_at(0, black_box(&src[..len])).unwrap())
        });
        g.bench_function(format!("read_at_{name}"), |b| {
            b.iter(|| shm.read_at(0, black_box(&mut dst[..len])).unwrap())
        });
        g.bench_function(format!("plain_copy_reference_{name}"), |b| {
            b.iter(|| dst[..len].copy_from_slice(black_box(&src[..len])))
        });
    }
    drop(shm);
    g.throughput(Throughput::Elements(1));
    // Python: SharedMemory(create=True, size=4096); SharedMemory(name); unlink().
    g.bench_function("create_attach_unlink_4k", |b| {
        b.iter(|| {
            let a = SharedMemory::options()
                .size(4096)
                .keep(true)
                .create_unique()
                .unwrap();
            let b = SharedMemory::open(a.name()).unwrap();
            a.unlink().unwrap();
            black_box((a, b))
        })
    });
    g.finish();
}

fn hold_forever((lock, ready): (Lock, Event)) {
    let _g = lock.acquire().unwrap();
    ready.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// From `kill(SIGKILL)` of the holder to the return of a waiter's `acquire` with the
/// owner-died report (target: within 10 ms).
fn owner_died_handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("owner_died_handoff", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (lock, ready) = (Lock::new().unwrap(), Event::new().unwrap());
                let p = Process::start(hold_forever, (lock.clone(), ready.clone())).unwrap();
                ready.wait();
                let waiter = std::thread::spawn(move || {
                    let died = lock.acquire().is_err();
                    (Instant::now(), died)
                });
                std::thread::sleep(Duration::from_millis(2));
                let t = Instant::now();
                p.kill().unwrap();
                let (got, died) = waiter.join().unwrap();
                assert!(died);
                total += got - t;
                let _ = p.join();
            }
            total
        })
    });
    g.finish();
}

/// Threads taking turns through a `Semaphore(1)`, most of them asleep in `acquire` at any time:
/// what a release costs when several waiters sleep (this decides how `release` wakes them).
fn semaphore_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_contended");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    for threads in [2u64, 4, 16] {
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let sem = Semaphore::new(1).unwrap();
                let per = iters.div_ceil(threads);
                let t = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let sem = sem.clone();
                        s.spawn(move || {
                            for _ in 0..per {
                                sem.acquire();
                                // A short critical section, so that the others queue up.
                                for _ in 0..50 {
                                    std::hint::spin_loop();
                                }
                                sem.release().unwrap();
                            }
                        });
                    }
                });
                t.elapsed()
            })
        });
    }
    g.finish();
}

/// Two threads hand a turn back and forth through one `Condition` (`wait_while` + `notify`):
/// the cost of a notification that wakes exactly the one waiter.
fn condition_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("condition");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("ping_pong_two_threads", |b| {
        b.iter_custom(|iters| {
            let cond = Condition::new().unwrap();
            let turn = RawValue::new(0u64).unwrap();
            let (c2, t2) = (cond.clone(), turn.clone());
            let t = Instant::now();
            let other = std::thread::spawn(move || {
                for i in 0..iters {
                    let g = c2.lock().unwrap();
                    let g = c2.wait_while(g, || t2.load() != 2 * i + 1).unwrap();
                    t2.store(2 * i + 2);
                    c2.notify(&g);
                }
            });
            for i in 0..iters {
                let g = cond.lock().unwrap();
                let g = cond.wait_while(g, || turn.load() != 2 * i).unwrap();
                turn.store(2 * i + 1);
                cond.notify(&g);
            }
            other.join().unwrap();
            t.elapsed()
        })
    });
    g.finish();
}

fn main() {
    multiproc::init();
    let mut c = Criterion::default().configure_from_args();
    locked_increment(&mut c);
    bulk_array(&mut c);
    raw_array(&mut c);
    shared_memory(&mut c);
    owner_died_handoff(&mut c);
    semaphore_contended(&mut c);
    condition_ping_pong(&mut c);
    c.final_summary();
}
