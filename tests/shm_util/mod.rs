//! Helpers shared by the shared-memory tests.

use std::time::{Duration, Instant};

/// Waits (at most `watchdog`) until process `pid` is stopped by a signal.
pub fn wait_until_stopped(pid: u32, watchdog: Duration) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // The state follows the parenthesised command name.
        let state = stat.rsplit(')').next().unwrap().trim_start().chars().next();
        if state == Some('T') {
            return;
        }
        assert!(start.elapsed() < watchdog, "process {pid} never stopped");
        std::thread::sleep(Duration::from_millis(1));
    }
}
