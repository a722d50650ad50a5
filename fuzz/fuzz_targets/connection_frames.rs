//! Any byte stream from a peer: `recv_bytes` and typed `recv` give messages or errors (never
//! panic, never allocate past the maximum frame size), and end at the stream's end.
#![no_main]

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use multiproc::{RecvError, pipe};

fuzz_target!(|data: &[u8]| {
    let (a, mut b) = pipe(true).unwrap();
    let mut raw = UnixStream::from(a.as_fd().try_clone_to_owned().unwrap());
    drop(a);
    b.set_max_frame(1 << 16);
    let input = data.to_vec();
    // The writer runs beside the reader: inputs larger than the socket buffer do not block.
    let writer = std::thread::spawn(move || {
        let _ = raw.write_all(&input);
    });
    let mut typed = false;
    loop {
        let r = if typed {
            b.recv::<(u32, String, Vec<u8>)>().map(|_| ())
        } else {
            b.recv_bytes().map(|m| assert!(m.len() <= 1 << 16))
        };
        typed = !typed;
        match r {
            Ok(()) | Err(RecvError::Decode(_)) => {}
            Err(_) => break,
        }
    }
    drop(b);
    writer.join().unwrap();
});
