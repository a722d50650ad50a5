//! What the server loop does with a client's requests: runs them in order (on the loop, or on a
//! worker thread for the long ones), joins sessions, and frames the replies.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, PoisonError};

use super::{Client, Loop, MAX_OUTBOX, READ_STEP, Shared, TURN_BYTES, TURN_REQUESTS};
use crate::codec;
use crate::connection::frame::header;
use crate::manager::protocol::{Handled, Next, Reply, Request, Session, replies};
use crate::manager::table::Holder;
use crate::manager::{Exception, ExceptionKind};
use crate::object::Object;

impl Client {
    pub(super) fn queue_reply(&mut self, reply: &Reply, shared: &Shared) {
        #[cfg(not(feature = "python"))]
        let _ = shared;
        match &self.python {
            #[cfg(feature = "python")]
            Some(address) => {
                let mut payload = Vec::new();
                crate::manager::python::encode(reply, &shared.table, address, &mut payload);
                queue_frame(&mut self.outbox, &payload);
            }
            _ => queue_reply(&mut self.outbox, reply),
        }
    }
}

/// The sessions of a server: by token, their holder id and how many connections share them.
#[derive(Default)]
pub(super) struct Sessions {
    by_token: HashMap<Vec<u8>, (u64, usize)>,
    next: u64,
}

/// The shortest session token a client may choose: 128 random bits.
pub(super) const MIN_SESSION_TOKEN: usize = 16;

/// `session(token)`: the connection joins the session named by the client's secret `token`
/// (created on first use), whose references all its connections share; they are released
/// when the last of them closes. Only before the connection holds anything of its own.
pub(super) fn join_session(sessions: &mut Sessions, c: &mut Client, req: Request) -> Reply {
    let error = |msg: &str| Reply::Error(Exception::msg(ExceptionKind::ValueError, msg));
    if c.session.is_some() {
        return error("this connection is in a session already");
    }
    let token = match req.args.as_slice() {
        [Object::Bytes(t)] if t.len() >= MIN_SESSION_TOKEN && t.len() <= 64 => t.clone(),
        _ => return error("session takes one token of 16 to 64 random bytes"),
    };
    sessions.join(c, token);
    Reply::Return(Object::None)
}

impl Sessions {
    /// Puts connection `c` in the session of `token`.
    pub(super) fn join(&mut self, c: &mut Client, token: Vec<u8>) {
        let Sessions { by_token, next } = self;
        let entry = by_token.entry(token.clone()).or_insert_with(|| {
            *next += 1;
            (*next, 0)
        });
        entry.1 += 1;
        c.session = Some(Holder::Session(entry.0));
        c.session_token = token;
    }

    /// Takes connection `c` out of its session: the session, if `c` was its last connection
    /// (whose references then go).
    pub(super) fn leave(&mut self, c: &Client) -> Option<Holder> {
        let Some(Holder::Session(id)) = c.session else {
            return None;
        };
        let entry = self.by_token.get_mut(&c.session_token)?;
        entry.1 -= 1;
        if entry.1 > 0 {
            return None;
        }
        self.by_token.remove(&c.session_token);
        Some(Holder::Session(id))
    }
}

/// Takes what one request did for its client: the reply queued, or the client marked as
/// waiting; a `shutdown` stops the server.
pub(super) fn apply(c: &mut Client, h: &Handled, shared: &Shared) {
    match &h.reply {
        Some(r) => c.queue_reply(r, shared),
        None => c.waiting = true,
    }
    if h.next == Next::Shutdown {
        shared.stop();
    }
}

/// The first object a proxy among the arguments of `req` names that does not live.
#[cfg(feature = "python")]
fn missing_proxy(table: &crate::manager::table::Table, req: &Request) -> Option<u64> {
    let args = || req.args.iter().chain(req.kwargs.values());
    if !crate::manager::nested::has_proxy(args()) {
        return None;
    }
    let ids = crate::manager::nested::proxies_in(args());
    ids.into_keys().find(|id| table.info(*id).is_none())
}

/// Appends the frame of `reply` to `outbox`.
pub(super) fn queue_reply(outbox: &mut Vec<u8>, reply: &Reply) {
    thread_local! {
        /// Where replies are encoded: one buffer for all of them, not one each.
        static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PAYLOAD.with_borrow_mut(|payload| {
        payload.clear();
        if let Err(e) = codec::encode_plain_into(reply, payload) {
            // A value the codec cannot encode (none of the manager's can fail; kept for the
            // day a custom type's value does): the client gets the reason instead.
            let why = Reply::Error(Exception::msg(
                ExceptionKind::ValueError,
                format!("the reply cannot be encoded: {e}"),
            ));
            payload.clear();
            codec::encode_plain_into(&why, payload).expect("a str always encodes");
        }
        queue_frame(outbox, payload);
        if payload.capacity() > READ_STEP {
            // A large reply's buffer is not kept.
            *payload = Vec::new();
        }
    });
}

/// Appends a frame holding `payload` to `outbox`.
pub(super) fn queue_frame(outbox: &mut Vec<u8>, payload: &[u8]) {
    let mut h = [0u8; 12];
    outbox.extend_from_slice(header(payload.len(), &mut h));
    outbox.extend_from_slice(payload);
}

/// Calls that touch more items than this run on a worker thread (about a millisecond of work):
/// the loop, and every other client, go on meanwhile.
pub(super) const HEAVY_COST: u64 = 100_000;

/// Worker threads for long calls.
pub(super) const WORKERS: usize = 2;

/// A long call, for a worker.
pub(super) struct Job {
    token: u64,
    holder: Holder,
    who: Holder,
    req: Request,
}

/// The threads that run long calls, and what they finished.
pub(super) struct Workers {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    rx: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<Job>>>,
    shared: Arc<Shared>,
    done: Arc<std::sync::Mutex<Vec<(u64, Handled)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A worker thread: runs the long calls it receives until the loop stops.
pub(super) fn work(
    rx: &std::sync::Mutex<std::sync::mpsc::Receiver<Job>>,
    done: &std::sync::Mutex<Vec<(u64, Handled)>>,
    shared: &Shared,
) {
    loop {
        let job = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let session = Session {
            table: &shared.table,
            names: &shared.names,
            holder: job.holder,
            who: job.who,
        };
        let handled = session.handle(job.req);
        done.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((job.token, handled));
        let _ = shared.waker.wake();
    }
}

impl Workers {
    /// The workers of the loop serving `shared`; their threads start with the first long
    /// call, so that a server that has none starts sooner.
    pub(super) fn start(shared: &Arc<Shared>) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        Ok(Workers {
            jobs: Some(tx),
            rx: Arc::new(std::sync::Mutex::new(rx)),
            shared: Arc::clone(shared),
            done: Arc::new(std::sync::Mutex::new(Vec::new())),
            threads: Vec::new(),
        })
    }

    /// Hands `job` to a worker; back if no worker thread can be started (then the loop
    /// runs it itself).
    pub(super) fn submit(&mut self, job: Job) -> Result<(), Job> {
        while self.threads.len() < WORKERS {
            let (rx, done) = (Arc::clone(&self.rx), Arc::clone(&self.done));
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("multiproc-manager-{}", self.threads.len()))
                .spawn(move || work(&rx, &done, &shared));
            match spawned {
                Ok(t) => self.threads.push(t),
                Err(_) if self.threads.is_empty() => return Err(job),
                Err(_) => break,
            }
        }
        match &self.jobs {
            // The workers live as long as the loop; a send can only fail once they stopped.
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    pub(super) fn take_done(&self) -> Vec<(u64, Handled)> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Lets the workers finish the call in hand, and waits for them.
    pub(super) fn stop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Loop<'_> {
    /// Runs the client's queued requests until one waits.
    pub(super) fn serve(&mut self, token: u64) {
        let mut woken = Vec::new();
        {
            let Some(c) = self.clients.get_mut(&token) else {
                return;
            };
            // A client whose replies pile up unread is served no further until it reads them.
            let (start, mut served) = (c.outbox.len(), 0);
            while !c.waiting && !c.busy && c.outbox.len() - c.sent <= MAX_OUTBOX / 2 {
                if served == TURN_REQUESTS || c.outbox.len() - start > TURN_BYTES {
                    // Its turn is over: the others are served before the rest.
                    if !c.inbox.is_empty() {
                        self.pending.push_back(token);
                    }
                    break;
                }
                served += 1;
                let Some(req) = c.inbox.pop_front() else {
                    break;
                };
                #[allow(unused_mut)]
                let mut req = match req {
                    Ok(req) => req,
                    #[cfg(feature = "python")]
                    Err(e) if c.python.is_some() => {
                        let mut payload = Vec::new();
                        crate::manager::python::refused(&e, &mut payload);
                        queue_frame(&mut c.outbox, &payload);
                        continue;
                    }
                    Err(e) => {
                        c.queue_reply(
                            &Reply::Error(Exception::msg(
                                ExceptionKind::ValueError,
                                format!("not a manager request: {e}"),
                            )),
                            self.shared,
                        );
                        continue;
                    }
                };
                #[cfg(feature = "python")]
                if let Some(address) = &c.python {
                    let mut payload = Vec::new();
                    match crate::manager::python::step(self.shared, req, address, &mut payload) {
                        crate::manager::python::Step::Done => {
                            queue_frame(&mut c.outbox, &payload);
                            continue;
                        }
                        crate::manager::python::Step::Call(r) => req = r,
                    }
                    // Python's server looks up each proxy as it reads the request: one naming
                    // no object fails it with a traceback, before the call.
                    if let Some(id) = missing_proxy(&self.shared.table, &req) {
                        let why = format!("'{id:x}' (no such object on this manager)");
                        crate::manager::python::traceback("KeyError", &why, &mut payload);
                        queue_frame(&mut c.outbox, &payload);
                        continue;
                    }
                }
                if req.id.is_none() && req.method == "shutdown" && !self.shared.clients_may_stop {
                    c.queue_reply(
                        &Reply::Error(Exception::msg(
                            ExceptionKind::RuntimeError,
                            "this manager is stopped by its operator, not by its clients",
                        )),
                        self.shared,
                    );
                    continue;
                }
                if req.id.is_none() && req.method == "session" {
                    let r = join_session(&mut self.sessions, c, req);
                    c.queue_reply(&r, self.shared);
                    continue;
                }
                let holder = match (&c.python, c.session) {
                    // Python's clients take references on short-lived connections.
                    (Some(_), _) => Holder::Python,
                    (None, Some(s)) => s,
                    (None, None) => Holder::Client(token),
                };
                let who = Holder::Client(token);
                let session = Session {
                    table: &self.shared.table,
                    names: &self.shared.names,
                    holder,
                    who,
                };
                match session.try_handle(req, HEAVY_COST) {
                    Ok(h) => {
                        apply(c, &h, self.shared);
                        woken.extend(h.woken);
                    }
                    // Long, or its object busy with a long call: a worker runs it, and this
                    // client's next requests wait for it.
                    Err(req) => {
                        let job = Job {
                            token,
                            holder,
                            who,
                            req,
                        };
                        match self.workers.submit(job) {
                            Ok(()) => c.busy = true,
                            // No worker could start: served here, slow as it is.
                            Err(job) => {
                                let h = session.handle(job.req);
                                apply(c, &h, self.shared);
                                woken.extend(h.woken);
                            }
                        }
                    }
                }
            }
        }
        self.deliver(woken);
    }

    /// Takes the answers of the calls the workers finished.
    pub(super) fn finish_jobs(&mut self) {
        for (token, h) in self.workers.take_done() {
            let mut woken = h.woken.clone();
            match self.clients.get_mut(&token) {
                Some(c) => {
                    c.busy = false;
                    apply(c, &h, self.shared);
                    self.step(token);
                }
                None => {
                    // The client went away while its call ran: a call that then began to wait
                    // waits for nobody.
                    if h.reply.is_none() {
                        let (_, more) = self.shared.table.release(Holder::Client(token));
                        woken.extend(replies(more));
                    }
                }
            }
            self.deliver(woken);
        }
    }

    /// Sends the replies of calls that waited, and serves what their clients queued behind.
    pub(super) fn deliver(&mut self, mut woken: Vec<(Holder, Reply)>) {
        while !woken.is_empty() {
            let mut tokens = Vec::new();
            for (holder, reply) in woken.drain(..) {
                let Holder::Client(token) = holder else {
                    continue;
                };
                if let Some(c) = self.clients.get_mut(&token) {
                    c.queue_reply(&reply, self.shared);
                    c.waiting = false;
                    tokens.push(token);
                }
            }
            for token in tokens {
                // What it queued behind the call is served now (which may wake others again).
                self.step(token);
            }
        }
    }
}
