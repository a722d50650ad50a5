//! Connection round trips and bulk transfer between two processes, beside a raw socketpair in
//! the same run.
//!
//! Python here (baselines.md): Pipe round trip 25.9 µs with both processes on one CPU, 52 µs
//! on two CPUs, 46 µs unpinned; raw socketpair 10.2 / 58.9 / 61.3 µs; bulk 0.70 GB/s (1 MiB) and 0.64 GB/s (64 MiB).
//! Targets: ≤ 1.15 × the raw socketpair on one CPU; ≥ 3 GB/s for 1 MiB messages.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};

mod common;
use common::{cpus, echo_raw, pin_to};
use multiproc::{Connection, Descriptor, Process, RecvError, pipe};

/// Echoes every message back until the peer closes.
fn echo_bytes(mut c: Connection) {
    let mut buf = Vec::new();
    while c.recv_bytes_to_vec(&mut buf).is_ok() {
        if c.send_bytes(&buf).is_err() {
            break;
        }
    }
}

/// Answers every `u64` with the next one until the peer closes.
fn echo_typed(mut c: Connection) {
    while let Ok(n) = c.recv::<u64>() {
        if c.send(&(n + 1)).is_err() {
            break;
        }
    }
}

/// For each request `(size, count)`, sends `count` messages of `size` bytes.
fn bulk_source(mut c: Connection) {
    let mut data = Vec::new();
    loop {
        match c.recv::<(u64, u64)>() {
            Ok((size, count)) => {
                data.resize(size as usize, 0xa5);
                for _ in 0..count {
                    if c.send_bytes(&data).is_err() {
                        return;
                    }
                }
            }
            Err(RecvError::Disconnected) | Err(_) => return,
        }
    }
}

fn round_trips(c: &mut Criterion) {
    // (group, parent's CPU, child's CPU)
    for (group_name, parent_cpu, child_cpu) in [
        ("roundtrip_same_cpu", Some(0), Some(0)),
        ("roundtrip_two_cpus", Some(0), Some(1)),
        ("roundtrip_unpinned", None, None),
    ] {
        if child_cpu.is_some_and(|c| c >= cpus()) {
            eprintln!("skipping {group_name}: not enough CPUs");
            continue;
        }
        // Children inherit the mask in force when they start.
        let start = |f: fn(Connection), c: Connection| {
            pin_to(child_cpu);
            let p = Process::start(f, c).unwrap();
            pin_to(parent_cpu);
            p
        };
        let start_raw = |fd: Descriptor| {
            pin_to(child_cpu);
            let p = Process::start(echo_raw, fd).unwrap();
            pin_to(parent_cpu);
            p
        };
        pin_to(parent_cpu);
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(40)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));

        let (mine, theirs) = UnixStream::pair().unwrap();
        let p = start_raw(Descriptor::from(std::os::fd::OwnedFd::from(theirs)));
        let mut raw = mine;
        group.bench_function("raw_socketpair_64B", |b| {
            let mut buf = [7u8; 64];
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    raw.write_all(&buf).unwrap();
                    raw.read_exact(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        drop(raw);
        p.join().unwrap();

        let (mut a, mut b) = pipe(true).unwrap();
        a.set_spin(Duration::ZERO);
        b.set_spin(Duration::ZERO);
        let p = start(echo_bytes, b);
        group.bench_function("pipe_bytes_64B_nospin", |bench| {
            let msg = [7u8; 64];
            let mut buf = Vec::with_capacity(64);
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

        let (mut a, b) = pipe(true).unwrap();
        let p = start(echo_typed, b);
        group.bench_function("pipe_send_recv_u64", |bench| {
            bench.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    a.send(&i).unwrap();
                    assert_eq!(a.recv::<u64>().unwrap(), i + 1);
                }
                t.elapsed()
            })
        });
        drop(a);
        p.join().unwrap();

        // The default: both ends try for up to `DEFAULT_SPIN` before sleeping.
        let (mut a, b) = pipe(true).unwrap();
        let p = start(echo_bytes, b);
        group.bench_function("pipe_bytes_64B", |bench| {
            let msg = [7u8; 64];
            let mut buf = Vec::with_capacity(64);
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

fn bulk(c: &mut Criterion) {
    pin_to(None);
    let mut group = c.benchmark_group("bulk");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(bulk_source, b).unwrap();
    for (label, size) in [("pipe_1MiB", 1u64 << 20), ("pipe_64MiB", 64 << 20)] {
        group.throughput(Throughput::Bytes(size));
        let mut buf = Vec::new();
        group.bench_function(label, |bench| {
            bench.iter_custom(|iters| {
                let t = Instant::now();
                a.send(&(size, iters)).unwrap();
                for _ in 0..iters {
                    a.recv_bytes_to_vec(&mut buf).unwrap();
                    assert_eq!(buf.len() as u64, size);
                }
                t.elapsed()
            })
        });
    }
    drop(a);
    p.join().unwrap();
    group.finish();
}

/// Accepting authenticated clients over a Unix socket, with and without silent clients whose
/// handshakes stay under way in the listener: what a silent client costs a good one.
fn accept_with_silent_clients(c: &mut Criterion) {
    use multiproc::{Address, Client, Listener};
    pin_to(None);
    let mut group = c.benchmark_group("accept");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for silent in [0usize, 10, 100] {
        let name = format!("multiproc-bench-accept-{}-{silent}", std::process::id());
        let addr = Address::abstract_name(name.clone());
        // No timeout: the silent clients stay under way for the whole run.
        let listener = Listener::options()
            .authkey(b"bench")
            .handshake_timeout(None)
            .bind(addr.clone())
            .unwrap();
        let quiet: Vec<UnixStream> = (0..silent)
            .map(|_| {
                use std::os::linux::net::SocketAddrExt;
                let a = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
                UnixStream::connect_addr(&a).unwrap()
            })
            .collect();
        group.bench_function(format!("authkey_{silent}_silent"), |bench| {
            bench.iter_custom(|iters| {
                let t = Instant::now();
                std::thread::scope(|s| {
                    s.spawn(|| {
                        for _ in 0..iters {
                            Client::new().authkey(b"bench").connect(&addr).unwrap();
                        }
                    });
                    for _ in 0..iters {
                        listener.accept().unwrap();
                    }
                });
                t.elapsed()
            })
        });
        drop(quiet);
    }
    group.finish();
}

criterion_group!(benches, round_trips, bulk, accept_with_silent_clients);

/// Raw socketpair and `pipe()` round trips measured in alternating blocks, both processes on
/// CPU 0, so that load from other programs hits both alike: prints the medians and the median
/// of the per-block ratios.
fn interleaved_ratio() {
    const BLOCKS: usize = 41;
    const PER_BLOCK: u32 = 2000;
    pin_to(Some(0));
    let (mut raw, theirs) = UnixStream::pair().unwrap();
    let p_raw = Process::start(
        echo_raw,
        Descriptor::from(std::os::fd::OwnedFd::from(theirs)),
    )
    .unwrap();
    let (mut a, b) = pipe(true).unwrap();
    let p_conn = Process::start(echo_bytes, b).unwrap();
    let mut raw_us = Vec::new();
    let mut conn_us = Vec::new();
    let mut ratios = Vec::new();
    let mut rbuf = [7u8; 64];
    let msg = [7u8; 64];
    let mut cbuf = Vec::with_capacity(64);
    for block in 0..=BLOCKS {
        let t = Instant::now();
        for _ in 0..PER_BLOCK {
            raw.write_all(&rbuf).unwrap();
            raw.read_exact(&mut rbuf).unwrap();
        }
        let r = t.elapsed().as_secs_f64() * 1e6 / f64::from(PER_BLOCK);
        let t = Instant::now();
        for _ in 0..PER_BLOCK {
            a.send_bytes(&msg).unwrap();
            a.recv_bytes_to_vec(&mut cbuf).unwrap();
        }
        let c = t.elapsed().as_secs_f64() * 1e6 / f64::from(PER_BLOCK);
        if block > 0 {
            // The first block warms up.
            raw_us.push(r);
            conn_us.push(c);
            ratios.push(c / r);
        }
    }
    drop((raw, a));
    p_raw.join().unwrap();
    p_conn.join().unwrap();
    pin_to(None);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "interleaved, same CPU, 64 B: raw socketpair {:.2} µs, pipe() {:.2} µs, ratio {:.3} \
         (median of {BLOCKS} blocks of {PER_BLOCK})",
        median(&mut raw_us),
        median(&mut conn_us),
        median(&mut ratios)
    );
}

fn main() {
    multiproc::init();
    cpus();
    benches();
    if std::env::args().any(|a| a == "--bench") {
        interleaved_ratio();
    }
    Criterion::default().configure_from_args().final_summary();
}
