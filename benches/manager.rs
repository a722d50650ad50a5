//! Manager proxy calls over a Unix socket, beside a raw socketpair round trip of the same size
//! in the same run.
//!
//! Python here (baselines.md): a manager proxy call costs ~60 µs. Target: ≤ 1.2 × the raw
//! socket round trip measured in the same run.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use criterion::{Criterion, criterion_group};

mod common;
use common::echo_raw;
use multiproc::manager::Manager;
use multiproc::{Descriptor, Process};

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("manager");
    let (ours, theirs) = UnixStream::pair().unwrap();
    let echo = Process::start(
        echo_raw,
        Descriptor::from(std::os::fd::OwnedFd::from(theirs)),
    )
    .unwrap();
    let mut raw = ours;
    g.bench_function("raw socketpair round trip, 64 B", |b| {
        let mut buf = [7u8; 64];
        b.iter(|| {
            raw.write_all(&buf).unwrap();
            raw.read_exact(&mut buf).unwrap();
        })
    });
    for (name, manager) in [
        ("child process", Manager::start().unwrap()),
        ("thread", Manager::start_thread().unwrap()),
    ] {
        let d = manager.dict().unwrap();
        d.set("key", 1).unwrap();
        g.bench_function(format!("dict proxy d['key'], server in a {name}"), |b| {
            b.iter(|| d.get_item("key").unwrap())
        });
        g.bench_function(format!("atomic update_with add, server in a {name}"), |b| {
            b.iter(|| d.update_with("n", "add", 1).unwrap())
        });
        g.throughput(criterion::Throughput::Elements(10_000));
        g.bench_function(
            format!("pipeline of 10k d[i] = i, server in a {name}"),
            |b| {
                b.iter(|| {
                    let calls = (0..10_000i64)
                        .map(|i| (d.as_proxy(), "__setitem__", vec![i.into(), i.into()]));
                    manager.pipeline(calls).unwrap()
                })
            },
        );
        g.throughput(criterion::Throughput::Elements(1));
    }
    let server = multiproc::manager::Server::bind(
        "127.0.0.1:0".parse::<multiproc::Address>().unwrap(),
        Some(b"bench key"),
    )
    .unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());
    g.bench_function("TCP connect + 2 proxies (dict, list)", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let m = Manager::connect(address.clone(), b"bench key").unwrap();
                let proxies = (m.dict().unwrap(), m.list(multiproc::obj!([1])).unwrap());
                spent += t.elapsed();
                // Everything dropped before the next round, which connects anew.
                drop((proxies, m));
            }
            spent
        })
    });
    stopper.stop();
    serving.join().unwrap().unwrap();
    start(&mut g);
    g.finish();
    drop(raw);
    echo.join().unwrap();
}

/// A child that answers at once: what hearing from a spawned process costs.
fn hello(mut c: multiproc::Connection) {
    let _ = c.send_bytes(b"");
}

/// Manager::start (target ≤ 2 ms; Python: fork 5 ms, spawn 75 ms), beside the floor of a
/// server in a spawned child: starting a process and hearing from it.
fn start(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.bench_function("start: spawn a process and hear from it (floor)", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                let (mut ours, theirs) = multiproc::pipe(true).unwrap();
                let t = Instant::now();
                let p = Process::builder()
                    .daemon(true)
                    .start(hello, theirs)
                    .unwrap();
                ours.recv_bytes().unwrap();
                spent += t.elapsed();
                p.join().unwrap();
            }
            spent
        })
    });
    g.bench_function("start: Manager::start (child process) + first dict", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let m = Manager::start().unwrap();
                let d = m.dict().unwrap();
                spent += t.elapsed();
                // Stopping is not starting: measured below.
                drop((d, m));
            }
            spent
        })
    });
    g.bench_function("start: Manager::start + first dict + shutdown", |b| {
        b.iter(|| {
            let m = Manager::start().unwrap();
            m.dict().unwrap();
        })
    });
}

criterion_group!(benches, calls);

fn main() {
    multiproc::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
