//! `multiproc bench`: multiproc and Python's multiprocessing side by side, in one run.

use std::process::Command;
use std::time::{Duration, Instant};

use multiproc::manager::Manager;
use multiproc::queue::Queue;
use multiproc::shm::{SharedMemory, Value};
use multiproc::{Connection, Process, RecvError, StartMethod, pipe};

const PYTHON_BENCH: &str = include_str!("python_bench.py");

/// Settings of one run.
pub struct Options {
    /// The Python interpreter to compare with; `None` skips Python.
    pub python: Option<String>,
    /// Fewer samples, for a quick look.
    pub quick: bool,
}

/// One figure: seconds per operation.
struct Figure {
    name: &'static str,
    what: &'static str,
    ours: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `batch` runs of `op`, `samples` times; the median seconds per run.
fn measure(samples: usize, batch: u32, mut op: impl FnMut(u32)) -> f64 {
    op(0); // warm up
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for i in 0..batch {
            op(i);
        }
        times.push(t.elapsed().as_secs_f64() / f64::from(batch));
    }
    median(times)
}

fn add_one(x: u32) -> u32 {
    x.wrapping_add(1)
}

fn start_join(method: StartMethod) -> impl FnMut(u32) {
    move |i| {
        let p = Process::builder()
            .method(method)
            .start(add_one, i)
            .expect("start");
        assert_eq!(p.join().expect("join"), i.wrapping_add(1));
    }
}

fn add_many((v, n): (Value<u64>, u64)) {
    for _ in 0..n {
        *v.lock().expect("lock") += 1;
    }
}

/// Two processes each add `n` to one locked value; seconds per increment of the pair.
fn locked_increment(samples: usize, n: u64) -> f64 {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let v = Value::new(0u64).expect("value");
        let t = Instant::now();
        let procs: Vec<_> = (0..2)
            .map(|_| {
                Process::builder()
                    .method(StartMethod::Fork)
                    .start(add_many, (v.clone(), n))
                    .expect("start")
            })
            .collect();
        for p in procs {
            p.join().expect("join");
        }
        times.push(t.elapsed().as_secs_f64() / (2 * n) as f64);
        assert_eq!(v.load(), 2 * n, "lost increments");
    }
    median(times)
}

fn shm_create_attach_unlink(_: u32) {
    let a = SharedMemory::create(4096).expect("create");
    let b = SharedMemory::open(a.name()).expect("attach");
    drop(b);
    a.unlink().expect("unlink");
}

/// Sends every number back until `u64::MAX` (a forked child holds copies of the parent's
/// descriptors, so it would not see the parent's end close).
fn echo(mut conn: Connection) {
    while let Ok(v) = conn.recv::<u64>() {
        if v == u64::MAX || conn.send(&v).is_err() {
            break;
        }
    }
}

/// A small message to a child and back, through a duplex `pipe()`.
fn pipe_round_trip(samples: usize, batch: u32) -> f64 {
    let (mut a, b) = pipe(true).expect("pipe");
    let child = Process::builder()
        .method(StartMethod::Fork)
        .start(echo, b)
        .expect("start");
    let t = measure(samples, batch, |i| {
        a.send(&u64::from(i)).expect("send");
        assert_eq!(a.recv::<u64>().expect("recv"), u64::from(i));
    });
    a.send(&u64::MAX).expect("send");
    child.join().expect("join");
    t
}

/// Receives messages; answers an empty one with an empty one (the sender's "all delivered?"),
/// and stops at a message of one byte.
fn drain(mut conn: Connection) {
    let mut buf = Vec::new();
    loop {
        match conn.recv_bytes_to_vec(&mut buf) {
            Ok(()) if buf.is_empty() => conn.send_bytes(b"").expect("ack"),
            Ok(()) if buf.len() == 1 => break,
            Ok(()) => {}
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Seconds per 1 MiB message delivered to a child (each sample ends when the child confirms it
/// has received every message).
fn pipe_bulk(samples: usize, batch: u32) -> f64 {
    let (mut a, b) = pipe(true).expect("pipe");
    let child = Process::builder()
        .method(StartMethod::Fork)
        .start(drain, b)
        .expect("start");
    let msg = vec![b'x'; 1 << 20];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..batch {
            a.send_bytes(&msg).expect("send");
        }
        a.send_bytes(b"").expect("send");
        assert!(a.recv_bytes().expect("ack").is_empty());
        times.push(t.elapsed().as_secs_f64() / f64::from(batch));
    }
    a.send_bytes(b"x").expect("send");
    child.join().expect("join");
    median(times)
}

/// Puts `n` numbers on the queue.
fn produce((q, n): (Queue<u64>, u64)) {
    for i in 0..n {
        q.put(i).expect("put");
    }
}

/// Seconds per small message from a child process to this one through a `Queue`.
fn queue_small(samples: usize, n: u64) -> f64 {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let q = Queue::new().expect("queue");
        let t = Instant::now();
        let child = Process::builder()
            .method(StartMethod::Fork)
            .start(produce, (q.clone(), n))
            .expect("start");
        for i in 0..n {
            assert_eq!(q.get().expect("get"), i);
        }
        times.push(t.elapsed().as_secs_f64() / n as f64);
        child.join().expect("join");
    }
    median(times)
}

/// Seconds per `d['k']` through a manager's dict proxy.
fn manager_call(samples: usize, batch: u32) -> f64 {
    let manager = Manager::start().expect("manager");
    let d = manager.dict().expect("dict");
    d.set("k", 1).expect("set");
    measure(samples, batch, |_| {
        d.get_item("k").expect("get");
    })
}

fn manager_start(_: u32) {
    let manager = Manager::start().expect("manager");
    manager.dict().expect("dict");
}

fn ours(quick: bool) -> Vec<Figure> {
    let samples = if quick { 3 } else { 9 };
    vec![
        Figure {
            name: "process_start_join_fork",
            what: "Process start + join, fork",
            ours: measure(
                samples,
                if quick { 50 } else { 200 },
                start_join(StartMethod::Fork),
            ),
        },
        Figure {
            name: "process_start_join_spawn",
            what: "Process start + join, spawn",
            ours: measure(
                samples,
                if quick { 5 } else { 20 },
                start_join(StartMethod::Spawn),
            ),
        },
        Figure {
            name: "value_lock_increment_2proc",
            what: "locked value += 1, 2 processes",
            ours: locked_increment(samples, if quick { 200_000 } else { 2_000_000 }),
        },
        Figure {
            name: "shm_create_attach_unlink",
            what: "SharedMemory create+attach+unlink",
            ours: measure(
                samples,
                if quick { 200 } else { 1000 },
                shm_create_attach_unlink,
            ),
        },
        Figure {
            name: "pipe_round_trip",
            what: "Pipe round trip, small message",
            ours: pipe_round_trip(samples, if quick { 500 } else { 5000 }),
        },
        Figure {
            name: "pipe_bulk_1mib",
            what: "Pipe, 1 MiB messages delivered",
            ours: pipe_bulk(samples, if quick { 20 } else { 200 }),
        },
        Figure {
            name: "queue_small",
            what: "Queue, small message, 1 -> 1",
            ours: queue_small(samples, if quick { 20_000 } else { 200_000 }),
        },
        Figure {
            name: "manager_call",
            what: "Manager dict proxy d['k']",
            ours: manager_call(samples, if quick { 500 } else { 5000 }),
        },
        Figure {
            name: "manager_start",
            what: "Manager start + dict + stop",
            ours: measure(samples, if quick { 5 } else { 20 }, manager_start),
        },
    ]
}

fn python(interpreter: &str, quick: bool) -> Result<flat_json::Map, String> {
    let mut cmd = Command::new(interpreter);
    cmd.arg("-c").arg(PYTHON_BENCH);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {interpreter}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{interpreter} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    flat_json::parse_flat(&String::from_utf8_lossy(&out.stdout))
}

fn human(seconds: f64) -> String {
    let d = Duration::from_secs_f64(seconds);
    if d >= Duration::from_millis(1) {
        format!("{:.2} ms", seconds * 1e3)
    } else if d >= Duration::from_micros(1) {
        format!("{:.1} µs", seconds * 1e6)
    } else {
        format!("{:.1} ns", seconds * 1e9)
    }
}

/// Runs every measurement and prints the table.
pub fn run(opts: &Options) -> Result<(), String> {
    let figures = ours(opts.quick);
    let theirs = match &opts.python {
        Some(py) => Some(python(py, opts.quick)?),
        None => None,
    };
    println!(
        "{:<32} {:>12} {:>12} {:>9}",
        "operation", "multiproc", "python", "speed-up"
    );
    for f in &figures {
        let py = theirs.as_ref().and_then(|m| m.get(f.name));
        let (py_text, ratio) = match py {
            Some(&p) => (human(p), format!("{:.1}×", p / f.ours)),
            None => ("–".to_owned(), "–".to_owned()),
        };
        println!(
            "{:<32} {:>12} {:>12} {:>9}",
            f.what,
            human(f.ours),
            py_text,
            ratio
        );
    }
    Ok(())
}

/// Just enough JSON for the flat `{"name": number}` object the Python side prints.
mod flat_json {
    pub type Map = std::collections::BTreeMap<String, f64>;

    pub fn parse_flat(text: &str) -> Result<Map, String> {
        let body = text
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| format!("not a JSON object: {text:?}"))?;
        let mut map = Map::new();
        for pair in body.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once(':')
                .ok_or_else(|| format!("bad pair {pair:?}"))?;
            let k = k.trim().trim_matches('"').to_owned();
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|e| format!("bad number in {pair:?}: {e}"))?;
            map.insert(k, v);
        }
        Ok(map)
    }
}
