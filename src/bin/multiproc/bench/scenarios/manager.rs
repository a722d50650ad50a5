//! The manager: call latency over a Unix socket and TCP, pipelined calls, connecting over TCP,
//! and starting one.

use std::sync::atomic::{AtomicU32, Ordering};

use multiproc::manager::{Manager, Proxy, Server};
use multiproc::{Address, Connection, Process, pipe};

use super::{err, fork_placed, timed, timed_chunks};
use crate::bench::placement::Placement;

const AUTHKEY: &[u8] = b"multiproc bench";

/// Serves a dict published as `d` on `address`; says where (or why not) on `ready`.
fn serve((address, mut ready): (String, Connection)) {
    let bound = address
        .parse::<Address>()
        .map_err(|e| e.to_string())
        .and_then(|a| Server::bind(a, Some(AUTHKEY)).map_err(|e| e.to_string()))
        .and_then(|s| {
            s.publish("d", "dict", vec![])
                .map(|()| s)
                .map_err(|e| e.to_string())
        });
    match bound {
        Ok(server) => {
            if ready
                .send_bytes(format!("@{}", server.address()).as_bytes())
                .is_ok()
            {
                let _ = server.serve_forever();
            }
        }
        Err(e) => drop(ready.send_bytes(e.as_bytes())),
    }
}

/// A manager server in a child process, killed on drop.
struct Served {
    child: Option<Process<()>>,
    address: Address,
}

impl Served {
    fn start(placement: Placement, tcp: bool) -> Result<Served, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let address = if tcp {
            "127.0.0.1:0".to_owned()
        } else {
            let n = N.fetch_add(1, Ordering::Relaxed);
            format!("abstract:multiproc-bench-{}-{n}", std::process::id())
        };
        let (mut ours, theirs) = pipe(true).map_err(err("pipe"))?;
        let child = fork_placed(placement, serve, (address, theirs))?;
        let said = ours.recv_bytes().map_err(err("the server process"))?;
        let said = String::from_utf8_lossy(&said).into_owned();
        let Some(address) = said.strip_prefix('@') else {
            return Err(format!("the server did not start: {said}"));
        };
        let address = address.parse().map_err(err("the server's address"))?;
        Ok(Served {
            child: Some(child),
            address,
        })
    }

    fn connect(&self) -> Result<Manager, String> {
        Manager::connect(self.address.clone(), AUTHKEY).map_err(err("connect"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = child.kill();
            let _ = child.join();
        }
    }
}

/// Connects to `served`, sets `d['k'] = 1`; the manager and the dict's proxy.
fn dict_of(served: &Served) -> Result<(Manager, Proxy), String> {
    let m = served.connect()?;
    let d = m.get("d").map_err(err("lookup"))?;
    d.call("__setitem__", vec!["k".into(), 1.into()])
        .map_err(err("d['k'] = 1"))?;
    Ok((m, d))
}

fn call(placement: Placement, tcp: bool, batch: u64) -> Result<f64, String> {
    let served = Served::start(placement, tcp)?;
    let (_m, d) = dict_of(&served)?;
    let get = |_| {
        d.call("__getitem__", vec!["k".into()])
            .map(drop)
            .map_err(err("d['k']"))
    };
    get(0)?;
    timed(batch, get)
}

/// `d['k']` through a dict proxy, server on an abstract Unix socket.
pub fn call_unix(placement: Placement, batch: u64) -> Result<f64, String> {
    call(placement, false, batch)
}

/// `d['k']` through a dict proxy, server on TCP loopback.
pub fn call_tcp(placement: Placement, batch: u64) -> Result<f64, String> {
    call(placement, true, batch)
}

/// `d['k']` calls sent 1000 at a time with `Manager::pipeline` (Unix socket).
pub fn pipelined(_: Placement, batch: u64) -> Result<f64, String> {
    const CHUNK: u64 = 1000;
    let served = Served::start(Placement::Unpinned, false)?;
    let (m, d) = dict_of(&served)?;
    timed_chunks(batch, CHUNK, |n| {
        let calls = (0..n).map(|_| (&d, "__getitem__", vec!["k".into()]));
        let replies = m.pipeline(calls).map_err(err("pipeline"))?;
        if replies.len() as u64 != n || replies.iter().any(Result::is_err) {
            return Err("a pipelined call failed".into());
        }
        Ok(())
    })
}

/// Connects over TCP (handshake included) and makes two proxies (a dict and a list).
pub fn tcp_connect(_: Placement, batch: u64) -> Result<f64, String> {
    let served = Served::start(Placement::Unpinned, true)?;
    timed(batch, |_| {
        let m = served.connect()?;
        let d = m.dict().map_err(err("dict"))?;
        let l = m.list(Vec::<i64>::new()).map_err(err("list"))?;
        drop((d, l, m));
        Ok(())
    })
}

/// `Manager::start` (a server process), one dict, stop.
pub fn start(_: Placement, batch: u64) -> Result<f64, String> {
    timed(batch, |_| {
        let mut m = Manager::start().map_err(err("start"))?;
        m.dict().map_err(err("dict"))?;
        m.shutdown().map_err(err("shutdown"))
    })
}
