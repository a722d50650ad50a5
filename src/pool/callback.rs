//! Callbacks of `apply_async` and `map_async`, as Python's `callback` and `error_callback`: run
//! in this process, one after the other, on the pool's callback thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::async_result::Pending;
use super::error::TaskError;

/// What [`Call::callback`](super::Call::callback) accepts: a closure called with a reference to
/// the result, or [`NoCallback`].
pub trait Callback<T>: Send + 'static {
    /// Calls the callback with the result.
    fn call(self, value: &T);
}

/// What [`Call::error_callback`](super::Call::error_callback) accepts: a closure called with
/// the error, or [`NoCallback`].
pub trait ErrorCallback: Send + 'static {
    /// Calls the callback with the error.
    fn call(self, error: &TaskError);
}

/// No callback (the default of a [`Call`](super::Call)).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallback;

impl<T> Callback<T> for NoCallback {
    fn call(self, _: &T) {}
}

impl ErrorCallback for NoCallback {
    fn call(self, _: &TaskError) {}
}

impl<T, F: FnOnce(&T) + Send + 'static> Callback<T> for F {
    fn call(self, value: &T) {
        self(value)
    }
}

impl<F: FnOnce(&TaskError) + Send + 'static> ErrorCallback for F {
    fn call(self, error: &TaskError) {
        self(error)
    }
}

type Task = Box<dyn FnOnce() + Send>;

/// The pool's callback thread, started when the first callback is due.
#[derive(Default)]
pub(super) struct Dispatch {
    thread: Mutex<Option<(Sender<Task>, JoinHandle<()>)>>,
}

impl Dispatch {
    /// Runs `task` on the callback thread, after the tasks posted before it.
    fn post(&self, task: Task) {
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        let task = match &*slot {
            Some((tx, _)) => match tx.send(task) {
                Ok(()) => return,
                Err(back) => back.0,
            },
            None => task,
        };
        let (tx, rx) = channel::<Task>();
        let started = std::thread::Builder::new()
            .name("pool-callbacks".into())
            .spawn(move || {
                for task in rx {
                    task();
                }
            });
        match started {
            Ok(handle) => {
                let _ = tx.send(task);
                *slot = Some((tx, handle));
            }
            // No thread to be had: the callback runs here rather than never.
            Err(_) => {
                drop(slot);
                task();
            }
        }
    }

    /// Waits until every callback posted so far has run and the thread has ended (not when
    /// called from the callback thread itself: it then ends once it has run them).
    pub(super) fn finish(&self) {
        let taken = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, handle)) = taken {
            drop(tx);
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }

    /// The callback thread's id, while it runs.
    #[cfg(test)]
    fn thread_id(&self) -> Option<std::thread::ThreadId> {
        let slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|(_, h)| h.thread().id())
    }
}

/// A result that its callbacks have seen.
struct Settled<T> {
    value: Mutex<Option<Result<T, TaskError>>>,
    done: Condvar,
}

/// The [`Pending`] side of an `AsyncResult` with callbacks: ready once the callback has run.
pub(super) struct Called<T>(Arc<Settled<T>>);

impl<T: Send> Pending<T> for Called<T> {
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let mut v = self.0.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if v.is_some() {
                return true;
            }
            v = match deadline {
                None => self.0.done.wait(v).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.0
                        .done
                        .wait_timeout(v, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn failed(&self) -> bool {
        let v = self.0.value.lock().unwrap_or_else(|e| e.into_inner());
        matches!(&*v, Some(Err(_)))
    }

    fn take(&self) -> Result<T, TaskError> {
        let mut v = self.0.value.lock().unwrap_or_else(|e| e.into_inner());
        v.take().unwrap_or(Err(TaskError::Closed))
    }
}

/// Wraps `inner` so that, once complete, its result goes through `callback` or
/// `error_callback` on the callback thread before it is ready. `register` arranges for the
/// hook it is given to run when `inner` completes.
///
/// A callback that panics is caught: the panic is reported by the panic hook as any panic, the
/// result stays what the tasks gave, and the callbacks after it still run.
pub(super) fn settle_through<T, C, E>(
    inner: Box<dyn Pending<T>>,
    register: impl FnOnce(Task),
    dispatch: Arc<Dispatch>,
    callback: C,
    error_callback: E,
) -> Called<T>
where
    T: Send + 'static,
    C: Callback<T>,
    E: ErrorCallback,
{
    let settled = Arc::new(Settled {
        value: Mutex::new(None),
        done: Condvar::new(),
    });
    let out = Called(settled.clone());
    register(Box::new(move || {
        dispatch.post(Box::new(move || {
            let result = inner.take();
            let _ = catch_unwind(AssertUnwindSafe(|| match &result {
                Ok(v) => callback.call(v),
                Err(e) => error_callback.call(e),
            }));
            *settled.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            settled.done.notify_all();
        }));
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_in_order_on_one_thread_and_finish_waits_for_them() {
        let d = Arc::new(Dispatch::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100 {
            let seen = seen.clone();
            d.post(Box::new(move || {
                seen.lock().unwrap().push((i, std::thread::current().id()))
            }));
        }
        let id = d.thread_id().unwrap();
        d.finish();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 100);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(k, (i, t))| k == *i && *t == id)
        );
        assert_ne!(id, std::thread::current().id());
        // A later task starts a new thread.
        let again = Arc::new(Mutex::new(None));
        let a = again.clone();
        d.post(Box::new(move || {
            *a.lock().unwrap() = Some(std::thread::current().id())
        }));
        d.finish();
        assert!(again.lock().unwrap().is_some_and(|t| t != id));
    }

    #[test]
    fn finish_from_the_callback_thread_does_not_wait_for_itself() {
        let d = Arc::new(Dispatch::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = d.clone();
        d.post(Box::new(move || {
            inner.finish();
            tx.send(()).unwrap();
        }));
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    }
}
