//! Interoperation with CPython's `multiprocessing.connection`: a Rust `Listener` serving a
//! Python `Client`, a Python `Listener` used by a Rust `Client`, over TCP, Unix paths and
//! abstract names, with the authkey handshake of Python 3.12+ and the legacy one of 3.11.
//!
//! Runs every installed interpreter among 3.11 (`python3`, required), 3.12.1 and 3.13.0
//! (pyenv); a missing 3.12 or 3.13 is skipped with a note.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use multiproc::{
    AcceptError, Address, AuthError, Client, ConnectError, Connection, Listener, RecvError, wait,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One interpreter: its `major.minor` and path.
struct Python {
    minor: u32,
    path: PathBuf,
}

impl Python {
    fn legacy(&self) -> bool {
        self.minor <= 11
    }
}

fn version_of(path: &PathBuf) -> Option<u32> {
    let out = Command::new(path)
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn pythons() -> Vec<Python> {
    let default = PathBuf::from("python3");
    let minor = version_of(&default).expect("python3 must be installed");
    let mut v = vec![Python {
        minor,
        path: default,
    }];
    for version in ["3.12.1", "3.13.0"] {
        let prefix = Command::new("pyenv")
            .args(["prefix", version])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| PathBuf::from(s.trim()))
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".pyenv/versions").join(version))
            });
        let path = prefix.map(|p| p.join("bin/python3"));
        match path
            .filter(|p| p.exists())
            .and_then(|p| Some((version_of(&p)?, p)))
        {
            Some((minor, path)) => v.push(Python { minor, path }),
            None => eprintln!("note: Python {version} not found, skipping it"),
        }
    }
    assert!(
        v.iter().any(|p| p.minor == 11),
        "Python 3.11 must be installed"
    );
    v
}

/// A Python child running `script` with `args`, killed if the test fails first.
struct Py(Child, BufReader<std::process::ChildStdout>);

impl Py {
    fn start(python: &Python, script: &str, args: &[&str]) -> Py {
        let mut child = Command::new(&python.path)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start python");
        let out = BufReader::new(child.stdout.take().unwrap());
        Py(child, out)
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.1.read_line(&mut s).unwrap();
        s.trim().to_owned()
    }

    /// Waits for the interpreter (at most a minute); returns its success and stderr.
    fn finish(mut self) -> (bool, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "python did not finish"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status.success(), err)
    }

    fn succeed(self) {
        let (ok, err) = self.finish();
        assert!(ok, "python failed:\n{err}");
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python half of a client test: connects, then echoes every message reversed until the
/// peer closes. argv: kind (tcp, unix, abstract), address, authkey.
const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
kind, where, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
addr = {"tcp": lambda: ("127.0.0.1", int(where)), "unix": lambda: where,
        "abstract": lambda: "\0" + where}[kind]()
c = Client(addr, authkey=key)
while True:
    try:
        m = c.recv_bytes()
    except EOFError:
        break
    c.send_bytes(m[::-1])
"#;

/// The Python half of a listener test: prints its port (or "ready"), accepts one client and
/// echoes every message reversed until it closes. argv: kind, address (ignored for tcp),
/// authkey.
const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
kind, where, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
addr = {"tcp": lambda: ("127.0.0.1", 0), "unix": lambda: where,
        "abstract": lambda: "\0" + where}[kind]()
l = Listener(addr, authkey=key)
print(l.address[1] if kind == "tcp" else "ready", flush=True)
c = l.accept()
while True:
    try:
        m = c.recv_bytes()
    except EOFError:
        break
    c.send_bytes(m[::-1])
"#;

fn unique(tag: &str) -> String {
    format!(
        "multiproc-py-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The messages both directions exchange: small, empty, and large ones.
fn exchange(c: &mut Connection) {
    let big: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect();
    for msg in [&b"hello python"[..], b"", &big] {
        c.send_bytes(msg).unwrap();
        let back = c.recv_bytes().unwrap();
        let mut rev = msg.to_vec();
        rev.reverse();
        assert!(back == rev, "echo of {} bytes differs", msg.len());
    }
}

fn accept_within(l: &Listener) -> Result<Connection, AcceptError> {
    assert_eq!(
        wait(&[l], Some(Duration::from_secs(30))).unwrap(),
        [0],
        "python did not connect"
    );
    l.accept()
}

/// Where each kind of address lives, as the Python scripts take it.
fn addresses(tag: &str) -> Vec<(&'static str, String)> {
    let path = std::env::temp_dir().join(format!("{}.sock", unique(tag)));
    vec![
        ("tcp", String::new()),
        ("unix", path.to_string_lossy().into_owned()),
        ("abstract", unique(tag)),
    ]
}

fn rust_address(kind: &str, where_: &str) -> Address {
    match kind {
        "tcp" => "127.0.0.1:0".parse().unwrap(),
        "unix" => Address::unix(where_),
        _ => Address::abstract_name(where_),
    }
}

#[test]
fn rust_listener_serves_python_clients() {
    let _leaks = common::leak_check();
    for py in pythons() {
        for (kind, where_) in addresses("rl") {
            let listener = Listener::options()
                .authkey(b"shared secret")
                .allow_legacy_md5(py.legacy())
                .bind(rust_address(kind, &where_))
                .unwrap();
            let arg = match listener.address() {
                Address::Tcp(a) => a.port().to_string(),
                _ => where_.clone(),
            };
            let child = Py::start(&py, PY_CLIENT, &[kind, &arg, "shared secret"]);
            let mut c = accept_within(&listener)
                .unwrap_or_else(|e| panic!("3.{} over {kind}: {e}", py.minor));
            exchange(&mut c);
            drop(c);
            child.succeed();
        }
    }
}

#[test]
fn rust_client_uses_python_listeners() {
    let _leaks = common::leak_check();
    for py in pythons() {
        for (kind, where_) in addresses("pl") {
            let mut child = Py::start(&py, PY_LISTENER, &[kind, &where_, "shared secret"]);
            let first = child.line();
            let addr = match kind {
                "tcp" => format!("127.0.0.1:{first}").parse().unwrap(),
                _ => rust_address(kind, &where_),
            };
            let mut c = Client::new()
                .authkey(b"shared secret")
                .allow_legacy_md5(py.legacy())
                .connect(addr)
                .unwrap_or_else(|e| panic!("3.{} over {kind}: {e}", py.minor));
            exchange(&mut c);
            drop(c);
            child.succeed();
            if kind == "unix" {
                let _ = std::fs::remove_file(&where_);
            }
        }
    }
}

#[test]
fn legacy_handshake_only_when_enabled() {
    let _leaks = common::leak_check();
    let py = pythons().into_iter().find(|p| p.minor == 11).unwrap();
    // A 3.11 client meets a listener without legacy support: refused on both sides.
    let listener = Listener::options()
        .authkey(b"k")
        .bind("127.0.0.1:0".parse::<Address>().unwrap())
        .unwrap();
    let Address::Tcp(a) = listener.address() else {
        unreachable!()
    };
    let child = Py::start(&py, PY_CLIENT, &["tcp", &a.port().to_string(), "k"]);
    let err = accept_within(&listener).unwrap_err();
    assert!(
        matches!(err, AcceptError::Auth(AuthError::LegacyRefused)),
        "{err}"
    );
    let (ok, stderr) = child.finish();
    assert!(!ok && stderr.contains("AuthenticationError"), "{stderr}");

    // A Rust client meets a 3.11 listener without legacy support: refused.
    let mut child = Py::start(&py, PY_LISTENER, &["tcp", "", "k"]);
    let port = child.line();
    let err = Client::new()
        .authkey(b"k")
        .connect(format!("127.0.0.1:{port}").parse::<Address>().unwrap())
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Auth(AuthError::LegacyRefused)),
        "{err}"
    );
    assert!(err.to_string().contains("allow_legacy_md5"), "{err}");
    // Python is told, as by one of its own peers: not a bare end of stream.
    let (ok, stderr) = child.finish();
    assert!(
        !ok && stderr.contains("AuthenticationError") && !stderr.contains("EOFError"),
        "{stderr}"
    );
}

#[test]
fn wrong_authkey_is_refused_by_and_to_python() {
    let _leaks = common::leak_check();
    for py in pythons() {
        // Python client with the wrong key.
        let listener = Listener::options()
            .authkey(b"right")
            .allow_legacy_md5(py.legacy())
            .bind("127.0.0.1:0".parse::<Address>().unwrap())
            .unwrap();
        let Address::Tcp(a) = listener.address() else {
            unreachable!()
        };
        let child = Py::start(&py, PY_CLIENT, &["tcp", &a.port().to_string(), "wrong"]);
        let err = accept_within(&listener).unwrap_err();
        assert!(
            matches!(err, AcceptError::Auth(AuthError::WrongDigest)),
            "3.{}: {err}",
            py.minor
        );
        let (ok, stderr) = child.finish();
        assert!(
            !ok && stderr.contains("digest sent was rejected"),
            "{stderr}"
        );

        // Rust client with the wrong key.
        let mut child = Py::start(&py, PY_LISTENER, &["tcp", "", "right"]);
        let port = child.line();
        let err = Client::new()
            .authkey(b"wrong")
            .allow_legacy_md5(py.legacy())
            .connect(format!("127.0.0.1:{port}").parse::<Address>().unwrap())
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::Auth(AuthError::Rejected)),
            "3.{}: {err}",
            py.minor
        );
        let (ok, stderr) = child.finish();
        assert!(
            !ok && stderr.contains("digest received was wrong"),
            "{stderr}"
        );
    }
}

#[test]
fn python_frames_are_read_exactly() {
    let _leaks = common::leak_check();
    // Python writes many frames at once; the buffered reader splits them correctly, and a
    // frame over the receiver's maximum is refused.
    let py = &pythons()[0];
    let script = r#"
import sys
from multiprocessing.connection import Client
c = Client(("127.0.0.1", int(sys.argv[1])))
for i in range(2000):
    c.send_bytes(b"x" * (i % 300))
c.send_bytes(b"y" * 5000)
c.recv_bytes()
"#;
    let listener = Listener::options()
        .max_frame(4096)
        .bind("127.0.0.1:0".parse::<Address>().unwrap())
        .unwrap();
    let Address::Tcp(a) = listener.address() else {
        unreachable!()
    };
    let child = Py::start(py, script, &[&a.port().to_string()]);
    let mut c = accept_within(&listener).unwrap();
    for i in 0..2000 {
        assert_eq!(c.recv_bytes().unwrap(), vec![b'x'; i % 300]);
    }
    assert!(matches!(
        c.recv_bytes(),
        Err(RecvError::TooLarge {
            len: 5000,
            max: 4096
        })
    ));
    drop(c);
    let (ok, _) = child.finish();
    assert!(!ok, "python should see the connection close");
}

/// Pickled `send`/`recv` with Python (feature `python`): nested plain data both ways.
#[cfg(feature = "python")]
mod pickled {
    use super::*;
    use multiproc::connection::Codec;
    use multiproc::obj;
    use multiproc::object::Object;
    use serde::{Deserialize, Serialize};

    /// Receives a value from Rust, checks it, sends Python's own nested value, then echoes one
    /// typed value back. argv: role (client/listener), kind, address, authkey.
    const PY_PICKLE: &str = r#"
import sys
from multiprocessing.connection import Client, Listener
role, kind, where, key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
addr = {"tcp": lambda: ("127.0.0.1", int(where) if role == "client" else 0),
        "unix": lambda: where, "abstract": lambda: "\0" + where}[kind]()
if role == "client":
    c = Client(addr, authkey=key)
else:
    l = Listener(addr, authkey=key)
    print(l.address[1] if kind == "tcp" else "ready", flush=True)
    c = l.accept()
got = c.recv()
want = {1: '1', '2': 2, 0.25: None, 'nested': [(1, 2.5), [b'raw', 'text'], {'k': (True, False)}]}
assert got == want, (got, want)
mine = {'name': '沐风', 'big': 2**100, 'neg': -(2**70), 'list': [1, [2, [3, [4]]]],
        'tuple': (None, 1.5, 'x'), 'bytes': bytes(range(5)), 'empty': {}, 'f': -0.0}
print(repr(mine), flush=True)
c.send(mine)
typed = c.recv()
print(repr(typed), flush=True)
c.send(typed)
try:
    c.recv()
except EOFError:
    pass
"#;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Job {
        id: u64,
        name: String,
        weights: Vec<f64>,
        tags: Vec<(i32, Option<String>)>,
    }

    fn job() -> Job {
        Job {
            id: 7,
            name: "résumé".into(),
            weights: vec![0.5, -1.25],
            tags: vec![(1, Some("one".into())), (2, None)],
        }
    }

    const PY_MINE: &str = "{'name': '沐风', 'big': 1267650600228229401496703205376, \
        'neg': -1180591620717411303424, 'list': [1, [2, [3, [4]]]], 'tuple': (None, 1.5, 'x'), \
        'bytes': b'\\x00\\x01\\x02\\x03\\x04', 'empty': {}, 'f': -0.0}";

    /// The Rust half, on a connected `c`; `lines` reads what Python printed.
    fn talk(c: &mut Connection, mut line: impl FnMut() -> String) {
        c.set_codec(Codec::Pickle);
        let want = obj!({1: "1", "2": 2, 0.25: None,
            "nested": [(1, 2.5), [Object::bytes(b"raw".to_vec()), "text"], {"k": (true, false)}]});
        c.send(&want).unwrap();
        let mine: Object = c.recv().unwrap();
        assert_eq!(line(), PY_MINE);
        assert_eq!(mine.to_string(), PY_MINE);
        c.send(&job()).unwrap();
        let typed_repr = line();
        assert!(typed_repr.contains("'name': 'résumé'"), "{typed_repr}");
        let back: Job = c.recv().unwrap();
        assert_eq!(back, job());
    }

    #[test]
    fn pickled_values_both_ways() {
        let _leaks = common::leak_check();
        for py in pythons() {
            for (kind, where_) in addresses("pk") {
                // Rust listener, Python client.
                let listener = Listener::options()
                    .authkey(b"pickled")
                    .allow_legacy_md5(py.legacy())
                    .bind(rust_address(kind, &where_))
                    .unwrap();
                let arg = match listener.address() {
                    Address::Tcp(a) => a.port().to_string(),
                    _ => where_.clone(),
                };
                let mut child = Py::start(&py, PY_PICKLE, &["client", kind, &arg, "pickled"]);
                let mut c = accept_within(&listener).unwrap();
                talk(&mut c, || child.line());
                drop(c);
                child.succeed();
                drop(listener);

                // Python listener, Rust client.
                let mut child = Py::start(&py, PY_PICKLE, &["listener", kind, &where_, "pickled"]);
                let first = child.line();
                let addr = match kind {
                    "tcp" => format!("127.0.0.1:{first}").parse().unwrap(),
                    _ => rust_address(kind, &where_),
                };
                let mut c = Client::new()
                    .authkey(b"pickled")
                    .allow_legacy_md5(py.legacy())
                    .codec(Codec::Pickle)
                    .connect(addr)
                    .unwrap_or_else(|e| panic!("3.{} over {kind}: {e}", py.minor));
                talk(&mut c, || child.line());
                drop(c);
                child.succeed();
                if kind == "unix" {
                    let _ = std::fs::remove_file(&where_);
                }
            }
        }
    }
}
