//! The scenarios: what each row measures, for multiproc, Python and the Rust peers, and which
//! floor it is read against.
//!
//! A [`Measure`] runs `batch` operations and returns the seconds they took; it sets up its
//! peer process first and tears it down afterwards, outside the timed part. The driver calls
//! every system's measure in turn, round after round, so that the systems share the machine's
//! moods.
//!
//! Adding a scenario is one more [`Scenario`] in [`all`]: a multiproc measure,
//! the name of the matching function in `python_bench.py`, the peers that have the operation
//! (in `peers.rs`), and the floor it is compared with.

mod channels;
mod manager;
pub mod pool;
mod queues;
#[cfg(feature = "redis")]
mod redis;
mod shm;

use std::fmt::Display;
use std::time::Instant;

use multiproc::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::floors;
use super::placement::{Placement, start_placed};

/// Runs `batch` operations in a placement; the seconds they took.
pub type Measure = fn(Placement, u64) -> Result<f64, String>;

/// A Rust crate that does the same job.
pub struct Peer {
    /// The crate, as the table names it.
    pub name: &'static str,
    pub measure: Measure,
}

/// One row of the comparison (or several: one per placement).
pub struct Scenario {
    /// The name for `--only` and in the JSON file.
    pub name: &'static str,
    /// What the table calls it.
    pub what: &'static str,
    /// Bytes moved per operation, for bulk scenarios (the table shows a bandwidth).
    pub bytes: u64,
    /// Measured in every [`Placement`] (latency scenarios), or unpinned only.
    pub placed: bool,
    /// The multiproc figure; for a floor, the floor itself.
    pub ours: Measure,
    /// The function of `python_bench.py` that does the same.
    pub python: Option<&'static str>,
    /// The Rust crates that have the operation (with feature `bench-peers`).
    pub peers: Vec<Peer>,
    /// The floor row this one is compared with.
    pub floor: Option<&'static str>,
    /// That floor's measure: taken in this row too, in turn with the others.
    pub floor_measure: Option<Measure>,
    /// This row is a floor: the machine's cost of the mechanism, no library in between.
    pub is_floor: bool,
    /// The smallest batch worth a sample: for scenarios whose timed part holds a fixed cost
    /// (waking sleeping processes) that only many operations make small.
    pub min_batch: u64,
}

impl Scenario {
    fn new(name: &'static str, what: &'static str, ours: Measure) -> Self {
        Scenario {
            name,
            what,
            bytes: 0,
            placed: false,
            ours,
            python: Some(name),
            peers: Vec::new(),
            floor: None,
            floor_measure: None,
            is_floor: false,
            min_batch: 1,
        }
    }
    fn placed(mut self) -> Self {
        self.placed = true;
        self
    }
    fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = bytes;
        self
    }
    fn floor(mut self, floor: &'static str) -> Self {
        self.floor = Some(floor);
        self
    }
    fn min_batch(mut self, n: u64) -> Self {
        self.min_batch = n;
        self
    }
    fn no_python(mut self) -> Self {
        self.python = None;
        self
    }
    fn python_as(mut self, name: &'static str) -> Self {
        self.python = Some(name);
        self
    }
    #[cfg_attr(not(any(feature = "bench-peers", feature = "redis")), allow(dead_code))]
    pub fn peer(mut self, name: &'static str, measure: Measure) -> Self {
        self.peers.push(Peer { name, measure });
        self
    }
    fn floor_row(name: &'static str, what: &'static str, measure: Measure) -> Self {
        Scenario {
            python: None,
            is_floor: true,
            ..Scenario::new(name, what, measure)
        }
    }
}

const MIB: u64 = 1 << 20;

/// Whether this build has the Redis rows (the crate's feature `redis`).
pub const REDIS_BUILT: bool = cfg!(feature = "redis");

/// What to build to have the Redis rows, as the table and `--list` say it.
pub const REDIS_HOW_TO_BUILD: &str = "cargo build --release --features bench-redis";

/// The Redis rows: `redis_proxy_call` (`d['k']` through the Redis backend's dict proxy beside
/// the same `HGET` through the raw `redis` crate, on a `redis-server` each sample starts on a
/// Unix socket) and `redis_pipelined` (the same, 1000 calls a pipeline). A build without the
/// feature names them, and the feature that adds them, instead of measuring them.
pub const REDIS_ROWS: &[&str] = &["redis_proxy_call", "redis_pipelined"];

#[cfg(feature = "redis")]
fn redis_rows() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "redis_proxy_call",
            "Redis d['k'], Unix socket",
            redis::proxy_call,
        )
        .placed()
        .no_python()
        .peer("redis", redis::raw_call)
        .floor("socketpair_round_trip"),
        Scenario::new(
            "redis_pipelined",
            "Redis pipelined d['k']",
            redis::proxy_pipelined,
        )
        .no_python()
        .peer("redis", redis::raw_pipelined),
    ]
}

#[cfg(not(feature = "redis"))]
fn redis_rows() -> Vec<Scenario> {
    Vec::new()
}

/// Every scenario, then every floor, in the order of the table.
pub fn all() -> Vec<Scenario> {
    let rows = vec![
        Scenario::new(
            "pipe_round_trip",
            "Pipe round trip, u64",
            channels::pipe_round_trip,
        )
        .placed()
        .floor("socketpair_round_trip"),
        Scenario::new(
            "pipe_round_trip_64b",
            "Pipe round trip, 64 B bytes",
            channels::pipe_round_trip_64b,
        )
        .placed()
        .floor("socketpair_round_trip"),
        Scenario::new(
            "duplex_round_trip",
            "shm duplex round trip, u64",
            channels::duplex_round_trip,
        )
        .placed()
        .no_python()
        .floor("spin_round_trip"),
        Scenario::new(
            "pipe_bulk_1mib",
            "Pipe, 1 MiB messages",
            channels::pipe_bulk_1mib,
        )
        .bytes(MIB)
        .floor("memcpy_1mib"),
        Scenario::new(
            "pipe_bulk_64mib",
            "Pipe, 64 MiB messages",
            channels::pipe_bulk_64mib,
        )
        .bytes(64 * MIB)
        .floor("memcpy_64mib"),
        Scenario::new(
            "duplex_bulk_64mib",
            "shm duplex, 64 MiB messages",
            channels::duplex_bulk_64mib,
        )
        .bytes(64 * MIB)
        .no_python()
        .floor("memcpy_64mib"),
        Scenario::new("queue_small", "Queue 1->1, u64", queues::small),
        Scenario::new("queue_1kib", "Queue 1->1, 1 KiB", queues::kib).bytes(1024),
        Scenario::new("queue_64mib", "Queue 1->1, 64 MiB", queues::mib64)
            .bytes(64 * MIB)
            .floor("memcpy_64mib"),
        Scenario::new("queue_2to2", "Queue 2->2, u64", queues::two_to_two).min_batch(20_000),
        Scenario::new(
            "value_lock_increment",
            "with lock: v += 1, 2 procs",
            shm::locked_increment,
        )
        .placed()
        .floor("mutex_uncontended"),
        Scenario::new(
            "array_write_64mib",
            "Array<f64> write, 64 MiB",
            shm::array_write,
        )
        .bytes(64 * MIB)
        .floor("memcpy_64mib"),
        Scenario::new(
            "array_read_64mib",
            "Array<f64> read, 64 MiB",
            shm::array_read,
        )
        .bytes(64 * MIB)
        .floor("memcpy_64mib"),
        Scenario::new(
            "manager_call_unix",
            "Manager d['k'], Unix socket",
            manager::call_unix,
        )
        .placed()
        .floor("socketpair_round_trip"),
        Scenario::new("manager_call_tcp", "Manager d['k'], TCP", manager::call_tcp)
            .placed()
            .floor("tcp_round_trip"),
        Scenario::new(
            "manager_pipelined",
            "Manager pipelined d['k']",
            manager::pipelined,
        )
        .python_as("manager_call_unix"),
        Scenario::new(
            "manager_tcp_connect",
            "Manager TCP connect + 2 proxies",
            manager::tcp_connect,
        )
        .floor("tcp_connect"),
        Scenario::new(
            "manager_start",
            "Manager start + dict + stop",
            manager::start,
        )
        .floor("raw_fork"),
        Scenario::new(
            "process_fork",
            "Process start + join, fork",
            shm::start_join_fork,
        )
        .floor("raw_fork"),
        Scenario::new(
            "process_spawn",
            "Process start + join, spawn",
            shm::start_join_spawn,
        )
        .floor("raw_fork_exec"),
        Scenario::new(
            "shm_create_attach_unlink",
            "SharedMemory create+attach+unlink",
            shm::shm_cycle,
        )
        .floor("shm_syscalls"),
        Scenario::new(
            "pool_map_trivial",
            "Pool map, trivial tasks",
            pool::map_trivial,
        ),
        Scenario::new(
            "pool_map_1ms",
            "Pool map, 1 ms tasks, 2 workers",
            pool::map_1ms,
        ),
        Scenario::new(
            "pool_start",
            "Pool start + first result, spawn",
            pool::start,
        )
        .floor("raw_fork_exec"),
    ];
    let floors = vec![
        Scenario::floor_row(
            "socketpair_round_trip",
            "socketpair round trip, 64 B",
            floors::socketpair_round_trip,
        )
        .placed(),
        Scenario::floor_row(
            "tcp_round_trip",
            "TCP loopback round trip, 64 B",
            floors::tcp_round_trip,
        )
        .placed(),
        Scenario::floor_row(
            "spin_round_trip",
            "spin ping-pong on one cache line",
            floors::spin_round_trip,
        )
        .placed(),
        Scenario::floor_row(
            "futex_round_trip",
            "futex wake ping-pong",
            floors::futex_round_trip,
        )
        .placed(),
        Scenario::floor_row(
            "mutex_uncontended",
            "mutex lock+unlock, uncontended",
            floors::mutex_uncontended,
        ),
        Scenario::floor_row("memcpy_1mib", "memcpy 1 MiB", floors::memcpy_1mib).bytes(MIB),
        Scenario::floor_row("memcpy_64mib", "memcpy 64 MiB", floors::memcpy_64mib).bytes(64 * MIB),
        Scenario::floor_row(
            "tcp_connect",
            "TCP loopback connect + accept",
            floors::tcp_connect,
        ),
        Scenario::floor_row("raw_fork", "fork + _exit + wait", floors::raw_fork),
        Scenario::floor_row(
            "raw_fork_exec",
            "posix_spawn + wait (this program)",
            floors::raw_fork_exec,
        ),
        Scenario::floor_row(
            "shm_syscalls",
            "shm_open+mmap twice, shm_unlink",
            floors::shm_syscalls,
        ),
    ];
    let mut rows = super::peers::add(rows);
    rows.extend(redis_rows());
    for row in &mut rows {
        row.floor_measure = row
            .floor
            .and_then(|f| floors.iter().find(|s| s.name == f))
            .map(|f| f.ours);
    }
    rows.extend(floors);
    rows
}

/// Turns an error into the message of a failed measurement.
pub fn err<E: Display>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Times `batch` runs of `op`.
pub fn timed(batch: u64, mut op: impl FnMut(u64) -> Result<(), String>) -> Result<f64, String> {
    let t = Instant::now();
    for i in 0..batch {
        op(i)?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Times `batch` operations made `chunk` at a time by `op(n)` (for pipelines).
pub fn timed_chunks(
    batch: u64,
    chunk: u64,
    mut op: impl FnMut(u64) -> Result<(), String>,
) -> Result<f64, String> {
    let t = Instant::now();
    let mut left = batch;
    while left > 0 {
        let n = left.min(chunk);
        op(n)?;
        left -= n;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Forks a child running `target(args)` in `placement`.
pub fn fork_placed<A, R>(
    placement: Placement,
    target: fn(A) -> R,
    args: A,
) -> Result<Process<R>, String>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    start_placed_by(StartMethod::Fork, placement, target, args)
}

/// Starts a child running `target(args)` in `placement`, by `method`.
pub fn start_placed_by<A, R>(
    method: StartMethod,
    placement: Placement,
    target: fn(A) -> R,
    args: A,
) -> Result<Process<R>, String>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    start_placed(
        placement,
        || Process::builder().method(method).start(target, args),
        |p| p.as_ref().map_or(0, Process::pid),
    )
    .map_err(err("start the peer process"))
}
