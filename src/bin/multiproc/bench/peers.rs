//! The Rust crates people use for the same jobs, measured beside multiproc (feature
//! `bench-peers`): ipc-channel (typed channel round trip, bulk bytes), interprocess (local
//! socket round trip of 64 bytes, bulk bytes) and procspawn (process start + join, and its
//! pool).
//!
//! Which scenario has which peer is known in every build ([`PEERS`]), so that a build without
//! the feature can say, in its table, which figures it lacks and how to get them.

use super::scenarios::Scenario;

/// Whether this build measures the peers.
pub const BUILT: bool = cfg!(feature = "bench-peers");

/// What to build to measure the peers, as the table and `--help` say it.
pub const HOW_TO_BUILD: &str = "cargo build --release --features bench-peers";

/// Each scenario that a Rust crate also does, and that crate.
pub const PEERS: &[(&str, &str)] = &[
    ("pipe_round_trip", "ipc-channel"),
    ("pipe_round_trip", "interprocess"),
    ("pipe_round_trip_64b", "interprocess"),
    ("pipe_bulk_1mib", "ipc-channel"),
    ("pipe_bulk_1mib", "interprocess"),
    ("pipe_bulk_64mib", "ipc-channel"),
    ("pipe_bulk_64mib", "interprocess"),
    ("process_spawn", "procspawn"),
    ("pool_map_trivial", "procspawn"),
    ("pool_map_1ms", "procspawn"),
    ("pool_start", "procspawn"),
];

/// The peers of the scenario `name`.
pub fn of(name: &str) -> impl Iterator<Item = &'static str> {
    PEERS
        .iter()
        .filter(move |(s, _)| *s == name)
        .map(|(_, p)| *p)
}

/// Adds the peers to the scenarios they have; without the feature, none.
#[cfg(not(feature = "bench-peers"))]
pub fn add(rows: Vec<Scenario>) -> Vec<Scenario> {
    rows
}

#[cfg(feature = "bench-peers")]
pub fn add(rows: Vec<Scenario>) -> Vec<Scenario> {
    rows.into_iter()
        .map(|s| {
            let name = s.name;
            of(name).fold(s, |s, peer| s.peer(peer, measure(name, peer)))
        })
        .collect()
}

/// How `peer` does the scenario `name` (one of [`PEERS`]).
#[cfg(feature = "bench-peers")]
fn measure(name: &str, peer: &str) -> super::scenarios::Measure {
    match (name, peer) {
        ("pipe_round_trip", "ipc-channel") => ipc::round_trip,
        ("pipe_round_trip" | "pipe_round_trip_64b", "interprocess") => local_socket::round_trip,
        ("pipe_bulk_1mib", "ipc-channel") => ipc::bulk_1mib,
        ("pipe_bulk_1mib", "interprocess") => local_socket::bulk_1mib,
        ("pipe_bulk_64mib", "ipc-channel") => ipc::bulk_64mib,
        ("pipe_bulk_64mib", "interprocess") => local_socket::bulk_64mib,
        ("process_spawn", "procspawn") => spawn::start_join,
        ("pool_map_trivial", "procspawn") => spawn::pool_map_trivial,
        ("pool_map_1ms", "procspawn") => spawn::pool_map_1ms,
        ("pool_start", "procspawn") => spawn::pool_start,
        _ => unreachable!("PEERS names {peer} for {name} without a measure"),
    }
}

#[cfg(feature = "bench-peers")]
mod ipc {
    use std::time::Instant;

    use ipc_channel::ipc::{
        self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
    };

    use crate::bench::placement::Placement;
    use crate::bench::scenarios::{err, fork_placed, timed};

    type Pair = (IpcSender<u64>, IpcReceiver<u64>);

    /// Connects to the parent's one-shot server `name`, hands it a channel each way, and
    /// echoes numbers until `u64::MAX`.
    fn echo(name: String) {
        let Ok(boot) = IpcSender::<Pair>::connect(name) else {
            return;
        };
        let (Ok((to_us, from_parent)), Ok((to_parent, from_us))) = (ipc::channel(), ipc::channel())
        else {
            return;
        };
        if boot.send((to_us, from_us)).is_err() {
            return;
        }
        while let Ok(v) = from_parent.recv() {
            if v == u64::MAX || to_parent.send(v).is_err() {
                break;
            }
        }
    }

    /// A u64 to a child and back over ipc-channel's typed channels.
    pub fn round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
        let (server, name) = IpcOneShotServer::<Pair>::new().map_err(err("one-shot server"))?;
        let child = fork_placed(placement, echo, name)?;
        let (_, (tx, rx)) = server.accept().map_err(err("accept"))?;
        let round = |i: u64| -> Result<(), String> {
            tx.send(i).map_err(err("send"))?;
            match rx.recv() {
                Ok(v) if v == i => Ok(()),
                Ok(v) => Err(format!("sent {i}, got {v} back")),
                Err(e) => Err(format!("recv: {e:?}")),
            }
        };
        round(0)?;
        let t = timed(batch, round);
        let _ = tx.send(u64::MAX);
        child.join().map_err(err("join"))?;
        t
    }

    type Bulk = (IpcBytesSender, IpcReceiver<u64>);

    /// Receives byte messages; acknowledges an empty one, stops at one of one byte.
    fn drain(name: String) {
        let Ok(boot) = IpcSender::<Bulk>::connect(name) else {
            return;
        };
        let (Ok((data, from_parent)), Ok((ack, from_us))) = (ipc::bytes_channel(), ipc::channel())
        else {
            return;
        };
        if boot.send((data, from_us)).is_err() {
            return;
        }
        let from_parent: IpcBytesReceiver = from_parent;
        while let Ok(m) = from_parent.recv() {
            if m.len() == 1 || (m.is_empty() && ack.send(0).is_err()) {
                break;
            }
        }
    }

    fn bulk(size: usize, batch: u64) -> Result<f64, String> {
        let (server, name) = IpcOneShotServer::<Bulk>::new().map_err(err("one-shot server"))?;
        let child = fork_placed(Placement::Unpinned, drain, name)?;
        let (_, (data, ack)) = server.accept().map_err(err("accept"))?;
        let msg = vec![b'x'; size];
        let t = Instant::now();
        for _ in 0..batch {
            data.send(&msg).map_err(err("send"))?;
        }
        data.send(b"").map_err(err("send"))?;
        ack.recv().map_err(|e| format!("ack: {e:?}"))?;
        let elapsed = t.elapsed().as_secs_f64();
        data.send(b"x").map_err(err("send"))?;
        child.join().map_err(err("join"))?;
        Ok(elapsed)
    }

    /// 1 MiB messages over ipc-channel's bytes channel.
    pub fn bulk_1mib(_: Placement, batch: u64) -> Result<f64, String> {
        bulk(1 << 20, batch)
    }

    /// 64 MiB messages over ipc-channel's bytes channel.
    pub fn bulk_64mib(_: Placement, batch: u64) -> Result<f64, String> {
        bulk(64 << 20, batch)
    }
}

#[cfg(feature = "bench-peers")]
mod local_socket {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use interprocess::local_socket::{GenericNamespaced, ListenerOptions, Stream, prelude::*};

    use crate::bench::placement::Placement;
    use crate::bench::scenarios::{err, fork_placed, timed};

    fn unique_name() -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("multiproc-bench-peer-{}-{n}.sock", std::process::id())
    }

    /// Listens on a fresh namespaced local socket, forks `child(name)` in `placement`, and
    /// accepts its connection.
    fn connected(
        placement: Placement,
        child: fn(String),
    ) -> Result<(Stream, multiproc::Process<()>), String> {
        let name = unique_name();
        let ns = name
            .as_str()
            .to_ns_name::<GenericNamespaced>()
            .map_err(err("name"))?;
        let listener = ListenerOptions::new()
            .name(ns)
            .create_sync()
            .map_err(err("listen"))?;
        let process = fork_placed(placement, child, name)?;
        let conn = listener.accept().map_err(err("accept"))?;
        Ok((conn, process))
    }

    fn connect(name: &str) -> Option<Stream> {
        let ns = name.to_ns_name::<GenericNamespaced>().ok()?;
        Stream::connect(ns).ok()
    }

    /// Echoes 64-byte blocks until the stream ends.
    fn echo(name: String) {
        let Some(mut s) = connect(&name) else { return };
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() && s.write_all(&buf).is_ok() {}
    }

    /// 64 bytes to a child and back over an interprocess local socket.
    pub fn round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
        let (mut conn, child) = connected(placement, echo)?;
        let mut buf = [7u8; 64];
        let mut round = |_| -> Result<(), String> {
            conn.write_all(&buf).map_err(err("write"))?;
            conn.read_exact(&mut buf).map_err(err("read"))
        };
        round(0)?;
        let t = timed(batch, &mut round);
        drop(conn);
        child.join().map_err(err("join"))?;
        t
    }

    /// Reads messages framed by an 8-byte length; answers an empty one with a byte; stops at
    /// the end of the stream.
    fn drain(name: String) {
        let Some(mut s) = connect(&name) else { return };
        let mut buf = Vec::new();
        let mut len = [0u8; 8];
        while s.read_exact(&mut len).is_ok() {
            let n = u64::from_le_bytes(len);
            if n == 0 {
                if s.write_all(b"k").is_err() {
                    break;
                }
                continue;
            }
            buf.resize(usize::try_from(n).unwrap_or(0), 0);
            if s.read_exact(&mut buf).is_err() {
                break;
            }
        }
    }

    fn bulk(size: usize, batch: u64) -> Result<f64, String> {
        let (mut conn, child) = connected(Placement::Unpinned, drain)?;
        let msg = vec![b'x'; size];
        let t = Instant::now();
        for _ in 0..batch {
            conn.write_all(&(size as u64).to_le_bytes())
                .map_err(err("write"))?;
            conn.write_all(&msg).map_err(err("write"))?;
        }
        conn.write_all(&0u64.to_le_bytes()).map_err(err("write"))?;
        let mut ack = [0u8];
        conn.read_exact(&mut ack).map_err(err("ack"))?;
        let elapsed = t.elapsed().as_secs_f64();
        drop(conn);
        child.join().map_err(err("join"))?;
        Ok(elapsed)
    }

    /// 1 MiB messages (8-byte length + bytes) over an interprocess local socket.
    pub fn bulk_1mib(_: Placement, batch: u64) -> Result<f64, String> {
        bulk(1 << 20, batch)
    }

    /// 64 MiB messages over an interprocess local socket.
    pub fn bulk_64mib(_: Placement, batch: u64) -> Result<f64, String> {
        bulk(64 << 20, batch)
    }
}

#[cfg(feature = "bench-peers")]
mod spawn {
    use std::collections::VecDeque;
    use std::time::Instant;

    use crate::bench::placement::Placement;
    use crate::bench::scenarios::pool::{one_ms, trivial};
    use crate::bench::scenarios::{err, timed};

    /// `procspawn::spawn` of a function that returns its argument plus one, and `join`.
    pub fn start_join(_: Placement, batch: u64) -> Result<f64, String> {
        timed(batch, |i| {
            let h = procspawn::spawn(i, |x: u64| x.wrapping_add(1));
            match h.join() {
                Ok(r) if r == i.wrapping_add(1) => Ok(()),
                Ok(r) => Err(format!("the child returned {r}")),
                Err(e) => Err(format!("join: {e}")),
            }
        })
    }

    /// Tasks in flight at once: procspawn opens two channels per task, so a map of a million
    /// tasks cannot submit them all before joining.
    const WINDOW: usize = 256;

    /// `f` on `0..batch` through a started `procspawn::Pool` of two processes, results joined
    /// in order (procspawn has no `map`: each task is a `spawn` on the pool); each result is
    /// checked when `exact` (the 1 ms task's result depends on the clock).
    fn map(f: fn(u64) -> u64, exact: bool, batch: u64) -> Result<f64, String> {
        let pool = procspawn::Pool::new(2).map_err(err("pool"))?;
        pool.spawn(0, f).join().map_err(err("warm-up"))?;
        let check = |i: u64, h: procspawn::JoinHandle<u64>| match h.join() {
            Ok(r) if !exact || r == f(i) => Ok(()),
            Ok(r) => Err(format!("task {i} returned {r}")),
            Err(e) => Err(format!("join: {e}")),
        };
        let t = Instant::now();
        let mut pending = VecDeque::with_capacity(WINDOW);
        for i in 0..batch {
            if pending.len() == WINDOW {
                let (j, h) = pending.pop_front().expect("a full window");
                check(j, h)?;
            }
            pending.push_back((i, pool.spawn(i, f)));
        }
        for (j, h) in pending {
            check(j, h)?;
        }
        let elapsed = t.elapsed().as_secs_f64();
        pool.kill();
        Ok(elapsed)
    }

    /// procspawn's pool, trivial tasks.
    pub fn pool_map_trivial(_: Placement, batch: u64) -> Result<f64, String> {
        map(trivial, true, batch)
    }

    /// procspawn's pool, 1 ms tasks on two processes.
    pub fn pool_map_1ms(_: Placement, batch: u64) -> Result<f64, String> {
        map(one_ms, false, batch)
    }

    /// A `procspawn::Pool` of two processes started until its first result is back (ending
    /// it is not timed).
    pub fn pool_start(_: Placement, batch: u64) -> Result<f64, String> {
        let mut total = 0.0;
        for i in 0..batch {
            let t = Instant::now();
            let pool = procspawn::Pool::new(2).map_err(err("pool"))?;
            let r = pool.spawn(i, trivial).join().map_err(err("join"))?;
            total += t.elapsed().as_secs_f64();
            if r != trivial(i) {
                return Err(format!("{r} for {i}"));
            }
            pool.kill();
        }
        Ok(total)
    }
}
