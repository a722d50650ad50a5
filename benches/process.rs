//! Process start + join, for each start method (Python here: fork 2.7 ms, spawn 96 ms).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use multiproc::{Process, StartMethod};

fn add_one(x: u64) -> u64 {
    x + 1
}

fn start_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_start_join");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    for (label, method) in [("fork", StartMethod::Fork), ("spawn", StartMethod::Spawn)] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for i in 0..iters {
                    let p = Process::builder().method(method).start(add_one, i).unwrap();
                    assert_eq!(p.join().unwrap(), i + 1);
                }
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, start_join);

fn main() {
    multiproc::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
