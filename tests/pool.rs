//! The process pool with real worker processes: results, failures per task, supervision.

use std::time::{Duration, Instant};

use multiproc::pool::{Pool, TaskError, WorkerExit};

multiproc::test_support!();

fn square(x: u64) -> u64 {
    x.wrapping_mul(x) ^ 0x5555
}

#[test]
fn map_of_100k_items_equals_a_sequential_loop() {
    let pool = Pool::new(2).unwrap();
    let got = pool.map(square, 0..100_000u64).unwrap();
    let want: Vec<u64> = (0..100_000u64).map(square).collect();
    assert_eq!(got, want);
}
