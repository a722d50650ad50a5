//! A run never hangs: a sample that takes longer than [`LIMIT`] (a peer process that stopped
//! answering) ends the run with an error that names it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one sample (or calibration step) may take.
pub const LIMIT: Duration = Duration::from_secs(120);

/// What runs now, and since when (`None` between samples).
static RUNNING: Mutex<Option<(String, Instant)>> = Mutex::new(None);
/// The Python server's pid, killed before the run gives up (0: none).
pub static PYTHON_PID: AtomicU32 = AtomicU32::new(0);

/// Starts the thread that watches the samples.
pub fn start() {
    let _ = std::thread::Builder::new()
        .name("bench-watchdog".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let stuck = match RUNNING.lock() {
                    Ok(r) => r
                        .as_ref()
                        .filter(|(_, t)| t.elapsed() > LIMIT)
                        .map(|(w, _)| w.clone()),
                    Err(_) => None,
                };
                if let Some(what) = stuck {
                    eprintln!(
                        "multiproc bench: {what} took over {} s; stopping",
                        LIMIT.as_secs()
                    );
                    let pid = PYTHON_PID.load(Ordering::Relaxed);
                    if let Some(pid) = i32::try_from(pid)
                        .ok()
                        .and_then(rustix::process::Pid::from_raw)
                    {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                    std::process::exit(1);
                }
            }
        });
}

/// Runs `f` as the sample `what`, watched.
pub fn watch<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
    if let Ok(mut r) = RUNNING.lock() {
        *r = Some((what(), Instant::now()));
    }
    let out = f();
    if let Ok(mut r) = RUNNING.lock() {
        *r = None;
    }
    out
}
