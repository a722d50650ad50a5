//! Finds the Python interpreters of this machine (3.11 as `python3`, 3.12 and 3.13 under pyenv)
//! and runs scripts with them, for tests that compare against real CPython.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A Python interpreter: its version (`"3.11.7"`) and path.
#[derive(Clone, Debug)]
pub struct Python {
    pub version: String,
    pub path: PathBuf,
}

fn version_of(path: &PathBuf) -> Option<String> {
    let out = Command::new(path)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Every distinct interpreter found: `python3`, then pyenv's 3.12.1 and 3.13.0.
///
/// With none found, panics under CI (`CI` set) and returns an empty list elsewhere, so that the
/// caller skips with a note.
pub fn interpreters() -> Vec<Python> {
    let mut candidates = vec![PathBuf::from("python3")];
    for v in ["3.12.1", "3.13.0"] {
        let prefix = Command::new("pyenv")
            .args(["prefix", v])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv/versions").join(v))
            });
        if let Some(p) = prefix {
            candidates.push(p.join("bin/python3"));
        }
    }
    let mut found: Vec<Python> = Vec::new();
    for path in candidates {
        if let Some(version) = version_of(&path)
            && !found.iter().any(|p| p.version == version)
        {
            found.push(Python { version, path });
        }
    }
    if found.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no python3 found, and CI needs one"
        );
        eprintln!("note: no python3 found; skipping the comparison with CPython");
    }
    found
}

/// The newest interpreter found (its Unicode tables are the ones `repr` follows).
pub fn newest() -> Option<Python> {
    let mut all = interpreters();
    all.sort_by_key(|p| {
        p.version
            .split('.')
            .map(|n| n.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    all.pop()
}

/// Runs `script` with `python`, feeding `stdin`; returns stdout. Panics with stderr on failure.
pub fn run(python: &Python, script: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(&python.path)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for python");
    writer.join().expect("stdin writer");
    assert!(
        out.status.success(),
        "python {} failed: {}",
        python.version,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
