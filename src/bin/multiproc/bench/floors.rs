//! The floors: what the machine charges for each mechanism with no library in between,
//! measured in the same run as the scenarios they are compared with.

mod raw;

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Instant;

use raw::Wait;

use super::placement::Placement;
use super::scenarios::timed;

/// 64 bytes to a forked child and back over a `socketpair(2)`.
pub fn socketpair_round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
    let (a, b) = std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    raw::socket_echo(placement, OwnedFd::from(a), OwnedFd::from(b), false, batch)
}

/// 64 bytes to a forked child and back over TCP loopback (`TCP_NODELAY`).
pub fn tcp_round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let conn = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    raw::socket_echo(
        placement,
        OwnedFd::from(conn),
        OwnedFd::from(listener),
        true,
        batch,
    )
}

/// A round trip through one cache line shared with a forked child, both spinning: a pure
/// spin on two CPUs, yielding the CPU between looks on one, and when unpinned (the two may
/// share a CPU at any moment) spinning only while the other side wrote from another CPU.
pub fn spin_round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
    let wait = match placement {
        Placement::TwoCpus => Wait::Spin { spins: u32::MAX },
        Placement::SameCpu => Wait::Spin { spins: 0 },
        Placement::Unpinned => Wait::CpuAware,
    };
    raw::ping_pong(placement, wait, batch)
}

/// A round trip through one shared word, each side sleeping in `futex(FUTEX_WAIT)` and woken
/// by the other: two futex wakes.
pub fn futex_round_trip(placement: Placement, batch: u64) -> Result<f64, String> {
    raw::ping_pong(placement, Wait::Futex, batch)
}

/// `std::sync::Mutex` lock + unlock with nobody else around (a futex word, no system call).
pub fn mutex_uncontended(_: Placement, batch: u64) -> Result<f64, String> {
    let m = std::sync::Mutex::new(0u64);
    timed(batch, |_| {
        *black_box(&m).lock().map_err(|_| "poisoned".to_string())? += 1;
        Ok(())
    })
}

fn memcpy(size: usize, batch: u64) -> Result<f64, String> {
    let src = vec![1u8; size];
    let mut dst = vec![0u8; size];
    dst.copy_from_slice(&src);
    let t = Instant::now();
    for _ in 0..batch {
        black_box(&mut dst).copy_from_slice(black_box(&src));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Copies 1 MiB from one buffer to another in this process (both touched before).
pub fn memcpy_1mib(_: Placement, batch: u64) -> Result<f64, String> {
    memcpy(1 << 20, batch)
}

/// Copies 64 MiB from one buffer to another in this process (both touched before).
pub fn memcpy_64mib(_: Placement, batch: u64) -> Result<f64, String> {
    memcpy(64 << 20, batch)
}

/// A TCP loopback connection made and accepted, then closed.
pub fn tcp_connect(_: Placement, batch: u64) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    timed(batch, |_| {
        let c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let (s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        drop((c, s));
        Ok(())
    })
}

/// `fork` of a child that exits at once, and `waitpid`.
pub fn raw_fork(_: Placement, batch: u64) -> Result<f64, String> {
    raw::fork_exit_wait(batch)
}

/// This program started again (`--version`, output discarded) by `std::process::Command`
/// (`posix_spawn`: the cheapest fork + exec), and waited for.
pub fn raw_fork_exec(_: Placement, batch: u64) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    timed(batch, |_| {
        let status = std::process::Command::new(&exe)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("start {}: {e}", exe.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} --version: {status}", exe.display()))
        }
    })
}

/// The system calls behind `SharedMemory` create + attach + unlink, made directly.
pub fn shm_syscalls(_: Placement, batch: u64) -> Result<f64, String> {
    raw::shm_syscalls(batch)
}
