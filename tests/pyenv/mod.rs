//! Finds the Python interpreters of this machine (3.11 as `python3`, 3.12 and 3.13 under pyenv)
//! and runs scripts with them, for tests that compare against real CPython.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use multiproc::object::{BigInt, Dict, Object, Set};

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

/// A Python expression that builds exactly `o`.
pub fn py_expr(o: &Object) -> String {
    match o {
        Object::None => "None".into(),
        Object::Bool(b) => if *b { "True" } else { "False" }.into(),
        Object::Int(i) => format!("({i})"),
        Object::BigInt(b) => format!("({b})"),
        Object::Float(x) => format!("_f('{:016x}')", x.to_bits()),
        Object::Str(s) => {
            let cps: Vec<String> = s.chars().map(|c| (c as u32).to_string()).collect();
            format!("_s([{}])", cps.join(","))
        }
        Object::Bytes(b) => format!("bytes({b:?})"),
        Object::List(v) => format!("[{}]", join(v.iter())),
        Object::Tuple(v) => format!(
            "({}{})",
            join(v.iter()),
            if v.len() == 1 { "," } else { "" }
        ),
        Object::Dict(d) => {
            let items: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{}: {}", py_expr(k), py_expr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Object::Set(s) if s.is_empty() => "set()".into(),
        Object::Set(s) => format!("{{{}}}", join(s.iter())),
        Object::FrozenSet(s) => format!("frozenset([{}])", join(s.iter())),
        other => panic!("unknown kind {other:?}"),
    }
}

fn join<'a>(items: impl Iterator<Item = &'a Object>) -> String {
    items.map(py_expr).collect::<Vec<_>>().join(", ")
}

pub use super::common::Rng;

fn random_char(r: &mut Rng) -> char {
    loop {
        let cp = match r.below(8) {
            0..=2 => r.below(0x80) as u32,
            3 => 0x80 + r.below(0x80) as u32,
            4 => r.below(0x3000) as u32,
            5 => r.below(0x10000) as u32,
            6 => 0x1F300 + r.below(0x400) as u32,
            _ => r.below(0x110000) as u32,
        };
        if let Some(c) = char::from_u32(cp) {
            return c;
        }
    }
}

fn random_float(r: &mut Rng) -> f64 {
    match r.below(4) {
        0 => f64::from_bits(r.next()),
        1 => (r.below(2_000_000) as f64 - 1_000_000.0) / 64.0,
        2 => (r.next() as f64) * 10f64.powi(r.below(60) as i32 - 30),
        _ => r.below(1000) as f64 / 1000.0,
    }
}

fn random_key(r: &mut Rng) -> Object {
    match r.below(4) {
        0 => Object::Int(r.next() as i64 >> r.below(64)),
        1 => Object::from((0..r.below(6)).map(|_| random_char(r)).collect::<String>()),
        // Python tells NaN keys apart by identity; this model makes them one key.
        2 => Object::Float(Some(random_float(r)).filter(|x| !x.is_nan()).unwrap_or(0.5)),
        _ => Object::Tuple(vec![
            Object::Int(r.below(10) as i64),
            Object::Bool(r.below(2) == 0),
        ]),
    }
}

pub fn random_object(r: &mut Rng, depth: u32) -> Object {
    let leaf = depth == 0 || r.below(3) != 0;
    if leaf {
        return match r.below(8) {
            0 => Object::None,
            1 => Object::Bool(r.below(2) == 0),
            2 => Object::Int(r.next() as i64 >> r.below(64)),
            3 => Object::from(BigInt::from_signed_bytes_le(
                &(0..r.below(40)).map(|_| r.next() as u8).collect::<Vec<_>>(),
            )),
            4 => Object::Float(random_float(r)),
            5 | 6 => Object::from((0..r.below(12)).map(|_| random_char(r)).collect::<String>()),
            _ => Object::Bytes((0..r.below(12)).map(|_| r.next() as u8).collect()),
        };
    }
    let n = r.below(5);
    match r.below(5) {
        0 => Object::List((0..n).map(|_| random_object(r, depth - 1)).collect()),
        1 => Object::Tuple((0..n).map(|_| random_object(r, depth - 1)).collect()),
        2 | 3 => {
            let mut d = Dict::new();
            for _ in 0..n {
                d.insert(random_key(r), random_object(r, depth - 1))
                    .unwrap();
            }
            Object::Dict(d)
        }
        // Python prints sets in hash order: compare single-element sets only.
        _ => Object::Set(Set::try_from_iter([random_key(r)]).unwrap()),
    }
}

/// `identical`, except that any NaN matches any NaN (text has one `nan`).
pub fn same(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Float(x), Object::Float(y)) if x.is_nan() && y.is_nan() => true,
        (Object::List(x), Object::List(y)) | (Object::Tuple(x), Object::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Object::Dict(x), Object::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        (Object::Set(x), Object::Set(y)) | (Object::FrozenSet(x), Object::FrozenSet(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        _ => a.identical(b),
    }
}
