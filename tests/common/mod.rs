//! Leak accounting shared by the multi-process tests.
//!
//! Every test of a file that uses it starts with `let _leaks = common::leak_check();`. The
//! tests of one binary run on several threads at once, so nothing can be checked while one of
//! them still runs; the check happens each time the last running test ends (a quiet moment).
//! At each quiet moment, compared with the first moment a test started:
//!
//! - no descriptor is open that was not open then (`/proc/self/fd`, number and target),
//! - no child process is left, running or zombie (`/proc/self/task/*/children`),
//! - no new file is in `/dev/shm` (the binaries of `cargo test` run one at a time, so a file
//!   that appears there during one binary's quiet moment was left by it).
//!
//! Releasing is allowed to lag a little (a reaper thread, a server thread shutting down): a
//! check retries for a few seconds before it fails. A test that already fails (panics) skips
//! the check, so its own message is the one reported.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long releasing may lag behind the end of a test.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the process holds at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Holdings {
    /// Open descriptors: `number -> target`.
    fds: BTreeSet<(u32, String)>,
    /// Child processes (pids, with their state letter).
    children: BTreeSet<(u32, char)>,
    /// Names in `/dev/shm`.
    shm: BTreeSet<String>,
}

impl Holdings {
    fn now() -> Holdings {
        Holdings {
            fds: open_fds(),
            children: children(),
            shm: dev_shm(),
        }
    }

    /// What `self` holds beyond `baseline`, described; `None` when nothing.
    fn beyond(&self, baseline: &Holdings) -> Option<String> {
        let fds: Vec<_> = self.fds.difference(&baseline.fds).collect();
        let shm: Vec<_> = self.shm.difference(&baseline.shm).collect();
        if fds.is_empty() && shm.is_empty() && self.children.is_empty() {
            return None;
        }
        Some(format!(
            "descriptors left open: {fds:?}; children left: {:?}; files left in /dev/shm: {shm:?}",
            self.children
        ))
    }
}

struct State {
    running: usize,
    baseline: Option<Holdings>,
}

static STATE: Mutex<State> = Mutex::new(State {
    running: 0,
    baseline: None,
});

fn state() -> MutexGuard<'static, State> {
    // A test that panicked while holding the lock leaves nothing inconsistent behind.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts accounting for one test; the check runs when the returned guard drops and no other
/// test of this binary is still running.
#[must_use = "the check runs when the guard drops"]
pub fn leak_check() -> LeakCheck {
    let mut s = state();
    if s.baseline.is_none() {
        s.baseline = Some(Holdings::now());
    }
    s.running += 1;
    LeakCheck { _private: () }
}

/// The guard of [`leak_check`].
pub struct LeakCheck {
    _private: (),
}

impl Drop for LeakCheck {
    fn drop(&mut self) {
        let mut s = state();
        s.running -= 1;
        if s.running > 0 || std::thread::panicking() {
            return;
        }
        let mut baseline = s.baseline.clone().unwrap_or_default();
        // The lock stays held: no test starts while the quiet moment is checked.
        let start = Instant::now();
        loop {
            let now = Holdings::now();
            if let Some(pair) = reaper_pipe(&now, &baseline) {
                // Made once per process, kept for its life: part of the baseline from now on.
                baseline.fds.extend(pair);
                s.baseline = Some(baseline.clone());
            }
            let Some(leak) = now.beyond(&baseline) else {
                return;
            };
            if start.elapsed() > PATIENCE {
                panic!("after the tests that were running ended: {leak}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The crate starts one thread per process, on first use, that waits for the children whose
/// handles were dropped (`multiproc-reaper`); it holds a pipe to be woken. When that thread
/// runs, the first pipe of which both ends are open beyond `baseline` is its own.
fn reaper_pipe(now: &Holdings, baseline: &Holdings) -> Option<Vec<(u32, String)>> {
    let reaper_runs = std::fs::read_dir("/proc/self/task").ok()?.any(|t| {
        t.ok()
            .and_then(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            // A thread name is cut to 15 bytes there.
            .is_some_and(|c| "multiproc-reaper".starts_with(c.trim()))
    });
    if !reaper_runs {
        return None;
    }
    let new: Vec<&(u32, String)> = now.fds.difference(&baseline.fds).collect();
    let first_pipe = new.iter().find(|(_, t)| t.starts_with("pipe:"))?;
    let ends: Vec<(u32, String)> = new
        .iter()
        .filter(|(_, t)| *t == first_pipe.1)
        .map(|&f| f.clone())
        .collect();
    (ends.len() == 2).then_some(ends)
}

/// This process's open descriptors, with what they point to, but for the one that reads the
/// list.
fn open_fds() -> BTreeSet<(u32, String)> {
    let listing = format!("/proc/{}/fd", std::process::id());
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            (target != listing).then_some((n, target))
        })
        .collect()
}

/// This process's children, each with its state letter (`Z` for a zombie).
fn children() -> BTreeSet<(u32, char)> {
    let mut out = BTreeSet::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.filter_map(|t| t.ok()) {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next()?.trim_start().chars().next())
                .unwrap_or('?');
            out.insert((pid, state));
        }
    }
    out
}

/// The names in `/dev/shm`.
fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A small deterministic generator (xorshift64*), so that a storm can be replayed from its
/// seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}

/// A child started with `std::process::Command` (a server, a Python peer), killed and waited
/// for if the test fails before it ends it; otherwise it would outlive the test and hold the
/// harness's output open.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `multiproc serve` on a free loopback port with an authkey, publishing `objects`
/// (`NAME=TYPE`); stopped by [`Serve::stop`] (SIGTERM, and a clean exit asserted), or killed if
/// the test fails first.
pub struct Serve {
    pub child: KillOnDrop,
    /// The address it serves on, as it printed it.
    pub address: String,
    dir: std::path::PathBuf,
}

impl Serve {
    pub fn start(objects: &[&str], key: &[u8]) -> Serve {
        Serve::launch(false, objects, key)
    }

    /// As [`Serve::start`], on a Unix socket in a directory of its own.
    pub fn start_unix(objects: &[&str], key: &[u8]) -> Serve {
        Serve::launch(true, objects, key)
    }

    fn launch(unix: bool, objects: &[&str], key: &[u8]) -> Serve {
        use std::io::BufRead;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("multiproc-serve-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keyfile = dir.join("authkey");
        std::fs::write(&keyfile, key).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_multiproc"));
        let listen = if unix {
            dir.join("sock").display().to_string()
        } else {
            "127.0.0.1:0".to_owned()
        };
        command.args(["serve", "--listen", &listen, "--authkey-file"]);
        command.arg(&keyfile);
        for o in objects {
            command.args(["--object", o]);
        }
        let mut child = KillOnDrop(
            command
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        std::io::BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().strip_prefix("serving on ").unwrap().to_owned();
        Serve {
            child,
            address,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The server's resident memory (KiB), threads and open descriptors.
    pub fn figures(&self) -> (u64, u64, usize) {
        process_figures(self.pid())
    }

    /// Stops it with SIGTERM; it must exit cleanly.
    pub fn stop(mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.pid() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        assert!(
            self.child.0.wait().unwrap().success(),
            "a clean stop on SIGTERM"
        );
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process's resident memory (KiB), threads and open descriptors.
pub fn process_figures(pid: u32) -> (u64, u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (field("VmRSS:"), field("Threads:"), fds)
}
