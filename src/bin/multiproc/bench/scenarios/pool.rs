//! The process pool: `map` of trivial tasks, `map` of 1 ms tasks on two workers, and a pool's
//! start until its first result.

use std::time::{Duration, Instant};

use multiproc::pool::Pool;

use super::err;
use crate::bench::placement::Placement;

/// A trivial task (also run by the peers).
pub fn trivial(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// Keeps its CPU busy for 1 ms (also run by the peers).
pub fn one_ms(x: u64) -> u64 {
    let start = Instant::now();
    let mut n = x;
    while start.elapsed() < Duration::from_millis(1) {
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    n
}

/// `pool.map(f, 0..batch)` on a started pool of two workers.
fn map(f: fn(u64) -> u64, batch: u64) -> Result<f64, String> {
    let pool = Pool::new(2).map_err(err("pool"))?;
    pool.map(f, [0u64]).map_err(err("warm-up"))?;
    let t = Instant::now();
    let out = pool.map(f, 0..batch).map_err(err("map"))?;
    let elapsed = t.elapsed().as_secs_f64();
    if out.len() as u64 != batch {
        return Err(format!("{} results for {batch} tasks", out.len()));
    }
    Ok(elapsed)
}

/// `map` of trivial tasks: the pool's own cost per task.
pub fn map_trivial(_: Placement, batch: u64) -> Result<f64, String> {
    map(trivial, batch)
}

/// `map` of 1 ms tasks on two workers (ideal: 0.5 ms a task on two CPUs).
pub fn map_1ms(_: Placement, batch: u64) -> Result<f64, String> {
    map(one_ms, batch)
}

/// A pool of two spawned workers started until its first result is back (ending the pool is
/// not timed).
pub fn start(_: Placement, batch: u64) -> Result<f64, String> {
    let mut total = 0.0;
    for i in 0..batch {
        let t = Instant::now();
        let pool = Pool::new(2).map_err(err("pool"))?;
        let r = pool.apply(trivial, i).map_err(err("apply"))?;
        total += t.elapsed().as_secs_f64();
        if r != i + 1 {
            return Err(format!("{r} for {i}"));
        }
        drop(pool);
    }
    Ok(total)
}
