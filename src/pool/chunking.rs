//! How many tasks go into the next chunk: the adaptive rule.
//!
//! A chunk is the unit a worker receives, runs and answers. Large chunks spread the cost of a
//! round trip (encoding, a wake-up on each side, ~20–60 µs) over many tasks; small chunks keep
//! the workers evenly loaded and make a worker's death cost few tasks. The rule:
//!
//! 1. Without a measurement yet, a chunk holds **one** task.
//! 2. The worker reports how long it spent on each chunk; the pool keeps a running estimate of
//!    the time per task (the mean of the previous estimate and the latest chunk's figure).
//! 3. The next chunk holds as many tasks as fit in [`TARGET`] (5 ms) at that estimate, but
//!    - at most 8 times the previous chunk (so a wrong first figure is corrected quickly),
//!    - when the number of tasks left is known, at most a quarter of each worker's share of
//!      them (`ceil(left / (4 × workers))`, Python's own default, as a ceiling), so that the
//!      last chunks are small and no worker finishes long after the others,
//!    - and at most [`MAX_TASKS`].
//!
//! Tasks of 1 ms or more therefore run one per chunk; tasks of a microsecond run thousands
//! per chunk.

use std::time::Duration;

/// The work one chunk should hold.
pub const TARGET: Duration = Duration::from_millis(5);

/// The most tasks in one chunk.
pub const MAX_TASKS: u32 = 1 << 20;

/// How fast a chunk may grow over the previous one.
const GROWTH: u64 = 8;

/// The running estimate of the time per task.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Estimate {
    nanos_per_task: Option<f64>,
    last: u32,
}

impl Estimate {
    /// Records a chunk of `n` tasks that took `nanos` in the worker.
    pub(super) fn record(&mut self, n: u32, nanos: u64) {
        if n == 0 {
            return;
        }
        let per = nanos as f64 / f64::from(n);
        self.nanos_per_task = Some(match self.nanos_per_task {
            Some(old) => (old + per) / 2.0,
            None => per,
        });
    }

    /// The size of the next chunk, given how many tasks are left (if known) and the number of
    /// workers; remembers it as the previous chunk.
    pub(super) fn next(&mut self, left: Option<u64>, workers: usize) -> u32 {
        let n = next_size(self.nanos_per_task, self.last, left, workers);
        self.last = n;
        n
    }
}

/// The rule of the module documentation.
pub(super) fn next_size(
    nanos_per_task: Option<f64>,
    last: u32,
    left: Option<u64>,
    workers: usize,
) -> u32 {
    let Some(per) = nanos_per_task else {
        return 1;
    };
    let target = TARGET.as_nanos() as f64;
    let fit = if per <= 0.0 {
        u64::MAX
    } else {
        (target / per).floor() as u64
    };
    let mut n = fit.min(u64::from(last.max(1)).saturating_mul(GROWTH));
    if let Some(left) = left {
        let share = left.div_ceil(4 * workers.max(1) as u64);
        n = n.min(share);
    }
    n.clamp(1, u64::from(MAX_TASKS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_chunk_holds_one_task() {
        assert_eq!(next_size(None, 0, Some(1_000_000), 2), 1);
    }

    #[test]
    fn tiny_tasks_grow_by_eight_up_to_the_share() {
        // 10 ns per task: 5 ms holds 500_000.
        assert_eq!(next_size(Some(10.0), 1, Some(1_000_000), 2), 8);
        assert_eq!(next_size(Some(10.0), 8, Some(1_000_000), 2), 64);
        assert_eq!(next_size(Some(10.0), 100_000, Some(1_000_000), 2), 125_000);
        assert_eq!(next_size(Some(10.0), 100_000, None, 2), 500_000);
        assert_eq!(next_size(Some(0.0), MAX_TASKS, None, 2), MAX_TASKS);
    }

    #[test]
    fn long_tasks_stay_alone() {
        assert_eq!(next_size(Some(1e6), 1, Some(1000), 2), 5);
        assert_eq!(next_size(Some(20e6), 8, Some(1000), 2), 1);
    }

    #[test]
    fn the_tail_shrinks() {
        assert_eq!(next_size(Some(10.0), 1000, Some(3), 2), 1);
        assert_eq!(next_size(Some(10.0), 1000, Some(0), 2), 1);
    }

    #[test]
    fn estimates_average() {
        let mut e = Estimate::default();
        assert_eq!(e.next(Some(100), 1), 1);
        e.record(1, 2_000_000);
        e.record(2, 0);
        // (2 ms + 0) / 2 = 1 ms per task: 5 per chunk, capped by 8 × 1.
        assert_eq!(e.next(None, 1), 5);
    }
}
