//! Connections between processes: as process arguments, sent through other connections, and
//! a peer that dies.

use std::time::Duration;

use multiproc::{Connection, Process, RecvError, pipe};

multiproc::test_support!();

fn add_one(mut c: Connection) -> u32 {
    let n: u32 = c.recv().unwrap();
    c.send(&(n + 1)).unwrap();
    n
}

#[test]
fn a_connection_is_a_process_argument() {
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
    let (mut a, b) = pipe(true).unwrap();
    let p = Process::start(hold_forever, b).unwrap();
    assert!(!a.poll(Some(Duration::from_millis(20))).unwrap());
    p.kill().unwrap();
    assert!(matches!(a.recv_bytes(), Err(RecvError::Disconnected)));
    assert!(p.join().is_err());
}
