//! Queue throughput (one producer process → one consumer) and round trips (two queues, the
//! shared-memory duplex channel), beside the socket pipe and a plain memcpy in the same run.
//!
//! Python here (baselines.md): Queue 166k small msgs/s, 131k 1 KiB msgs/s, bulk 0.64 GB/s
//! (64 MiB); round trip 52 µs on two CPUs. Targets: ≥ 10M small msgs/s, ≥ 2M 1 KiB msgs/s,
//! ≥ 4 GB/s for 64 MiB within 1.2× of a memcpy of the same size.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};

mod common;
use common::{cpus, pin_to};
use multiproc::queue::{BytesQueue, Duplex, Queue, duplex};
use multiproc::{Connection, Process, pipe};

/// For each request `(size, count)` on `ctl`, puts `count` messages of `size` bytes on `q`.
fn queue_source((mut ctl, q): (Connection, BytesQueue)) {
    let mut data = Vec::new();
    while let Ok((size, count)) = ctl.recv::<(u64, u64)>() {
        data.resize(size as usize, 0xa5);
        for _ in 0..count {
            q.put(&data[..]).unwrap();
        }
    }
}

/// For each request `count` on `ctl`, puts the numbers `0..count` on `q`.
fn typed_source((mut ctl, q): (Connection, Queue<u64>)) {
    while let Ok(count) = ctl.recv::<u64>() {
        for i in 0..count {
            q.put(i).unwrap();
        }
    }
}

/// For each request `(size, count)`, sends `count` messages of `size` bytes.
fn pipe_source(mut c: Connection) {
    let mut data = Vec::new();
    while let Ok((size, count)) = c.recv::<(u64, u64)>() {
        data.resize(size as usize, 0xa5);
        for _ in 0..count {
            if c.send_bytes(&data).is_err() {
                return;
            }
        }
    }
}

/// Answers every number on `rx` with the next one on `tx`, until `u64::MAX`.
fn queue_echo((rx, tx): (Queue<u64>, Queue<u64>)) {
    loop {
        let n = rx.get().unwrap();
        if n == u64::MAX {
            return;
        }
        tx.put(n + 1).unwrap();
    }
}

fn duplex_echo(end: Duplex) {
    while let Ok(n) = end.recv::<u64>() {
        end.send(&(n + 1)).unwrap();
    }
}

fn pipe_echo(mut c: Connection) {
    let mut buf = Vec::new();
    while c.recv_bytes_to_vec(&mut buf).is_ok() {
        if c.send_bytes(&buf).is_err() {
            break;
        }
    }
}

fn one_to_one(c: &mut Criterion) {
    pin_to(None);
    let mut group = c.benchmark_group("queue_1to1");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let q: Queue<u64> = Queue::new().unwrap();
    let (mut ctl, theirs) = pipe(true).unwrap();
    let p = Process::start(typed_source, (theirs, q.clone())).unwrap();
    group.throughput(Throughput::Elements(1));
    group.bench_function("queue_u64", |b| {
        b.iter_custom(|iters| {
            ctl.send(&iters).unwrap();
            let t = Instant::now();
            for i in 0..iters {
                assert_eq!(q.get().unwrap(), i);
            }
            t.elapsed()
        })
    });
    drop(ctl);
    p.join().unwrap();

    let q = BytesQueue::new().unwrap();
    let (mut ctl, theirs) = pipe(true).unwrap();
    let p = Process::start(queue_source, (theirs, q.clone())).unwrap();
    let mut buf = Vec::new();
    for (label, size) in [("queue_bytes_8B", 8u64), ("queue_bytes_1KiB", 1024)] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                ctl.send(&(size, iters)).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    q.get_into(&mut buf, None).unwrap();
                    debug_assert_eq!(buf.len() as u64, size);
                }
                t.elapsed()
            })
        });
    }
    drop(ctl);
    p.join().unwrap();

    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(pipe_source, b).unwrap();
    for (label, size) in [("pipe_bytes_8B", 8u64), ("pipe_bytes_1KiB", 1024)] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(label, |bench| {
            bench.iter_custom(|iters| {
                a.send(&(size, iters)).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    a.recv_bytes_to_vec(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
    }
    drop(a);
    p.join().unwrap();
    group.finish();
}

fn bulk(c: &mut Criterion) {
    const SIZE: u64 = 64 << 20;
    pin_to(None);
    let mut group = c.benchmark_group("bulk_64MiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(SIZE));

    let src = vec![0x5au8; SIZE as usize];
    let mut dst = vec![0u8; SIZE as usize];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
        })
    });
    drop((src, dst));

    let mut buf = Vec::new();
    for (label, direct) in [("queue", false), ("queue_direct_copy", true)] {
        let q = Queue::options().direct_copy(direct).create_bytes().unwrap();
        let (mut ctl, theirs) = pipe(true).unwrap();
        let p = Process::start(queue_source, (theirs, q.clone())).unwrap();
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                ctl.send(&(SIZE, iters)).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    q.get_into(&mut buf, None).unwrap();
                    assert_eq!(buf.len() as u64, SIZE);
                }
                t.elapsed()
            })
        });
        drop(ctl);
        p.join().unwrap();
        assert_eq!(q.stats().direct > 0, direct);
    }

    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(pipe_source, b).unwrap();
    group.bench_function("pipe", |bench| {
        bench.iter_custom(|iters| {
            a.send(&(SIZE, iters)).unwrap();
            let t = Instant::now();
            for _ in 0..iters {
                a.recv_bytes_to_vec(&mut buf).unwrap();
                assert_eq!(buf.len() as u64, SIZE);
            }
            t.elapsed()
        })
    });
    drop(a);
    p.join().unwrap();
    group.finish();
}

fn round_trips(c: &mut Criterion) {
    for (name, parent_cpu, child_cpu) in [
        ("queue_roundtrip_same_cpu", Some(0), Some(0)),
        ("queue_roundtrip_two_cpus", Some(0), Some(1)),
    ] {
        if child_cpu.is_some_and(|c| c >= cpus()) {
            eprintln!("skipping {name}: not enough CPUs");
            continue;
        }
        let mut group = c.benchmark_group(name);
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));

        let (to, from): (Queue<u64>, Queue<u64>) = (Queue::new().unwrap(), Queue::new().unwrap());
        pin_to(child_cpu);
        let p = Process::start(queue_echo, (to.clone(), from.clone())).unwrap();
        pin_to(parent_cpu);
        group.bench_function("two_queues_u64", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    to.put(i).unwrap();
                    assert_eq!(from.get().unwrap(), i + 1);
                }
                t.elapsed()
            })
        });
        to.put(u64::MAX).unwrap();
        p.join().unwrap();

        let (mine, theirs) = duplex().unwrap();
        pin_to(child_cpu);
        let p = Process::start(duplex_echo, theirs).unwrap();
        pin_to(parent_cpu);
        group.bench_function("duplex_u64", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    mine.send(&i).unwrap();
                    assert_eq!(mine.recv::<u64>().unwrap(), i + 1);
                }
                t.elapsed()
            })
        });
        drop(mine);
        p.join().unwrap();

        let (mut a, b) = pipe(true).unwrap();
        pin_to(child_cpu);
        let p = Process::start(pipe_echo, b).unwrap();
        pin_to(parent_cpu);
        group.bench_function("pipe_bytes_8B", |bench| {
            let msg = [7u8; 8];
            let mut buf = Vec::with_capacity(8);
            bench.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    a.send_bytes(&msg).unwrap();
                    a.recv_bytes_to_vec(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        drop(a);
        p.join().unwrap();
        group.finish();
    }
    pin_to(None);
}

criterion_group!(benches, one_to_one, bulk, round_trips);

fn main() {
    multiproc::init();
    cpus();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
