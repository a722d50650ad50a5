//! The manager's server loop: every client on one thread, driven by readiness.
//!
//! One thread polls the listener, the handshakes under way and every authenticated client;
//! two workers run the calls that touch many items, or whose object a long call holds. It
//! reads what each client has sent without waiting (a partial frame stays buffered), runs the
//! client's requests in order, and writes the replies without waiting (what the socket does not
//! take stays in the client's outbox until it is writable). A call that waits parks only its
//! caller: the client's later requests queue behind it, and every other client goes on.
//!
//! A silent, slow or hostile client therefore costs the others nothing but the time the loop
//! spends on its bytes: its handshake has a deadline, its frames a maximum size, its requests
//! are decoded with bounded depth and size, and a client that stops reading its replies is
//! served no further while its unread replies pass a bound. A client that goes away, cleanly or killed, is
//! released at once: its references, its waiting calls and its locks.
//!
//! This file holds the loop and its connections (accept, handshake, framing, writing,
//! release); what is done with a client's requests is in [`dispatch`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::protocol::{Request, replies};
use super::table::{Holder, ObjectId, Table};
use crate::codec;
use crate::connection::frame::parse_header;
use crate::connection::{Listener, TryHandshakeError, Unauthenticated};
use crate::object::Object;
use crate::sys::poller::{Interest, Poller, Ready, Waker, recv_append, send_nowait};

mod dispatch;

use dispatch::{Sessions, Workers};

/// The largest request a client may send by default: 64 MiB.
pub(crate) const DEFAULT_MAX_REQUEST: u64 = 64 << 20;

/// Connections the kernel may hold for the server before it accepts them (capped by
/// `net.core.somaxconn`, 4096 on current kernels). With the usual 128, a crowd of clients
/// connecting at once overflows the queue: the kernel drops their last handshake packet and
/// they wait a second or more for a retransmission, past their authkey time-out.
pub(crate) const BACKLOG: i32 = 4096;

/// Twice the unread replies past which a client's requests wait (and it is not read from)
/// until it reads them: so a client that never reads holds at most 64 MiB of replies, plus
/// the one reply that passed the mark.
const MAX_OUTBOX: usize = 128 << 20;

/// Requests read ahead of a waiting call, past which a client is not read from.
const MAX_INBOX: usize = 1024;

/// The most requests of one client served in a row while others may wait.
const TURN_REQUESTS: usize = 256;

/// The most bytes of replies one client is given in a row while others may wait.
const TURN_BYTES: usize = 256 << 10;

/// The most handshakes under way at once. Past it the oldest is closed, so that connections
/// that never authenticate cost at most this many times the little each holds (its socket and
/// the bytes it sent, see `Reader::shrink`), while a real client that connects is taken at
/// once and passes in a few round trips.
const MAX_HANDSHAKES: usize = 4096;

/// How much a read asks for at least.
const READ_STEP: usize = 64 * 1024;

const LISTENER: u64 = 0;
const WAKER: u64 = 1;

/// What the server loop and the handles that stop it share.
pub(crate) struct Shared {
    /// The objects.
    pub table: Table,
    /// Objects published by name.
    pub names: RwLock<HashMap<String, ObjectId>>,
    stop: AtomicBool,
    waker: Waker,
    /// Whether a client's `shutdown` request stops the server (the server of a
    /// [`Manager`](super::Manager) that started it), or is refused (a stand-alone server).
    pub clients_may_stop: bool,
}

impl Shared {
    /// Server state with no objects.
    pub fn new() -> io::Result<Self> {
        Self::with_table(Table::default())
    }

    /// Server state with `table`'s objects and types.
    pub fn with_table(table: Table) -> io::Result<Self> {
        Ok(Shared {
            table,
            names: RwLock::default(),
            stop: AtomicBool::new(false),
            waker: Waker::new()?,
            clients_may_stop: true,
        })
    }

    /// Asks the loop to stop; it returns soon after.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Has a stop been asked for?
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Where a client is.
enum Phase {
    /// Connected, handshake under way.
    Handshake(Unauthenticated),
    /// Authenticated: requests are served. The loop frames the stream itself, so that a
    /// request arriving in pieces is kept whole however large it is.
    Ready {
        sock: OwnedFd,
        /// Bytes received and not yet cut into requests.
        inbuf: Vec<u8>,
    },
}

struct Client {
    phase: Option<Phase>,
    /// Requests read and not yet run (behind a waiting call), or why a frame was not one.
    inbox: VecDeque<Result<Request, String>>,
    /// A call of this client waits: its reply comes later.
    waiting: bool,
    /// A long call of this client runs on a worker.
    busy: bool,
    /// Encoded replies not yet written, from `sent` on.
    outbox: Vec<u8>,
    sent: usize,
    /// What the poller watches it for.
    interest: Interest,
    /// The session whose references this connection shares, if it joined one.
    session: Option<Holder>,
    /// The token of that session.
    session_token: Vec<u8>,
    /// For a client speaking Python's pickled protocol, the server's address as its tokens
    /// name it.
    python: Option<Arc<Object>>,
    /// Whether a request was read (the first says which protocol the client speaks).
    spoke: bool,
}

impl Client {
    fn new(phase: Phase) -> Self {
        Client {
            phase: Some(phase),
            inbox: VecDeque::new(),
            waiting: false,
            busy: false,
            outbox: Vec::new(),
            sent: 0,
            interest: Interest::Read,
            session: None,
            session_token: Vec::new(),
            python: None,
            spoke: false,
        }
    }

    /// A client that does not read its replies, or has sent more requests than it waits for,
    /// is not read from until it catches up; its socket holds the rest.
    fn throttled(&self) -> bool {
        throttled(self.outbox.len() - self.sent, self.inbox.len())
    }

    /// Whether a whole request waits in the read buffer.
    fn has_frame(&self) -> bool {
        let Some(Phase::Ready { inbuf, .. }) = &self.phase else {
            return false;
        };
        matches!(parse_header(inbuf), Ok(Some((h, len))) if (h as u64).saturating_add(len) <= inbuf.len() as u64)
    }
}

/// Whether a client with `unsent` bytes of replies and `queued` requests is not read from.
fn throttled(unsent: usize, queued: usize) -> bool {
    unsent > MAX_OUTBOX / 2 || queued >= MAX_INBOX
}

/// The loop's own state.
struct Loop<'a> {
    shared: &'a Shared,
    listener: &'a Listener,
    poller: Poller,
    clients: HashMap<u64, Client>,
    next_token: u64,
    sessions: Sessions,
    workers: Workers,
    /// Where small reads land before they join a client's buffer.
    scratch: Vec<u8>,
    /// Clients whose turn ended with requests left, served again after the others.
    pending: VecDeque<u64>,
    /// The clients whose handshake is under way, oldest first, with their deadlines.
    handshakes: BTreeMap<u64, Option<Instant>>,
    max_request: u64,
    /// The server's address as Python's tokens name it.
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    py_address: Arc<Object>,
}

/// Serves clients of `listener` until [`Shared::stop`] or a client's `shutdown`.
pub(crate) fn run(listener: &Listener, shared: &Arc<Shared>, max_request: u64) -> io::Result<()> {
    run_with(listener, shared, max_request, None)
}

/// As [`run`], serving also `first`: a connection that needs no handshake (a socketpair whose
/// other end the server's starter holds) and its session token.
pub(crate) fn run_with(
    listener: &Listener,
    shared: &Arc<Shared>,
    max_request: u64,
    first: Option<(OwnedFd, Vec<u8>)>,
) -> io::Result<()> {
    let workers = Workers::start(shared)?;
    let poller = Poller::new()?;
    poller.add(listener.as_fd(), LISTENER, Interest::Read)?;
    poller.add(shared.waker.as_fd(), WAKER, Interest::Read)?;
    let mut l = Loop {
        shared,
        listener,
        poller,
        clients: HashMap::new(),
        next_token: WAKER + 1,
        sessions: Sessions::default(),
        scratch: Vec::with_capacity(READ_STEP),
        pending: VecDeque::new(),
        handshakes: BTreeMap::new(),
        max_request,
        workers,
        py_address: Arc::new(python_address(listener)),
    };
    if let Some((sock, session)) = first {
        l.adopt(sock, session)?;
    }
    let mut ready = Vec::new();
    while !shared.stopping() {
        let deadline = match l.pending.is_empty() {
            true => l.next_deadline(),
            // Work left: a look at the others, without waiting.
            false => Some(Instant::now()),
        };
        l.poller.wait(&mut ready, deadline)?;
        for r in &ready {
            match r.token {
                LISTENER => l.accept(),
                WAKER => {
                    shared.waker.reset();
                    l.finish_jobs();
                }
                token => l.on_ready(token, *r),
            }
        }
        for token in std::mem::take(&mut l.pending) {
            l.step(token);
        }
        let now = Instant::now();
        l.expire_handshakes(now);
        let woken = replies(shared.table.expire(now));
        l.deliver(woken);
    }
    // Every client is released on the way out, as if it had disconnected.
    let tokens: Vec<u64> = l.clients.keys().copied().collect();
    for t in tokens {
        l.drop_client(t);
    }
    l.workers.stop();
    Ok(())
}

/// Whether the first request of a client is one of Python's pickles: protocol 2 and later
/// start with their protocol byte (`0x80`); protocols 0 and 1 start with an opcode and end
/// with `STOP` (`.`). A Rust request starts with its id's `Option` tag, 0 or 1, in postcard.
#[cfg(feature = "python")]
fn speaks_pickle(frame: &[u8]) -> bool {
    super::python::is_pickle(frame)
        || (!matches!(frame.first(), None | Some(0 | 1)) && frame.last() == Some(&b'.'))
}

#[cfg(feature = "python")]
fn python_address(listener: &Listener) -> Object {
    super::python::address_object(listener.address())
}

#[cfg(not(feature = "python"))]
fn python_address(_: &Listener) -> Object {
    Object::None
}

impl Loop<'_> {
    fn next_deadline(&self) -> Option<Instant> {
        // Handshakes all have the same time-out: the oldest with a deadline ends first.
        let handshake = self.handshakes.values().find_map(|d| *d);
        handshake
            .into_iter()
            .chain(self.shared.table.next_deadline())
            .min()
    }

    fn accept(&mut self) {
        loop {
            match self.listener.try_accept_raw() {
                Ok(Some(pending)) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    if self
                        .poller
                        .add(pending.as_fd(), token, Interest::Read)
                        .is_err()
                    {
                        continue;
                    }
                    if self.handshakes.len() >= MAX_HANDSHAKES
                        && let Some((oldest, _)) = self.handshakes.pop_first()
                    {
                        self.drop_client(oldest);
                    }
                    self.handshakes.insert(token, pending.deadline());
                    let c = Client::new(Phase::Handshake(pending));
                    self.clients.insert(token, c);
                    // The client may have sent its answer with its connect.
                    self.step(token);
                }
                Ok(None) => return,
                // A client that failed before its challenge went out, or a transient accept
                // error (out of descriptors): the listener goes on.
                Err(_) => return,
            }
        }
    }

    /// Serves `sock` as an authenticated client in the session `session`.
    fn adopt(&mut self, sock: OwnedFd, session: Vec<u8>) -> io::Result<()> {
        let token = self.next_token;
        self.next_token += 1;
        self.poller.add(sock.as_fd(), token, Interest::Read)?;
        let inbuf = Vec::new();
        let mut c = Client::new(Phase::Ready { sock, inbuf });
        self.sessions.join(&mut c, session);
        self.clients.insert(token, c);
        // What it sent before the loop ran is served now.
        self.step(token);
        Ok(())
    }

    fn on_ready(&mut self, token: u64, r: Ready) {
        if r.writable {
            self.flush(token);
        }
        if r.readable {
            self.step(token);
        }
    }

    /// Moves a client on with what it has sent: the handshake, then its requests.
    fn step(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        c.phase = match c.phase.take() {
            Some(Phase::Handshake(pending)) => match pending.try_handshake() {
                Ok(conn) => {
                    self.handshakes.remove(&token);
                    let (sock, inbuf) = conn.into_stream();
                    Some(Phase::Ready { sock, inbuf })
                }
                Err(TryHandshakeError::WouldBlock(p)) => {
                    c.phase = Some(Phase::Handshake(p));
                    return;
                }
                Err(_) => return self.drop_client(token),
            },
            other => other,
        };
        loop {
            if !self.read(token) {
                return self.drop_client(token);
            }
            self.serve(token);
            // Requests left in the buffer while the inbox was full are cut once it has room.
            let more = self.clients.get(&token).is_some_and(|c| {
                c.inbox.is_empty() && !c.waiting && !c.busy && !c.throttled() && c.has_frame()
            });
            if !more {
                break;
            }
        }
        self.flush(token);
    }

    /// Reads what the client has sent and cuts it into requests; `false` if it is gone or
    /// broke the framing.
    fn read(&mut self, token: u64) -> bool {
        let max = self.max_request;
        let Some(c) = self.clients.get_mut(&token) else {
            return false;
        };
        let Some(Phase::Ready { sock, inbuf }) = &mut c.phase else {
            return true;
        };
        // A short read took all the socket had: the poller says when more comes.
        let mut drained = false;
        loop {
            if throttled(c.outbox.len() - c.sent, c.inbox.len()) {
                return true;
            }
            // Cut every whole frame out of what is buffered.
            let mut at = 0;
            let mut want = 0;
            loop {
                match parse_header(&inbuf[at..]) {
                    Ok(Some((_, len))) if len > max => return false,
                    Ok(Some((h, len))) => {
                        let end = at + h + len as usize;
                        if end > inbuf.len() {
                            want = end - inbuf.len();
                            break;
                        }
                        if c.inbox.len() >= MAX_INBOX {
                            // Enough read ahead: the rest waits here, and in the socket.
                            break;
                        }
                        let frame = &inbuf[at + h..end];
                        // The first request says which protocol the client speaks.
                        #[cfg(feature = "python")]
                        if !c.spoke && speaks_pickle(frame) {
                            c.python = Some(Arc::clone(&self.py_address));
                        }
                        c.spoke = true;
                        let req = match &c.python {
                            #[cfg(feature = "python")]
                            Some(_) => super::python::decode(frame),
                            _ => codec::decode::<Request>(frame, Vec::new())
                                .map_err(|e| e.to_string()),
                        };
                        // A frame that is not a request is answered in its turn, and the client
                        // may go on: the frame boundary is intact.
                        c.inbox.push_back(req);
                        at = end;
                    }
                    Ok(None) => break,
                    Err(_) => return false,
                }
            }
            inbuf.drain(..at);
            if inbuf.is_empty() && inbuf.capacity() > READ_STEP {
                // An idle client keeps no buffer.
                *inbuf = Vec::new();
            }
            if drained {
                return true;
            }
            // Read more. A large frame under way is read straight into its buffer; anything
            // else goes through the loop's scratch buffer, so that a client holds only the
            // bytes it has sent and not yet had cut into requests.
            let room = if want > READ_STEP {
                want.min(READ_STEP * 16)
            } else {
                READ_STEP
            };
            let got = if want > READ_STEP {
                inbuf.reserve(room);
                recv_append(sock.as_fd(), inbuf, room)
            } else {
                self.scratch.clear();
                let r = recv_append(sock.as_fd(), &mut self.scratch, READ_STEP);
                inbuf.extend_from_slice(&self.scratch);
                r
            };
            match got {
                Ok(Some(0)) => return false,
                Ok(Some(n)) => drained = n < room,
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Writes what the socket takes of the client's outbox.
    fn flush(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        let Some(Phase::Ready { sock, .. }) = &c.phase else {
            return;
        };
        while c.sent < c.outbox.len() {
            match send_nowait(sock.as_fd(), &c.outbox[c.sent..]) {
                Ok(0) => break,
                Ok(n) => c.sent += n,
                Err(_) => return self.drop_client(token),
            }
        }
        if c.sent == c.outbox.len() {
            c.outbox.clear();
            c.sent = 0;
        } else if c.sent > MAX_OUTBOX / 2 {
            // What was sent is not kept.
            c.outbox.drain(..c.sent);
            c.sent = 0;
        }
        let interest = Interest::of(!c.throttled(), !c.outbox.is_empty());
        if interest != c.interest {
            c.interest = interest;
            if self.poller.modify(sock.as_fd(), token, interest).is_err() {
                return self.drop_client(token);
            }
        }
        // Caught up: requests that waited for the replies to be read are served now (the
        // poller will not say so: they are already read).
        let idle = !c.waiting && !c.busy && !c.throttled() && !self.pending.contains(&token);
        if idle && (!c.inbox.is_empty() || c.has_frame()) {
            self.step(token);
        }
    }

    /// Closes the handshakes whose deadline passed at `now`.
    fn expire_handshakes(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .handshakes
            .iter()
            // Oldest first, and so in the order of their deadlines.
            .take_while(|(_, d)| d.is_none_or(|d| d <= now))
            .filter(|(_, d)| d.is_some())
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            self.drop_client(t);
        }
    }

    /// Forgets a client and releases what it held.
    fn drop_client(&mut self, token: u64) {
        let Some(c) = self.clients.remove(&token) else {
            return;
        };
        self.handshakes.remove(&token);
        let fd = match &c.phase {
            Some(Phase::Handshake(u)) => Some(u.as_fd()),
            Some(Phase::Ready { sock, .. }) => Some(sock.as_fd()),
            None => None,
        };
        if let Some(fd) = fd {
            let _ = self.poller.remove(fd);
        }
        let (_, mut woken) = self.shared.table.release(Holder::Client(token));
        // The last connection of a session takes the session's references with it.
        if let Some(session) = self.sessions.leave(&c) {
            woken.extend(self.shared.table.release(session).1);
        }
        drop(c);
        self.deliver(replies(woken));
    }
}

/// A server running on its own thread of this process.
pub(crate) struct Running {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Serves `listener` on a new thread.
    #[cfg(test)]
    pub fn spawn(listener: Listener, max_request: u64) -> io::Result<Self> {
        Self::spawn_with(listener, Table::default(), max_request)
    }

    /// Serves `listener` on a new thread, with `table`'s objects and types.
    pub fn spawn_with(listener: Listener, table: Table, max_request: u64) -> io::Result<Self> {
        let shared = Arc::new(Shared::with_table(table)?);
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("multiproc-manager".into())
            .spawn(move || run(&listener, &s, max_request))?;
        Ok(Running {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops the server and waits for its thread.
    pub fn stop(&mut self) -> io::Result<()> {
        self.shared.stop();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the manager's thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::connection::{Address, Client, Connection};
    use crate::manager::protocol::Reply;
    use crate::object::{Dict, Object};

    fn server() -> (Running, Address) {
        let mut name = [0u8; 8];
        crate::sys::net::random(&mut name).unwrap();
        let address = Address::abstract_name(format!("multiproc-test-{name:02x?}"));
        let listener = Listener::options()
            .authkey(b"key")
            .handshake_timeout(Some(Duration::from_millis(300)))
            .bind(address.clone())
            .unwrap();
        (Running::spawn(listener, 1 << 20).unwrap(), address)
    }

    fn client(address: &Address) -> Connection {
        Client::new().authkey(b"key").connect(address).unwrap()
    }

    fn request(method: &str, args: Vec<Object>) -> Vec<u8> {
        request_to(None, method, args)
    }

    /// The frame of a request to object `id` (`None`: the server).
    fn request_to(id: Option<u64>, method: &str, args: Vec<Object>) -> Vec<u8> {
        let req = Request {
            id,
            method: method.into(),
            args,
            kwargs: Dict::new(),
        };
        let mut out = Vec::new();
        codec::encode_plain_into(&req, &mut out).unwrap();
        out
    }

    fn reply(c: &mut Connection) -> Reply {
        codec::decode(&c.recv_bytes().unwrap(), Vec::new()).unwrap()
    }

    #[test]
    fn garbage_is_answered_and_the_client_goes_on() {
        let (_server, address) = server();
        let mut c = client(&address);
        c.send_bytes(b"\xff\xfe not postcard").unwrap();
        c.send_bytes(&request("number_of_objects", vec![])).unwrap();
        assert!(matches!(reply(&mut c), Reply::Error(_)));
        assert_eq!(reply(&mut c), Reply::Return(Object::from(0)));
    }

    #[test]
    fn a_frame_beyond_the_limit_ends_only_that_client() {
        let (_server, address) = server();
        let mut bad = client(&address);
        bad.send_bytes(&vec![0u8; 2 << 20]).unwrap_or(());
        assert!(bad.recv_bytes().is_err(), "disconnected");
        let mut good = client(&address);
        good.send_bytes(&request("dummy", vec![])).unwrap();
        assert_eq!(reply(&mut good), Reply::Return(Object::None));
    }

    #[test]
    fn large_requests_arriving_in_pieces_stay_whole() {
        let (_server, address) = server();
        let mut c = client(&address);
        let items = Object::List((0..50_000).map(Object::from).collect());
        let create = request("create", vec!["list".into(), items]);
        assert!(create.len() > 100_000);
        c.send_bytes(&create).unwrap();
        let Reply::Proxy { id, .. } = reply(&mut c) else {
            panic!("no proxy")
        };
        // Many requests pipelined in one go, answered in order.
        let one = request_to(Some(id), "__len__", vec![]);
        for _ in 0..200 {
            c.send_bytes(&one).unwrap();
        }
        for _ in 0..200 {
            assert_eq!(reply(&mut c), Reply::Return(Object::from(50_000)));
        }
    }

    #[test]
    fn silent_and_half_sent_clients_delay_nobody() {
        let (_server, address) = server();
        // Sockets that connect and say nothing, and a client that sends an empty frame.
        let silent: Vec<_> = (0..20)
            .map(|_| match &address {
                Address::Abstract(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let name = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
                    std::os::unix::net::UnixStream::connect_addr(&name).unwrap()
                }
                _ => unreachable!("an abstract address"),
            })
            .collect();
        let mut empty = client(&address);
        empty.send_bytes(&[]).unwrap(); // not a request: answered
        let start = Instant::now();
        let mut good = client(&address);
        good.send_bytes(&request("dummy", vec![])).unwrap();
        assert_eq!(reply(&mut good), Reply::Return(Object::None));
        // Generous: a silent peer would cost the full handshake time-out (300 ms) each if
        // handshakes ran in line.
        assert!(start.elapsed() < Duration::from_secs(3));
        drop(silent);
    }

    #[test]
    fn a_long_call_delays_no_other_client() {
        let (_server, address) = server();
        let mut a = client(&address);
        a.send_bytes(&request(
            "create",
            vec![
                "list".into(),
                Object::List(vec![3.into(), 1.into(), 2.into()]),
            ],
        ))
        .unwrap();
        let Reply::Proxy { id, .. } = reply(&mut a) else {
            panic!("no proxy")
        };
        let call = |method: &str, args: Vec<Object>| request_to(Some(id), method, args);
        a.send_bytes(&call("__imul__", vec![400_000.into()]))
            .unwrap();
        assert!(matches!(reply(&mut a), Reply::Return(_)));
        // A sort of 1.2M items runs on a worker; another client is served meanwhile.
        a.send_bytes(&call("sort", vec![])).unwrap();
        let mut b = client(&address);
        b.send_bytes(&request("create", vec!["dict".into()]))
            .unwrap();
        assert!(matches!(reply(&mut b), Reply::Proxy { .. }));
        assert!(
            !a.poll(Some(Duration::ZERO)).unwrap(),
            "the other client was served before the sort ended"
        );
        assert_eq!(reply(&mut a), Reply::Return(Object::None));
    }

    #[test]
    fn more_requests_than_the_inbox_holds_are_all_answered() {
        let (_server, address) = server();
        let mut c = client(&address);
        let one = request("dummy", vec![]);
        let frames: Vec<&[u8]> = vec![&one; 250];
        for _ in 0..12 {
            c.send_many_bytes(&frames).unwrap();
        }
        for _ in 0..3000 {
            assert_eq!(reply(&mut c), Reply::Return(Object::None));
        }
    }

    #[test]
    fn a_client_that_does_not_read_is_paused_not_fed() {
        let (_server, address) = server();
        let mut a = client(&address);
        let items = Object::List((0..50_000).map(Object::from).collect());
        a.send_bytes(&request("create", vec!["list".into(), items]))
            .unwrap();
        let Reply::Proxy { id, .. } = reply(&mut a) else {
            panic!("no proxy")
        };
        // Copies asked for and not read: the server stops serving this client once its
        // unread replies pass the mark, and serves the others.
        let copy = request_to(Some(id), "copy", vec![]);
        let frames: Vec<&[u8]> = vec![&copy; 400];
        a.send_many_bytes(&frames).unwrap();
        let mut b = client(&address);
        b.send_bytes(&request("dummy", vec![])).unwrap();
        assert_eq!(reply(&mut b), Reply::Return(Object::None));
        // Every reply still arrives, in order, once the client reads.
        for _ in 0..400 {
            assert!(matches!(reply(&mut a), Reply::Return(Object::List(v)) if v.len() == 50_000));
        }
    }

    #[test]
    fn copies_of_large_items_are_bounded_by_size() {
        let (_server, address) = server();
        let mut c = client(&address);
        let big = Object::List(vec![Object::Bytes(vec![b'x'; 100_000])]);
        c.send_bytes(&request("create", vec!["list".into(), big]))
            .unwrap();
        let Reply::Proxy { id, .. } = reply(&mut c) else {
            panic!("no proxy")
        };
        // 100 kB × 16M would be 1.6 TB: refused before anything is copied.
        c.send_bytes(&request_to(Some(id), "__mul__", vec![16_000_000.into()]))
            .unwrap();
        match reply(&mut c) {
            Reply::Error(e) => assert_eq!(e.kind(), crate::manager::ExceptionKind::MemoryError),
            other => panic!("{other:?}"),
        }
        c.send_bytes(&request_to(Some(id), "__mul__", vec![3.into()]))
            .unwrap();
        assert!(matches!(reply(&mut c), Reply::Return(Object::List(v)) if v.len() == 3));
    }
}
