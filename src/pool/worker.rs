//! The worker process: its messages with the parent, and its loop.
//!
//! A worker is a [`Process`](crate::Process) running [`worker_main`]. It holds one end of a
//! socket pair; the parent's supervisor for that worker holds the other. The worker reports
//! [`FromWorker::Ready`] once; then the parent sends one chunk at a time (a head from
//! [`chunk_head`], then the encoded arguments, in one message) and the worker answers each
//! with one message that [`parse_answer`] reads. A chunk names its function as an [`Entry`],
//! so one worker runs the tasks of any function of the program, as Python's do.

use std::cell::Cell;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::Fault;
use crate::connection::Connection;
use crate::sys::entry::{Entry, Invoke};
use crate::{Descriptor, codec};

/// Bytes that travel as one byte string (not a sequence of numbers).
pub(super) struct ByteBuf(pub(super) Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// What a chunk's function is, as a worker calls it.
pub(super) type TaskEntry = Entry<Runner>;
/// The initializer, as a worker calls it.
pub(super) type InitEntry = Entry<Initializer>;

/// Worker → parent, once, when it starts.
#[derive(Serialize, Deserialize)]
pub(super) enum FromWorker {
    /// The initializer (if any) succeeded: the worker takes chunks.
    Ready,
    /// The initializer panicked, with this message; the worker exits.
    InitFailed(String),
}

/// Writes the head of a chunk's message (parent → worker) into `out`: the length of the
/// entry's encoding (one byte), then the entry. The chunk's encoded `Vec<A>` follows it in the
/// same message, and the chunk's descriptors travel with it, so the arguments are copied into
/// no other buffer on either side.
pub(super) fn chunk_head(entry: &TaskEntry, out: &mut Vec<u8>) -> Result<(), codec::CodecError> {
    out.clear();
    out.push(0);
    codec::encode_plain_into(entry, out)?;
    out[0] = u8::try_from(out.len() - 1)
        .map_err(|_| codec::CodecError::Encode("an entry of over 255 bytes".into()))?;
    Ok(())
}

/// Splits a chunk's message into its entry and its encoded arguments.
fn split_chunk(msg: &[u8]) -> Option<(TaskEntry, &[u8])> {
    let (&n, rest) = msg.split_first()?;
    let (entry, args) = rest.split_at_checked(usize::from(n))?;
    Some((codec::decode(entry, Vec::new()).ok()?, args))
}

/// The first byte of an answer (worker → parent) whose tasks ran: the encoded
/// `Vec<Result<R, Fault>>` follows (after the time spent), with its descriptors.
const ANSWER_RAN: u8 = 0;
/// The first byte of an answer whose chunk could not run: the reason follows, as UTF-8.
const ANSWER_FAILED: u8 = 1;

/// A chunk's answer as the parent reads it: the encoded results (in the slot's buffer) and
/// their descriptors, or why the chunk could not run.
pub(super) type Answer<'a> = Result<(&'a [u8], Vec<OwnedFd>), String>;

/// Reads an answer: what it says and how long the worker spent on the chunk; `None` when the
/// message is not an answer.
pub(super) fn parse_answer(msg: &[u8], fds: Vec<OwnedFd>) -> Option<(Answer<'_>, u64)> {
    let (head, rest) = msg.split_at_checked(9)?;
    let nanos = u64::from_le_bytes(head[1..9].try_into().ok()?);
    match head[0] {
        ANSWER_RAN => Some((Ok((rest, fds)), nanos)),
        ANSWER_FAILED => Some((Err(String::from_utf8_lossy(rest).into_owned()), nanos)),
        _ => None,
    }
}

/// Sends a chunk's answer.
fn send_answer(conn: &mut Connection, batch: &Batch, nanos: u64) -> bool {
    let mut head = [0u8; 9];
    head[1..].copy_from_slice(&nanos.to_le_bytes());
    let sent = match batch {
        Ok((bytes, fds)) => {
            head[0] = ANSWER_RAN;
            let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            conn.send_parts(&[&head, bytes], &fds)
        }
        Err(why) => {
            head[0] = ANSWER_FAILED;
            conn.send_parts(&[&head, why.as_bytes()], &[])
        }
    };
    sent.is_ok()
}

thread_local! {
    /// The last answer's buffer, for the next answer to encode into (its memory is mapped and
    /// sized already).
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty buffer to encode an answer into.
fn answer_buf() -> Vec<u8> {
    let mut v = SPARE.take();
    v.clear();
    v
}

/// The worker's start-up arguments.
#[derive(Serialize, Deserialize)]
pub(super) struct Boot {
    pub(super) conn: Connection,
    pub(super) init: Option<InitCall>,
}

/// An initializer and its encoded arguments.
#[derive(Serialize, Deserialize)]
pub(super) struct InitCall {
    pub(super) entry: InitEntry,
    pub(super) data: ByteBuf,
    pub(super) fds: Vec<Descriptor>,
}

impl InitCall {
    /// A copy to hand to one more worker (the descriptors are duplicated).
    pub(super) fn try_clone(&self) -> std::io::Result<InitCall> {
        Ok(InitCall {
            entry: self.entry,
            data: ByteBuf(self.data.0.clone()),
            fds: self
                .fds
                .iter()
                .map(Descriptor::try_clone)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What one chunk gave: the encoded results and their descriptors, or why it could not run.
pub(super) type Batch = Result<(Vec<u8>, Vec<OwnedFd>), String>;

/// Runs a chunk: decodes a `Vec<A>`, calls the function on each item (a panic is that item's
/// [`Fault`]), encodes the `Vec<Result<R, Fault>>`.
pub(crate) struct Runner;

impl Invoke for Runner {
    type Outcome = Batch;

    fn invoke<A: DeserializeOwned, R: Serialize>(
        f: fn(A) -> R,
        args: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Batch {
        let items: Vec<A> =
            codec::decode(args, fds).map_err(|e| format!("cannot decode the arguments: {e}"))?;
        let run = |a: A| {
            catch_unwind(AssertUnwindSafe(|| f(a)))
                .map_err(|p| Fault::panicked(crate::process::panic_info(&*p)))
        };
        // Plain values while every task succeeds; results with faults from the first failure.
        let mut values = Vec::with_capacity(items.len());
        let mut items = items.into_iter();
        for a in items.by_ref() {
            match run(a) {
                Ok(v) => values.push(v),
                Err(fault) => {
                    let mut out: Vec<Result<R, Fault>> = values.into_iter().map(Ok).collect();
                    out.push(Err(fault));
                    out.extend(items.map(run));
                    return encode_mixed(out);
                }
            }
        }
        encode_values(values)
    }

    fn mismatch() -> Batch {
        Err("the function's type differs between the parent and the worker".into())
    }
}

/// What a worker sends back for a chunk (read as [`WireResults`](super::job::WireResults)):
/// the values alone when every task succeeded.
#[derive(Serialize)]
enum WireOut<'a, R> {
    Ok(&'a [R]),
    Mixed(&'a [Result<R, Fault>]),
}

/// Encodes the results of a chunk whose tasks all succeeded.
fn encode_values<R: Serialize>(values: Vec<R>) -> Batch {
    let mut buf = answer_buf();
    match codec::encode_into(&WireOut::Ok(&values), &mut buf) {
        Ok(fds) => Ok((buf, fds)),
        Err(_) => encode_mixed(values.into_iter().map(Ok).collect()),
    }
}

/// Encodes a chunk's results; a result that does not encode becomes that task's [`Fault`].
fn encode_mixed<R: Serialize>(mut out: Vec<Result<R, Fault>>) -> Batch {
    let mut buf = answer_buf();
    if let Ok(fds) = codec::encode_into(&WireOut::Mixed(&out), &mut buf) {
        return Ok((buf, fds));
    }
    let mut scratch = Vec::new();
    for r in &mut out {
        if let Ok(v) = r {
            scratch.clear();
            if let Err(e) = codec::encode_into(v, &mut scratch) {
                *r = Err(Fault::codec(format!("cannot encode the result: {e}")));
            }
        }
    }
    buf.clear();
    codec::encode_into(&WireOut::Mixed(&out), &mut buf)
        .map(|fds| (buf, fds))
        .map_err(|e| format!("cannot encode the results: {e}"))
}

/// Runs the initializer: decodes its argument and calls it; a panic is its failure.
pub(crate) struct Initializer;

impl Invoke for Initializer {
    type Outcome = Result<(), String>;

    fn invoke<A: DeserializeOwned, R: Serialize>(
        f: fn(A) -> R,
        args: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<(), String> {
        let a: A = codec::decode(args, fds)
            .map_err(|e| format!("cannot decode the initializer's arguments: {e}"))?;
        match catch_unwind(AssertUnwindSafe(|| drop(f(a)))) {
            Ok(()) => Ok(()),
            Err(p) => Err(format!(
                "the initializer {}",
                crate::process::panic_info(&*p)
                    .to_string()
                    .trim_start_matches("child process ")
            )),
        }
    }

    fn mismatch() -> Result<(), String> {
        Err("the initializer's type differs between the parent and the worker".into())
    }
}

fn owned(fds: Vec<Descriptor>) -> Vec<OwnedFd> {
    fds.into_iter().map(OwnedFd::from).collect()
}

/// A worker's life: initializer, `Ready`, then one chunk after another until the parent closes
/// its end (or sends something that is not a chunk).
pub(super) fn worker_main(boot: Boot) {
    // Ctrl-C reaches the whole process group; the parent decides what happens to workers.
    crate::sys::process::ignore_sigint();
    let Boot { mut conn, init } = boot;
    if let Some(init) = init
        && let Err(msg) = init.entry.run_received(&init.data.0, owned(init.fds))
    {
        let _ = conn.send(&FromWorker::InitFailed(msg));
        return;
    }
    if conn.send(&FromWorker::Ready).is_err() {
        return;
    }
    let mut msg = Vec::new();
    while let Ok(fds) = conn.recv_parts(&mut msg) {
        let Some((entry, args)) = split_chunk(&msg) else {
            return;
        };
        let start = Instant::now();
        let batch = entry.run_received(args, fds);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if !send_answer(&mut conn, &batch, nanos) {
            return;
        }
        if let Ok((bytes, _)) = batch {
            SPARE.set(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u32 {
        assert!(x != 3, "no threes");
        x * 2
    }

    #[test]
    fn a_chunk_runs_in_process_and_a_panic_is_its_tasks_fault() {
        let mut args = Vec::new();
        let fds = codec::encode_into(&vec![1u32, 3, 5], &mut args).unwrap();
        let (bytes, fds) = TaskEntry::of(double).run(&args, fds).unwrap();
        let super::super::job::WireResults::Mixed(mut out) =
            codec::decode::<super::super::job::WireResults<u32>>(&bytes, fds).unwrap()
        else {
            panic!("a panic makes a mixed chunk")
        };
        assert!(matches!(out[0], Ok(2)));
        assert!(matches!(out[2], Ok(10)));
        let e = out.remove(1).unwrap_err().into_error(1);
        assert!(
            matches!(&e, super::super::TaskError::Panicked { task: 1, info } if info.message() == "no threes")
        );
    }

    #[test]
    fn a_chunk_without_failures_carries_the_values_alone() {
        let mut args = Vec::new();
        let fds = codec::encode_into(&vec![1u32, 5], &mut args).unwrap();
        let (bytes, fds) = TaskEntry::of(double).run(&args, fds).unwrap();
        // Variant 0, two values, no per-task tag.
        assert_eq!(bytes, [0, 2, 2, 10]);
        let back = codec::decode::<super::super::job::WireResults<u32>>(&bytes, fds).unwrap();
        assert!(matches!(back, super::super::job::WireResults::Ok(v) if v == [2, 10]));
    }

    /// A result that refuses to be encoded when odd.
    struct Even(u32);

    impl Serialize for Even {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 % 2 == 1 {
                return Err(serde::ser::Error::custom("odd"));
            }
            s.serialize_u32(self.0)
        }
    }

    fn even(x: u32) -> Even {
        Even(x)
    }

    #[test]
    fn a_result_that_does_not_encode_is_its_tasks_fault() {
        let mut args = Vec::new();
        let fds = codec::encode_into(&vec![1u32, 2], &mut args).unwrap();
        let (bytes, fds) = TaskEntry::of(even).run(&args, fds).unwrap();
        let super::super::job::WireResults::Mixed(mut out) =
            codec::decode::<super::super::job::WireResults<u32>>(&bytes, fds).unwrap()
        else {
            panic!("an encoding failure makes a mixed chunk")
        };
        assert!(matches!(out[1], Ok(2)));
        let e = out.remove(0).unwrap_err().into_error(0);
        assert!(
            matches!(&e, super::super::TaskError::Codec { message, .. } if message.contains("odd")),
            "{e}"
        );
    }

    #[test]
    fn bad_arguments_are_the_chunks_error() {
        let r = TaskEntry::of(double).run(&[0xff, 0xff], Vec::new());
        assert!(r.unwrap_err().starts_with("cannot decode the arguments"));
    }

    #[test]
    fn bytes_round_trip_as_one_string() {
        let mut out = Vec::new();
        codec::encode_plain_into(&ByteBuf(b"abc".to_vec()), &mut out).unwrap();
        assert_eq!(out, b"\x03abc");
        let back: ByteBuf = codec::decode(&out, Vec::new()).unwrap();
        assert_eq!(back.0, b"abc");
    }

    #[test]
    fn a_chunks_head_names_its_entry_and_bad_messages_are_refused() {
        let mut head = Vec::new();
        chunk_head(&TaskEntry::of(double), &mut head).unwrap();
        let mut msg = head.clone();
        msg.extend_from_slice(b"args");
        let (entry, args) = split_chunk(&msg).unwrap();
        assert_eq!(args, b"args");
        let mut input = Vec::new();
        let fds = codec::encode_into(&vec![4u32], &mut input).unwrap();
        assert!(entry.run(&input, fds).is_ok());
        assert!(split_chunk(&[]).is_none());
        assert!(split_chunk(&[200, 1, 2]).is_none());
        assert!(parse_answer(&[0; 8], Vec::new()).is_none());
        assert!(parse_answer(&[7; 9], Vec::new()).is_none());
        let (answer, nanos) = parse_answer(b"\x01\x05\0\0\0\0\0\0\0why", Vec::new()).unwrap();
        assert_eq!((answer.unwrap_err().as_str(), nanos), ("why", 5));
    }
}
