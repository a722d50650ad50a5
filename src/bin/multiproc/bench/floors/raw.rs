//! The floors that need the system directly: a page shared with a forked child (spin and futex
//! ping-pong, socket echo), raw `fork`, and the system calls behind a named segment. The only `unsafe` of the command; each block says what it relies on.
//!
//! A forked child of a process that may have other threads can only use async-signal-safe
//! calls (another thread's lock stays locked in the child forever). Every child body here is
//! a loop of atomic operations and plain system calls (`read`, `write`, `futex`,
//! `sched_yield`, `accept`, `_exit`) on objects made before the fork: no
//! allocation, no lock, no output, and it ends with `_exit`.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use rustix::mm::{MapFlags, ProtFlags};
use rustix::thread::futex;

use crate::bench::placement::{Placement, start_placed};

const PAGE: usize = 4096;
/// The word's value that tells a ping-pong child to exit.
const STOP: u32 = u32::MAX;

/// A page of memory shared with the children forked after its creation; unmapped on drop.
struct SharedPage {
    ptr: NonNull<AtomicU32>,
}

impl SharedPage {
    fn new() -> Result<Self, String> {
        // SAFETY: a new anonymous mapping aliases nothing; the pointer is checked by the call.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                PAGE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(|e| format!("mmap: {e}"))?;
        let ptr = NonNull::new(p.cast::<AtomicU32>()).ok_or("mmap returned null")?;
        Ok(SharedPage { ptr })
    }

    /// Word `i` (< 1024) of the page. Other processes (the children that share the page)
    /// access it only through atomic operations too.
    fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i < PAGE / 4);
        // SAFETY: the page is mapped, zero-filled (valid `AtomicU32`s), aligned, and stays
        // mapped while `self` lives; word `i` lies inside it; every access from any process is
        // atomic.
        unsafe { self.ptr.add(i).as_ref() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and no reference to it
        // outlives `self` (`word` borrows `self`).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), PAGE) };
    }
}

/// A child made by [`fork`], killed and reaped on drop if it has not been waited for.
struct Child {
    pid: Option<rustix::process::Pid>,
}

impl Child {
    /// Waits for the child; an error unless it exited with status 0.
    fn wait(mut self) -> Result<(), String> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
            .map_err(|e| format!("waitpid: {e}"))?
            .map(|(_, s)| s);
        match status.and_then(|s| s.exit_status()) {
            Some(0) => Ok(()),
            _ => Err(format!("the child ended with {status:?}")),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}

/// Forks a child that runs `body` and exits; `body` must keep to the rules of the module doc.
fn fork(body: impl FnOnce()) -> Result<Child, String> {
    // SAFETY: the child runs only `body`, which by this module's rule makes async-signal-safe
    // calls on objects made before the fork, and then `_exit`s without unwinding or running
    // destructors; the parent goes on as after any fork.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; no memory is touched.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            body();
            // SAFETY: `_exit` ends the process at once; nothing of the parent's is flushed.
            unsafe { libc::_exit(0) }
        }
        pid => Ok(Child {
            pid: rustix::process::Pid::from_raw(pid),
        }),
    }
}

fn fork_placed(placement: Placement, body: impl FnOnce()) -> Result<Child, String> {
    start_placed(
        placement,
        || fork(body),
        |c| {
            c.as_ref()
                .ok()
                .and_then(|c| c.pid)
                .map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs())
        },
    )
}

/// How a ping-pong side waits for the other.
#[derive(Clone, Copy)]
pub enum Wait {
    /// Spins on the word; after `spins` looks, yields the CPU between looks (a pure spin
    /// against a peer on the same CPU waits for the end of the time slice).
    Spin { spins: u32 },
    /// Sleeps on the word with `futex(FUTEX_WAIT)`; the other side wakes it.
    Futex,
    /// Spins while the other side last wrote from another CPU, and yields the CPU while it
    /// wrote from this one (for unpinned processes, which may share a CPU at any moment).
    CpuAware,
}

/// The words of a ping-pong: the value, and the CPU of its last writer.
#[derive(Clone, Copy)]
struct Words<'a> {
    value: &'a AtomicU32,
    writer_cpu: &'a AtomicU32,
}

fn this_cpu() -> u32 {
    u32::try_from(rustix::thread::sched_getcpu()).unwrap_or(u32::MAX)
}

fn await_value(w: Words<'_>, wanted: u32, wait: Wait) -> u32 {
    let mut looks = 0u32;
    loop {
        let v = w.value.load(Ordering::Acquire);
        if v == wanted || v == STOP {
            return v;
        }
        looks = looks.wrapping_add(1);
        match wait {
            Wait::Spin { spins } if looks <= spins => std::hint::spin_loop(),
            Wait::Spin { .. } => rustix::thread::sched_yield(),
            Wait::Futex => drop(futex::wait(w.value, futex::Flags::empty(), v, None)),
            Wait::CpuAware => {
                if looks.is_multiple_of(64) && w.writer_cpu.load(Ordering::Relaxed) == this_cpu() {
                    rustix::thread::sched_yield();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

fn announce(w: Words<'_>, v: u32, wait: Wait) {
    if let Wait::CpuAware = wait {
        w.writer_cpu.store(this_cpu(), Ordering::Relaxed);
    }
    w.value.store(v, Ordering::Release);
    if let Wait::Futex = wait {
        let _ = futex::wake(w.value, futex::Flags::empty(), 1);
    }
}

/// `batch` round trips through one shared word: the parent writes an odd number, the child
/// answers with the next even one.
pub fn ping_pong(placement: Placement, wait: Wait, batch: u64) -> Result<f64, String> {
    let page = SharedPage::new()?;
    let w = Words {
        value: page.word(0),
        writer_cpu: page.word(1),
    };
    let child = fork_placed(placement, || {
        let mut expect = 1u32;
        while await_value(w, expect, wait) != STOP {
            announce(w, expect + 1, wait);
            expect = expect.wrapping_add(2) % (STOP - 1);
        }
    })?;
    let mut ping = 1u32;
    let mut round = || {
        announce(w, ping, wait);
        await_value(w, ping + 1, wait);
        ping = ping.wrapping_add(2) % (STOP - 1);
    };
    round();
    let t = Instant::now();
    for _ in 0..batch {
        round();
    }
    let elapsed = t.elapsed().as_secs_f64();
    announce(w, STOP, wait);
    child.wait()?;
    Ok(elapsed)
}

/// Reads exactly `buf.len()` bytes; `false` at the end of the stream or on an error.
fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    true
}

/// Writes all of `buf`; `false` on an error.
fn write_all(fd: &OwnedFd, buf: &[u8]) -> bool {
    let mut sent = 0;
    while sent < buf.len() {
        match rustix::io::write(fd, &buf[sent..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => sent += n,
        }
    }
    true
}

/// Echoes 64-byte blocks on `fd` until it closes (child side: `read`/`write` only).
fn echo(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    while read_exact(fd, &mut buf) && write_all(fd, &buf) {}
}

/// `batch` 64-byte round trips on a stream socket `ours`, whose peer `theirs` (or the
/// connection accepted on it, when `accept`) a forked child echoes.
pub fn socket_echo(
    placement: Placement,
    ours: OwnedFd,
    theirs: OwnedFd,
    accept: bool,
    batch: u64,
) -> Result<f64, String> {
    let child = fork_placed(placement, || {
        if accept {
            if let Ok(conn) = rustix::net::accept(&theirs) {
                let _ = rustix::net::sockopt::set_tcp_nodelay(&conn, true);
                echo(&conn);
            }
        } else {
            echo(&theirs);
        }
    })?;
    drop(theirs);
    let mut buf = [7u8; 64];
    let mut round = || -> Result<(), String> {
        if write_all(&ours, &buf) && read_exact(&ours, &mut buf) {
            Ok(())
        } else {
            Err("the echo process is gone".into())
        }
    };
    round()?;
    let t = Instant::now();
    for _ in 0..batch {
        round()?;
    }
    let elapsed = t.elapsed().as_secs_f64();
    // The child holds a copy of `ours` too: only a shutdown ends its stream.
    let _ = rustix::net::shutdown(&ours, rustix::net::Shutdown::Write);
    child.wait()?;
    Ok(elapsed)
}

/// `batch` times: fork a child that exits at once, and wait for it.
pub fn fork_exit_wait(batch: u64) -> Result<f64, String> {
    let t = Instant::now();
    for _ in 0..batch {
        fork(|| {})?.wait()?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// `batch` times what `SharedMemory::create` + `open` + `unlink` make the system do:
/// `shm_open(O_CREAT|O_EXCL)`, `ftruncate`, `mmap`; `shm_open`, `fstat`, `mmap`; `munmap` ×2,
/// `close` ×2, `shm_unlink`.
pub fn shm_syscalls(batch: u64) -> Result<f64, String> {
    use rustix::fs::Mode;
    use rustix::shm::OFlags;
    let name = format!("/multiproc-floor-{}", std::process::id());
    let map = |fd: &OwnedFd, len: usize| -> Result<(), String> {
        // SAFETY: a new shared mapping of a segment nobody else writes; it is unmapped right
        // away and no reference into it is made.
        unsafe {
            let p = rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd.as_fd(),
                0,
            )
            .map_err(|e| format!("mmap: {e}"))?;
            rustix::mm::munmap(p, len).map_err(|e| format!("munmap: {e}"))
        }
    };
    let t = Instant::now();
    for _ in 0..batch {
        let a = rustix::shm::open(
            name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| format!("shm_open: {e}"))?;
        rustix::fs::ftruncate(&a, PAGE as u64).map_err(|e| format!("ftruncate: {e}"))?;
        let b = rustix::shm::open(name.as_str(), OFlags::RDWR, Mode::empty())
            .map_err(|e| format!("shm_open: {e}"))?;
        let len = rustix::fs::fstat(&b)
            .map_err(|e| format!("fstat: {e}"))?
            .st_size;
        map(&a, PAGE)?;
        map(&b, usize::try_from(len).unwrap_or(PAGE))?;
        drop((a, b));
        rustix::shm::unlink(name.as_str()).map_err(|e| format!("shm_unlink: {e}"))?;
    }
    Ok(t.elapsed().as_secs_f64())
}
