//! The shared-memory duplex channel between real processes: round trips, large messages, a
//! peer that leaves or is killed.

mod common;

use std::time::{Duration, Instant};

use multiproc::queue::{Duplex, DuplexError, duplex};
use multiproc::{Connection, Process, pipe};

multiproc::test_support!();

const LONG: Duration = Duration::from_secs(60);

fn echo(end: Duplex) -> u64 {
    let mut n = 0;
    while let Ok(v) = end.recv::<u64>() {
        end.send(&(v * 2)).unwrap();
        n += 1;
    }
    n
}

#[test]
fn round_trips_with_a_child_then_it_sees_the_end() {
    let _leaks = common::leak_check();
    let (mine, theirs) = duplex().unwrap();
    let child = Process::start(echo, theirs).unwrap();
    for i in 0..10_000u64 {
        mine.send(&i).unwrap();
        assert_eq!(mine.recv_timeout::<u64>(LONG).unwrap(), 2 * i);
    }
    drop(mine);
    assert_eq!(child.join().unwrap(), 10_000);
}

/// A forked child gets its end as a spawned one does: the parent's copy of the argument is
/// not the child's, and dropping it in the parent closes nothing of the child's.
#[test]
fn round_trips_with_a_forked_child() {
    let _leaks = common::leak_check();
    for daemon in [false, true] {
        let (mine, theirs) = duplex().unwrap();
        let child = Process::builder()
            .method(multiproc::StartMethod::Fork)
            .daemon(daemon)
            .start(echo, theirs)
            .unwrap();
        for i in 0..1000u64 {
            mine.send(&i).unwrap();
            assert_eq!(mine.recv_timeout::<u64>(LONG).unwrap(), 2 * i);
        }
        drop(mine);
        assert_eq!(child.join().unwrap(), 1000);
    }
}

fn send_and_leave(end: Duplex) {
    end.send_bytes(b"one").unwrap();
    end.send_bytes(&vec![9u8; 3 << 20]).unwrap();
    end.send_bytes(b"three").unwrap();
}

#[test]
fn what_was_sent_arrives_before_the_disconnection() {
    let _leaks = common::leak_check();
    let (mine, theirs) = duplex().unwrap();
    let child = Process::start(send_and_leave, theirs).unwrap();
    assert_eq!(mine.recv_bytes().unwrap(), b"one");
    assert!(mine.recv_bytes().unwrap() == vec![9u8; 3 << 20]);
    assert_eq!(mine.recv_bytes().unwrap(), b"three");
    child.join().unwrap();
    assert!(matches!(mine.recv_bytes(), Err(DuplexError::Disconnected)));
    assert!(mine.poll(Some(Duration::ZERO)));
    assert!(matches!(mine.send(&1u8), Err(DuplexError::Disconnected)));
}

fn hang(end: Duplex) {
    end.send(&"ready").unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_peer_is_a_disconnection() {
    let _leaks = common::leak_check();
    let (mine, theirs) = duplex().unwrap();
    let child = Process::start(hang, theirs).unwrap();
    assert_eq!(mine.recv_timeout::<String>(LONG).unwrap(), "ready");
    assert!(!mine.poll(Some(Duration::from_millis(10))));
    child.kill().unwrap();
    let _ = child.join();
    let start = Instant::now();
    assert!(matches!(mine.recv::<u8>(), Err(DuplexError::Disconnected)));
    assert!(start.elapsed() < LONG);
}

#[test]
fn recv_times_out_while_the_peer_lives() {
    let _leaks = common::leak_check();
    let (a, _b) = duplex().unwrap();
    let start = Instant::now();
    assert!(matches!(
        a.recv_timeout::<u8>(Duration::from_millis(30)),
        Err(DuplexError::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

fn relay(mut conn: Connection) {
    let end: Duplex = conn.recv().unwrap();
    end.send(&"through a connection").unwrap();
}

#[test]
fn an_end_travels_through_a_connection() {
    let _leaks = common::leak_check();
    let (mut parent, child_conn) = pipe(true).unwrap();
    let p = Process::start(relay, child_conn).unwrap();
    let (mine, theirs) = duplex().unwrap();
    parent.send(&theirs).unwrap();
    // Sent, then dropped here: the copy on its way keeps the channel connected.
    drop(theirs);
    assert_eq!(
        mine.recv_timeout::<String>(LONG).unwrap(),
        "through a connection"
    );
    p.join().unwrap();
    assert!(matches!(
        mine.recv::<String>(),
        Err(DuplexError::Disconnected)
    ));
}
