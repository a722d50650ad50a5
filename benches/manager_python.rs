//! Python's own manager client against Python's manager server and against `multiproc serve`,
//! in one run: calls per second as the client sees them, and the server's CPU time per call
//! (user + system, from `/proc`); then 1000 Python client connections held at once by
//! `multiproc serve`, with its memory.
//!
//! Server CPU is the server process's user + system time (`/proc/PID/stat`, utime + stime)
//! over the timed calls, divided by their number. It counts the kernel's share of each call
//! (the TCP send and receive, the sleep and wake-up in `epoll_wait`), which on a VM depends on
//! where the two processes run: each figure is given unpinned, with both processes pinned to
//! one CPU, and pinned to two (when `taskset` is there and the machine has two CPUs).
//!
//! `cargo bench --bench manager_python` (needs `python3`; `PYTHON=path` picks another).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY: &str = "bench-key";

/// The client: `d['k']` in a loop on one proxy, after a warm-up; prints calls per second.
const CLIENT: &str = r#"
import sys, time
from multiprocessing.managers import SyncManager
port, key, n = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
m = SyncManager(address=('127.0.0.1', port), authkey=key); m.connect()
d = m.dict({'k': 1})
for _ in range(1000): d['k']
print('go', flush=True)
sys.stdin.readline()
t = time.perf_counter()
for _ in range(n): d['k']
dt = time.perf_counter() - t
print(n / dt, flush=True)
sys.stdin.readline()
"#;

/// Python's own server.
const PYTHON_SERVER: &str = r#"
import sys
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', 0), authkey=sys.argv[1].encode())
s = m.get_server()
print(s.address[1], flush=True)
s.serve_forever()
"#;

/// Holds `n` authenticated connections, each having made one call; prints when they are.
const MANY: &str = r#"
import sys, resource
from multiprocessing.connection import Client
port, key, n = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
conns = []
for i in range(n):
    c = Client(('127.0.0.1', port), authkey=key)
    c.send((None, 'accept_connection', ('c%d' % i,), {}))
    assert c.recv()[0] == '#RETURN'
    conns.append(c)
for c in conns:
    c.send((None, 'number_of_objects', (), {}))
ok = sum(1 for c in conns if c.recv()[0] == '#RETURN')
print(ok, flush=True)
sys.stdin.readline()
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A child's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (in parentheses): utime is the 14th field, stime the 15th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = 100; // USER_HZ on Linux
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_owned()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path) -> (Killed, u16) {
    let key = dir.join("key");
    std::fs::write(&key, KEY).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-legacy-md5",
            "--authkey-file",
        ])
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("multiproc serve");
    let line = first_line(&mut child);
    let port = line.rsplit(':').next().unwrap().parse().unwrap();
    (Killed(child), port)
}

/// Where the server and the client run: both anywhere, or pinned to these CPUs.
#[derive(Clone, Copy)]
struct Placement {
    name: &'static str,
    cpus: Option<(&'static str, &'static str)>,
}

const PLACEMENTS: &[Placement] = &[
    Placement {
        name: "unpinned",
        cpus: None,
    },
    Placement {
        name: "one CPU",
        cpus: Some(("0", "0")),
    },
    Placement {
        name: "two CPUs",
        cpus: Some(("0", "1")),
    },
];

/// Whether `taskset` runs here.
fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("-p")
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Moves the running process `pid` to `cpus` (a `taskset` list).
fn pin(pid: u32, cpus: &str) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status();
}

/// Runs the client against the server `pid` at `port`: (calls/s, server CPU per call).
fn measure(server_pid: u32, port: u16, n: u32, at: Placement) -> (f64, Duration) {
    use std::io::Write;
    let all = format!(
        "0-{}",
        std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
    );
    let (server_cpus, client_cpus) = at.cpus.unwrap_or((&all, &all));
    let mut client = match at.cpus {
        Some(_) => {
            pin(server_pid, server_cpus);
            let mut c = Command::new("taskset");
            c.args(["-c", client_cpus, &python()]);
            c
        }
        None => {
            pin(server_pid, &all);
            Command::new(python())
        }
    };
    let mut client = client
        .args(["-c", CLIENT, &port.to_string(), KEY, &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python client");
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "go");
    let before = cpu(server_pid);
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let after = cpu(server_pid);
    let rate: f64 = line.trim().parse().unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let _ = client.wait();
    (rate, (after - before) / n)
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: build only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("multiproc-bench-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 20_000;

    let mut py = Command::new(python())
        .args(["-c", PYTHON_SERVER, KEY])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server");
    let port: u16 = first_line(&mut py).parse().unwrap();
    let py = Killed(py);
    let (ours, our_port) = serve(&dir);

    println!(
        "Python manager client, d['k'] x {n}, one run ({}):",
        python()
    );
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let placements: Vec<Placement> = match (has_taskset(), two_cpus) {
        (true, true) => PLACEMENTS.to_vec(),
        (true, false) => PLACEMENTS[..2].to_vec(),
        (false, _) => PLACEMENTS[..1].to_vec(),
    };
    for at in placements {
        for _ in 0..2 {
            let (rate, per) = measure(py.0.id(), port, n, at);
            println!(
                "  {:<9} Python's server: {rate:>8.0} calls/s, server CPU {:>6.1} µs/call",
                at.name,
                per.as_secs_f64() * 1e6
            );
            let (rate, per) = measure(ours.0.id(), our_port, n, at);
            println!(
                "  {:<9} multiproc serve: {rate:>8.0} calls/s, server CPU {:>6.1} µs/call",
                at.name,
                per.as_secs_f64() * 1e6
            );
        }
    }
    drop(py);

    let held = 1000;
    let idle = rss_kib(ours.0.id());
    let mut many = Command::new(python())
        .args(["-c", MANY, &our_port.to_string(), KEY, &held.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python clients");
    let ok = first_line(&mut many);
    let rss = rss_kib(ours.0.id());
    let threads = std::fs::read_dir(format!("/proc/{}/task", ours.0.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "  {ok} of {held} Python connections held by multiproc serve: RSS {rss} KiB ({idle} KiB before), {threads} threads"
    );
    drop(many.stdin.take());
    let _ = many.wait();
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}
