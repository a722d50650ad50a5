//! Connections, listeners and clients between threads of one process: framing, errors,
//! descriptors, authentication, and bad peers.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use multiproc::{
    AcceptError, Address, AuthError, Client, ConnectError, Connection, Listener, RecvError,
    SendError, pipe, wait,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique Unix socket path, removed on drop.
struct SockPath(std::path::PathBuf);

impl SockPath {
    fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "multiproc-test-{tag}-{}-{n}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        SockPath(p)
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn abstract_addr(tag: &str) -> Address {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Address::abstract_name(format!("multiproc-test-{tag}-{}-{n}", std::process::id()))
}

#[test]
fn closed_peer_gives_disconnected_not_a_hang() {
    let _leaks = common::leak_check();
    let (a, mut b) = pipe(true).unwrap();
    drop(a);
    assert!(matches!(b.recv_bytes(), Err(RecvError::Disconnected)));
    assert!(matches!(b.recv::<u32>(), Err(RecvError::Disconnected)));
    assert!(matches!(b.send_bytes(b"x"), Err(SendError::Disconnected)));
    assert!(matches!(b.send(&1u8), Err(SendError::Disconnected)));

    let (mut rx, tx) = pipe(false).unwrap();
    drop(tx);
    assert!(matches!(rx.recv_bytes(), Err(RecvError::Disconnected)));
    let (rx, mut tx) = pipe(false).unwrap();
    drop(rx);
    assert!(matches!(tx.send_bytes(b"x"), Err(SendError::Disconnected)));

    // A message that was sent before the close is still delivered.
    let (mut a, mut b) = pipe(true).unwrap();
    a.send(&"last words").unwrap();
    drop(a);
    assert_eq!(b.recv::<String>().unwrap(), "last words");
    assert!(matches!(b.recv_bytes(), Err(RecvError::Disconnected)));
}

#[test]
fn one_way_pipes_refuse_the_wrong_direction() {
    let _leaks = common::leak_check();
    let (mut rx, mut tx) = pipe(false).unwrap();
    assert!(matches!(rx.send_bytes(b"x"), Err(SendError::NotWritable)));
    assert!(matches!(tx.recv_bytes(), Err(RecvError::NotReadable)));
    assert!(tx.poll(Some(Duration::ZERO)).is_err());
}

#[test]
fn poll_times_out_then_sees_messages_and_eof() {
    let _leaks = common::leak_check();
    let (mut a, b) = pipe(true).unwrap();
    let t = Instant::now();
    assert!(!b.poll(Some(Duration::from_millis(50))).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        a.send_bytes(b"late").unwrap();
        a
    });
    assert!(b.poll(None).unwrap());
    let a = sender.join().unwrap();
    drop(a);
    let mut b = b;
    assert_eq!(b.recv_bytes().unwrap(), b"late");
    // End of stream counts as ready, like Python.
    assert!(b.poll(Some(Duration::from_secs(10))).unwrap());
}

#[test]
fn many_small_messages_arrive_in_order_from_the_buffer() {
    let _leaks = common::leak_check();
    let (mut a, mut b) = pipe(true).unwrap();
    let t = thread::spawn(move || {
        for i in 0u32..10_000 {
            a.send(&(i, format!("m{i}"))).unwrap();
        }
    });
    for i in 0u32..10_000 {
        let (j, s): (u32, String) = b.recv().unwrap();
        assert_eq!((j, s), (i, format!("m{i}")));
    }
    t.join().unwrap();
    // Messages of every size around the buffer's.
    let (mut a, mut b) = pipe(true).unwrap();
    let sizes = [
        0usize,
        1,
        4091,
        32 * 1024 - 4,
        32 * 1024 - 3,
        32 * 1024,
        100_000,
        5,
    ];
    let t = thread::spawn(move || {
        for &n in &sizes {
            a.send_bytes(&vec![n as u8; n]).unwrap();
        }
    });
    for &n in &sizes {
        assert_eq!(b.recv_bytes().unwrap(), vec![n as u8; n]);
    }
    t.join().unwrap();
}

#[test]
fn recv_bytes_variants() {
    let _leaks = common::leak_check();
    let (mut a, mut b) = pipe(false).unwrap();
    b.send_bytes_range(b"0123456789", 3..).unwrap();
    b.send_bytes_range(b"0123456789", ..=1).unwrap();
    assert!(matches!(
        b.send_bytes_range(b"0123", 2..9),
        Err(SendError::OutOfBounds { .. })
    ));
    assert_eq!(a.recv_bytes().unwrap(), b"3456789");
    let mut buf = [0u8; 4];
    assert_eq!(a.recv_bytes_into(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"01");
    b.send_bytes(b"too long for it").unwrap();
    b.send_bytes(b"ok").unwrap();
    match a.recv_bytes_into(&mut buf) {
        Err(RecvError::BufferTooShort(m)) => assert_eq!(m, b"too long for it"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.recv_bytes().unwrap(), b"ok");
    b.send_bytes(b"0123456789").unwrap();
    assert!(matches!(
        a.recv_bytes_max(9),
        Err(RecvError::TooLarge { len: 10, max: 9 })
    ));
    assert!(matches!(a.recv_bytes(), Err(RecvError::Broken)));
}

#[test]
fn decode_errors_keep_the_connection() {
    let _leaks = common::leak_check();
    let (mut a, mut b) = pipe(true).unwrap();
    a.send_bytes(&[0xff; 3]).unwrap();
    a.send(&7u16).unwrap();
    assert!(matches!(b.recv::<String>(), Err(RecvError::Decode(_))));
    assert_eq!(b.recv::<u16>().unwrap(), 7);
}

/// A connection whose peer is a raw stream, to write bytes that bypass the framing.
fn raw_pair() -> (UnixStream, Connection) {
    use std::os::fd::AsFd;
    let (a, b) = pipe(true).unwrap();
    let fd = a.as_fd().try_clone_to_owned().unwrap();
    drop(a);
    (UnixStream::from(fd), b)
}

#[test]
fn garbage_oversized_and_truncated_frames_are_errors() {
    let _leaks = common::leak_check();
    let (mut raw, mut c) = raw_pair();
    raw.write_all(&(-7i32).to_be_bytes()).unwrap();
    assert!(matches!(c.recv_bytes(), Err(RecvError::BadLength(-7))));
    assert!(matches!(c.recv_bytes(), Err(RecvError::Broken)));

    let (mut raw, mut c) = raw_pair();
    c.set_max_frame(1000);
    raw.write_all(&1001i32.to_be_bytes()).unwrap();
    assert!(matches!(
        c.recv_bytes(),
        Err(RecvError::TooLarge {
            len: 1001,
            max: 1000
        })
    ));

    // A long header announcing 2^60 bytes is refused before anything is allocated.
    let (mut raw, mut c) = raw_pair();
    raw.write_all(&[0xff; 4]).unwrap();
    raw.write_all(&(1u64 << 60).to_be_bytes()).unwrap();
    assert!(matches!(c.recv_bytes(), Err(RecvError::TooLarge { .. })));

    let (mut raw, mut c) = raw_pair();
    raw.write_all(&10i32.to_be_bytes()).unwrap();
    raw.write_all(b"abc").unwrap();
    drop(raw);
    assert!(matches!(
        c.recv_bytes(),
        Err(RecvError::Truncated {
            got: 3,
            expected: 10
        })
    ));

    // Truncated inside the header, and inside a large frame.
    let (mut raw, mut c) = raw_pair();
    raw.write_all(&[0, 0]).unwrap();
    drop(raw);
    assert!(matches!(c.recv_bytes(), Err(RecvError::Truncated { .. })));
    let (mut raw, mut c) = raw_pair();
    let t = thread::spawn(move || {
        raw.write_all(&1_000_000i32.to_be_bytes()).unwrap();
        raw.write_all(&vec![1u8; 600_000]).unwrap();
    });
    assert!(matches!(
        c.recv_bytes(),
        Err(RecvError::Truncated {
            got: 600_000,
            expected: 1_000_000
        })
    ));
    t.join().unwrap();
}

#[test]
fn connections_and_descriptors_travel_through_connections() {
    let _leaks = common::leak_check();
    let (mut a, mut b) = pipe(true).unwrap();
    let (c, mut d) = pipe(true).unwrap();
    let (rx, tx) = pipe(false).unwrap();
    // Interleave plain messages and descriptor-carrying ones, all sent before any is read.
    a.send_bytes(b"one").unwrap();
    a.send(&c).unwrap();
    a.send(&7u8).unwrap();
    a.send(&(tx, "with a pipe end")).unwrap();
    a.send_bytes(b"two").unwrap();
    a.send(&rx).unwrap();
    drop(c);
    assert_eq!(b.recv_bytes().unwrap(), b"one");
    let mut c2: Connection = b.recv().unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 7);
    let (mut tx2, s): (Connection, String) = b.recv().unwrap();
    assert_eq!(s, "with a pipe end");
    assert_eq!(b.recv_bytes().unwrap(), b"two");
    let mut rx2: Connection = b.recv().unwrap();

    c2.send(&"through the sent end").unwrap();
    assert_eq!(d.recv::<String>().unwrap(), "through the sent end");
    d.send_bytes(b"back").unwrap();
    assert_eq!(c2.recv_bytes().unwrap(), b"back");
    tx2.send(&1.5f64).unwrap();
    assert_eq!(rx2.recv::<f64>().unwrap(), 1.5);
    assert!(tx2.writable() && !tx2.readable());
}

#[test]
fn descriptors_refuse_plain_transports() {
    let _leaks = common::leak_check();
    let (rx, mut tx) = pipe(false).unwrap();
    let (c, _d) = pipe(true).unwrap();
    assert!(matches!(tx.send(&c), Err(SendError::Encode(_))));
    drop(rx);

    let listener = Listener::bind("127.0.0.1:0".parse::<Address>().unwrap()).unwrap();
    let addr = listener.address().clone();
    let t = thread::spawn(move || listener.accept().unwrap());
    let mut tcp = Client::new().connect(&addr).unwrap();
    let _server = t.join().unwrap();
    assert!(!tcp.carries_descriptors());
    let err = tcp.send(&c).unwrap_err();
    assert!(err.to_string().contains("descriptor"), "{err}");
    // The connection is still usable after the refusal.
    tcp.send(&1u8).unwrap();
}

#[test]
fn a_connection_with_unread_data_refuses_to_travel() {
    let _leaks = common::leak_check();
    let (mut a, mut b) = pipe(true).unwrap();
    let (mut c, mut d) = pipe(true).unwrap();
    d.send_bytes(b"1").unwrap();
    d.send_bytes(b"2").unwrap();
    assert_eq!(c.recv_bytes().unwrap(), b"1"); // "2" now waits in c's buffer
    assert!(matches!(a.send(&c), Err(SendError::Encode(_))));
    assert_eq!(c.recv_bytes().unwrap(), b"2");
    a.send(&c).unwrap();
    let _c2: Connection = b.recv().unwrap();
}

#[test]
fn wait_returns_the_ready_connections() {
    let _leaks = common::leak_check();
    let (mut a1, b1) = pipe(true).unwrap();
    let (mut a2, b2) = pipe(true).unwrap();
    let (_a3, b3) = pipe(true).unwrap();
    let t = Instant::now();
    assert!(
        wait(&[&b1, &b2, &b3], Some(Duration::from_millis(30)))
            .unwrap()
            .is_empty()
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    a2.send_bytes(b"x").unwrap();
    assert_eq!(wait(&[&b1, &b2, &b3], None).unwrap(), [1]);
    a1.send_bytes(b"y").unwrap();
    assert_eq!(
        wait(&[&b1, &b2, &b3], Some(Duration::from_secs(10))).unwrap(),
        [0, 1]
    );
    // Buffered messages count as ready.
    let (mut a4, mut b4) = pipe(true).unwrap();
    a4.send_bytes(b"1").unwrap();
    a4.send_bytes(b"2").unwrap();
    while !b4.poll(Some(Duration::ZERO)).unwrap() {}
    b4.recv_bytes().unwrap();
    if b4.poll(Some(Duration::ZERO)).unwrap() {
        assert_eq!(wait(&[&b3, &b4], Some(Duration::ZERO)).unwrap(), [1]);
    }
}

fn echo_server(listener: Listener, n: usize) -> thread::JoinHandle<Vec<Result<(), String>>> {
    thread::spawn(move || {
        (0..n)
            .map(|_| {
                let mut c = listener.accept().map_err(|e| e.to_string())?;
                loop {
                    match c.recv_bytes() {
                        Ok(m) => c.send_bytes(&m).map_err(|e| e.to_string())?,
                        Err(RecvError::Disconnected) => return Ok(()),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            })
            .collect()
    })
}

fn check_echo(c: &mut Connection) {
    for msg in [&b"hello"[..], &[], &vec![9u8; 200_000]] {
        c.send_bytes(msg).unwrap();
        assert_eq!(c.recv_bytes().unwrap(), msg);
    }
}

#[test]
fn listener_and_client_on_every_address_kind() {
    let _leaks = common::leak_check();
    let path = SockPath::new("kinds");
    for addr in [
        Address::unix(&path.0),
        abstract_addr("kinds"),
        "127.0.0.1:0".parse().unwrap(),
        "[::1]:0".parse().unwrap(),
    ] {
        let listener = match Listener::options().authkey(b"key").bind(addr.clone()) {
            Ok(l) => l,
            // Machines without IPv6.
            Err(e) if matches!(addr, Address::Tcp(a) if a.is_ipv6()) => {
                eprintln!("skipping {addr}: {e}");
                continue;
            }
            Err(e) => panic!("{addr}: {e}"),
        };
        let bound = listener.address().clone();
        if let Address::Unix(p) = &bound {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{p:?}");
        }
        let server = echo_server(listener, 1);
        let mut c = Client::new().authkey(b"key").connect(&bound).unwrap();
        check_echo(&mut c);
        drop(c);
        assert_eq!(server.join().unwrap(), [Ok(())]);
        if let Address::Unix(p) = &bound {
            assert!(!p.exists(), "socket file left behind");
        }
    }
}

#[test]
fn wrong_authkey_is_refused_both_ways() {
    let _leaks = common::leak_check();
    let addr = abstract_addr("wrongkey");
    let listener = Listener::options()
        .authkey(b"right")
        .bind(addr.clone())
        .unwrap();
    let t = thread::spawn(move || listener.accept().map(|_| ()));
    let err = Client::new().authkey(b"wrong").connect(&addr).unwrap_err();
    assert!(
        matches!(err, ConnectError::Auth(AuthError::Rejected)),
        "{err}"
    );
    let server = t.join().unwrap().unwrap_err();
    assert!(
        matches!(server, AcceptError::Auth(AuthError::WrongDigest)),
        "{server}"
    );

    // A client without a key meets a listener with one, and the reverse.
    let listener = Listener::options()
        .authkey(b"right")
        .bind(addr.clone())
        .unwrap();
    let t = thread::spawn(move || listener.accept().map(|_| ()));
    let mut c = Client::new().connect(&addr).unwrap();
    assert!(c.recv_bytes().unwrap().starts_with(b"#CHALLENGE#"));
    drop(c);
    assert!(t.join().unwrap().is_err());
    let listener = Listener::bind(addr.clone()).unwrap();
    let t = thread::spawn(move || listener.accept().map(|mut c| c.recv_bytes()));
    let err = Client::new()
        .authkey(b"k")
        .handshake_timeout(Some(Duration::from_millis(100)))
        .connect(&addr)
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Auth(AuthError::TimedOut)),
        "{err}"
    );
    assert!(t.join().unwrap().is_ok());
}

/// Connects a raw stream to `path` and runs `bad` on it.
fn bad_peer(path: &std::path::Path, bad: impl FnOnce(&mut UnixStream) + Send + 'static) {
    let mut s = UnixStream::connect(path).unwrap();
    thread::spawn(move || {
        bad(&mut s);
        // Read whatever the listener says until it hangs up.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
}

#[test]
fn listener_keeps_serving_after_bad_peers() {
    let _leaks = common::leak_check();
    let path = SockPath::new("bad");
    let listener = Listener::options()
        .authkey(b"key")
        .handshake_timeout(Some(Duration::from_millis(300)))
        .max_frame(1 << 20)
        .bind(Address::unix(&path.0))
        .unwrap();
    let p = path.0.clone();
    // Each bad peer in turn, then a good client: every accept of a bad peer fails, the good
    // one succeeds.
    type BadPeer = Box<dyn FnOnce(&mut UnixStream) + Send>;
    let bad: Vec<BadPeer> = vec![
        Box::new(|s| {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        }),
        Box::new(|s| {
            s.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();
        }),
        Box::new(|s| {
            s.write_all(&[0xff; 12]).unwrap();
        }),
        Box::new(|s| {
            s.write_all(&100i32.to_be_bytes()).unwrap();
            s.write_all(b"short").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }),
        Box::new(|s| {
            // Answers the challenge with the right length but wrong bytes.
            let mut h = [0u8; 4];
            s.read_exact(&mut h).unwrap();
            let mut m = vec![0u8; i32::from_be_bytes(h) as usize];
            s.read_exact(&mut m).unwrap();
            let mut answer = b"{sha256}".to_vec();
            answer.extend([0u8; 32]);
            s.write_all(&(answer.len() as i32).to_be_bytes()).unwrap();
            s.write_all(&answer).unwrap();
        }),
        Box::new(|_s| {
            // Says nothing: the handshake times out.
        }),
    ];
    for b in bad {
        bad_peer(&p, b);
        let err = listener.accept().unwrap_err();
        assert!(matches!(err, AcceptError::Auth(_)), "{err}");
        let good = thread::spawn({
            let addr = Address::unix(&p);
            move || {
                let mut c = Client::new().authkey(b"key").connect(&addr).unwrap();
                check_echo(&mut c);
            }
        });
        let mut c = listener.accept().unwrap();
        while let Ok(m) = c.recv_bytes() {
            c.send_bytes(&m).unwrap();
        }
        good.join().unwrap();
    }

    // After authentication: one client sends garbage, another is served meanwhile.
    let addr = Address::unix(&p);
    let evil = thread::spawn({
        let addr = addr.clone();
        move || Client::new().authkey(b"key").connect(&addr).unwrap()
    });
    let mut evil_server = listener.accept().unwrap();
    let mut evil = evil.join().unwrap();
    let good = thread::spawn({
        let addr = addr.clone();
        move || {
            let mut c = Client::new().authkey(b"key").connect(&addr).unwrap();
            check_echo(&mut c);
        }
    });
    let mut c = listener.accept().unwrap();
    // Over the listener's 1 MiB maximum; the send may fail once the server gives up.
    let evil = thread::spawn(move || evil.send_bytes(&vec![0u8; 2 << 20]));
    assert!(matches!(
        evil_server.recv_bytes(),
        Err(RecvError::TooLarge { max: 1048576, .. })
    ));
    while let Ok(m) = c.recv_bytes() {
        c.send_bytes(&m).unwrap();
    }
    good.join().unwrap();
    drop(evil_server);
    let _ = evil.join().unwrap();
}

#[test]
fn concurrent_accepts_are_not_blocked_by_a_stalled_client() {
    let _leaks = common::leak_check();
    let addr = abstract_addr("stall");
    let listener = Listener::options()
        .authkey(b"key")
        .handshake_timeout(Some(Duration::from_millis(500)))
        .bind(addr.clone())
        .unwrap();
    let Address::Abstract(name) = &addr else {
        unreachable!()
    };
    let name = name.clone();
    // A raw client that connects and stays silent.
    let stalled = thread::spawn(move || {
        use std::os::linux::net::SocketAddrExt;
        let a = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let s = UnixStream::connect_addr(&a).unwrap();
        thread::sleep(Duration::from_secs(1));
        drop(s);
    });
    thread::scope(|scope| {
        let l = &listener;
        let acceptors: Vec<_> = (0..2).map(|_| scope.spawn(move || l.accept())).collect();
        let mut c = Client::new().authkey(b"key").connect(&addr).unwrap();
        c.send_bytes(b"through").unwrap();
        let results: Vec<_> = acceptors.into_iter().map(|a| a.join().unwrap()).collect();
        let served: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
        assert_eq!(served.len(), 1);
        let mut s = served.into_iter().next().unwrap();
        assert_eq!(s.recv_bytes().unwrap(), b"through");
    });
    stalled.join().unwrap();
}

#[test]
fn silent_clients_do_not_delay_a_good_one() {
    let _leaks = common::leak_check();
    const SILENT: usize = 10;
    const TIMEOUT: Duration = Duration::from_secs(10);
    let path = SockPath::new("loris");
    let listener = Listener::options()
        .authkey(b"key")
        .handshake_timeout(Some(TIMEOUT))
        .bind(Address::unix(&path.0))
        .unwrap();
    // Connected first, and (next to) never a word: each would have cost the good client a
    // full timeout when handshakes ran one after another.
    let silent: Vec<UnixStream> = (0..SILENT)
        .map(|i| {
            let mut s = UnixStream::connect(&path.0).unwrap();
            if i % 2 == 1 {
                // Half of them start an answer and stop inside its header.
                s.write_all(&[0, 0]).unwrap();
            }
            s
        })
        .collect();
    let addr = Address::unix(&path.0);
    let start = Instant::now();
    let good = thread::spawn(move || {
        let mut c = Client::new().authkey(b"key").connect(&addr).unwrap();
        c.send_bytes(b"served").unwrap();
        c
    });
    // The very first accept returns the good client: none of the silent ones has timed out.
    let mut c = listener.accept().unwrap();
    assert_eq!(c.recv_bytes().unwrap(), b"served");
    // Watchdog: far below one handshake timeout, let alone SILENT of them.
    assert!(start.elapsed() < TIMEOUT / 2, "{:?}", start.elapsed());
    drop(good.join().unwrap());

    // The same with the handshake left to the caller: a silent client accepted raw costs the
    // next one nothing.
    let _quiet = UnixStream::connect(&path.0).unwrap();
    let _stalled = listener.accept_raw().unwrap();
    let addr = Address::unix(&path.0);
    let good = thread::spawn(move || Client::new().authkey(b"key").connect(&addr).unwrap());
    let mut served = None;
    while served.is_none() {
        let p = listener.accept_raw().unwrap();
        served = p.handshake_timeout(Some(Duration::from_secs(1))).ok();
    }
    let mut theirs = good.join().unwrap();
    theirs.send_bytes(b"raw").unwrap();
    assert_eq!(served.unwrap().recv_bytes().unwrap(), b"raw");
    drop(silent);
}

#[test]
fn a_flood_of_silent_clients_drops_the_oldest_not_the_good_one() {
    let _leaks = common::leak_check();
    // One more than the listener keeps under way.
    const FLOOD: usize = 257;
    let path = SockPath::new("flood");
    let listener = Listener::options()
        .authkey(b"key")
        .handshake_timeout(None)
        .bind(Address::unix(&path.0))
        .unwrap();
    thread::scope(|s| {
        // Accepting while the flood connects, so that the backlog never fills.
        let served = s.spawn(|| listener.accept());
        let silent: Vec<UnixStream> = (0..FLOOD)
            .map(|_| UnixStream::connect(&path.0).unwrap())
            .collect();
        let mut c = Client::new()
            .authkey(b"key")
            .connect(Address::unix(&path.0))
            .unwrap();
        c.send_bytes(b"good").unwrap();
        let mut served = served.join().unwrap().unwrap();
        assert_eq!(served.recv_bytes().unwrap(), b"good");
        // The oldest silent client got its challenge, then was closed to make room.
        let mut oldest = &silent[0];
        oldest
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut seen = Vec::new();
        oldest.read_to_end(&mut seen).unwrap();
        assert!(seen.windows(11).any(|w| w == b"#CHALLENGE#"), "{seen:?}");
    });
}

#[test]
fn unix_path_in_use_is_a_clear_error() {
    let _leaks = common::leak_check();
    let path = SockPath::new("inuse");
    let _l = Listener::bind(Address::unix(&path.0)).unwrap();
    let err = Listener::bind(Address::unix(&path.0)).unwrap_err();
    assert!(
        matches!(err, multiproc::BindError::AddressInUse(_)),
        "{err}"
    );
    let err = Client::new()
        .connect(Address::unix("/nonexistent/x.sock"))
        .unwrap_err();
    assert!(matches!(err, ConnectError::Io { .. }), "{err}");
}

#[test]
fn spinning_receives_see_messages_and_closes() {
    let _leaks = common::leak_check();
    let listener = Listener::bind("127.0.0.1:0".parse::<Address>().unwrap()).unwrap();
    let addr = listener.address().clone();
    let t = thread::spawn(move || {
        let mut c = listener.accept().unwrap();
        assert_eq!(c.spin(), Duration::ZERO, "TCP sleeps at once by default");
        c.set_spin(Duration::from_micros(200));
        while let Ok(m) = c.recv_bytes() {
            c.send_bytes(&m).unwrap();
        }
    });
    let mut c = Client::new().connect(&addr).unwrap();
    c.set_spin(Duration::from_micros(200));
    check_echo(&mut c);
    drop(c);
    t.join().unwrap();

    let (mut a, mut b) = pipe(true).unwrap();
    assert_eq!(b.spin(), multiproc::connection::DEFAULT_SPIN);
    b.set_spin(Duration::from_millis(1));
    let (c, _d) = pipe(true).unwrap();
    a.send(&c).unwrap();
    let sent: Connection = b.recv().unwrap();
    assert_eq!(sent.spin(), multiproc::connection::DEFAULT_SPIN);
    drop(a);
    assert!(matches!(b.recv_bytes(), Err(RecvError::Disconnected)));
}

/// A TCP listener whose accept queue is full drops new connection requests, so a connect to it
/// gets no answer: the client gives up after its connect time-out instead of waiting for the
/// system's two minutes.
#[test]
fn tcp_connect_times_out() {
    let _leaks = common::leak_check();
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use rustix::net::{AddressFamily, SocketType, bind, listen, socket};

    let sock = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&sock, &"127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap();
    listen(&sock, 0).unwrap();
    let addr = rustix::net::getsockname(&sock).unwrap();
    let addr: SocketAddr = addr.try_into().unwrap();
    // Fill the accept queue (never accepted).
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let started = Instant::now();
    let r = multiproc::Client::new()
        .connect_timeout(Some(Duration::from_millis(300)))
        .connect(multiproc::Address::Tcp(addr));
    let elapsed = started.elapsed();
    match r {
        Err(multiproc::ConnectError::Io { source: e, .. }) => {
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
            assert!(elapsed >= Duration::from_millis(300));
        }
        other => panic!("expected a connect time-out, got {:?}", other.map(|_| ())),
    }
}
