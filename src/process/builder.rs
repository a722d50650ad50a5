//! Configuring and starting a child: the builder, the spawn and fork start methods.

use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::child::{ChildEntry, Outcome, install_panic_hook, run_child};
use super::handle::{Inner, Process, Stage};
use super::threads::{REAPER, SPAWNER, UNREAPED, reap_unreaped, spawner};
use super::{
    Bootstrap, CHILD_COUNTER, CHILDREN, CURRENT, Control, DEFAULT_STARTUP_TIMEOUT, FORKED,
    IN_CHILD, INIT_CALLED, Identity, StartError, StartMethod, TEST_ENTRY_NAME, TEST_HARNESS,
    current,
};
use crate::codec;
use crate::connection::frame;
use crate::sys::{process as os, socket};

/// Configures and starts a [`Process`].
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use multiproc::{Process, StartMethod};
///
/// fn greet(who: String) -> String {
///     format!("hello, {who}")
/// }
///
/// let p = Process::builder()
///     .name("greeter")
///     .daemon(true)
///     .method(StartMethod::Spawn)
///     .start(greet, "world".to_owned())
///     .unwrap();
/// assert_eq!(p.name(), "greeter");
/// assert_eq!(p.join().unwrap(), "hello, world");
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    method: StartMethod,
    startup_timeout: Duration,
    max_result: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: None,
            daemon: false,
            method: StartMethod::Spawn,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            max_result: u64::MAX,
        }
    }
}

impl Builder {
    /// A builder with the defaults: generated name, not a daemon, [`StartMethod::Spawn`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's name (default `Process-N`, as in Python).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the child is killed when this process dies (default `false`).
    pub fn daemon(&mut self, daemon: bool) -> &mut Self {
        self.daemon = daemon;
        self
    }

    /// How the child is created (default [`StartMethod::Spawn`]).
    pub fn method(&mut self, method: StartMethod) -> &mut Self {
        self.method = method;
        self
    }

    /// How long the child may take to reach its entry point before it is killed and `join`
    /// reports [`JoinError::NotStarted`](super::JoinError::NotStarted) (default 60 s).
    pub fn startup_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.startup_timeout = timeout;
        self
    }

    /// The largest encoded result `join` accepts (default: no limit). A larger result makes
    /// `join` fail with [`JoinError::Codec`](super::JoinError::Codec).
    pub fn max_result_size(&mut self, bytes: u64) -> &mut Self {
        self.max_result = bytes;
        self
    }

    /// Starts `target(args)` in a new process.
    ///
    /// `target` is a function or a non-capturing closure. With the spawn method it must be
    /// linked into the executable (not a shared library loaded at run time).
    ///
    /// # Errors
    ///
    /// [`StartError::InitNotCalled`] with the spawn method when this program never called
    /// [`init`](super::init); [`StartError::Encode`] when the arguments do not serialize;
    /// [`StartError::Os`] when the system refuses; [`StartError::NotStarted`] when a spawned
    /// child does not take its arguments within the start-up timeout.
    pub fn start<A, R>(&self, target: fn(A) -> R, args: A) -> Result<Process<R>, StartError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        reap_unreaped();
        let tree = current();
        let parent_id = &tree.0;
        let n = CHILD_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let mut path = parent_id.path.clone();
        path.push(n);
        let name = self.name.clone().unwrap_or_else(|| {
            let ids: Vec<String> = path.iter().map(u32::to_string).collect();
            format!("Process-{}", ids.join(":"))
        });
        let me = Identity {
            name,
            pid: 0,
            daemon: self.daemon,
            path,
        };
        let (parent_end, child_end) = socket::socketpair().map_err(StartError::Os)?;
        let (child, sock) = match self.method {
            StartMethod::Spawn => spawn(self, target, args, &me, parent_end, child_end)?,
            StartMethod::Fork => fork(self, target, args, me.clone(), parent_end, child_end)?,
        };
        let inner = Arc::new(Inner {
            pid: child.pid,
            pidfd: child.pidfd,
            name: me.name,
            daemon: self.daemon,
            exit: Mutex::new(None),
        });
        let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&inner));
        drop(children);
        Ok(Process {
            inner,
            sock,
            stage: match self.method {
                StartMethod::Spawn => Stage::Starting,
                StartMethod::Fork => Stage::Running,
            },
            started_by: Instant::now().checked_add(self.startup_timeout),
            startup_timeout: self.startup_timeout,
            max_result: self.max_result,
            _result: PhantomData,
        })
    }
}

/// Re-executes this program as the child; returns its pid and the parent's socket end.
fn spawn<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
    b: &Builder,
    target: fn(A) -> R,
    args: A,
    me: &Identity,
    parent_end: OwnedFd,
    child_end: OwnedFd,
) -> Result<(os::Child, OwnedFd), StartError> {
    let harness = TEST_HARNESS.load(Ordering::Relaxed);
    if !harness && !INIT_CALLED.load(Ordering::Relaxed) {
        return Err(StartError::InitNotCalled);
    }
    if os::is_marked_child() && !IN_CHILD.load(Ordering::Relaxed) {
        // A spawned child that starts processes before reaching `init`: its `main` does not
        // call `init` first, and every child would start another child, without end.
        return Err(StartError::InitNotCalled);
    }
    if !ChildEntry::same_object(target) {
        return Err(StartError::TargetNotInExecutable);
    }
    // Encode everything before creating the process: an encoding error then costs nothing.
    let mut control = Vec::new();
    let run = Control::Run(Bootstrap {
        entry: ChildEntry::of(target),
        me: me.clone(),
        parent: current().0.clone(),
    });
    codec::encode_plain_into(&run, &mut control).map_err(StartError::Encode)?;
    let mut payload = Vec::new();
    let fds = codec::encode_into(&args, &mut payload).map_err(StartError::Encode)?;
    drop(args);

    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| "multiproc-child".into());
    let rest: Vec<std::ffi::OsString> = if harness {
        [
            TEST_ENTRY_NAME,
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ]
        .iter()
        .map(Into::into)
        .collect()
    } else {
        argv.collect()
    };
    // Written before the child exists: the child checks it to know that its marker is real.
    let secret = os::announce_secret(parent_end.as_fd()).map_err(StartError::Os)?;
    let child = if b.daemon && !FORKED.load(Ordering::Relaxed) {
        // PR_SET_PDEATHSIG fires when the *thread* that created the child ends, so daemons are
        // created by a thread that lives as long as the process. (A forked child starts no
        // helper thread: see `FORKED`.)
        let keep = crate::sys::dup(child_end.as_fd()).map_err(StartError::Os)?;
        spawner().map_err(StartError::Os)?.run(Box::new(move || {
            os::spawn_self(&argv0, &rest, keep.as_fd(), &secret, true)
        }))
    } else {
        os::spawn_self(&argv0, &rest, child_end.as_fd(), &secret, b.daemon)
    }
    .map_err(StartError::Os)?;
    drop(child_end);

    let sent = send_with_timeout(parent_end.as_fd(), b.startup_timeout, |sock| {
        frame::write_frame(sock, &control, &[])?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        frame::write_frame(sock, &payload, &borrowed)
    });
    match sent {
        // The child ended before taking its arguments: `join` reports how it ended.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => {
            // The child stalled (or the socket failed): make sure it does not linger.
            os::kill_and_reap(&child);
            return Err(StartError::NotStarted(format!(
                "it did not take its arguments ({e}); does its main() call multiproc::init() first?"
            )));
        }
        Ok(()) => {}
    }
    Ok((child, parent_end))
}

/// Writes on `sock` with a send time-out, restoring blocking writes afterwards.
fn send_with_timeout(
    sock: BorrowedFd<'_>,
    timeout: Duration,
    f: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use rustix::net::sockopt::{Timeout, set_socket_timeout};
    let t = if timeout.is_zero() {
        Duration::from_micros(1)
    } else {
        timeout
    };
    set_socket_timeout(sock, Timeout::Send, Some(t))?;
    let r = f(sock);
    set_socket_timeout(sock, Timeout::Send, None)?;
    r
}

/// Forks; the child runs the target and never returns from here.
fn fork<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned>(
    b: &Builder,
    target: fn(A) -> R,
    args: A,
    me: Identity,
    parent_end: OwnedFd,
    child_end: OwnedFd,
) -> Result<(os::Child, OwnedFd), StartError> {
    let parent = current().0.clone();
    // The arguments cross encoded, and the child decodes them, as a spawned child does: a
    // handle that names its process (a queue's or a duplex channel's place in its segment)
    // must be made anew in the child, and the parent's copy dropped as the parent's (a copy
    // by memory would leave the child on the parent's place, and closed by the parent).
    let mut payload = Vec::new();
    let fds = codec::encode_into(&args, &mut payload).map_err(StartError::Encode)?;
    drop(args);
    let entry = ChildEntry::of(target);
    let child = if b.daemon && !FORKED.load(Ordering::Relaxed) {
        // The parent-death signal is tied to the thread that forks: fork from the long-lived
        // spawner thread.
        spawner()
            .map_err(StartError::Os)?
            .run(Box::new(move || {
                let pid = fork_child(true, me, parent, child_end, move || {
                    entry.run(&payload, fds)
                })?;
                os::forked_child(pid).inspect_err(|_| os::kill_and_reap_pid(pid))
            }))
            .map_err(StartError::Os)?
    } else {
        let pid = fork_child(b.daemon, me, parent, child_end, move || {
            entry.run(&payload, fds)
        })
        .map_err(StartError::Os)?;
        os::forked_child(pid)
            .inspect_err(|_| os::kill_and_reap_pid(pid))
            .map_err(StartError::Os)?
    };
    // The child waits for this before it runs anything: it cannot end, and be reaped by someone
    // else, before its pidfd exists. (If this fails, the child sees the parent's end close.)
    let _ = os::release_child(parent_end.as_fd());
    Ok((child, parent_end))
}

/// Forks; the child sets its identity, runs `run`, reports on `child_end` and exits.
fn fork_child(
    daemon: bool,
    me: Identity,
    parent: Identity,
    child_end: OwnedFd,
    run: impl FnOnce() -> Outcome,
) -> std::io::Result<u32> {
    use std::io::Write;
    // The child must not take any lock that another thread of this process may hold at the
    // instant of the fork: install the panic hook here, once, and hold every process-wide lock
    // the child touches across the fork, so that the child's copies are held by its only thread
    // (the owner, for the re-entrant stdio locks) and released there.
    install_panic_hook();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    // Anything buffered now would be written twice, once by each process.
    let _ = out.flush();
    let _ = err.flush();
    let parent_pid = os::getpid();
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let mut spawner = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    let mut reaper = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    let forked = os::fork_run(|| {
        os::await_parent(child_end.as_fd());
        FORKED.store(true, Ordering::Relaxed);
        if daemon {
            os::die_with_parent(parent_pid);
        }
        let me = Identity {
            pid: os::getpid(),
            ..me
        };
        *cur = Some(Arc::new((me, Some(parent))));
        children.clear();
        if let Ok(mut u) = UNREAPED.try_lock() {
            u.clear();
        }
        // The parent's helper threads do not exist here (and a forked child starts none).
        *spawner = None;
        *reaper = None;
        drop((out, err, cur, children, spawner, reaper));
        // The child's copy of the parent's end stays open until it exits; it only writes. A
        // forked child is at its entry point already: it sends no `Started`.
        run_child(child_end.as_fd(), run);
    });
    // In the parent, dropping the closure released the locks and closed the child's end.
    forked
}
