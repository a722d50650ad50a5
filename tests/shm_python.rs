//! `SharedMemory` shared with real Python processes, both ways, for every installed Python of
//! 3.11, 3.12 and 3.13 (`python3` at least).
//!
//! Python's resource tracker unlinks, when a Python process exits, every segment that process
//! created *or opened* (3.8–3.12). The Python side therefore opens with `track=False` on 3.13
//! and unregisters the segment from the tracker on older versions.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use multiproc::shm::{SharedMemory, SharedMemoryError};

/// `python3`, plus the pyenv installs of 3.12 and 3.13 when present.
fn pythons() -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("python3")];
    for v in ["3.12.1", "3.13.0"] {
        let out = Command::new("pyenv").args(["prefix", v]).output();
        if let Ok(out) = out
            && out.status.success()
        {
            let prefix = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            found.push(PathBuf::from(prefix).join("bin/python3"));
        }
    }
    eprintln!("testing with {found:?}");
    found
}

const OPEN_UNTRACKED: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
def open_untracked(name):
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, track=False)
    shm = shared_memory.SharedMemory(name)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm
"#;

#[test]
fn python_opens_what_rust_created() {
    let _leaks = common::leak_check();
    for py in pythons() {
        let shm = SharedMemory::create(4096).unwrap();
        shm.write_at(0, b"hello from rust").unwrap();
        let script = format!(
            "{OPEN_UNTRACKED}\nshm = open_untracked(sys.argv[1])\n\
             print(bytes(shm.buf[:15]).decode(), shm.size)\n\
             shm.buf[32:49] = b'hello from python'\nshm.close()\n"
        );
        let out = Command::new(&py)
            .args(["-c", &script, shm.name()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "hello from rust 4096"
        );
        let mut buf = [0u8; 17];
        shm.read_at(32, &mut buf).unwrap();
        assert_eq!(&buf, b"hello from python", "{}", py.display());
        // Python left the name alone; this handle unlinks it.
        assert!(std::path::Path::new("/dev/shm").join(shm.name()).exists());
        let name = shm.name().to_owned();
        drop(shm);
        assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
    }
}

const PYTHON_CREATES: &str = r#"
import sys
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=64)
shm.buf[:14] = b"made by python"
print(shm.name, flush=True)
sys.stdin.readline()
print(bytes(shm.buf[32:45]).decode(), flush=True)
shm.close()
shm.unlink()
"#;

#[test]
fn rust_opens_what_python_created() {
    let _leaks = common::leak_check();
    for py in pythons() {
        let mut child = Command::new(&py)
            .args(["-c", PYTHON_CREATES])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut name = String::new();
        stdout.read_line(&mut name).unwrap();
        let name = name.trim().to_owned();
        assert!(name.starts_with("psm_"), "{}: name {name:?}", py.display());
        {
            let shm = SharedMemory::open(&name).unwrap();
            assert_eq!(shm.size(), 64);
            let mut buf = [0u8; 14];
            shm.read_at(0, &mut buf).unwrap();
            assert_eq!(&buf, b"made by python");
            shm.write_at(32, b"rust was here").unwrap();
        } // an opened handle never unlinks
        stdin.write_all(b"\n").unwrap();
        let mut back = String::new();
        stdout.read_line(&mut back).unwrap();
        assert_eq!(back.trim(), "rust was here", "{}", py.display());
        assert!(child.wait().unwrap().success());
        assert!(matches!(
            SharedMemory::open(&name),
            Err(SharedMemoryError::NotFound(_))
        ));
    }
}
