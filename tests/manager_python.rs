//! Python's own manager clients (`SyncManager(address, authkey).connect()`, CPython 3.11, 3.12
//! and 3.13) served by `multiproc serve`: the same client script prints the same lines against
//! Python's own manager server and against ours; Python's exceptions, iterators, slices,
//! nested proxies, refcounts, the remote-manager recipe shared with a Rust client, a wrong
//! authkey, and a request carrying `os.system`.

mod common;

mod pyenv;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use multiproc::manager::{Manager, QueueProxy};
use pyenv::Python;

const KEY: &[u8] = b"manager-python-test-key";

/// A `multiproc serve` of its own, stopped when dropped.
struct Serve {
    _child: KillOnDrop,
    port: u16,
    _dir: TempDir,
}

/// A child process, killed (and reaped) when dropped, also when a test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Serve {
    fn start() -> Serve {
        let dir = std::env::temp_dir().join(format!(
            "multiproc-manager-python-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, KEY).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_multiproc"))
            .args(["serve", "--listen", "127.0.0.1:0", "--authkey-file"])
            .arg(&key)
            .args(["--object", "get_queue=queue", "--object", "get_lock=Lock"])
            .arg("--allow-legacy-md5")
            .stdout(Stdio::piped())
            .spawn()
            .expect("multiproc serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Serve {
            _child: KillOnDrop(child),
            port,
            _dir: TempDir(dir),
        }
    }

    fn address(&self) -> multiproc::Address {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }
}

/// Python's own `SyncManager` server, with the recipe's `get_queue`, for comparison.
const PYTHON_SERVER: &str = r#"
import sys, queue
from multiprocessing.managers import SyncManager
q = queue.Queue()
class M(SyncManager): pass
M.register('get_queue', callable=lambda: q)
m = M(address=('127.0.0.1', 0), authkey=sys.argv[1].encode())
s = m.get_server()
print(s.address[1], flush=True)
s.serve_forever()
"#;

/// Every typeid of `SyncManager`, Python's exceptions, iterators, slices and nested proxies.
const CLIENT: &str = r#"
import sys, queue, threading, multiprocessing
from multiprocessing.managers import SyncManager
port, key = int(sys.argv[1]), sys.argv[2].encode()
# A nested proxy read back connects with the process's own authkey, as in Python.
multiprocessing.current_process().authkey = key
m = SyncManager(address=('127.0.0.1', port), authkey=key); m.connect()
base = m._number_of_objects()
def check(f):
    try:
        print('ok', repr(f()))
    except Exception as e:
        print(type(e).__module__, type(e).__name__, e)
d = m.dict({'a': 1})
d['b'] = [1, 2]; d[1.5] = None; d[(1, 'x')] = b'\x00'
print(d, d['a'], d.get('zz', 5), d.keys(), d.values(), d.items(), len(d), 'a' in d, str(d))
check(lambda: d['zz'])
check(lambda: d[[1]])
check(lambda: d.pop('nope'))
print(list(iter(d)), [k for k in d])
it = iter(d); next(it); next(it); next(it); next(it); check(lambda: next(it))
print(d.pop('b'), d.setdefault('s', 7), d.popitem(), d.copy(), d.update({'u': 1}), d._getvalue())
d.clear(); check(lambda: d.popitem())
l = m.list(range(10))
print(l[2:5], l[::-1], l[-3:], l[8:2:-2], l[100:], l[-1], len(l), 3 in l, l.index(4), l.count(4))
del l[1:3]; print(l)
l[1:2] = ['a', 'b']; print(l)
l[::3] = ['x', 'y', 'z']; print(l)
check(lambda: l.__setitem__(slice(None, None, 2), [1]))
check(lambda: l[::0])
check(lambda: l['a'])
check(lambda: l[100])
check(lambda: l.remove('nope'))
l.reverse(); print(str(l), [x for x in l])
n = m.list([3, 1, 2]); n.sort(); n.extend([0]); n.append(-1); n.insert(0, 9); print(n, n.pop(), n * 2, n + [5], n._getvalue())
n *= 2; print(n)
ns = m.Namespace(x=1); ns.y = 2; print(ns, ns.x, ns.y)
del ns.x; check(lambda: ns.x)
v = m.Value('i', 7); v.value = 8; print(v.value, v, v.get())
q = m.Queue(); q.put([1, 'two']); q.put_nowait(3); print(q.qsize(), q.empty(), q.full(), q.get(), q.get_nowait())
check(lambda: q.get_nowait())
check(lambda: q.get(timeout=0.05))
f = m.Queue(1); f.put(1); check(lambda: f.put_nowait(2)); check(lambda: f.put(2, timeout=0.05))
jq = m.JoinableQueue(); jq.put(1); jq.get(); jq.task_done(); jq.join(); check(lambda: jq.task_done())
lk = m.Lock(); print(lk.acquire(), lk.acquire(timeout=0.05), lk.release())
check(lambda: lk.release())
r = m.RLock()
with r:
    with r:
        print('rlock twice')
check(lambda: r.release())
s = m.Semaphore(2); print(s.acquire(), s.acquire(), s.acquire(False), s.release())
bs = m.BoundedSemaphore(1); bs.acquire(); bs.release(); check(lambda: bs.release())
c = m.Condition()
with c:
    print('wait', c.wait(0.05)); c.notify(); c.notify_all()
check(lambda: c.wait(0.01))
e = m.Event(); print(e.is_set(), e.wait(0.01)); e.set(); print(e.is_set(), e.wait(0.1)); e.clear(); print(e.is_set())
b = m.Barrier(1); print(b.wait(), b.parties, b.n_waiting, b.broken)
b2 = m.Barrier(2); b2.abort(); print(b2.broken); check(lambda: b2.wait())
b2.reset(); print(b2.broken)
d['l'] = m.list([0]); d['l'].append(1); print(d['l'], len(d), type(d['l']).__name__)
d['d'] = m.dict(); d['d']['k'] = 'v'; print(d['d'], d['d']['k'])
d['q'] = m.Queue(); d['q'].put('in'); print(d['q'].get())
l2 = m.list([m.Namespace(z=1)]); print(l2[0].z)
del d, l, n, ns, v, q, f, jq, lk, r, s, bs, c, e, b, b2, l2, it
import gc; gc.collect()
print('left', m._number_of_objects() - base)
"#;

/// The interpreters to run; at least Python 3.11 (`python3`).
fn pythons() -> Vec<Python> {
    let all = pyenv::interpreters();
    assert!(!all.is_empty(), "these tests need python3");
    all
}

fn python_server(py: &Python) -> (KillOnDrop, u16) {
    let mut child = Command::new(&py.path)
        .args(["-c", PYTHON_SERVER, std::str::from_utf8(KEY).unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (KillOnDrop(child), line.trim().parse().expect("a port"))
}

/// Runs `script` with `python`, arguments `port` and the key (and `extra`); its stdout.
fn client(py: &Python, script: &str, port: u16, extra: &[&str]) -> String {
    let out = Command::new(&py.path)
        .args([
            "-c",
            script,
            &port.to_string(),
            std::str::from_utf8(KEY).unwrap(),
        ])
        .args(extra)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "Python {} client failed:\n{}\n{}",
        py.version,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What `script` prints against `serve` and against Python's own server.
fn ours_and_theirs(py: &Python, serve: &Serve, script: &str) -> (String, String) {
    let (theirs_server, port) = python_server(py);
    let theirs = client(py, script, port, &[]);
    drop(theirs_server);
    (client(py, script, serve.port, &[]), theirs)
}

/// Runs `script` with every interpreter against `multiproc serve` and Python's own server: the
/// same output, to its last line `end`.
fn same_lines_as_pythons_own_server(script: &str) {
    let _leaks = common::leak_check();
    let serve = Serve::start();
    for py in pythons() {
        let (ours, theirs) = ours_and_theirs(&py, &serve, script);
        assert_eq!(ours, theirs, "Python {}", py.version);
        assert!(ours.ends_with("end\n"), "{ours}");
    }
}

#[test]
fn every_typeid_answers_as_pythons_own_server_does() {
    let _leaks = common::leak_check();
    let serve = Serve::start();
    for py in pythons() {
        let (ours, theirs) = ours_and_theirs(&py, &serve, CLIENT);
        for (i, (o, t)) in ours.lines().zip(theirs.lines()).enumerate() {
            assert_eq!(o, t, "Python {}, line {}", py.version, i + 1);
        }
        assert_eq!(ours.lines().count(), theirs.lines().count(), "{ours}");
        assert!(ours.ends_with("left 0\n"), "{ours}");
    }
}

/// `str()` of a queue proxy, and Python 3.13's `Queue.shutdown` (3.11 and 3.12 do not have
/// it; they see the same exposed tuple but for `shutdown`). Addresses differ by nature.
const QUEUES: &str = r#"
import sys, queue, re, multiprocessing
from multiprocessing.managers import SyncManager
port, key = int(sys.argv[1]), sys.argv[2].encode()
multiprocessing.current_process().authkey = key
m = SyncManager(address=('127.0.0.1', port), authkey=key); m.connect()
def check(f):
    try:
        print('ok', repr(f()))
    except Exception as e:
        print(type(e).__module__, type(e).__name__, e)
def hide(s):
    return re.sub('0x[0-9a-f]+', '0x?', s)
q = m.Queue(); jq = m.JoinableQueue()
print(hide(str(q)), hide(repr(q)), hide(str(jq)), hide(repr(jq)))
print(sorted(set(q._exposed_) - ({"shutdown"} if sys.version_info < (3, 13) else set())))
if sys.version_info >= (3, 13):
    import threading
    q.put(1); q.put(2); q.shutdown()
    check(lambda: q.put(3)); check(lambda: q.put_nowait(3))
    check(lambda: q.get()); check(lambda: q.get_nowait()); check(lambda: q.get()); check(lambda: q.get_nowait())
    check(lambda: q.get(timeout=0.05)); print(q.qsize(), q.empty())
    w = m.Queue(); got = []
    t = threading.Thread(target=lambda: check(lambda: w.get())); t.start()
    import time; time.sleep(0.2); w.shutdown(); t.join()
    f = m.Queue(1); f.put(0)
    t = threading.Thread(target=lambda: check(lambda: f.put(1))); t.start()
    time.sleep(0.2); f.shutdown(); t.join(); check(lambda: f.get()); check(lambda: f.get())
    jq.put(1); jq.put(2); jq.get(); jq.task_done()
    t = threading.Thread(target=lambda: check(lambda: jq.join())); t.start()
    time.sleep(0.2); jq.shutdown(immediate=True); t.join()
    print(jq.qsize()); check(lambda: jq.task_done()); check(lambda: jq.task_done()); check(lambda: jq.get())
    i = m.Queue(); i.put(1); i.shutdown(True); check(lambda: i.get())
print('end')
"#;

#[test]
fn queues_show_and_shut_down_as_pythons_own_server_does() {
    same_lines_as_pythons_own_server(QUEUES);
}

/// `a[1:3] = array.array(...)` from a Python client, read as data for every machine layout.
/// (Reads are compared as lists: ours are lists where Python's are `array.array`s.)
const ARRAYS: &str = r#"
import sys, array, multiprocessing
from multiprocessing.managers import SyncManager
port, key = int(sys.argv[1]), sys.argv[2].encode()
m = SyncManager(address=('127.0.0.1', port), authkey=key); m.connect()
def check(f):
    try: print('ok', list(f()))
    except Exception as e: print(type(e).__module__, type(e).__name__, e)
for code, init, new in [('i', [1, 2, 3, 4], [-7, 8, 9]), ('b', [1, 2, 3], [-1]), ('B', [1, 2], [255, 0]),
                        ('q', [1, 2], [-2**63, 2**63 - 1]), ('Q', [1], [2**64 - 1]), ('h', [1, 2], [-300]),
                        ('d', [1.5, 2.5], [0.1, -3e300]), ('f', [1.5], [0.25, -2.0])]:
    a = m.Array(code, init)
    a[1:2] = array.array(code, new)
    check(lambda: a[:]); check(lambda: a._getvalue())
    a[0:0] = array.array(code, [])
    check(lambda: a[:])
print('end')
"#;

#[test]
fn arrays_take_python_arrays_as_pythons_own_server_does() {
    same_lines_as_pythons_own_server(ARRAYS);
}

/// Nested proxies hold their object on our server: it is freed when the entry goes.
const NESTED: &str = r#"
import sys, multiprocessing
from multiprocessing.managers import SyncManager
port, key = int(sys.argv[1]), sys.argv[2].encode()
multiprocessing.current_process().authkey = key
m = SyncManager(address=('127.0.0.1', port), authkey=key); m.connect()
base = m._number_of_objects()
d = m.dict()
d['x'] = m.list()
d['x'].append(1)
print(d['x'], m._number_of_objects() - base)
inner = d['x']
del d['x']
print(inner, m._number_of_objects() - base)
del inner
print(m._number_of_objects() - base)
d['y'] = m.list([2])
del d
print(m._number_of_objects() - base)
"#;

#[test]
fn nested_proxies_live_while_a_container_names_them() {
    let _leaks = common::leak_check();
    let serve = Serve::start();
    for py in pythons() {
        let out = client(&py, NESTED, serve.port, &[]);
        assert_eq!(out, "[1] 2\n[1] 2\n1\n0\n", "Python {}", py.version);
    }
}

/// Python's remote-manager recipe: `register('get_queue')` with no callable, then `connect()`.
const RECIPE: &str = r#"
import sys
from multiprocessing.managers import BaseManager
port, key, what = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
class QueueManager(BaseManager): pass
QueueManager.register('get_queue')
m = QueueManager(address=('127.0.0.1', port), authkey=key); m.connect()
q = m.get_queue()
if what == 'put':
    q.put('from python')
else:
    print(q.get(timeout=10))
"#;

#[test]
fn the_remote_manager_recipe_shares_a_queue_with_rust_clients() {
    let _leaks = common::leak_check();
    let serve = Serve::start();
    let rust = Manager::connect(serve.address(), KEY).unwrap();
    let q = QueueProxy::try_from(rust.get("get_queue").unwrap()).unwrap();
    for py in pythons() {
        client(&py, RECIPE, serve.port, &["put"]);
        assert_eq!(q.get().unwrap(), multiproc::obj!("from python"));
        // A Python getter waits on the server (parked, not blocking it) until Rust puts.
        let getter = Command::new(&py.path)
            .args([
                "-c",
                RECIPE,
                &serve.port.to_string(),
                std::str::from_utf8(KEY).unwrap(),
            ])
            .arg("get")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let getter = KillOnDrop(getter);
        assert_eq!(
            rust.number_of_objects().unwrap(),
            2,
            "the server serves meanwhile (its published queue and lock)"
        );
        q.put(format!("from rust to {}", py.version)).unwrap();
        let mut got = String::new();
        let mut getter = getter;
        BufReader::new(getter.0.stdout.take().unwrap())
            .read_line(&mut got)
            .unwrap();
        assert_eq!(got.trim(), format!("from rust to {}", py.version));
        assert!(getter.0.wait().unwrap().success());
    }
    assert_eq!(q.qsize().unwrap(), 0);
}

/// A wrong key, a request carrying `os.system`, and refused typeids: each an error for that
/// client alone, the server serving on.
const HOSTILE: &str = r#"
import sys, os, multiprocessing
from multiprocessing.managers import SyncManager, RemoteError, dispatch
from multiprocessing.connection import Client
port, key, marker = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
try:
    SyncManager(address=('127.0.0.1', port), authkey=b'wrong').connect()
    print('connected with a wrong key')
except multiprocessing.AuthenticationError as e:
    print('AuthenticationError')
m = SyncManager(address=('127.0.0.1', port), authkey=key); m.connect()
d = m.dict()
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + marker,))
try:
    d['k'] = Evil()
    print('stored')
except RemoteError as e:
    print('RemoteError', 'system' in str(e), 'never loaded' in str(e))
d['k'] = 1
print(d, os.path.exists(marker))
try:
    m.Pool()
except Exception as e:
    print(type(e).__name__, 'never runs code' in str(e))
a = m.Array('i', [1, 2])
a[0] = 5
try:
    a[1] = 'x'
except TypeError as e:
    print(a[0], len(a), str(a), 'TypeError')
try:
    d.no_such_method = None
    d._callmethod('no_such_method')
except RemoteError as e:
    print('RemoteError', 'not in exposed' in str(e))
conn = Client(('127.0.0.1', port), authkey=key)
try:
    dispatch(conn, None, 'create', ('subprocess.Popen', 'ls'))
except RemoteError as e:
    print('RemoteError', 'subprocess.Popen' in str(e))
try:
    m.list([2, 1]).sort(key=len)
except RemoteError as e:
    print('RemoteError', 'builtins.len' in str(e))
conn.send_bytes(b'\x80\x04garbage')
print(conn.recv()[0])
print(m._number_of_objects() >= 1)
"#;

#[test]
fn hostile_requests_are_refused_and_the_server_goes_on() {
    let _leaks = common::leak_check();
    let serve = Serve::start();
    for py in pythons() {
        let marker = serve._dir.0.join(format!("pwned-{}", py.version));
        let out = client(&py, HOSTILE, serve.port, &[marker.to_str().unwrap()]);
        assert_eq!(
            out,
            "AuthenticationError\nRemoteError True True\n{'k': 1} False\nRemoteError True\n\
             5 2 array('i', [5, 2]) TypeError\nRemoteError True\nRemoteError True\nRemoteError True\n\
             #TRACEBACK\nTrue\n",
            "Python {}",
            py.version
        );
        assert!(!marker.exists());
    }
    // Rust clients are served as before.
    let rust = Manager::connect(serve.address(), KEY).unwrap();
    let d = rust.dict().unwrap();
    d.set("ok", 1).unwrap();
    assert_eq!(d.to_string(), "{'ok': 1}");
}

/// A Rust client of Python's own `SyncManager` server: the same proxy types, Python's
/// exceptions typed, and every reference it took given back.
#[test]
fn a_rust_client_uses_pythons_own_manager() {
    let _leaks = common::leak_check();
    use multiproc::manager::{DictProxy, ExceptionKind, ListProxy, ManagerError};
    use multiproc::obj;
    use multiproc::object::Slice;
    for py in pythons() {
        let (_server, port) = python_server(&py);
        let address: multiproc::Address = format!("127.0.0.1:{port}").parse().unwrap();
        let m = Manager::connect_python(address, KEY).unwrap();
        let base = m.number_of_objects().unwrap();
        let d = m.dict().unwrap();
        d.set(1, "1").unwrap();
        d.set("2", 2).unwrap();
        d.set(0.25, obj!(None)).unwrap();
        assert_eq!(
            d.to_string(),
            "{1: '1', '2': 2, 0.25: None}",
            "{}",
            py.version
        );
        match d.get_item("zz") {
            Err(ManagerError::Raised(e)) => assert_eq!(e.kind(), ExceptionKind::KeyError),
            other => panic!("{other:?}"),
        }
        let l = m.list((0..10).collect::<Vec<i64>>()).unwrap();
        l.reverse().unwrap();
        assert_eq!(l.to_string(), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
        assert_eq!(obj!(l.slice(Slice::range(2..5)).unwrap()), obj!([7, 6, 5]));
        match l.get(100) {
            Err(ManagerError::Raised(e)) => assert_eq!(e.kind(), ExceptionKind::IndexError),
            other => panic!("{other:?}"),
        }
        // A proxy stored in Python's dict reads back as a working proxy.
        d.set("l", &l).unwrap();
        let again = ListProxy::try_from(d.get_proxy("l").unwrap()).unwrap();
        again.append(-1).unwrap();
        assert_eq!(l.len().unwrap(), 11);
        let ns = m.namespace(multiproc::object::Dict::new()).unwrap();
        ns.set("x", 1).unwrap();
        assert_eq!(ns.get("x").unwrap(), obj!(1));
        assert_eq!(ns.to_string(), "Namespace(x=1)");
        let v = m.value("i", 7).unwrap();
        v.set(8).unwrap();
        assert_eq!(v.get().unwrap(), obj!(8));
        let q = m.queue(0).unwrap();
        q.put("job").unwrap();
        assert_eq!(q.get().unwrap(), obj!("job"));
        assert_eq!(q.get_nowait().unwrap(), None, "queue.Empty, typed");
        let copy = DictProxy::try_from(m.create("dict", vec![obj!({"a": 1})]).unwrap()).unwrap();
        assert_eq!(copy.get_item("a").unwrap(), obj!(1));
        drop((d, l, again, ns, v, q, copy));
        assert_eq!(
            m.number_of_objects().unwrap(),
            base,
            "Python {}: every reference given back",
            py.version
        );
    }
}

/// A Python client killed (SIGKILL) while it holds a lock: the lock goes to the next
/// acquirer, which is told its holder died; Python's own server keeps it held forever.
const HOLDER: &str = r#"
import sys, time
from multiprocessing.managers import BaseManager, AcquirerProxy
port, key = int(sys.argv[1]), sys.argv[2].encode()
class M(BaseManager): pass
M.register('get_lock', proxytype=AcquirerProxy)
m = M(address=('127.0.0.1', port), authkey=key); m.connect()
lock = m.get_lock()
lock.acquire()
print('held', flush=True)
time.sleep(600)
"#;

#[test]
fn a_killed_python_client_leaves_its_lock_to_the_next() {
    let _leaks = common::leak_check();
    use multiproc::manager::{Acquired, LockProxy};
    let serve = Serve::start();
    let rust = Manager::connect(serve.address(), KEY).unwrap();
    let lock = LockProxy::try_from(rust.get("get_lock").unwrap()).unwrap();
    for py in pythons() {
        let mut holder = Command::new(&py.path)
            .args([
                "-c",
                HOLDER,
                &serve.port.to_string(),
                std::str::from_utf8(KEY).unwrap(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
        let mut holder = KillOnDrop(holder);
        assert!(
            !lock.try_acquire().unwrap(),
            "Python {} holds it",
            py.version
        );
        holder.0.kill().unwrap();
        holder.0.wait().unwrap();
        // A generous watchdog, not a timing claim: the hand-over follows the disconnect.
        let got = lock
            .acquire_robust(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        assert_eq!(got, Acquired::OwnerDied, "Python {}", py.version);
        lock.release().unwrap();
    }
}
