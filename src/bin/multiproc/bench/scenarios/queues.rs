//! `Queue`: one producer to one consumer (small, 1 KiB and 64 MiB messages), and two to two.

use std::time::Instant;

use multiproc::queue::BytesQueue;
use multiproc::{Event, Process, Queue, StartMethod};

use super::{err, fork_placed};
use crate::bench::placement::Placement;

/// Puts `0..=n` on the queue (the first one is not timed: it says the producer runs).
fn produce((q, n): (Queue<u64>, u64)) {
    for i in 0..=n {
        if q.put(i).is_err() {
            break;
        }
    }
}

/// `batch` u64 from a child to this process; the time starts at the first message, once the
/// producer runs.
pub fn small(_: Placement, batch: u64) -> Result<f64, String> {
    let q = Queue::new().map_err(err("queue"))?;
    let child = fork_placed(Placement::Unpinned, produce, (q.clone(), batch))?;
    q.get().map_err(err("get"))?;
    let t = Instant::now();
    for i in 1..=batch {
        let v = q.get().map_err(err("get"))?;
        if v != i {
            return Err(format!("expected {i}, got {v}"));
        }
    }
    let elapsed = t.elapsed().as_secs_f64();
    child.join().map_err(err("join"))?;
    Ok(elapsed)
}

/// Puts `n + 1` messages of `size` bytes.
fn produce_bytes((q, size, n): (BytesQueue, u64, u64)) {
    let msg = vec![b'x'; usize::try_from(size).unwrap_or(0)];
    for _ in 0..=n {
        if q.put(&msg[..]).is_err() {
            break;
        }
    }
}

fn bytes(size: u64, batch: u64) -> Result<f64, String> {
    let q = BytesQueue::new().map_err(err("queue"))?;
    let child = fork_placed(Placement::Unpinned, produce_bytes, (q.clone(), size, batch))?;
    let mut buf = Vec::new();
    q.get_into(&mut buf, None).map_err(err("get"))?;
    let t = Instant::now();
    for _ in 0..batch {
        q.get_into(&mut buf, None).map_err(err("get"))?;
        if buf.len() as u64 != size {
            return Err(format!("a message of {} bytes, not {size}", buf.len()));
        }
    }
    let elapsed = t.elapsed().as_secs_f64();
    child.join().map_err(err("join"))?;
    Ok(elapsed)
}

/// 1 KiB messages, one producer to one consumer.
pub fn kib(_: Placement, batch: u64) -> Result<f64, String> {
    bytes(1024, batch)
}

/// 64 MiB messages (streamed through the ring), one producer to one consumer.
pub fn mib64(_: Placement, batch: u64) -> Result<f64, String> {
    bytes(64 << 20, batch)
}

/// Puts `0` (the producer is ready), waits for `go`, then puts `1..n` and one `u64::MAX`.
fn produce_range((q, go, n): (Queue<u64>, Event, u64)) {
    if n > 0 && q.put(0).is_err() {
        return;
    }
    go.wait();
    for i in 1..n {
        if q.put(i).is_err() {
            return;
        }
    }
    let _ = q.put(u64::MAX);
}

/// Gets until a `u64::MAX`; puts how many it got before on `done`.
fn consume((q, done): (Queue<u64>, Queue<u64>)) {
    let mut n = 0;
    while let Ok(v) = q.get() {
        if v == u64::MAX {
            break;
        }
        n += 1;
    }
    let _ = done.put(n);
}

/// Two producer processes put `batch` u64 in all, then a `u64::MAX` each; two consumer
/// processes take them, each until a `u64::MAX`. Timed from the signal that lets the
/// producers go until both consumers have said how many they took.
pub fn two_to_two(_: Placement, batch: u64) -> Result<f64, String> {
    let q = Queue::new().map_err(err("queue"))?;
    let done = Queue::new().map_err(err("queue"))?;
    let go = Event::new().map_err(err("event"))?;
    let start = |f, args| Process::builder().method(StartMethod::Fork).start(f, args);
    let half = batch.div_ceil(2);
    let children: Vec<Process<()>> = [
        start(consume as fn(_), (q.clone(), done.clone())),
        start(consume, (q.clone(), done.clone())),
    ]
    .into_iter()
    .collect::<Result<_, _>>()
    .map_err(err("start"))?;
    let producers: Vec<Process<()>> = [half, batch - half]
        .into_iter()
        .map(|n| {
            Process::builder()
                .method(StartMethod::Fork)
                .start(produce_range, (q.clone(), go.clone(), n))
        })
        .collect::<Result<_, _>>()
        .map_err(err("start"))?;
    let t = Instant::now();
    go.set();
    let got = done.get().map_err(err("get"))? + done.get().map_err(err("get"))?;
    let elapsed = t.elapsed().as_secs_f64();
    for p in children.into_iter().chain(producers) {
        p.join().map_err(err("join"))?;
    }
    if got != batch {
        return Err(format!("{got} of {batch} messages arrived"));
    }
    Ok(elapsed)
}
