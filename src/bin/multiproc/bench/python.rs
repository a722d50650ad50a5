//! Python's side: `python_bench.py` runs as a server in one interpreter, and the driver asks it
//! for one sample at a time, so that its samples interleave with the Rust ones.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::placement::{Placement, usable};

const SCRIPT: &str = include_str!("python_bench.py");

/// A running `python_bench.py`.
pub struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    script: PathBuf,
    /// The interpreter's version (`3.11.7`).
    pub version: String,
    pub interpreter: String,
}

/// What Python said about one sample.
pub enum Answer {
    /// The seconds of the batch.
    Seconds(f64),
    /// The script has no such scenario.
    NotThere,
}

impl Python {
    /// Writes the script to a temporary file (spawned children import it by path) and starts
    /// `interpreter` on it.
    pub fn start(interpreter: &str) -> Result<Python, String> {
        let script =
            std::env::temp_dir().join(format!("multiproc-bench-{}.py", std::process::id()));
        std::fs::write(&script, SCRIPT)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let spawned = Command::new(interpreter)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&script);
                return Err(format!("cannot run {interpreter}: {e}"));
            }
        };
        super::watchdog::PYTHON_PID.store(child.id(), std::sync::atomic::Ordering::Relaxed);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("cannot talk to {interpreter}"));
        };
        let mut python = Python {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            script,
            version: String::new(),
            interpreter: interpreter.to_owned(),
        };
        let first = python.line()?;
        match first.strip_prefix("ready ") {
            Some(v) => python.version = v.trim().to_owned(),
            None => return Err(format!("{interpreter} did not start the script: {first:?}")),
        }
        Ok(python)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(format!("{} ended", self.interpreter)),
            Ok(_) => Ok(line),
            Err(e) => Err(format!("reading from {}: {e}", self.interpreter)),
        }
    }

    /// One sample: `batch` operations of scenario `name` in `placement`.
    pub fn sample(
        &mut self,
        name: &str,
        placement: Placement,
        batch: u64,
    ) -> Result<Answer, String> {
        let cpus = usable();
        let (parent, child) = (cpus[0], cpus.get(1).copied().unwrap_or(cpus[0]));
        writeln!(
            self.stdin,
            "{name} {} {batch} {parent} {child}",
            placement.word()
        )
        .and_then(|()| self.stdin.flush())
        .map_err(|e| format!("writing to {}: {e}", self.interpreter))?;
        let line = self.line()?;
        let line = line.trim();
        if line == "none" {
            return Ok(Answer::NotThere);
        }
        if let Some(s) = line.strip_prefix("ok ") {
            return s
                .parse()
                .map(Answer::Seconds)
                .map_err(|e| format!("bad figure {s:?}: {e}"));
        }
        Err(line.strip_prefix("err ").unwrap_or(line).to_owned())
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        // Between samples the script has no child left: killing it leaves nothing behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}
