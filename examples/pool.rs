//! Counts the primes below two million in ranges, on a pool with one worker per CPU, and kills
//! one worker with SIGKILL part-way: the pool replaces it, runs its range again (`retries`),
//! and the count comes out whole.
//!
//! `cargo run --example pool`

use multiproc::pool::Pool;

const LIMIT: u64 = 2_000_000;
const RANGES: u64 = 40;

/// The primes in `lo..hi` (trial division: plain CPU work), and the pid that counted them.
fn count_primes((lo, hi): (u64, u64)) -> (u64, u32) {
    let is_prime = |n: u64| {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    };
    (
        (lo..hi).filter(|&n| is_prime(n)).count() as u64,
        std::process::id(),
    )
}

fn main() {
    multiproc::init();
    // One worker per CPU (at least two, so that one can be killed while another answers).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let pool = Pool::builder()
        .processes(workers)
        .retries(1)
        .build()
        .expect("start the pool");
    println!(
        "counting primes below {LIMIT} in {RANGES} ranges on {} workers",
        pool.processes()
    );
    let step = LIMIT / RANGES;
    let ranges = (0..RANGES).map(|i| (i * step, (i + 1) * step));
    let mut total = 0;
    let mut done = 0;
    let mut killed = false;
    for r in pool.imap_unordered(count_primes, ranges) {
        let (count, pid) = r.expect("a range failed");
        total += count;
        done += 1;
        if done == 5 && !killed {
            // Kill a worker other than the one that just answered: it is busy with a range.
            if let Some(victim) = pool.worker_pids().into_iter().find(|&p| p != pid) {
                std::process::Command::new("kill")
                    .args(["-KILL", &victim.to_string()])
                    .status()
                    .expect("run kill");
                println!("killed worker {victim} part-way");
                killed = true;
            }
        }
    }
    println!("primes below {LIMIT}: {total} ({done} ranges)");
}
