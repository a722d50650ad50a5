//! Connections to one Redis server: a small pool, bounded reconnects, a time-out on every
//! reply, and Redis's errors turned into [`ManagerError`]s.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, RedisError, ServerErrorKind};

use super::scripts;
use crate::connection::ConnectError;
use crate::manager::ManagerError;

/// Idle connections kept for later calls; more are closed when given back.
const MAX_IDLE: usize = 16;

/// How many times a connection is tried before the server counts as unreachable, and the
/// pause after the first failure (doubled after each).
const CONNECT_TRIES: u32 = 3;
const CONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// How much longer than its block time a blocking command's reply may take.
const BLOCK_MARGIN: Duration = Duration::from_secs(2);

/// The connections of this process to one server.
pub(super) struct Pool {
    client: redis::Client,
    /// The server, for messages (the URL without its password).
    pub(super) address: String,
    idle: Mutex<Vec<Connection>>,
    /// The process that made the pool: a child made by `fork` must not use its parent's
    /// connections (two processes on one stream corrupt it).
    pid: u32,
    /// The longest wait for a reply (a blocking command gets its block time more).
    pub(super) timeout: Duration,
}

impl Pool {
    pub(super) fn new(url: &str, timeout: Duration) -> Result<Pool, ManagerError> {
        let client = redis::Client::open(url).map_err(|e| {
            ManagerError::Connect(ConnectError::Io {
                address: url.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
            })
        })?;
        let address = client.get_connection_info().addr().to_string();
        Ok(Pool {
            client,
            address,
            idle: Mutex::new(Vec::new()),
            pid: std::process::id(),
            timeout,
        })
    }

    /// A new connection, with the scripts loaded; tried a few times before giving up, all
    /// within one `timeout` (a server that accepts and never answers costs that, no more).
    fn open(&self) -> Result<Connection, ManagerError> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = CONNECT_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let attempt = self
                .client
                .get_connection_with_timeout(left)
                .and_then(|mut c| {
                    let left = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1));
                    c.set_read_timeout(Some(left))?;
                    c.set_write_timeout(Some(left))?;
                    scripts::load(&mut c)?;
                    c.set_read_timeout(Some(self.timeout))?;
                    c.set_write_timeout(Some(self.timeout))?;
                    Ok(c)
                });
            match attempt {
                Ok(c) => return Ok(c),
                Err(e)
                    if tries < CONNECT_TRIES
                        && !permanent(&e)
                        && Instant::now() + pause < deadline =>
                {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(self.unreachable(&e)),
            }
        }
    }

    /// The error of a connection that could not be made (unreachable, or the password
    /// refused).
    fn unreachable(&self, e: &RedisError) -> ManagerError {
        let kind = if e.kind() == ErrorKind::AuthenticationFailed {
            std::io::ErrorKind::PermissionDenied
        } else if e.is_timeout() {
            std::io::ErrorKind::TimedOut
        } else {
            std::io::ErrorKind::Other
        };
        ManagerError::Connect(ConnectError::Io {
            address: self.address.clone(),
            source: std::io::Error::new(kind, e.to_string()),
        })
    }

    /// The error of a call that failed with `e`.
    pub(super) fn failed(&self, e: &RedisError) -> ManagerError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            ManagerError::Disconnected(format!("redis at {}: {e}", self.address))
        } else {
            ManagerError::Protocol(format!("redis at {}: {e}", self.address))
        }
    }

    /// An idle connection (`true`: it has served before), or a new one.
    fn take(&self) -> Result<(Connection, bool), ManagerError> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if self.pid != std::process::id() {
            // A child made by `fork`: the parent's connections are not this process's to
            // use, nor to close politely.
            for c in idle.drain(..) {
                std::mem::forget(c);
            }
        }
        match idle.pop() {
            Some(c) => Ok((c, true)),
            None => {
                drop(idle);
                Ok((self.open()?, false))
            }
        }
    }

    fn give_back(&self, c: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE && self.pid == std::process::id() {
            idle.push(c);
        }
    }

    /// Runs `f` on a connection of the pool. A connection that had been idle and fails with
    /// an I/O error (the server restarted meanwhile) is dropped with the other idle ones, and
    /// `f` runs once more on a new connection; a script the server forgot is loaded again.
    pub(super) fn run<T>(
        &self,
        f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ManagerError> {
        self.run_with(f, true)
    }

    /// As [`run`](Self::run), for a pipeline of commands: one that met a server that forgot
    /// the scripts ran in part, so it is not sent again (the scripts are loaded again for
    /// the next call) but answered with an error that says so.
    pub(super) fn run_batch<T>(
        &self,
        f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ManagerError> {
        self.run_with(f, false)
    }

    fn run_with<T>(
        &self,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
        again_without_scripts: bool,
    ) -> Result<T, ManagerError> {
        let (mut conn, mut reused) = self.take()?;
        let mut reloaded = false;
        loop {
            match f(&mut conn) {
                Ok(v) => {
                    self.give_back(conn);
                    return Ok(v);
                }
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) && !reloaded => {
                    reloaded = true;
                    scripts::load(&mut conn).map_err(|e| self.failed(&e))?;
                    if !again_without_scripts {
                        self.give_back(conn);
                        return Err(ManagerError::Protocol(format!(
                            "redis at {} had forgotten the scripts (SCRIPT FLUSH): the \
                             pipeline ran in part; they are loaded again",
                            self.address
                        )));
                    }
                }
                // Not after a time-out: the server may have run the command.
                Err(e)
                    if reused
                        && !e.is_timeout()
                        && (e.is_io_error() || e.is_connection_dropped()) =>
                {
                    self.idle
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                    conn = self.open()?;
                    reused = false;
                }
                Err(e) => {
                    if !e.is_io_error() && !e.is_connection_dropped() && !e.is_timeout() {
                        self.give_back(conn);
                    }
                    return Err(self.failed(&e));
                }
            }
        }
    }

    /// Runs `f` on an idle connection if there is one, never connecting nor waiting for a
    /// server that is away (for what a handle does as it is dropped); its result is dropped.
    pub(super) fn if_connected<T>(&self, f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if self.pid == std::process::id() {
                idle.pop()
            } else {
                None
            }
        };
        if let Some(mut c) = conn
            && f(&mut c).is_ok()
        {
            self.give_back(c);
        }
    }

    /// As [`run`](Self::run), for a command that blocks on the server for up to `block`: the
    /// connection waits that much longer for the reply, and serves nothing else meanwhile.
    pub(super) fn blocking<T>(
        &self,
        block: Duration,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ManagerError> {
        let wait = self.timeout + block + BLOCK_MARGIN;
        self.run(|c| {
            c.set_read_timeout(Some(wait))?;
            let r = f(c);
            c.set_read_timeout(Some(self.timeout))?;
            r
        })
    }
}

/// An error that trying again will not mend (a bad password, a bad URL).
fn permanent(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig
    )
}
