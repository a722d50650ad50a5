//! Configuring and starting a [`Pool`].

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Pool;
use super::error::PoolError;
use super::supervisor::{Config, Shared, run_slot};
use super::worker::{ByteBuf, InitCall, InitEntry};
use crate::process::StartMethod;
use crate::{Descriptor, codec};

/// Configures and starts a [`Pool`], like the arguments of Python's `Pool(...)`.
///
/// # Examples
///
/// ```
/// # multiproc::init();
/// use std::time::Duration;
/// use multiproc::pool::Pool;
///
/// fn setup(greeting: String) {
///     // Runs once in each worker before its first task.
///     assert_eq!(greeting, "hello");
/// }
///
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .initializer(setup, "hello".to_owned())
///     .maxtasksperchild(100)
///     .timeout(Duration::from_secs(30))
///     .retries(1)
///     .build()
///     .unwrap();
/// assert_eq!(pool.map(double, 0..5u64).unwrap(), [0, 2, 4, 6, 8]);
/// ```
#[derive(Debug)]
pub struct Builder {
    processes: Option<usize>,
    method: StartMethod,
    daemon: bool,
    max_tasks: Option<u32>,
    timeout: Option<Duration>,
    retries: u32,
    chunksize: Option<u32>,
    window: Option<usize>,
    init: Option<Result<InitCall, PoolError>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            processes: None,
            method: StartMethod::Spawn,
            daemon: true,
            max_tasks: None,
            timeout: None,
            retries: 0,
            chunksize: None,
            window: None,
            init: None,
        }
    }
}

impl std::fmt::Debug for InitCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitCall")
            .field("bytes", &self.data.0.len())
            .finish()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per CPU this process may use, spawned, daemon
    /// workers, adaptive chunks, no time-out, no retries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of worker processes (default: [`std::thread::available_parallelism`]).
    pub fn processes(&mut self, n: usize) -> &mut Self {
        self.processes = Some(n);
        self
    }

    /// How workers are created (default [`StartMethod::Spawn`]; see
    /// [`process`](crate::process) for the constraints of [`StartMethod::Fork`]).
    pub fn method(&mut self, method: StartMethod) -> &mut Self {
        self.method = method;
        self
    }

    /// Whether workers are killed when this process dies, however it dies (default `true`, as
    /// Python's pool workers are daemons). See [`process::Builder::daemon`](crate::Builder::daemon).
    pub fn daemon(&mut self, daemon: bool) -> &mut Self {
        self.daemon = daemon;
        self
    }

    /// Runs `f(args)` in each worker before its first task, as Python's `initializer` and
    /// `initargs`. A panic there is the initializer's failure: [`build`](Builder::build)
    /// returns [`PoolError::Init`] when a first worker fails, and a replacement worker that
    /// fails three times in a row stops being replaced (its tasks get
    /// [`TaskError::NoWorkers`](super::TaskError::NoWorkers) once no worker is left), rather
    /// than being started again without end.
    pub fn initializer<A, R>(&mut self, f: fn(A) -> R, args: A) -> &mut Self
    where
        A: Serialize + DeserializeOwned,
        R: Serialize,
    {
        let mut data = Vec::new();
        self.init = Some(
            codec::encode_into(&args, &mut data)
                .map(|fds| InitCall {
                    entry: InitEntry::of(f),
                    data: ByteBuf(data),
                    fds: fds.into_iter().map(Descriptor::from).collect(),
                })
                .map_err(PoolError::Encode),
        );
        self
    }

    /// Replaces a worker after it has run `n` chunks, as Python's `maxtasksperchild` (where a
    /// task sent to a worker is also a chunk). Default: never. `0` means never too.
    pub fn maxtasksperchild(&mut self, n: u32) -> &mut Self {
        self.max_tasks = (n > 0).then_some(n);
        self
    }

    /// A task that runs longer than `timeout` is killed with its worker (which is replaced)
    /// and fails with [`TaskError::TimedOut`](super::TaskError::TimedOut). A chunk of `n`
    /// tasks may take `n × timeout`. Default: no limit.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs a chunk whose worker died (or timed out) again, up to `n` more times, before its
    /// tasks fail (default 0: a task may not be safe to run twice). A panic is not retried.
    pub fn retries(&mut self, n: u32) -> &mut Self {
        self.retries = n;
        self
    }

    /// Fixes the number of tasks per chunk, as Python's `chunksize`, instead of the adaptive
    /// rule (see [chunking](super#chunking)).
    pub fn chunksize(&mut self, n: u32) -> &mut Self {
        self.chunksize = Some(n.max(1));
        self
    }

    /// How many chunks of one `imap`/`map` call may be encoded and not yet handed to the
    /// caller (default: twice the number of workers, at least 4). The input iterator is read
    /// only as this window opens.
    pub fn window(&mut self, chunks: usize) -> &mut Self {
        self.window = Some(chunks.max(1));
        self
    }

    /// Starts the workers. With an [initializer](Builder::initializer), returns once every
    /// worker has run it; without, once the first worker is ready (the others start
    /// meanwhile, and take work as they come).
    ///
    /// # Errors
    ///
    /// [`PoolError::NoProcesses`] for zero workers; [`PoolError::Start`] when a worker process
    /// cannot be started (with the spawn method, `main` must call [`init`](crate::init)
    /// first); [`PoolError::Init`] when a first worker's initializer fails or the worker dies
    /// first; [`PoolError::Encode`] when the initializer's arguments do not encode.
    pub fn build(&mut self) -> Result<Pool, PoolError> {
        let processes = match self.processes {
            Some(0) => return Err(PoolError::NoProcesses),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let init = match self.init.take() {
            None => None,
            Some(Ok(i)) => {
                let copy = i.try_clone().map_err(PoolError::Os);
                self.init = Some(copy);
                Some(i)
            }
            Some(Err(e)) => return Err(e),
        };
        let shared = Shared::new(Config {
            processes,
            method: self.method,
            daemon: self.daemon,
            max_tasks: self.max_tasks,
            timeout: self.timeout,
            retries: self.retries,
            init,
        });
        let mut threads = Vec::with_capacity(processes);
        for slot in 0..processes {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name(format!("pool-worker-{slot}"))
                .spawn(move || run_slot(s, slot))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let pool = Pool::from_parts(shared, threads, self.chunksize, self.window);
                    pool.terminate();
                    return Err(PoolError::Os(e));
                }
            }
        }
        let started = shared.await_start();
        let pool = Pool::from_parts(shared, threads, self.chunksize, self.window);
        match started {
            Ok(()) => Ok(pool),
            Err(e) => {
                pool.terminate();
                Err(e)
            }
        }
    }
}

impl Pool {
    fn from_parts(
        shared: std::sync::Arc<Shared>,
        threads: Vec<std::thread::JoinHandle<()>>,
        chunksize: Option<u32>,
        window: Option<usize>,
    ) -> Pool {
        let processes = shared.config.processes;
        Pool {
            shared,
            threads: Mutex::new(threads),
            chunksize,
            window: window.unwrap_or((2 * processes).max(4)),
            callbacks: Default::default(),
        }
    }
}
