//! Python's `multiprocessing` for Rust: run functions in other processes and share data with
//! them, fast, safe against crashed peers, and without leaks.
//!
//! # A tour
//!
//! ## Processes do not share memory
//!
//! A [`Process`] runs a function in a child process and hands its result back. The child works
//! on its own copy of the arguments: what it changes, the parent does not see.
//!
//! ```
//! # multiproc::init();
//! use multiproc::Process;
//!
//! fn task(mut data: Vec<i32>) -> usize {
//!     data.push(666);
//!     data.len()
//! }
//!
//! let data_list: Vec<i32> = vec![];
//! let p = Process::start(task, data_list.clone()).unwrap();
//! assert_eq!(p.join().unwrap(), 1);
//! assert!(data_list.is_empty());
//! ```
//!
//! Programs that start processes call [`init`] first thing in `main`: with the default
//! [`StartMethod::Spawn`], the child is the same program started again, and `init` is where it
//! learns that it is a child. Test binaries use [`test_support!`] instead.
//!
//! ## Handing open files to a child
//!
//! Arguments are serde values. Objects that wrap a file descriptor, such as [`Descriptor`],
//! travel beside the bytes and arrive open in the child:
//!
//! ```
//! # multiproc::init();
//! use std::io::Write;
//! use multiproc::{Descriptor, Process};
//!
//! fn log(fd: Descriptor) {
//!     writeln!(fd.into_file(), "hello from {}", std::process::id()).unwrap();
//! }
//!
//! let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
//! Process::start(log, Descriptor::from(null)).unwrap().join().unwrap();
//! ```
//!
//! ## Your own types as arguments
//!
//! Arguments and results are serde values, so a struct of your own derives `Serialize` and
//! `Deserialize`. Either add `serde` (with its `derive` feature) to your own `Cargo.toml`, or
//! use the copy this crate re-exports as [`multiproc::serde`](serde) and tell the derive where
//! it lives with `#[serde(crate = "multiproc::serde")]`:
//!
//! ```
//! # multiproc::init();
//! use multiproc::Process;
//! use multiproc::serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! #[serde(crate = "multiproc::serde")]
//! struct Job {
//!     name: String,
//!     rounds: u32,
//! }
//!
//! fn run(job: Job) -> String {
//!     format!("{} x{}", job.name, job.rounds)
//! }
//!
//! let job = Job { name: "bake".into(), rounds: 3 };
//! assert_eq!(Process::start(run, job).unwrap().join().unwrap(), "bake x3");
//! ```
//!
//! ## Failures come back
//!
//! A panic, an exit code or a signal reaches [`Process::join`] as a [`JoinError`]:
//!
//! ```
//! # multiproc::init();
//! use multiproc::{JoinError, Process};
//!
//! fn fail(_: ()) {
//!     panic!("out of coffee");
//! }
//!
//! match Process::start(fail, ()).unwrap().join() {
//!     Err(JoinError::Panicked(info)) => assert_eq!(info.message(), "out of coffee"),
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! ## Sharing memory, with locks that survive a crash
//!
//! A [`Value`] or an [`Array`] lives in shared memory that a child maps too; its lock is
//! process-shared and robust. What the child writes, the parent reads:
//!
//! ```
//! # multiproc::init();
//! use multiproc::{Array, Process, Value};
//!
//! #[allow(clippy::approx_constant)]
//! fn f((n, a): (Value<f64>, Array<i32>)) {
//!     n.store(3.1415927);
//!     for x in a.lock().unwrap().iter_mut() {
//!         *x = -*x;
//!     }
//! }
//!
//! let num = Value::new(0.0f64).unwrap();
//! let arr = Array::from_values(0..10).unwrap();
//! Process::start(f, (num.clone(), arr.clone())).unwrap().join().unwrap();
//! assert_eq!(num.load(), 3.1415927);
//! assert_eq!(arr.to_vec(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
//! ```
//!
//! A process killed while it holds a [`Lock`] (or the lock of a `Value` or `Array`) does not
//! block the others: the next acquirer gets the lock, with an [`OwnerDied`] report so that it
//! can repair the data. [`SharedMemory`] gives named segments that Python's
//! `multiprocessing.shared_memory` opens; [`sync`] has the other primitives (`RLock`,
//! `Semaphore`, `Event`, `Condition`, `Barrier`).
//!
//! ## Python's data: `Object`
//!
//! [`Object`] holds what Python's plain values hold (None, bool, int, float, str, bytes, list,
//! tuple, dict, set), and prints as Python's `repr`:
//!
//! ```
//! use multiproc::obj;
//!
//! let d = obj!({1: "1", "2": 2, 0.25: None});
//! assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
//! ```
//!
//! ## Pipes between processes
//!
//! [`pipe`] returns two connected [`Connection`]s, as Python's `Pipe()`. A connection end is
//! itself a value that can be handed to a child (or sent through another connection):
//!
//! ```
//! # multiproc::init();
//! use multiproc::{Connection, Process, pipe};
//!
//! fn f(mut conn: Connection) {
//!     conn.send(&("沐风", 666, "精易")).unwrap();
//! }
//!
//! let (mut parent_conn, child_conn) = pipe(true).unwrap();
//! let p = Process::start(f, child_conn).unwrap();
//! let data: (String, i32, String) = parent_conn.recv().unwrap();
//! assert_eq!(data.1, 666);
//! p.join().unwrap();
//! ```
//!
//! ## Between machines, and with Python
//!
//! A [`Listener`] and a [`Client`] connect unrelated processes over Unix sockets or TCP, with
//! the frames and the authkey handshake of Python's `multiprocessing.connection`: either side
//! may be Python. [`Connection::send_bytes`]/[`recv_bytes`](Connection::recv_bytes) match
//! Python's methods byte for byte; with the `python` feature, `Codec::Pickle` makes
//! [`send`](Connection::send)/[`recv`](Connection::recv) match Python's too.
//!
//! ```
//! use multiproc::{Address, Client, Listener};
//!
//! let listener = Listener::options()
//!     .authkey(b"secret password")
//!     .bind("127.0.0.1:0".parse::<Address>().unwrap())
//!     .unwrap();
//! let address = listener.address().clone();
//! let server = std::thread::spawn(move || {
//!     let mut conn = listener.accept().unwrap();
//!     let msg = conn.recv_bytes().unwrap();
//!     conn.send_bytes(&msg.to_ascii_uppercase()).unwrap();
//! });
//! let mut conn = Client::new().authkey(b"secret password").connect(&address).unwrap();
//! conn.send_bytes(b"hello").unwrap();
//! assert_eq!(conn.recv_bytes().unwrap(), b"HELLO");
//! server.join().unwrap();
//! ```
//!
//! ## Queues
//!
//! A [`Queue`] lives in shared memory: any process puts and gets serde values, and a process
//! killed in the middle of a `put` or `get` does not break it (see [`queue`]).
//!
//! ```
//! # multiproc::init();
//! use multiproc::{Object, Process, Queue, obj};
//!
//! fn f(q: Queue<Object>) {
//!     q.put(obj!(["沐风", 666, "精易"])).unwrap();
//! }
//!
//! let q = Queue::new().unwrap();
//! Process::start(f, q.clone()).unwrap().join().unwrap();
//! assert_eq!(q.get().unwrap().to_string(), "['沐风', 666, '精易']");
//! ```
//!
//! ## A manager: shared objects in a server process
//!
//! A [`Manager`](manager::Manager) holds dicts, lists, queues, locks and other objects in a
//! server (a child process, a thread, or `multiproc serve` on another machine); proxies call
//! their methods there, from any process that has them:
//!
//! ```
//! # multiproc::init();
//! use multiproc::Process;
//! use multiproc::manager::{DictProxy, ListProxy, Manager};
//!
//! fn f((d, l): (DictProxy, ListProxy)) {
//!     d.set(1, "1").unwrap();
//!     d.set("2", 2).unwrap();
//!     d.set(0.25, ()).unwrap();
//!     l.reverse().unwrap();
//! }
//!
//! let manager = Manager::start().unwrap();
//! let d = manager.dict().unwrap();
//! let l = manager.list((0..10).collect::<Vec<i32>>()).unwrap();
//! Process::start(f, (d.clone(), l.clone())).unwrap().join().unwrap();
//! assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
//! assert_eq!(l.to_string(), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
//! ```
//!
//! Types of your own are served beside the built-in ones ([`manager::Managed`], registered
//! with `Manager::options().register`), and a server bounds what its clients may store
//! (`max_object_size`, `max_memory`). Python's own manager clients are served too, and
//! `Manager::connect_python` reaches a Python manager server (see [`manager`]).
//!
//! ## Beyond one machine: Redis
//!
//! With the feature `redis`, `multiproc::redis::Redis::connect(url)` hands out the same
//! proxy types (`DictProxy`, `QueueProxy`, `LockProxy`, …) with their objects held by name in
//! Redis or Valkey: a program moves from a manager to Redis by changing its connect line.
//! Queues there survive a consumer killed with a message in hand, and locks are leases that a
//! dead holder gives up (see the `redis` module).
//!
//! ## A pool of workers
//!
//! A [`Pool`](pool::Pool) runs a function on many inputs in worker processes, in chunks sized
//! by measurement; `imap` streams, and a worker that dies fails only the tasks it held:
//!
//! ```
//! # multiproc::init();
//! use multiproc::pool::Pool;
//!
//! fn collatz_steps(mut n: u64) -> u32 {
//!     let mut steps = 0;
//!     while n > 1 {
//!         n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
//!         steps += 1;
//!     }
//!     steps
//! }
//!
//! let pool = Pool::new(2).unwrap();
//! let steps = pool.map(collatz_steps, 1..=10_000u64).unwrap();
//! assert_eq!(steps[26], 111); // 27 takes 111 steps
//! ```
//!
//! # Differences from Python multiprocessing
//!
//! - **Targets are functions, not closures.** A target is a non-capturing `fn(A) -> R`; its
//!   arguments and result are serde values (Python pickles the target and its arguments).
//!   [`Process::join`] returns the function's result, which Python's `join` does not.
//! - **Errors instead of tracebacks.** A panic in a child comes back to `join` with its
//!   message, location and (with `RUST_BACKTRACE`) backtrace, and the child prints nothing;
//!   Python prints the traceback in the child and sets `exitcode` to 1. A child dropped
//!   without `join` has its panic printed by the parent.
//! - **`init()` instead of `if __name__ == '__main__'`.** The spawn method re-executes the
//!   program; `init` must come first in `main`. Starting a process before `init` was called is
//!   an error, not the endless recursion Python produces without the guard.
//! - **Start-up is watched.** A spawned child that does not reach its entry point within a
//!   time-out (default 60 s) is killed and reported; Python waits forever.
//! - **Daemons die with their parent, however it dies.** Python terminates daemonic children
//!   only at a clean exit of the parent; here a daemon child is killed by the kernel even when
//!   the parent is killed with `SIGKILL`. Python joins non-daemonic children at exit; here they
//!   keep running (join them yourself), even when the parent returns from `main` right after
//!   starting them.
//! - **`SIGCHLD` stays yours.** Ignoring `SIGCHLD` (or reaping children elsewhere) never makes
//!   a start fail; a child's exit status may then be lost ([`JoinError::StatusUnknown`]), but
//!   `is_alive()` and `join` stay truthful.
//! - **No zombies.** A dropped, un-joined [`Process`] is reaped in the background; in Python it
//!   stays a zombie until the next `active_children()` or process start.
//! - **Connections are bounded and time out.** Every receive checks a maximum message size
//!   (1 GiB by default, configurable) before reading the message, and the authkey handshake
//!   has a time-out (5 s by default); Python has neither. Handshakes run side by side, so a
//!   client that connects and stays silent delays no one else; Python's `accept` serves one
//!   client at a time and waits forever. The HMAC-MD5 handshake of Python 3.11 and older is
//!   refused unless enabled. See [`connection`].
//! - **Typed messages carry no type.** `send`/`recv` use postcard, which is not
//!   self-describing: both ends must agree on each message's type (use one enum for several
//!   kinds of message). Pickle, as in Python, is self-describing (`Codec::Pickle`).
//! - **Locks survive their holders.** A process killed while it holds a lock leaves it to the
//!   next acquirer with an [`OwnerDied`] report; in Python every other process waits forever.
//!   The price: sharing a locked object means trusting the processes it is shared with (see
//!   [`shm`]). Anonymous segments (the default for `Value`, `Array` and locks) are freed by the
//!   kernel with their last user, so nothing is left in `/dev/shm` after a crash.
//! - **Queues have no feeder thread, and a bound.** `put` copies into shared memory and
//!   reports its errors itself (Python's feeder thread drops an unpicklable object silently);
//!   the default capacity is 1024 messages (large ones included: they spill to memory of the
//!   queue's segment when no consumer reads them as they come).
//!   A producer or consumer killed with `SIGKILL` does not break the queue: a dead producer's
//!   half-written message is skipped, a message a dead consumer had not returned is delivered
//!   again; Python's queue hangs every producer when one dies holding its pipe's lock.
//! - **Conditions wake exactly `n`.** `Condition::notify_n(guard, n)` wakes exactly `n` waiters, even
//!   when waiters in other processes are killed; Python's can hang or lose wake-ups then.
//! - **Shared memory cannot crash its reader.** `SharedMemory::read_at`/`write_at` copy
//!   through the descriptor, so a process that shrinks the segment causes an error, not the
//!   `SIGBUS` Python's `buf` faults with. `RawValue`/`RawArray` copy each unit of up to 8 bytes
//!   atomically, so they are safe to use from several threads.
//! - **Hostile data is bounded.** The pickle decoder caps what a frame may build (64 MiB plus
//!   64 bytes per input byte), its depth, and the digits of decimal ints (4300, as CPython);
//!   an int of more than 4300 digits prints in hexadecimal, where Python's `repr` raises. A
//!   borrowed byte string (`&[u8]`) converts to `bytes`; an owned `Vec<u8>` is a list of ints,
//!   as serde sees it.
//! - **Managers run nothing from the wire, and clean up after the dead.** Python's manager
//!   unpickles requests (code execution for anyone with the authkey), keeps a thread per
//!   client, keeps a dead client's objects and locks forever, and loses updates in
//!   `d[k] += 1`. Here requests are plain data, one thread serves all clients, a dead client's
//!   references and locks are released at once, `update_with` changes a value in one step, and
//!   the memory clients may fill is bounded (`MemoryError` past it). See [`manager`].
//! - **A pool survives its workers.** A pool worker killed by a signal or that exits fails
//!   the tasks it held, with the signal or exit code, and is replaced; Python's `Pool` hangs,
//!   and `ProcessPoolExecutor` breaks for good. Chunk sizes adapt to the measured task time
//!   (Python's `chunksize` must be tuned by hand), `imap` reads its input lazily, and an
//!   initializer that keeps failing is an error, not an endless respawn. See [`pool`].
//! - **Linux first.** The crate uses `memfd`, `pidfd`, `SCM_RIGHTS` and futexes; other systems
//!   are not supported yet.
//!
//! # What it does not do (yet)
//!
//! - `forkserver` start method.
//! - Targets living in shared libraries loaded at run time (the spawn method finds targets by
//!   their offset inside the executable).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod connection;
mod descriptor;
mod error;
pub mod manager;
pub mod object;
pub mod pool;
pub mod process;
pub mod queue;
#[cfg(feature = "redis")]
pub mod redis;
pub mod shm;
pub mod sync;
pub(crate) mod sys;
#[cfg(test)]
mod testing;

/// The `serde` this crate is built with, for deriving `Serialize`/`Deserialize` on argument
/// types without a `serde` dependency of your own (see the tour).
pub use serde;

pub use codec::CodecError;
pub use connection::{
    AcceptError, Address, AuthError, BindError, Client, ConnectError, Connection, Listener,
    RecvError, SendError, TryHandshakeError, Unauthenticated, Waitable, pipe, wait,
};
pub use descriptor::Descriptor;
pub use error::Error;
pub use object::Object;
#[doc(hidden)]
pub use process::__mark_test_harness;
pub use process::{
    Builder, JoinError, JoinTimeoutError, PanicInfo, Process, ProcessInfo, StartError, StartMethod,
    active_children, cpu_count, current_process, init, parent_process,
};
pub use queue::{JoinableQueue, Queue, SimpleQueue};
pub use shm::{Array, RawArray, RawValue, SharedMemory, ShmSafe, Value};
pub use sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, OwnerDied, RLock, Semaphore};
