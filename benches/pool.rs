//! The process pool beside Python's `multiprocessing.Pool`, in the same run: `map` of 1M
//! trivial tasks (target ≥ 20× Python's throughput), `map` of 1000 tasks of 1 ms on 2 workers
//! (target ≤ 1.1× the ideal 0.5 s), pool start + first result (target ≤ 5 ms with spawn).
//!
//! `cargo bench --bench pool` runs the criterion groups, then `benches/pool_python.py`, and
//! prints both side by side (`--quick` in the arguments: smaller Python runs).

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use multiproc::StartMethod;
use multiproc::pool::Pool;

fn trivial(x: u64) -> u64 {
    x + 1
}

/// A millisecond of CPU work.
fn one_ms(x: u64) -> u64 {
    let end = Instant::now() + Duration::from_millis(1);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    x
}

const N: u64 = 1_000_000;

fn map_trivial(pool: &Pool) -> Duration {
    let t = Instant::now();
    let v = pool.map(trivial, 0..N).unwrap();
    let d = t.elapsed();
    assert_eq!(v.len() as u64, N);
    d
}

fn map_one_ms(pool: &Pool) -> Duration {
    let t = Instant::now();
    let v = pool.map(one_ms, 0..1000u64).unwrap();
    let d = t.elapsed();
    assert_eq!(v.len(), 1000);
    d
}

fn start_first(method: StartMethod) -> Duration {
    let t = Instant::now();
    let pool = Pool::builder().processes(2).method(method).build().unwrap();
    assert_eq!(pool.apply(trivial, 1).unwrap(), 2);
    let d = t.elapsed();
    drop(pool);
    d
}

fn total(iters: u64, f: impl Fn() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn benches_pool(c: &mut Criterion) {
    let pool = Pool::new(2).unwrap();
    let mut g = c.benchmark_group("pool");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("map_1M_trivial", |b| {
        b.iter_custom(|iters| total(iters, || map_trivial(&pool)))
    });
    g.bench_function("map_1000x1ms", |b| {
        b.iter_custom(|iters| total(iters, || map_one_ms(&pool)))
    });
    for (label, method) in [("fork", StartMethod::Fork), ("spawn", StartMethod::Spawn)] {
        g.bench_function(format!("start_first_result_{label}"), |b| {
            b.iter_custom(|iters| total(iters, || start_first(method)))
        });
    }
    g.finish();
}

criterion_group!(benches, benches_pool);

fn best(n: usize, f: impl Fn() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap_or_default()
}

/// Runs Python's side and returns its figures by name.
fn python(quick: bool) -> Vec<(String, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pool_python.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    if quick {
        cmd.arg("--quick");
    }
    match cmd.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect(),
        Ok(out) => {
            eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
            Vec::new()
        }
        Err(e) => {
            eprintln!("python3 not run: {e}");
            Vec::new()
        }
    }
}

fn side_by_side(quick: bool) {
    let pool = Pool::new(2).unwrap();
    let ours_rate = N as f64 / best(3, || map_trivial(&pool)).as_secs_f64();
    let ours_ms = best(3, || map_one_ms(&pool)).as_secs_f64();
    drop(pool);
    let ours_fork = best(5, || start_first(StartMethod::Fork)).as_secs_f64();
    let ours_spawn = best(5, || start_first(StartMethod::Spawn)).as_secs_f64();
    let py = python(quick);
    let get = |k: &str| py.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    println!("\npool, side by side with Python's multiprocessing.Pool (2 workers, best of runs)");
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.1}x", a / b));
    let py_rate = get("map_trivial_per_s");
    println!(
        "map of 1M trivial tasks: {:.2}M tasks/s, Python {} -> {} Python's throughput",
        ours_rate / 1e6,
        py_rate.map_or("-".to_owned(), |r| format!("{:.2}M tasks/s", r / 1e6)),
        ratio(ours_rate, py_rate)
    );
    let py_ms = get("map_1000x1ms_s");
    println!(
        "map of 1000 x 1 ms: {:.3} s ({:.2}x the ideal 0.5 s), Python {}",
        ours_ms,
        ours_ms / 0.5,
        py_ms.map_or("-".to_owned(), |t| format!(
            "{t:.3} s ({:.2}x ideal)",
            t / 0.5
        ))
    );
    for (label, ours) in [("fork", ours_fork), ("spawn", ours_spawn)] {
        let py = get(&format!("start_first_result_{label}_s"));
        println!(
            "start + first result ({label}): {:.2} ms, Python {}",
            ours * 1e3,
            py.map_or("-".to_owned(), |t| format!("{:.1} ms", t * 1e3))
        );
    }
}

fn main() {
    multiproc::init();
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs each bench once with `--bench` absent: keep that quick.
    let testing = !args.iter().any(|a| a == "--bench");
    if testing {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.map(trivial, 0..1000u64).unwrap()[999], 1000);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    side_by_side(args.iter().any(|a| a == "--quick"));
}
