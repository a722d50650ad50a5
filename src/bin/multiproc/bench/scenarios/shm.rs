//! Shared memory and processes: a locked counter, bulk `Array` copies, `SharedMemory`'s life
//! cycle, and process start + join.

use std::time::Instant;

use multiproc::shm::{Array, SharedMemory, Value};
use multiproc::{Process, StartMethod};

use super::{err, fork_placed, timed};
use crate::bench::placement::Placement;

fn add_many((v, n): (Value<u64>, u64)) {
    for _ in 0..n {
        match v.lock() {
            Ok(mut g) => *g += 1,
            Err(_) => return,
        }
    }
}

/// This process and a child each add `batch / 2` to one locked value, in `placement`.
pub fn locked_increment(placement: Placement, batch: u64) -> Result<f64, String> {
    let n = batch.div_ceil(2);
    let v = Value::new(0u64).map_err(err("value"))?;
    let child = fork_placed(placement, add_many, (v.clone(), n))?;
    let t = Instant::now();
    add_many((v.clone(), n));
    child.join().map_err(err("join"))?;
    let elapsed = t.elapsed().as_secs_f64();
    if v.load() != 2 * n {
        return Err(format!("{} of {} increments", v.load(), 2 * n));
    }
    // `2n` operations were timed, not `batch`.
    Ok(elapsed * batch as f64 / (2 * n) as f64)
}

const ARRAY_LEN: usize = 8 << 20;

/// `batch` copies of 64 MiB of f64 into a locked `Array`.
pub fn array_write(_: Placement, batch: u64) -> Result<f64, String> {
    let a = Array::<f64>::new(ARRAY_LEN).map_err(err("array"))?;
    let src: Vec<f64> = (0..ARRAY_LEN).map(|i| i as f64).collect();
    timed(batch, |_| {
        let mut g = a.lock().map_err(|_| "the lock's owner died".to_string())?;
        g.copy_from_slice(&src);
        Ok(())
    })
}

/// `batch` copies of 64 MiB of f64 out of a locked `Array`.
pub fn array_read(_: Placement, batch: u64) -> Result<f64, String> {
    let a = Array::<f64>::new(ARRAY_LEN).map_err(err("array"))?;
    let mut dst = vec![1.0f64; ARRAY_LEN];
    let t = timed(batch, |_| {
        let g = a.lock().map_err(|_| "the lock's owner died".to_string())?;
        dst.copy_from_slice(&g);
        Ok(())
    })?;
    if dst.iter().any(|&x| x != 0.0) {
        return Err("the array did not read as zeros".into());
    }
    Ok(t)
}

fn add_one(x: u64) -> u64 {
    x.wrapping_add(1)
}

fn start_join(method: StartMethod, batch: u64) -> Result<f64, String> {
    timed(batch, |i| {
        let p = Process::builder()
            .method(method)
            .start(add_one, i)
            .map_err(err("start"))?;
        match p.join() {
            Ok(r) if r == i.wrapping_add(1) => Ok(()),
            Ok(r) => Err(format!("the child returned {r}")),
            Err(e) => Err(format!("join: {e}")),
        }
    })
}

/// A child started by fork that returns its argument plus one, and joined.
pub fn start_join_fork(_: Placement, batch: u64) -> Result<f64, String> {
    start_join(StartMethod::Fork, batch)
}

/// A child started by spawn (this program again) that returns its argument plus one.
pub fn start_join_spawn(_: Placement, batch: u64) -> Result<f64, String> {
    start_join(StartMethod::Spawn, batch)
}

/// Creates a named segment of 4 KiB, attaches it a second time, unlinks it.
pub fn shm_cycle(_: Placement, batch: u64) -> Result<f64, String> {
    timed(batch, |_| {
        let a = SharedMemory::create(4096).map_err(err("create"))?;
        let b = SharedMemory::open(a.name()).map_err(err("attach"))?;
        drop(b);
        a.unlink().map_err(err("unlink"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_locked_counter_counts_every_increment() {
        let t = super::locked_increment(super::Placement::Unpinned, 1000).unwrap();
        assert!(t > 0.0);
    }
}
