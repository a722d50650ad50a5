//! The Redis backend (feature `redis`): `d['k']` through its dict proxy, one at a time and
//! pipelined, beside the same `HGET` sent by the raw `redis` crate, its Rust peer. Each sample
//! starts a `redis-server` of its own (Unix socket in a fresh directory, no TCP port, nothing
//! saved), placed as the peer process of the other rows, and stops it afterwards.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc::obj;
use multiproc::redis::Redis;

use super::{err, timed, timed_chunks};
use crate::bench::placement::{Placement, start_placed};

/// Where the dict `d` of the default namespace keeps its values (the raw client reads it).
const DICT_VALUES: &str = "{mp:default:d}:values";

/// Calls sent per pipeline.
const CHUNK: u64 = 1000;

/// A `redis-server` on a Unix socket in a directory of its own; killed, waited for and its
/// directory removed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Server {
    /// Starts one in `placement` (the peer's CPU) and waits until it answers.
    fn start(placement: Placement) -> Result<Server, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("multiproc-bench-redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(err("a directory for redis-server"))?;
        let socket = dir.join("r.sock");
        let started = start_placed(
            placement,
            || {
                Command::new("redis-server")
                    .args(["--port", "0", "--unixsocket"])
                    .arg(&socket)
                    .args([
                        "--unixsocketperm",
                        "700",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .arg("--dir")
                    .arg(&dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
            },
            |c| c.as_ref().map_or(0, Child::id),
        );
        let child = match started {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(if e.kind() == std::io::ErrorKind::NotFound {
                    "redis-server is not installed (the Redis rows need it on PATH)".to_owned()
                } else {
                    format!("cannot start redis-server: {e}")
                });
            }
        };
        let server = Server {
            child,
            dir,
            url: format!("redis+unix://{}", socket.display()),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits (10 s at most) until the server answers PING.
    fn wait_ready(&self) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str()).map_err(err("the server's URL"))?;
        let start = Instant::now();
        loop {
            let answered = client
                .get_connection()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match answered {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    return Err(format!("redis-server did not start: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// A raw connection of the `redis` crate.
    fn raw(&self) -> Result<redis::Connection, String> {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .map_err(err("connect (redis crate)"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a server, sets `d['k'] = 1` through the backend; the server and the backend.
fn with_dict(placement: Placement) -> Result<(Server, Redis), String> {
    let server = Server::start(placement)?;
    let m = Redis::connect(&server.url).map_err(err("connect"))?;
    m.dict("d")
        .and_then(|d| d.set("k", 1))
        .map_err(err("d['k'] = 1"))?;
    Ok((server, m))
}

/// The field under which the backend keeps `d['k']` (its encoded key), as the raw client
/// must send it.
fn field(raw: &mut redis::Connection) -> Result<Vec<u8>, String> {
    let mut fields: Vec<Vec<u8>> = redis::cmd("HKEYS")
        .arg(DICT_VALUES)
        .query(raw)
        .map_err(err("HKEYS"))?;
    match fields.len() {
        1 => Ok(fields.remove(0)),
        n => Err(format!("the dict holds {n} keys in Redis, not 1")),
    }
}

/// `d['k']` through the backend's `DictProxy` (one `HGET` a call).
pub fn proxy_call(placement: Placement, batch: u64) -> Result<f64, String> {
    let (_server, m) = with_dict(placement)?;
    let d = m.dict("d").map_err(err("dict"))?;
    let get = |_| match d.get_item("k") {
        Ok(v) if v == obj!(1) => Ok(()),
        Ok(v) => Err(format!("d['k'] is {v:?}, not 1")),
        Err(e) => Err(format!("d['k']: {e}")),
    };
    get(0)?;
    timed(batch, get)
}

/// The same `HGET` through the raw `redis` crate, on one connection.
pub fn raw_call(placement: Placement, batch: u64) -> Result<f64, String> {
    let (server, _m) = with_dict(placement)?;
    let mut raw = server.raw()?;
    let field = field(&mut raw)?;
    let mut get = |_| {
        redis::cmd("HGET")
            .arg(DICT_VALUES)
            .arg(&field)
            .query::<Vec<u8>>(&mut raw)
            .map(drop)
            .map_err(err("HGET"))
    };
    get(0)?;
    timed(batch, get)
}

/// `d['k']` calls sent [`CHUNK`] at a time with the backend's `pipeline`.
pub fn proxy_pipelined(_: Placement, batch: u64) -> Result<f64, String> {
    let (_server, m) = with_dict(Placement::Unpinned)?;
    let d = m.dict("d").map_err(err("dict"))?;
    timed_chunks(batch, CHUNK, |n| {
        let calls = (0..n).map(|_| (d.as_proxy(), "__getitem__", vec![obj!("k")]));
        let replies = m.pipeline(calls).map_err(err("pipeline"))?;
        if replies.len() as u64 != n || replies.iter().any(Result::is_err) {
            return Err("a pipelined call failed".into());
        }
        Ok(())
    })
}

/// The same `HGET`s in pipelines of [`CHUNK`] through the raw `redis` crate.
pub fn raw_pipelined(_: Placement, batch: u64) -> Result<f64, String> {
    let (server, _m) = with_dict(Placement::Unpinned)?;
    let mut raw = server.raw()?;
    let field = field(&mut raw)?;
    timed_chunks(batch, CHUNK, |n| {
        let mut p = redis::pipe();
        for _ in 0..n {
            p.cmd("HGET").arg(DICT_VALUES).arg(&field);
        }
        let replies: Vec<Vec<u8>> = p.query(&mut raw).map_err(err("pipeline"))?;
        if replies.len() as u64 != n {
            return Err("a pipelined HGET failed".into());
        }
        Ok(())
    })
}
