//! Supervision: one thread per worker slot owns that worker's process and channel, hands it one
//! chunk at a time, and replaces it when it dies.
//!
//! Because the slot's thread alone talks to its worker, it always knows which chunk the worker
//! holds: a death (seen on the worker's pidfd, or as the end of its socket) is that chunk's
//! error, and nobody else's. No lock is shared with a worker, so a worker cannot die holding
//! one.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::{PoolError, TaskError, WorkerExit};
use super::job::Chunk;
use super::worker::{Answer, Boot, FromWorker, InitCall, chunk_head, parse_answer, worker_main};
use crate::connection::{Connection, pipe};
use crate::process::{JoinError, Process, StartMethod};
use crate::sys::{process as os, socket};

/// How many workers in a row may fail to start (initializer failure, death during start-up)
/// before a slot gives up.
pub(super) const MAX_START_FAILURES: u32 = 3;

/// How long a new worker may take to report that it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What every worker is started with.
pub(super) struct Config {
    pub(super) processes: usize,
    pub(super) method: StartMethod,
    pub(super) daemon: bool,
    pub(super) max_tasks: Option<u32>,
    pub(super) timeout: Option<Duration>,
    pub(super) retries: u32,
    pub(super) init: Option<InitCall>,
}

/// A source of chunks that needs no caller to pull it (`map_async`): asked by idle slots.
pub(super) trait Refill: Send + Sync {
    /// The next chunk; `None` when the source is exhausted.
    fn next(&self) -> Option<Chunk>;
    /// The pool will not read the source any more: its call ends with `error` for the next
    /// task.
    fn abandon(&self, error: &TaskError);
}

/// A worker slot as the rest of the pool sees it.
#[derive(Default)]
pub(super) struct SlotView {
    /// The current worker's pid.
    pub(super) pid: Option<u32>,
    /// A duplicate of the current worker's pidfd, so that `terminate` can kill it.
    pidfd: Option<OwnedFd>,
    /// The slot stopped replacing its worker.
    gone: bool,
}

/// Work and the pool's state, under one lock.
pub(super) struct Sched {
    pub(super) queue: VecDeque<Chunk>,
    pub(super) refills: Vec<Arc<dyn Refill>>,
    /// No new calls are accepted.
    pub(super) closed: bool,
    /// Everything stops now.
    pub(super) terminated: bool,
    /// Every slot gave up: why.
    pub(super) broken: Option<String>,
    /// Calls whose input may still produce chunks.
    pub(super) live_jobs: usize,
    pub(super) slots: Vec<SlotView>,
    /// Slots still starting their first worker.
    starting: usize,
    /// Slots whose first worker is ready.
    ready: usize,
    /// The first start-up failure.
    start_error: Option<PoolError>,
}

/// What the pool and its slot threads share.
pub(super) struct Shared {
    sched: Mutex<Sched>,
    /// Signalled when work arrives or the pool's state changes.
    work: Condvar,
    pub(super) config: Config,
}

impl Shared {
    pub(super) fn new(config: Config) -> Arc<Shared> {
        let n = config.processes;
        Arc::new(Shared {
            sched: Mutex::new(Sched {
                queue: VecDeque::new(),
                refills: Vec::new(),
                closed: false,
                terminated: false,
                broken: None,
                live_jobs: 0,
                slots: (0..n).map(|_| SlotView::default()).collect(),
                starting: n,
                ready: 0,
                start_error: None,
            }),
            work: Condvar::new(),
            config,
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts accepting chunks of a new call; `Err` when the pool takes no new work.
    pub(super) fn begin_job(&self) -> Result<(), TaskError> {
        let mut s = self.lock();
        if s.closed || s.terminated {
            return Err(TaskError::Closed);
        }
        if let Some(e) = refusal(&s, 0) {
            return Err(e);
        }
        s.live_jobs += 1;
        Ok(())
    }

    /// A call's input is exhausted (or its caller gave up on it).
    pub(super) fn end_job(&self) {
        let mut s = self.lock();
        s.live_jobs = s.live_jobs.saturating_sub(1);
        drop(s);
        self.work.notify_all();
    }

    /// Queues a chunk; if the pool cannot run it, fails it instead.
    pub(super) fn submit(&self, chunk: Chunk) {
        let mut s = self.lock();
        if let Some(e) = refusal(&s, chunk.first) {
            drop(s);
            chunk.fail(&e);
            return;
        }
        s.queue.push_back(chunk);
        drop(s);
        self.work.notify_one();
    }

    /// Adds a source that idle slots pull from.
    pub(super) fn add_refill(&self, r: Arc<dyn Refill>) {
        let mut s = self.lock();
        s.refills.push(r);
        drop(s);
        self.work.notify_all();
    }

    /// Waits until the pool can run work. With an initializer, that is when every slot has
    /// its first worker ready (an error when one failed, so that a failing initializer is
    /// the pool's error); without, when one slot has (the others catch up while it works),
    /// or an error when every first worker failed.
    pub(super) fn await_start(&self) -> Result<(), PoolError> {
        let all = self.config.init.is_some();
        let mut s = self.lock();
        loop {
            let failed = s.start_error.is_some();
            if s.starting == 0 || (all && failed) || (!all && s.ready > 0) {
                break;
            }
            s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        match s.start_error.take() {
            Some(e) if all || s.ready == 0 => Err(e),
            _ => Ok(()),
        }
    }

    /// Stops taking calls; queued work still runs.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }

    /// Kills every worker and fails every queued chunk.
    pub(super) fn terminate(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.terminated = true;
        s.live_jobs = 0;
        let refills = std::mem::take(&mut s.refills);
        let queued: Vec<Chunk> = s.queue.drain(..).collect();
        for slot in &s.slots {
            if let Some(fd) = &slot.pidfd {
                let _ = os::pidfd_signal(fd.as_fd(), 9);
            }
        }
        drop(s);
        self.work.notify_all();
        for c in queued {
            let first = c.first;
            c.fail(&TaskError::Terminated { task: first });
        }
        for r in refills {
            r.abandon(&TaskError::Terminated { task: 0 });
        }
    }

    /// Whether an idle slot would stop now (so a dead worker need not be replaced).
    fn stopping(&self) -> bool {
        let s = self.lock();
        s.terminated || (s.closed && s.live_jobs == 0 && s.queue.is_empty())
    }

    /// The current workers' pids.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.lock().slots.iter().filter_map(|s| s.pid).collect()
    }

    /// The next chunk for an idle slot: `None` when the slot should stop.
    fn next_work(&self) -> Option<Chunk> {
        let mut s = self.lock();
        loop {
            if s.terminated {
                return None;
            }
            if let Some(c) = s.queue.pop_front() {
                return Some(c);
            }
            if let Some(r) = s.refills.first().cloned() {
                drop(s);
                if let Some(c) = r.next() {
                    return Some(c);
                }
                s = self.lock();
                if let Some(i) = s.refills.iter().position(|x| Arc::ptr_eq(x, &r)) {
                    s.refills.remove(i);
                    s.live_jobs = s.live_jobs.saturating_sub(1);
                    self.work.notify_all();
                }
                continue;
            }
            if s.closed && s.live_jobs == 0 {
                return None;
            }
            s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A slot's worker changed (`None`: it has none now).
    fn set_worker(&self, slot: usize, w: Option<&Worker>) {
        let mut s = self.lock();
        let view = &mut s.slots[slot];
        view.pid = w.map(|w| w.pid);
        view.pidfd = w.and_then(|w| crate::sys::dup(w.proc.sentinel()).ok());
        // A kill that `terminate` sent before this worker was registered would have missed it.
        if s.terminated
            && let Some(w) = w
        {
            let _ = w.proc.kill();
        }
    }

    /// The slot's first worker started (`Ok`) or could not.
    fn started(&self, r: Result<(), PoolError>) {
        let mut s = self.lock();
        s.starting = s.starting.saturating_sub(1);
        match r {
            Ok(()) => s.ready += 1,
            Err(e) => {
                s.start_error.get_or_insert(e);
            }
        }
        drop(s);
        self.work.notify_all();
    }

    /// The slot gives up: it starts no more workers. When it was the last, queued work fails.
    fn slot_gone(&self, slot: usize, reason: String) {
        let mut s = self.lock();
        s.slots[slot].gone = true;
        s.slots[slot].pid = None;
        s.slots[slot].pidfd = None;
        if s.terminated || s.slots.iter().any(|v| !v.gone) {
            return;
        }
        s.broken = Some(reason.clone());
        let refills = std::mem::take(&mut s.refills);
        s.live_jobs = 0;
        let queued: Vec<Chunk> = s.queue.drain(..).collect();
        drop(s);
        self.work.notify_all();
        let error = TaskError::NoWorkers { task: 0, reason };
        for c in queued {
            c.fail(&error);
        }
        for r in refills {
            r.abandon(&error);
        }
    }
}

/// Why a chunk cannot be queued now, if it cannot.
fn refusal(s: &Sched, task: u64) -> Option<TaskError> {
    if s.terminated {
        Some(TaskError::Terminated { task })
    } else {
        s.broken.as_ref().map(|reason| TaskError::NoWorkers {
            task,
            reason: reason.clone(),
        })
    }
}

/// A running worker.
struct Worker {
    proc: Process<()>,
    conn: Connection,
    pid: u32,
    /// Chunks it has run.
    chunks: u32,
}

impl Worker {
    /// Kills the worker (if it still runs) and tells how it ended.
    fn reap(self) -> WorkerExit {
        let _ = self.proc.kill();
        drop(self.conn);
        match self.proc.join() {
            Ok(()) => WorkerExit::Code(0),
            Err(JoinError::Killed(s)) => WorkerExit::Signal(s),
            Err(JoinError::Panicked(_)) => WorkerExit::Code(1),
            Err(e) => e.exitcode().map_or(WorkerExit::Unknown, |c| {
                if c < 0 {
                    WorkerExit::Signal(-c)
                } else {
                    WorkerExit::Code(c)
                }
            }),
        }
    }

    /// Lets the worker finish: it exits when its channel closes.
    fn retire(self) {
        drop(self.conn);
        let _ = self.proc.join();
    }
}

/// Starts a worker for `slot` and waits for it to be ready. The slot shows the worker from
/// the start, so that `terminate` can kill one stuck in its initializer.
fn spawn_worker(shared: &Shared, slot: usize) -> Result<Worker, PoolError> {
    let config = &shared.config;
    let (mut mine, mut theirs) = pipe(true).map_err(PoolError::Os)?;
    // Both ends are this program: a chunk's size is bounded by the chunking rule and the
    // caller's data, not by a frame limit meant for strangers.
    mine.set_max_frame(u64::MAX);
    theirs.set_max_frame(u64::MAX);
    let init = match &config.init {
        Some(i) => Some(i.try_clone().map_err(PoolError::Os)?),
        None => None,
    };
    let proc = Process::builder()
        .daemon(config.daemon)
        .method(config.method)
        .name("PoolWorker")
        .start(worker_main, Boot { conn: theirs, init })
        .map_err(PoolError::Start)?;
    let mut w = Worker {
        pid: proc.pid(),
        proc,
        conn: mine,
        chunks: 0,
    };
    shared.set_worker(slot, Some(&w));
    let deadline = Instant::now() + READY_TIMEOUT;
    let ready = socket::poll_in(&[w.conn.as_fd(), w.proc.sentinel()], Some(deadline))
        .map_err(PoolError::Os)?;
    let msg = if ready[0] {
        w.conn.recv::<FromWorker>().ok()
    } else {
        None
    };
    if !matches!(msg, Some(FromWorker::Ready)) {
        shared.set_worker(slot, None);
    }
    match msg {
        Some(FromWorker::Ready) => Ok(w),
        Some(FromWorker::InitFailed(why)) => {
            let _ = w.reap();
            Err(PoolError::Init(why))
        }
        _ if !ready[0] && !ready[1] => {
            let _ = w.reap();
            Err(PoolError::Init(format!(
                "the worker was not ready within {READY_TIMEOUT:?}"
            )))
        }
        _ => {
            let pid = w.pid;
            let exit = w.reap();
            Err(PoolError::Init(format!(
                "worker process {pid} {exit} during its start-up"
            )))
        }
    }
}

/// How a chunk ended on a worker that did not answer it.
enum Lost {
    /// The worker died (or broke the protocol).
    Died,
    /// The chunk overran its time-out.
    TimedOut(Duration),
}

/// A slot's buffers, kept from one chunk to the next.
#[derive(Default)]
struct Buffers {
    /// The head of the chunk's message.
    head: Vec<u8>,
    /// The worker's answer.
    answer: Vec<u8>,
}

/// Sends `chunk` and waits for the answer, read into `bufs.answer`.
fn run_chunk(
    w: &mut Worker,
    chunk: &Chunk,
    timeout: Option<Duration>,
    bufs: &mut Buffers,
) -> Result<Vec<OwnedFd>, Lost> {
    if chunk_head(&chunk.entry, &mut bufs.head).is_err() {
        return Err(Lost::Died);
    }
    let fds: Vec<BorrowedFd<'_>> = chunk.fds.iter().map(AsFd::as_fd).collect();
    if w.conn.send_parts(&[&bufs.head, &chunk.data], &fds).is_err() {
        return Err(Lost::Died);
    }
    let limit = timeout.map(|t| t.saturating_mul(chunk.n));
    let deadline = limit.and_then(|t| Instant::now().checked_add(t));
    let ready =
        socket::poll_in(&[w.conn.as_fd(), w.proc.sentinel()], deadline).map_err(|_| Lost::Died)?;
    if !ready[0] && !ready[1] {
        return Err(Lost::TimedOut(timeout.unwrap_or_default()));
    }
    // An answer written before the worker ended is readable now; without one, the worker is
    // gone (a process it forked may still hold its end of the socket open: do not wait).
    if !ready[0] {
        return Err(Lost::Died);
    }
    w.conn.recv_parts(&mut bufs.answer).map_err(|_| Lost::Died)
}

/// Hands a chunk's answer to its job. Decoding runs the result type's `Deserialize`; should
/// it panic, the chunk's tasks fail instead of the slot (and the caller waiting on them).
fn deliver(chunk: &Chunk, answer: Answer<'_>, nanos: u64) {
    let run =
        std::panic::AssertUnwindSafe(|| chunk.job.complete(chunk.first, chunk.n, answer, nanos));
    if std::panic::catch_unwind(run).is_err() {
        chunk.job.fail(
            chunk.first,
            chunk.n,
            &TaskError::Codec {
                task: chunk.first,
                message: "decoding the results panicked".into(),
            },
        );
    }
}

/// The life of one slot: start a worker, feed it, replace it, until the pool stops.
pub(super) fn run_slot(shared: Arc<Shared>, slot: usize) {
    let config = &shared.config;
    let mut failures = 0;
    let mut first = true;
    let mut worker: Option<Worker> = None;
    let mut bufs = Buffers::default();
    loop {
        let mut w = match worker.take() {
            Some(w) => w,
            None if !first && shared.stopping() => {
                shared.set_worker(slot, None);
                return;
            }
            None => match spawn_worker(&shared, slot) {
                Ok(w) => {
                    failures = 0;
                    if first {
                        first = false;
                        shared.started(Ok(()));
                    }
                    w
                }
                Err(e) => {
                    let reason = e.to_string();
                    if first {
                        first = false;
                        shared.started(Err(e));
                    }
                    failures += 1;
                    if failures >= MAX_START_FAILURES || shared.lock().terminated {
                        shared.slot_gone(slot, reason);
                        return;
                    }
                    continue;
                }
            },
        };
        let Some(mut chunk) = shared.next_work() else {
            shared.set_worker(slot, None);
            w.retire();
            return;
        };
        let answer = run_chunk(&mut w, &chunk, config.timeout, &mut bufs)
            .and_then(|fds| parse_answer(&bufs.answer, fds).ok_or(Lost::Died));
        match answer {
            Ok((answer, nanos)) => {
                deliver(&chunk, answer, nanos);
                super::job::recycle(std::mem::take(&mut chunk.data));
                w.chunks += 1;
                if config.max_tasks.is_some_and(|m| w.chunks >= m) {
                    shared.set_worker(slot, None);
                    w.retire();
                } else {
                    worker = Some(w);
                }
            }
            Err(lost) => {
                shared.set_worker(slot, None);
                let pid = w.pid;
                let exit = w.reap();
                let task = chunk.first;
                let error = match lost {
                    _ if shared.lock().terminated => TaskError::Terminated { task },
                    Lost::TimedOut(timeout) => TaskError::TimedOut { task, pid, timeout },
                    Lost::Died => TaskError::WorkerDied { task, pid, exit },
                };
                let retry =
                    chunk.tries < config.retries && !matches!(error, TaskError::Terminated { .. });
                if retry {
                    chunk.tries += 1;
                    let mut s = shared.lock();
                    if let Some(e) = refusal(&s, task) {
                        drop(s);
                        chunk.fail(&e);
                    } else {
                        s.queue.push_front(chunk);
                    }
                } else {
                    chunk.fail(&error);
                }
            }
        }
    }
}
