//! Connections between processes: as process arguments, sent through other connections, and
//! a peer that dies.

mod common;

use std::time::Duration;

use multiproc::{Connection, Descriptor, Process, RecvError, pipe};

multiproc::test_support!();

fn add_one(mut c: Connection) -> u32 {
    let n: u32 = c.recv().unwrap();
    c.send(&(n + 1)).unwrap();
    n
}

#[test]
fn a_connection_is_a_process_argument() {
    let _leaks = common::leak_check();
    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(add_one, b).unwrap();
    a.send(&41u32).unwrap();
    assert_eq!(a.recv::<u32>().unwrap(), 42);
    assert_eq!(p.join().unwrap(), 41);
}

/// Receives a connection through `control`, then talks on it.
fn use_received(mut control: Connection) -> String {
    let (mut tx, mut other): (Connection, Connection) = control.recv().unwrap();
    let msg: String = other.recv().unwrap();
    tx.send_bytes(msg.to_uppercase().as_bytes()).unwrap();
    msg
}

#[test]
fn a_connection_sent_through_a_connection_works_in_another_process() {
    let _leaks = common::leak_check();
    let (mut control, child_control) = pipe(true).unwrap();
    let p = Process::start(use_received, child_control).unwrap();
    let (mut rx, tx) = pipe(false).unwrap();
    let (mut mine, theirs) = pipe(true).unwrap();
    control.send(&(tx, theirs)).unwrap();
    mine.send("sent through a connection").unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"SENT THROUGH A CONNECTION");
    assert_eq!(p.join().unwrap(), "sent through a connection");
}

fn hold_forever(c: Connection) {
    let _keep = c;
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_killed_peer_is_disconnected_not_a_hang() {
    let _leaks = common::leak_check();
    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(hold_forever, b).unwrap();
    assert!(!a.poll(Some(Duration::from_millis(20))).unwrap());
    p.kill().unwrap();
    assert!(matches!(a.recv_bytes(), Err(RecvError::Disconnected)));
    assert!(p.join().is_err());
}

/// The descriptors this process has open, by number (the directory's own one included, the
/// same each time).
fn open_fds() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// What a receiver at its descriptor limit saw.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Starved {
    /// The first receive's error.
    error: String,
    /// Whether that error was `DescriptorsLost`.
    lost: bool,
    /// Whether the next receive reported a broken connection.
    then_broken: bool,
    /// Whether the descriptors open before and after are the same.
    nothing_leaked: bool,
}

/// Asks for a descriptor limit with three free slots, then receives a message carrying more
/// descriptors than that.
fn starved_receiver(mut c: Connection) -> Starved {
    let before = open_fds();
    // The smallest limit that leaves exactly three descriptor numbers free.
    let free_below = |limit: u32| limit as usize - before.iter().filter(|&&fd| fd < limit).count();
    let limit = (0..).find(|&l| free_below(l) == 3).unwrap();
    let limit = u64::from(limit);
    c.send(&limit).unwrap();
    let first = c.recv::<Vec<Descriptor>>();
    let after = open_fds();
    let then_broken = matches!(c.recv_bytes(), Err(RecvError::Broken));
    Starved {
        lost: matches!(first, Err(RecvError::DescriptorsLost(_))),
        error: match first {
            Ok(v) => format!("received {} descriptors", v.len()),
            Err(e) => e.to_string(),
        },
        then_broken,
        nothing_leaked: before == after,
    }
}

#[test]
fn a_receiver_out_of_descriptors_breaks_the_connection_and_says_why() {
    let _leaks = common::leak_check();
    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(starved_receiver, b).unwrap();
    let limit: u64 = a.recv().unwrap();
    // Only the child's soft limit is lowered; this process keeps its own.
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", p.pid()))
        .arg(format!("--nofile={limit}:"))
        .status()
        .expect("prlimit (util-linux) must be installed");
    assert!(status.success());
    let f = std::fs::File::open("/proc/self/exe").unwrap();
    let many: Vec<Descriptor> = (0..16)
        .map(|_| Descriptor::from(f.try_clone().unwrap()))
        .collect();
    a.send(&many).unwrap();
    // The child may be gone already: it needs nothing more to see the connection broken.
    let _ = a.send_bytes(b"read as a header if the stream lost its place");
    let r = p.join().unwrap();
    assert!(r.lost, "{r:?}");
    assert!(r.error.contains("Too many open files"), "{r:?}");
    assert!(r.then_broken && r.nothing_leaked, "{r:?}");
}
