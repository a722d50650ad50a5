//! What a client holding the authkey, or anyone reaching the socket, may try against a
//! manager server: proxies of objects that do not exist, crowds of connections that never
//! finish their handshake, a first request in an old pickle protocol. Each is answered as
//! Python's own server answers it, and costs the server only a bounded amount.

mod common;

mod pyenv;

use multiproc::Object;
use multiproc::manager::{ExceptionKind, Manager, ManagerError};
use multiproc::object::{Dict, ProxyRef};

/// The id of an object no server of a test makes (Python's `Token(…, 'ffffffffff')`).
const NO_OBJECT: u64 = 0xff_ffff_ffff;

fn is_key_error(r: Result<impl std::fmt::Debug, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Raised(e)) if e.kind() == ExceptionKind::KeyError)
}

/// A container given a proxy of an object that does not exist refuses it with `KeyError`,
/// and stays as it was: readable, copyable, with nothing stored.
#[test]
fn a_proxy_of_no_object_is_refused_and_the_container_unchanged() {
    let _leaks = common::leak_check();
    let manager = Manager::start_thread().unwrap();
    let bad = || Object::from(ProxyRef::new("dict", NO_OBJECT));
    let d = manager.dict().unwrap();
    d.set("a", 1).unwrap();
    let before = manager.number_of_objects().unwrap();
    assert!(is_key_error(d.set("x", bad())));
    // Deep inside a value, beside a live proxy.
    let live = manager.list(Object::List(vec![])).unwrap();
    let nested = Object::List(vec![Object::from(&live), Object::Tuple(vec![bad()])]);
    assert!(is_key_error(d.set("y", nested)));
    assert!(is_key_error(d.as_proxy().call(
        "update",
        vec![{
            let mut u = Dict::new();
            u.insert("z", bad()).unwrap();
            Object::Dict(u)
        }]
    )));
    assert_eq!(d.len().unwrap(), 1);
    assert_eq!(d.copy().unwrap().len(), 1);
    assert_eq!(d.get("x").unwrap(), None);
    let l = manager.list(Object::List(vec![1.into()])).unwrap();
    assert!(is_key_error(l.append(bad())));
    assert!(is_key_error(l.set(0, bad())));
    assert_eq!(l.len().unwrap(), 1);
    // A new container made with one.
    assert!(is_key_error(manager.list(Object::List(vec![bad()]))));
    let mut attrs = Dict::new();
    attrs.insert("a", bad()).unwrap();
    assert!(is_key_error(manager.namespace(attrs)));
    let q = manager.queue(0).unwrap();
    assert!(is_key_error(q.put(bad())));
    assert_eq!(q.qsize().unwrap(), 0);
    assert_eq!(manager.number_of_objects().unwrap(), before + 3);
    // A live proxy is still taken, and the object it names is held by the dict.
    d.set("live", &live).unwrap();
    let named = Object::from(&live);
    drop(live);
    assert_eq!(
        manager.number_of_objects().unwrap(),
        before + 3,
        "held by the dict"
    );
    assert_eq!(d.get("live").unwrap(), Some(named));
}

/// The same through Python's own client, against Python's own server and against
/// `multiproc serve`: every such request fails with a `RemoteError` naming `KeyError`, and
/// the containers stay as they were.
#[test]
fn python_clients_get_pythons_answer_to_a_proxy_of_no_object() {
    let _leaks = common::leak_check();
    const SCRIPT: &str = r#"
from multiprocessing.managers import DictProxy, ListProxy, Token
def attempt(f):
    try:
        f()
        print('accepted')
    except Exception as e:
        lines = [x for x in str(e).splitlines() if x.strip() and not x.startswith('-')]
        print('refused', type(e).__name__, lines[-1].split(':')[0] if lines else '')
def run(address):
    m = SyncManager(address, authkey=KEY)
    m.connect()
    bad = ListProxy(Token('list', address, 'ffffffffff'), 'pickle', authkey=KEY, incref=False)
    base = m._number_of_objects()
    d = m.dict({'a': 1})
    l = m.list([1])
    q = m.Queue()
    attempt(lambda: d.__setitem__('x', bad))
    attempt(lambda: d.update({'y': (bad,)}))
    attempt(lambda: l.append(bad))
    attempt(lambda: l.extend([[1, bad]]))
    attempt(lambda: q.put(bad))
    attempt(lambda: m.list([bad]))
    attempt(lambda: m.dict(a=bad))
    print(d.copy(), d._getvalue(), d.get('x'), l._getvalue(), q.qsize())
    print('objects', m._number_of_objects() - base)
"#;
    let Some((py, theirs, ours)) = against_both(SCRIPT) else {
        return;
    };
    assert!(
        theirs
            .lines()
            .take(7)
            .all(|l| l == "refused RemoteError KeyError"),
        "Python {py}: {theirs}"
    );
    assert_eq!(ours, theirs, "Python {py}");
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Opens `n` connections to `address`, each sending `first` (maybe nothing).
fn crowd(address: &str, n: usize, first: &[u8]) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..n)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(address).unwrap();
            s.write_all(first).unwrap();
            s
        })
        .collect()
}

/// Whether the server closed `s` (after the challenge it sent), without waiting.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

const KEY: &[u8] = b"manager-attack-key";

/// A real client connects and is served at once.
fn a_client_gets_in(address: &str) {
    let start = std::time::Instant::now();
    let manager = Manager::connect(address.parse::<multiproc::Address>().unwrap(), KEY).unwrap();
    let d = manager.dict().unwrap();
    d.set("k", 1).unwrap();
    assert_eq!(d.len().unwrap(), 1);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "in {:?}",
        start.elapsed()
    );
}

/// 2,000 connections that each send one byte of a handshake and stop there cost the server a
/// few hundred bytes each (their bytes, their socket), not a read buffer each: its memory
/// grows by less than 4 MiB, and not after they close; a real client meanwhile gets in.
#[test]
fn half_sent_handshakes_cost_the_server_little() {
    let _leaks = common::leak_check();
    let serve = common::Serve::start(&[], KEY);
    // A first client, so that the server's own buffers are there before the measure.
    a_client_gets_in(&serve.address);
    let before = rss(serve.pid());
    let held = crowd(&serve.address, 2000, &[0]);
    // Served after every connection made before it: all are accepted by then.
    a_client_gets_in(&serve.address);
    let during = rss(serve.pid());
    drop(held);
    a_client_gets_in(&serve.address);
    let after = rss(serve.pid());
    let bound = 4 << 20;
    assert!(
        during.saturating_sub(before) < bound && after.saturating_sub(before) < bound,
        "RSS {before} -> {during} with 2,000 half-sent handshakes -> {after} after they closed"
    );
    serve.stop();
}

/// The server keeps at most 4096 handshakes under way: past it the oldest connections are
/// closed, and a real client still gets in.
#[test]
fn handshakes_past_the_bound_close_the_oldest() {
    let _leaks = common::leak_check();
    let serve = common::Serve::start(&[], KEY);
    let mut held = crowd(&serve.address, 4096 + 100, &[]);
    a_client_gets_in(&serve.address);
    let closed: Vec<bool> = held.iter_mut().map(closed_by_server).collect();
    // The real client's own handshake took one more place.
    let first_open = closed.iter().position(|c| !c).unwrap();
    assert!(
        (100..=101).contains(&first_open),
        "{first_open} oldest closed"
    );
    assert!(
        closed[first_open..].iter().all(|c| !c),
        "the newer are served"
    );
    drop(held);
    serve.stop();
}

/// A Python client whose first request is a protocol 0 or 1 pickle (Python's server reads
/// any protocol) is answered in Python's protocol, as Python's server answers it.
#[test]
fn a_first_request_in_pickle_protocol_0_or_1_is_read_as_python() {
    let _leaks = common::leak_check();
    const SCRIPT: &str = r#"
import pickle
from multiprocessing.connection import Client
def run(address):
    for proto in (0, 1, 2):
        c = Client(address, authkey=KEY)
        c.send_bytes(pickle.dumps((None, 'dummy', (), {}), protocol=proto))
        print(proto, pickle.loads(c.recv_bytes()))
        c.close()
        c = Client(address, authkey=KEY)
        c.send_bytes(pickle.dumps((None, 'accept_connection', ('t',), {}), protocol=proto))
        print(proto, pickle.loads(c.recv_bytes()))
        c.send_bytes(pickle.dumps(('ffffffffff', '__len__', (), {}), protocol=proto))
        kind, text = pickle.loads(c.recv_bytes())
        print(proto, kind, text.strip().splitlines()[-1].split(':')[0])
        c.close()
"#;
    let Some((py, theirs, ours)) = against_both(SCRIPT) else {
        return;
    };
    assert!(
        theirs.starts_with("0 ('#RETURN', None)\n0 ('#RETURN', None)\n0 #TRACEBACK KeyError\n1"),
        "{theirs}"
    );
    assert_eq!(ours, theirs, "Python {py}");
}

/// Runs the Python `script` (which defines `run(address)`, with `sys`, `SyncManager` and
/// `KEY` at hand) against Python's own manager server and against `multiproc serve`, with
/// the newest interpreter found: its version and the two outputs; `None` without Python.
fn against_both(script: &str) -> Option<(String, String, String)> {
    const MAIN: &str = r#"
line = sys.stdin.readline().strip()
if line:
    host, port = line.rsplit(':', 1)
    run((host, int(port)))
else:
    with SyncManager(authkey=KEY) as m:
        run(m.address)
"#;
    let Some(py) = pyenv::newest() else {
        eprintln!("no python3: skipped");
        return None;
    };
    let key = std::str::from_utf8(KEY).unwrap();
    let script = format!(
        "import sys\nfrom multiprocessing.managers import SyncManager\nKEY = b'{key}'\n{script}{MAIN}"
    );
    let theirs = String::from_utf8(pyenv::run(&py, &script, b"\n")).unwrap();
    let serve = common::Serve::start(&[], KEY);
    let input = format!("{}\n", serve.address);
    let ours = String::from_utf8(pyenv::run(&py, &script, input.as_bytes())).unwrap();
    serve.stop();
    Some((py.version, theirs, ours))
}
