//! A hostile process that holds a queue's segment writes arbitrary bytes into it between the
//! operations of an honest one: the honest side never panics, never waits past its deadline
//! (libFuzzer's time-out catches a hang) and never reads outside the segment (a fault would
//! crash the run); it may report errors, and it never hands out a message larger than the
//! queue's maximum message size.
//!
//! The input is a program. Its first byte picks the kind of queue (`BytesQueue`, a typed
//! `Queue<Vec<u8>>` with its side channel, a `JoinableQueue<Vec<u8>>`) and whether it has a
//! maximum message size; then each operation is a byte and its arguments: puts of small and
//! large messages (large ones stream through a lane or spill to the file), gets without and
//! with a short wait, reads of the counters, `task_done`, a copy of the handle received
//! through a `Pipe` (which attaches the segment again and checks its header), and the
//! hostile writes, of a few bytes or of a little-endian word, anywhere in the segment's file.
//! The hostile side reaches the segment as a process that was given the queue would: through
//! its memfd, here reopened by `/proc/self/fd`, so no test hook is needed.
//!
//! While no hostile write has happened, the queue must also behave as a FIFO of the messages
//! put (one handle, one thread).
#![no_main]

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use multiproc::queue::{BytesQueue, GetError, JoinableQueue, PutError, Queue};

/// The largest message a queue with a limit carries.
const MAX_MESSAGE: usize = 1 << 16;
/// Operations per input: a bounded run.
const MAX_OPS: usize = 96;
/// The longest any one operation may wait.
const SHORT: Duration = Duration::from_micros(200);

/// The honest side's handle.
enum Q {
    Bytes(BytesQueue),
    Typed(Queue<Vec<u8>>),
    Joinable(JoinableQueue<Vec<u8>>),
}

/// What a `put` said, without the message it hands back.
#[derive(Debug, PartialEq)]
enum Put {
    Ok,
    Refused,
}

fn put_result<T>(r: Result<(), PutError<T>>) -> Put {
    match r {
        Ok(()) => Put::Ok,
        Err(_) => Put::Refused,
    }
}

impl Q {
    fn put(&self, msg: Vec<u8>, wait: Duration) -> Put {
        match self {
            Q::Bytes(q) => put_result(q.put_timeout(msg, wait)),
            Q::Typed(q) => put_result(q.put_timeout(msg, wait)),
            Q::Joinable(q) => put_result(q.put_timeout(msg, wait)),
        }
    }

    fn get(&self, wait: Option<Duration>) -> Result<Vec<u8>, GetError> {
        match (self, wait) {
            (Q::Bytes(q), None) => q.get_nowait(),
            (Q::Bytes(q), Some(w)) => q.get_timeout(w),
            (Q::Typed(q), None) => q.get_nowait(),
            (Q::Typed(q), Some(w)) => q.get_timeout(w),
            (Q::Joinable(q), None) => q.get_nowait(),
            (Q::Joinable(q), Some(w)) => q.get_timeout(w),
        }
    }

    /// Reads everything a caller can read without taking a message.
    fn look(&self) {
        match self {
            Q::Bytes(q) => {
                let _ = (q.qsize(), q.empty(), q.stats());
            }
            Q::Typed(q) => {
                let _ = (q.qsize(), q.empty(), q.full(), q.maxsize(), q.stats());
            }
            Q::Joinable(q) => {
                let _ = (q.qsize(), q.unfinished_tasks(), q.stats());
                let _ = q.task_done();
                let _ = q.join_timeout(Duration::ZERO);
            }
        }
    }

    /// A copy of the handle received through a pipe: the segment attached again, its header
    /// checked; `None` when the receiver refuses it.
    fn travel(&self) -> Option<Q> {
        let (mut tx, mut rx) = multiproc::pipe(true).ok()?;
        match self {
            Q::Bytes(q) => {
                tx.send(q).ok()?;
                rx.recv().ok().map(Q::Bytes)
            }
            Q::Typed(q) => {
                tx.send(q).ok()?;
                rx.recv().ok().map(Q::Typed)
            }
            Q::Joinable(q) => {
                tx.send(q).ok()?;
                rx.recv().ok().map(Q::Joinable)
            }
        }
    }
}

/// The descriptors of this process that name a queue segment.
fn segment_fds() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:multiproc-queue"))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The hostile side: the segment of the queue made between `before` and now, opened for
/// writing.
fn hostile(before: &[String]) -> File {
    let fd = segment_fds()
        .into_iter()
        .find(|f| !before.contains(f))
        .expect("a new queue segment");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .expect("the segment opens for writing")
}

/// Reads the input's bytes one at a time (zeros past its end).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Message `n` of length `len`: its number, then a pattern.
fn message(n: u64, len: usize) -> Vec<u8> {
    let mut m = n.to_le_bytes().to_vec();
    m.resize(len.max(8), 0);
    for (i, b) in m.iter_mut().enumerate().skip(8) {
        *b = (i as u64 ^ n) as u8;
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let kind = input.byte();
    let limit = kind & 4 != 0;
    let mut options = Queue::options();
    let maxsize = 1 + usize::from(input.byte() % 8);
    options
        .maxsize(maxsize)
        .inline_size(64)
        .stream_size(4096)
        .max_handles(4);
    if limit {
        options.max_message_size(MAX_MESSAGE);
    }
    let before = segment_fds();
    let first = match kind % 3 {
        0 => Q::Bytes(options.create_bytes().unwrap()),
        1 => Q::Typed(options.create().unwrap()),
        _ => Q::Joinable(options.create_joinable().unwrap()),
    };
    let segment = hostile(&before);
    let mut handles = vec![first];
    // The FIFO the queue must be while nobody has written into it.
    let mut model: Option<VecDeque<Vec<u8>>> = Some(VecDeque::new());
    let mut sent = 0u64;
    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        let op = input.byte();
        let q = &handles[usize::from(op >> 4) % handles.len()];
        match op % 10 {
            // Honest puts: up to 255 bytes (in a slot, or just past it), or up to 512 KiB.
            0 | 1 => {
                let len = if op % 10 == 0 {
                    usize::from(input.byte())
                } else {
                    usize::from(input.u16()) * 8
                };
                let m = message(sent, len);
                sent += 1;
                // An honest put into a queue with room waits long enough for a large message
                // to spill; otherwise it finds the queue full (or corrupted) and gives up soon.
                let room = model.as_ref().is_some_and(|f| f.len() < maxsize);
                let wait = if room { SHORT * 500 } else { SHORT };
                let r = q.put(m.clone(), wait);
                if let Some(fifo) = &mut model {
                    if r == Put::Ok {
                        fifo.push_back(m);
                    } else {
                        // A full queue, a message over the limit, or a large one whose
                        // deadline came first (it is then abandoned, never delivered).
                        assert!(
                            !fifo.is_empty() || m.len() > 48,
                            "an honest put of {} bytes refused by an empty queue",
                            m.len()
                        );
                    }
                }
            }
            2 | 3 => {
                let wait = (op % 10 == 3).then_some(SHORT);
                let r = q.get(wait);
                if let Ok(m) = &r
                    && limit
                {
                    assert!(m.len() <= MAX_MESSAGE, "a message of {} bytes", m.len());
                }
                if let Some(fifo) = &mut model {
                    match (r, fifo.pop_front()) {
                        (Ok(m), Some(want)) => assert!(m == want, "message out of order"),
                        (Err(GetError::Empty | GetError::Timeout), None) => {}
                        (r, want) => panic!(
                            "honest queue: got {:?}, wanted {:?}",
                            r.map(|m| m.len()),
                            want.map(|m| m.len())
                        ),
                    }
                }
            }
            4 => q.look(),
            5 => {
                if handles.len() < 3
                    && let Some(copy) = q.travel()
                {
                    handles.push(copy);
                }
            }
            6..=8 => {
                let len = segment.metadata().map_or(0, |m| m.len()).max(1);
                let scale = if op % 10 == 8 { 8 } else { 1 };
                let at = (u64::from(input.u16()) * scale) % len;
                let bytes = match op % 10 {
                    6 => {
                        let n = usize::from(input.byte() % 16) + 1;
                        input.bytes(n)
                    }
                    7 => u64::from(input.u16()).to_le_bytes().to_vec(),
                    _ => input.bytes(8),
                };
                let _ = segment.write_at(&bytes, at);
                model = None;
            }
            _ => {
                // The hostile side grows the file, as spilled messages do.
                let len = segment.metadata().map_or(0, |m| m.len());
                let _ = segment.write_at(&[input.byte()], len + u64::from(input.u16()));
                model = None;
            }
        }
    }
    // Every handle lets go of a corrupted segment without panicking or waiting.
    drop(handles);
});
