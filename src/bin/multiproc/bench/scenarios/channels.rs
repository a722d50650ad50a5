//! Pipe and shared-memory duplex channel: round trips and bulk bytes.

use std::time::Instant;

use multiproc::queue::{Duplex, DuplexError, duplex};
use multiproc::{Connection, RecvError, pipe};

use multiproc::StartMethod;

use super::{err, start_placed_by, timed};
use crate::bench::placement::Placement;

/// Sends every byte message back until one of one byte.
fn echo_bytes(mut end: Connection) {
    let mut buf = Vec::new();
    while let Ok(true) = end.take(&mut buf) {
        if buf.len() == 1 || end.put(&buf).is_err() {
            break;
        }
    }
}

/// 64 bytes to a child and back, through a duplex `pipe()` (`send_bytes`, no encoding).
pub fn pipe_round_trip_64b(placement: Placement, batch: u64) -> Result<f64, String> {
    let (mut ours, theirs) = pipe(true).map_err(err("pipe"))?;
    let child = start_placed_by(StartMethod::Fork, placement, echo_bytes, theirs)?;
    let msg = [7u8; 64];
    let mut back = Vec::with_capacity(64);
    let mut round = |_| -> Result<(), String> {
        ours.put(&msg)?;
        match ours.take(&mut back)? {
            true if back.len() == 64 => Ok(()),
            true => Err(format!("sent 64 bytes, got {} back", back.len())),
            false => Err("the echo process is gone".into()),
        }
    };
    round(0)?;
    let t = timed(batch, &mut round);
    let _ = ours.put(b"x");
    child.join().map_err(err("join"))?;
    t
}

/// How a child that holds the other end is started.
trait Start {
    const START: StartMethod;
}

impl Start for Connection {
    const START: StartMethod = StartMethod::Fork;
}

/// Spawned: an end passed to a forked child reads as gone to the parent.
impl Start for Duplex {
    const START: StartMethod = StartMethod::Spawn;
}

/// An end that carries typed `u64` messages: a [`Connection`] or a [`Duplex`].
trait Numbers: Start {
    fn put_u64(&mut self, v: u64) -> Result<(), String>;
    /// The next number; `None` when the other end is gone.
    fn take_u64(&mut self) -> Option<u64>;
}

impl Numbers for Connection {
    fn put_u64(&mut self, v: u64) -> Result<(), String> {
        self.send(&v).map_err(err("send"))
    }
    fn take_u64(&mut self) -> Option<u64> {
        self.recv().ok()
    }
}

impl Numbers for Duplex {
    fn put_u64(&mut self, v: u64) -> Result<(), String> {
        self.send(&v).map_err(err("send"))
    }
    fn take_u64(&mut self) -> Option<u64> {
        self.recv().ok()
    }
}

/// Sends every number back until `u64::MAX` (a forked child holds copies of the parent's
/// descriptors, so it would not see the parent's end close).
fn echo(mut end: impl Numbers) {
    while let Some(v) = end.take_u64() {
        if v == u64::MAX || end.put_u64(v).is_err() {
            break;
        }
    }
}

fn echo_pipe(end: Connection) {
    echo(end);
}

fn echo_duplex(end: Duplex) {
    echo(end);
}

/// `batch` numbers to a child that echoes `theirs`, and back.
fn round_trips<E: Numbers + serde::Serialize + serde::de::DeserializeOwned>(
    placement: Placement,
    (mut ours, theirs): (E, E),
    echoer: fn(E),
    batch: u64,
) -> Result<f64, String> {
    let child = start_placed_by(E::START, placement, echoer, theirs)?;
    let mut round = |i: u64| -> Result<(), String> {
        ours.put_u64(i)?;
        match ours.take_u64() {
            Some(v) if v == i => Ok(()),
            Some(v) => Err(format!("sent {i}, got {v} back")),
            None => Err("the echo process is gone".into()),
        }
    };
    round(0)?;
    let t = timed(batch, &mut round);
    let _ = ours.put_u64(u64::MAX);
    child.join().map_err(err("join"))?;
    t
}

/// A u64 to a child and back, through a duplex `pipe()`.
pub fn pipe_round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
    round_trips(
        placement,
        pipe(true).map_err(err("pipe"))?,
        echo_pipe,
        batch,
    )
}

/// A u64 to a child and back, through `multiproc::queue::duplex`.
pub fn duplex_round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
    round_trips(
        placement,
        duplex().map_err(err("duplex"))?,
        echo_duplex,
        batch,
    )
}

/// An end that moves byte messages: a [`Connection`] or a [`Duplex`].
trait Bytes: Start {
    fn put(&mut self, msg: &[u8]) -> Result<(), String>;
    /// The next message into `buf`; `false` when the other end is gone.
    fn take(&mut self, buf: &mut Vec<u8>) -> Result<bool, String>;
}

impl Bytes for Connection {
    fn put(&mut self, msg: &[u8]) -> Result<(), String> {
        self.send_bytes(msg).map_err(err("send"))
    }
    fn take(&mut self, buf: &mut Vec<u8>) -> Result<bool, String> {
        match self.recv_bytes_to_vec(buf) {
            Ok(()) => Ok(true),
            Err(RecvError::Disconnected) => Ok(false),
            Err(e) => Err(format!("recv: {e}")),
        }
    }
}

impl Bytes for Duplex {
    fn put(&mut self, msg: &[u8]) -> Result<(), String> {
        self.send_bytes(msg).map_err(err("send"))
    }
    fn take(&mut self, buf: &mut Vec<u8>) -> Result<bool, String> {
        match self.recv_bytes_into(buf, None) {
            Ok(()) => Ok(true),
            Err(DuplexError::Disconnected) => Ok(false),
            Err(e) => Err(format!("recv: {e}")),
        }
    }
}

/// Receives messages; answers an empty one with an empty one (the sender's "all delivered?"),
/// and stops at a message of one byte.
fn drain(mut end: impl Bytes) {
    let mut buf = Vec::new();
    while let Ok(true) = end.take(&mut buf) {
        if buf.len() == 1 || (buf.is_empty() && end.put(b"").is_err()) {
            break;
        }
    }
}

fn drain_pipe(end: Connection) {
    drain(end);
}

fn drain_duplex(end: Duplex) {
    drain(end);
}

/// `batch` messages of `size` bytes delivered to a child that drains `theirs` (the time ends
/// when the child confirms it has received them all).
fn bulk<E: Bytes + serde::Serialize + serde::de::DeserializeOwned>(
    (mut ours, theirs): (E, E),
    drainer: fn(E),
    size: usize,
    batch: u64,
) -> Result<f64, String> {
    let child = start_placed_by(E::START, Placement::Unpinned, drainer, theirs)?;
    let msg = vec![b'x'; size];
    let mut ack = Vec::new();
    let t = Instant::now();
    for _ in 0..batch {
        ours.put(&msg)?;
    }
    ours.put(b"")?;
    let acked = ours.take(&mut ack)?;
    let elapsed = t.elapsed().as_secs_f64();
    if !acked || !ack.is_empty() {
        return Err("the child did not acknowledge".into());
    }
    ours.put(b"x")?;
    child.join().map_err(err("join"))?;
    Ok(elapsed)
}

pub fn pipe_bulk_1mib(_: Placement, batch: u64) -> Result<f64, String> {
    bulk(pipe(true).map_err(err("pipe"))?, drain_pipe, 1 << 20, batch)
}

pub fn pipe_bulk_64mib(_: Placement, batch: u64) -> Result<f64, String> {
    bulk(
        pipe(true).map_err(err("pipe"))?,
        drain_pipe,
        64 << 20,
        batch,
    )
}

/// 64 MiB messages delivered to a child through `multiproc::queue::duplex`.
pub fn duplex_bulk_64mib(_: Placement, batch: u64) -> Result<f64, String> {
    bulk(
        duplex().map_err(err("duplex"))?,
        drain_duplex,
        64 << 20,
        batch,
    )
}
