//! Any bytes from an unauthenticated client: `Listener::accept` fails with an error (never
//! panics, never hangs past the handshake time-out), and the listener still serves the next
//! client.
#![no_main]

use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use multiproc::{Address, Listener};

static N: AtomicUsize = AtomicUsize::new(0);

fuzz_target!(|data: &[u8]| {
    let name = format!(
        "multiproc-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let listener = Listener::options()
        .authkey(b"fuzz")
        .handshake_timeout(Some(Duration::from_millis(50)))
        .bind(Address::abstract_name(name.clone()))
        .unwrap();
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut raw = UnixStream::connect_addr(&addr).unwrap();
    let input = data.to_vec();
    // The client says its bytes and hangs up.
    let writer = std::thread::spawn(move || {
        let _ = raw.write_all(&input);
    });
    // Random bytes cannot hold the right HMAC.
    assert!(listener.accept().is_err());
    writer.join().unwrap();
});
