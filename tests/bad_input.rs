//! Bad input at the edges, one test per hostile input class: a wrong authkey, garbage before
//! and after the handshake, a length prefix of 2^63, half a frame then a closed socket, slow
//! clients holding connections open, descriptors sent where none are wanted, hostile pickles,
//! and corrupted or resized shared segments. Each is played against a real `multiproc serve`
//! process (or a queue shared with a hostile process); each must end in a clear error for that
//! peer, and afterwards the server must still serve a good client, without having kept the bad
//! peer's memory or descriptors.
//!
//! Cases tested elsewhere (the `Listener` itself, Python's clients, the manager's own unit
//! tests, dead peers) are listed with their tests in `RELIABILITY.md`, "Bad input".

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, Manager};
use multiproc::queue::{BytesQueue, GetError, Queue};
use multiproc::{Address, Client, Connection, Descriptor, Process, RecvError};

use common::{Rng, Serve};

multiproc::test_support!();

const KEY: &[u8] = b"bad-input";

fn serve() -> Serve {
    Serve::start(&["d=dict"], KEY)
}

fn address(s: &Serve) -> Address {
    s.address.parse().unwrap()
}

/// A good client still gets its answers: `d[key] = value`, read back.
fn still_serves(s: &Serve, key: &str) {
    let m = Manager::connect(address(s), KEY).expect("a good client connects");
    let d = DictProxy::try_from(m.get("d").unwrap()).unwrap();
    d.set(key, 42).unwrap();
    assert_eq!(d.get(key).unwrap(), Some(42.into()));
}

/// An authenticated connection to the server, with nothing said yet.
fn authenticated(s: &Serve) -> Connection {
    Client::new().authkey(KEY).connect(address(s)).unwrap()
}

/// The peer's end is closed or answered within a few seconds: reads until the end of the
/// stream (or an error), returning what came; a server that neither answers nor closes fails.
fn answered_or_closed(stream: &mut (impl Read + AsFd)) -> Vec<u8> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server neither answered nor closed"
        );
        let ready = rustix::event::poll(
            &mut [rustix::event::PollFd::new(
                &stream.as_fd(),
                rustix::event::PollFlags::IN,
            )],
            Some(&rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            }),
        )
        .unwrap();
        if ready == 0 {
            if !got.is_empty() {
                return got;
            }
            continue;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn a_wrong_authkey_is_refused_and_the_server_goes_on() {
    let _leaks = common::leak_check();
    let s = serve();
    for _ in 0..20 {
        let e = Manager::connect(address(&s), b"not the key").err().unwrap();
        assert!(e.to_string().contains("authentication"), "{e}");
    }
    let e = Client::new()
        .authkey(b"")
        .connect(address(&s))
        .err()
        .unwrap();
    assert!(e.to_string().contains("authentication"), "{e}");
    still_serves(&s, "after wrong keys");
    s.stop();
}

#[test]
fn garbage_before_the_handshake_ends_that_connection_only() {
    let _leaks = common::leak_check();
    let s = serve();
    let tcp = s.address.parse::<std::net::SocketAddr>().unwrap();
    let mut rng = Rng::new(7);
    let garbage: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 12],
        (0..8192).map(|_| rng.next() as u8).collect(),
        // A frame of the right shape, with a wrong answer to the challenge.
        [&20i32.to_be_bytes()[..], &[0u8; 20]].concat(),
    ];
    for g in garbage {
        let mut c = TcpStream::connect(tcp).unwrap();
        // The server speaks first (its challenge); the garbage follows it.
        let _ = c.write_all(&g);
        answered_or_closed(&mut c);
        still_serves(&s, "after garbage");
    }
    s.stop();
}

#[test]
fn garbage_after_the_handshake_is_answered_or_ends_that_client() {
    let _leaks = common::leak_check();
    let s = serve();
    let mut rng = Rng::new(11);
    for round in 0..30 {
        let mut c = authenticated(&s);
        let n = rng.below(300) as usize;
        let frame: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        c.send_bytes(&frame).unwrap();
        // Either an error reply, or the end of this client; never silence.
        match c.poll(Some(Duration::from_secs(20))) {
            Ok(true) => match c.recv_bytes() {
                Ok(_) | Err(RecvError::Disconnected | RecvError::Broken) => {}
                Err(e) => panic!("round {round}: {e}"),
            },
            other => panic!("round {round}: no answer to garbage: {other:?}"),
        }
    }
    still_serves(&s, "after garbage frames");
    s.stop();
}

#[test]
fn a_length_prefix_of_2_63_is_refused_without_allocating() {
    let _leaks = common::leak_check();
    let s = serve();
    let (rss_before, _, _) = s.figures();
    let huge = [&[0xff; 4][..], &(1u64 << 63).to_be_bytes()[..]].concat();
    for _ in 0..5 {
        // Before the handshake, in place of the answer to the challenge.
        let mut c = TcpStream::connect(s.address.parse::<std::net::SocketAddr>().unwrap()).unwrap();
        let _ = c.write_all(&huge);
        answered_or_closed(&mut c);
        // After it, as a request.
        let c = authenticated(&s);
        let mut raw = std::fs::File::from(c.as_fd().try_clone_to_owned().unwrap());
        raw.write_all(&huge).unwrap();
        drop(c);
        answered_or_closed(&mut raw);
    }
    still_serves(&s, "after huge lengths");
    let (rss_after, _, _) = s.figures();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "server memory {rss_before} KiB -> {rss_after} KiB"
    );
    s.stop();
}

#[test]
fn half_a_frame_then_a_closed_socket_ends_that_client_only() {
    let _leaks = common::leak_check();
    let s = serve();
    still_serves(&s, "first");
    let (_, _, fds_before) = s.figures();
    for cut in [1usize, 3, 4, 10, 999] {
        let c = authenticated(&s);
        let mut raw = std::fs::File::from(c.as_fd().try_clone_to_owned().unwrap());
        drop(c);
        let frame = [&1000i32.to_be_bytes()[..], &[7u8; 1000][..]].concat();
        raw.write_all(&frame[..cut]).unwrap();
        drop(raw);
        still_serves(&s, "after half a frame");
    }
    wait_for_fds(&s, fds_before);
    s.stop();
}

/// Waits until the server holds no more descriptors than `n` (it closes a dead client's when
/// it notices).
fn wait_for_fds(s: &Serve, n: usize) {
    let start = Instant::now();
    loop {
        let (_, _, fds) = s.figures();
        if fds <= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server holds {fds} descriptors, {n} before"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slow_clients_holding_connections_delay_no_good_one() {
    let _leaks = common::leak_check();
    let s = serve();
    let tcp = s.address.parse::<std::net::SocketAddr>().unwrap();
    // 200 silent connections, 200 that send a byte of their answer, 50 that authenticate and
    // send one byte of a request's length: all held open while a good client works.
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for i in 0..400 {
        let mut c = TcpStream::connect(tcp).unwrap();
        if i % 2 == 1 {
            let _ = c.write_all(&[0]);
        }
        held.push(Box::new(c));
    }
    for _ in 0..50 {
        let c = authenticated(&s);
        let mut raw = std::fs::File::from(c.as_fd().try_clone_to_owned().unwrap());
        raw.write_all(&[0]).unwrap();
        held.push(Box::new((c, raw)));
    }
    for round in 0..5 {
        still_serves(&s, &format!("among slow clients, round {round}"));
    }
    drop(held);
    still_serves(&s, "after the slow clients left");
    s.stop();
}

#[test]
fn descriptors_sent_to_the_server_are_not_kept() {
    let _leaks = common::leak_check();
    let s = Serve::start_unix(&["d=dict"], KEY);
    still_serves(&s, "first");
    let (_, _, fds_before) = s.figures();
    for _ in 0..20 {
        // An authenticated client sends a frame carrying descriptors (a message whose value
        // holds ten of them), where requests carry none.
        let mut c = authenticated(&s);
        let fds: Vec<Descriptor> = (0..10)
            .map(|_| Descriptor::new(std::fs::File::open("/dev/null").unwrap()))
            .collect();
        c.send(&fds).unwrap();
        let _ = c.poll(Some(Duration::from_secs(20)));
        drop(c);
    }
    still_serves(&s, "after descriptors");
    wait_for_fds(&s, fds_before);
    s.stop();
}

/// A pickle whose loading would run `os.system("touch MARKER")`, as the first request of a
/// Python-speaking client.
fn os_system_pickle(marker: &str) -> Vec<u8> {
    let cmd = format!("touch {marker}");
    let mut p = b"\x80\x02cos\nsystem\nX".to_vec();
    p.extend((cmd.len() as u32).to_le_bytes());
    p.extend(cmd.as_bytes());
    p.extend(b"\x85R.");
    p
}

#[test]
fn hostile_pickles_run_nothing_and_the_server_goes_on() {
    let _leaks = common::leak_check();
    let s = serve();
    let marker = std::env::temp_dir().join(format!("multiproc-bad-pickle-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let hostile = [
        os_system_pickle(&marker.display().to_string()),
        // A list nested a million deep.
        [&b"\x80\x02"[..], &vec![b']'; 1 << 20], b"."].concat(),
        // A BINUNICODE8 declaring 2^62 bytes.
        [&b"\x80\x04\x8d"[..], &(1u64 << 62).to_le_bytes(), b"x."].concat(),
    ];
    for p in hostile {
        let mut c = authenticated(&s);
        c.send_bytes(&p).unwrap();
        // A `#TRACEBACK`/error reply, or the end of this client.
        if let Ok(true) = c.poll(Some(Duration::from_secs(20))) {
            let _ = c.recv_bytes();
        }
    }
    assert!(!marker.exists(), "the pickle ran os.system");
    still_serves(&s, "after hostile pickles");
    s.stop();
}

// ---- shared segments ------------------------------------------------------------------------

/// This process's descriptor of the queue segment it received last, reopened for writing: what
/// a hostile process that was given the queue can do.
fn segment_of_received_queue() -> std::fs::File {
    let fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:multiproc-queue"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("a queue segment");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .unwrap()
}

/// Where a hostile write goes in a queue segment.
#[derive(serde::Serialize, serde::Deserialize)]
enum Spot {
    /// At this offset.
    At(u64),
    /// At the first slot's stamp.
    FirstSlot,
}

/// In a child given the queue: tries to shrink its segment to half and to nothing (the segment
/// is sealed against it: a shrunk mapping would fault), grows it (allowed: spilled messages
/// grow it too), then writes `bytes` at `spot` (if any); whether a shrink succeeded.
fn tamper((q, write): (BytesQueue, Option<(Spot, Vec<u8>)>)) -> bool {
    use std::os::unix::fs::FileExt;
    let f = segment_of_received_queue();
    let len = f.metadata().unwrap().len();
    let shrunk = f.set_len(len / 2).is_ok() || f.set_len(0).is_ok();
    f.set_len(len + (1 << 20)).unwrap();
    if let Some((spot, bytes)) = write {
        let offset = match spot {
            Spot::At(n) => n,
            Spot::FirstSlot => slots_offset(&f),
        };
        f.write_all_at(&bytes, offset).unwrap();
    }
    drop(q);
    shrunk
}

/// The header of a queue segment, as `src/queue/mod.rs` documents it: where its slots start.
fn slots_offset(f: &std::fs::File) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut h = [0u8; 64];
    f.read_exact_at(&mut h, 0).unwrap();
    assert_eq!(&h[..8], b"MPROCQUE");
    let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap());
    let (slots, slot_size, stream, total) = (word(16), word(24), word(32), word(48));
    total - stream - slots * slot_size
}

#[test]
fn a_queue_segment_cannot_be_shrunk_by_a_peer() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    q.put(b"before").unwrap();
    let child = Process::start(tamper, (q.clone(), None)).unwrap();
    assert!(!child.join().unwrap(), "a peer shrank the segment");
    assert_eq!(q.get().unwrap(), b"before");
    q.put(b"after").unwrap();
    assert_eq!(q.get().unwrap(), b"after");
}

#[test]
fn a_queue_with_a_corrupted_header_is_refused_on_arrival() {
    let _leaks = common::leak_check();
    let q: Queue<u32> = Queue::new().unwrap();
    let damage = Some((Spot::At(0), b"NOTAQUEU".to_vec()));
    let child = Process::start(tamper, (q.to_bytes_queue(), damage));
    assert!(!child.unwrap().join().unwrap(), "a peer shrank the segment");
    let (mut tx, mut rx) = multiproc::pipe(true).unwrap();
    tx.send(&q).unwrap();
    let e = rx.recv::<Queue<u32>>().err().unwrap();
    assert!(e.to_string().contains("queue"), "{e}");
    // The handle made before the damage keeps working: its header was checked when it was.
    q.put(5).unwrap();
    assert_eq!(q.get().unwrap(), 5);
}

/// Runs `op` on a thread and waits `limit` for it; whether it returned.
fn returns_within<T: Send + 'static>(
    limit: Duration,
    op: impl FnOnce() -> T + Send + 'static,
) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(op());
    });
    rx.recv_timeout(limit).is_ok()
}

/// A hostile process writes `value` into the word at `spot`; afterwards a `put` and a `get`
/// with a 10 ms time-out each return (an error is fine) within a few seconds.
fn corrupt_word_then_wait(spot: Spot, value: u64) {
    // Room for 3 messages in 4 slots: producers then also read the consumers' position.
    let q = Queue::options().maxsize(3).create_bytes().unwrap();
    let damage = Some((spot, value.to_le_bytes().to_vec()));
    let child = Process::start(tamper, (q.clone(), damage));
    child.unwrap().join().unwrap();
    let (p, g) = (q.clone(), q.clone());
    assert!(
        returns_within(Duration::from_secs(5), move || p
            .put_timeout(b"x".to_vec(), Duration::from_millis(10))
            .is_ok()),
        "put_timeout(10 ms) still running after 5 s"
    );
    assert!(
        returns_within(Duration::from_secs(5), move || matches!(
            g.get_timeout(Duration::from_millis(10)),
            Ok(_) | Err(GetError::Timeout | GetError::Empty)
        )),
        "get_timeout(10 ms) still running after 5 s"
    );
}

/// A slot stamp that no state explains (slot 0: `Empty` for position 0, but naming owner 93)
/// makes `put_timeout` and `get_timeout` spin for ever, past their deadline. Found by the
/// `queue_segment` fuzz target.
#[test]
fn a_corrupt_slot_stamp_does_not_hold_a_put_or_get_past_its_deadline() {
    let _leaks = common::leak_check();
    corrupt_word_then_wait(Spot::FirstSlot, 0x5d);
    corrupt_word_then_wait(Spot::FirstSlot, 2 << 16 | 5);
}

/// A consumer position beyond the producers' (`head` = 2^35, `tail` = 0) makes producers (of
/// a queue whose `maxsize` is below its slot count) and consumers spin for ever, past their
/// deadlines. Found by the `queue_segment` fuzz target.
#[test]
fn a_corrupt_head_does_not_hold_a_put_past_its_deadline() {
    let _leaks = common::leak_check();
    // The control block follows the 64-byte header: the tail's line, then the head's.
    corrupt_word_then_wait(Spot::At(128), 1 << 35);
}
