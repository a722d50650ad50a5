//! Helper threads of a parent: the spawner (for daemons) and the reaper (for dropped handles).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::handle::{Inner, Orphan, print_unjoined_report};
use crate::sys::{process as os, socket};

/// Dropped children of a forked child (which starts no helper thread), reaped at the next start
/// or `active_children()`.
pub(super) static UNREAPED: Mutex<Vec<Arc<Inner>>> = Mutex::new(Vec::new());

pub(super) fn reap_unreaped() {
    if let Ok(mut list) = UNREAPED.try_lock() {
        list.retain(|c| !c.has_ended());
    }
}

/// A thread that lives as long as the process and creates daemon children, so that their
/// parent-death signal is tied to the process, not to a short-lived thread.
pub(super) struct Spawner {
    jobs: Mutex<std::sync::mpsc::Sender<SpawnJob>>,
}

/// Work for the spawner thread: create a child, return its pid.
type SpawnJob = (
    Box<dyn FnOnce() -> std::io::Result<os::Child> + Send>,
    std::sync::mpsc::Sender<std::io::Result<os::Child>>,
);

impl Spawner {
    /// Runs `job` on the spawner thread and returns its result.
    pub(super) fn run(
        &self,
        job: Box<dyn FnOnce() -> std::io::Result<os::Child> + Send>,
    ) -> std::io::Result<os::Child> {
        let (tx, rx) = std::sync::mpsc::channel();
        let gone = || std::io::Error::other("the multiproc spawner thread is gone");
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((job, tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

/// This process's spawner, started on first use. Reset in forked children (`fork_child`).
pub(super) static SPAWNER: Mutex<Option<Arc<Spawner>>> = Mutex::new(None);

pub(super) fn spawner() -> std::io::Result<Arc<Spawner>> {
    let mut slot = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = &*slot {
        return Ok(s.clone());
    }
    let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
    std::thread::Builder::new()
        .name("multiproc-spawner".into())
        .spawn(move || {
            for (job, reply) in rx {
                let _ = reply.send(job());
            }
        })?;
    let s = Arc::new(Spawner {
        jobs: Mutex::new(tx),
    });
    *slot = Some(s.clone());
    Ok(s)
}

/// Collects the exit status of children whose [`Process`] was dropped while they ran.
pub(super) struct Reaper {
    adopted: Mutex<Vec<Arc<Orphan>>>,
    wake_tx: OwnedFd,
    wake_rx: OwnedFd,
}

impl Reaper {
    pub(super) fn adopt(&self, child: Orphan) {
        self.adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(child));
        let _ = rustix::io::write(&self.wake_tx, &[1]);
    }
}

/// This process's reaper, started on first use. Reset in forked children (`fork_child`).
pub(super) static REAPER: Mutex<Option<Arc<Reaper>>> = Mutex::new(None);

pub(super) fn reaper() -> std::io::Result<Arc<Reaper>> {
    let mut slot = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = &*slot {
        return Ok(r.clone());
    }
    let (wake_rx, wake_tx) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    let r = Arc::new(Reaper {
        adopted: Mutex::new(Vec::new()),
        wake_tx,
        wake_rx,
    });
    let thread_r = r.clone();
    std::thread::Builder::new()
        .name("multiproc-reaper".into())
        .spawn(move || reap_forever(&thread_r))?;
    *slot = Some(r.clone());
    Ok(r)
}

fn reap_forever(reaper: &Reaper) {
    loop {
        let children: Vec<Arc<Orphan>> = reaper
            .adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut fds = Vec::with_capacity(children.len() + 1);
        fds.push(reaper.wake_rx.as_fd());
        fds.extend(children.iter().map(|c| c.inner.pidfd.as_fd()));
        let _ = socket::poll_in(&fds, None);
        let mut drain = [0u8; 64];
        while matches!(rustix::io::read(&reaper.wake_rx, &mut drain), Ok(n) if n > 0) {}
        reaper
            .adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| {
                if !c.inner.has_ended() {
                    return true;
                }
                if let Some(sock) = &c.sock {
                    print_unjoined_report(&c.inner, sock.as_fd());
                }
                false
            });
    }
}
