//! The child side: receiving the entry point, running the target, reporting, exiting.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handle::read_control;
use super::{Control, FORKED, Identity, PanicInfo, set_current};
use crate::codec;
use crate::connection::frame;
use crate::sys::entry::{Entry, Invoke};
use crate::sys::process as os;

/// How this crate runs an entry point: decode with the crate's codec, run under `catch_unwind`,
/// encode the result.
pub(super) struct Invoker;

impl Invoke for Invoker {
    type Outcome = Outcome;

    fn invoke<A: DeserializeOwned, R: Serialize>(
        f: fn(A) -> R,
        args: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Outcome {
        invoke(f, args, fds)
    }

    fn mismatch() -> Outcome {
        Outcome::Failed("entry point type mismatch between parent and child".into())
    }
}

/// A child's entry point as this crate sends it.
pub(super) type ChildEntry = Entry<Invoker>;

/// What happened when the target ran (the trampoline's report).
#[derive(Debug)]
pub(super) enum Outcome {
    /// The target returned this encoded value.
    Returned(Vec<u8>, Vec<OwnedFd>),
    /// The target panicked.
    Panicked(PanicInfo),
    /// The arguments or the result could not be decoded or encoded.
    Failed(String),
}

/// Runs in a re-executed child from [`init`]: receives its entry point and arguments, runs,
/// reports, exits.
pub(super) fn run_spawned_child(sock: OwnedFd) -> ! {
    let sock = sock.as_fd();
    // A parent that returned from `main` right after `start` cannot hear this, but it wrote
    // the arguments before `start` returned: they are waiting on the socket, and a non-daemon
    // child runs its target whatever its parent does next.
    let _ = frame::write_frame(sock, &control_bytes(&Control::Started), &[]);
    let mut buf = Vec::new();
    let mut fds = Vec::new();
    let boot = match read_control(sock, &mut buf, &mut fds) {
        Ok(Control::Run(boot)) => boot,
        // The parent ended (or failed) before sending what to run: nothing to run.
        _ => std::process::exit(1),
    };
    fds.clear();
    if frame::read_frame(sock, u64::MAX, &mut buf, &mut fds).is_err() {
        std::process::exit(1);
    }
    set_current(
        Identity {
            pid: os::getpid(),
            ..boot.me
        },
        boot.parent,
    );
    install_panic_hook();
    let entry = boot.entry;
    match run_child(sock, move || entry.run_received(&buf, fds)) {}
}

/// Runs the target with panic reporting, sends the report on `sock` and exits.
///
/// Everything that runs user code (decoding the arguments, the target, encoding and dropping the
/// result) is inside `catch_unwind`: a panic anywhere there is reported as the target's panic.
pub(super) fn run_child(
    sock: BorrowedFd<'_>,
    run: impl FnOnce() -> Outcome,
) -> std::convert::Infallible {
    IN_TARGET.with(|t| t.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|p| panic_outcome(&*p));
    IN_TARGET.with(|t| t.set(false));
    let code = match outcome {
        Outcome::Returned(bytes, fds) => {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            let _ = frame::write_frames(
                sock,
                &[&control_bytes(&Control::Returned), &bytes],
                &borrowed,
            );
            0
        }
        // The parent gets the report and `join` hands it over; only a report nobody can
        // receive is printed here (see `install_panic_hook`).
        Outcome::Panicked(info) => {
            let report = control_bytes(&Control::Panicked(info.clone()));
            if frame::write_frame(sock, &report, &[]).is_err() {
                print_unreported(&info.to_string(), info.backtrace());
            }
            1
        }
        Outcome::Failed(msg) => {
            if frame::write_frame(sock, &control_bytes(&Control::Failed(msg.clone())), &[]).is_err()
            {
                print_unreported(&msg, None);
            }
            1
        }
    };
    exit_child(code)
}

fn exit_child(code: i32) -> std::convert::Infallible {
    use std::io::Write;
    // In a forked child these locks were released by `fork_child`, so flushing is safe; the
    // child exits without `atexit` handlers, which belong to the parent's program.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if FORKED.load(Ordering::Relaxed) {
        os::exit_immediately(code)
    }
    std::process::exit(code)
}

fn control_bytes(c: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_plain_into(c, &mut out).expect("control messages always encode");
    out
}

/// Decodes the arguments, calls the target, encodes its result. Called by the trampoline.
fn invoke<A: DeserializeOwned, R: Serialize>(
    f: fn(A) -> R,
    args: &[u8],
    fds: Vec<OwnedFd>,
) -> Outcome {
    let args: A = match codec::decode(args, fds) {
        Ok(a) => a,
        Err(e) => return Outcome::Failed(format!("cannot decode the arguments: {e}")),
    };
    run_target(f, args)
}

fn run_target<A, R: Serialize>(f: fn(A) -> R, args: A) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| f(args))) {
        Ok(value) => {
            let mut bytes = Vec::new();
            match codec::encode_into(&value, &mut bytes) {
                // The descriptors are duplicates: `value` may go.
                Ok(fds) => Outcome::Returned(bytes, fds),
                Err(e) => Outcome::Failed(format!("cannot encode the result: {e}")),
            }
        }
        Err(payload) => panic_outcome(&*payload),
    }
}

/// Prints, in the child, a report its parent cannot receive (it has gone).
fn print_unreported(what: &str, backtrace: Option<&str>) {
    use std::io::Write;
    let me = super::current_process();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "multiproc: {} (pid {}): {what}", me.name(), me.pid());
    if let Some(bt) = backtrace {
        let _ = writeln!(err, "stack backtrace:\n{bt}");
    }
}

/// The report of a panic with this payload, at the location the panic hook recorded.
fn panic_outcome(payload: &(dyn std::any::Any + Send)) -> Outcome {
    Outcome::Panicked(panic_info(payload))
}

/// A caught panic's message, with the location (and backtrace) the panic hook recorded when it
/// happened on a target's thread.
pub(crate) fn panic_info(payload: &(dyn std::any::Any + Send)) -> PanicInfo {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    };
    let (location, backtrace) = PANIC_SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    PanicInfo::new(message, location, backtrace)
}

std::thread_local! {
    /// Set on the thread running a child's target, while it runs.
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Where the last panic on a target's thread happened, and its backtrace when one was asked for
/// (`RUST_BACKTRACE`).
static PANIC_SEEN: Mutex<Option<(Option<String>, Option<String>)>> = Mutex::new(None);

/// Installed once per process, before the first fork or in a spawned child. A panic of a child's
/// target (on the thread running it) is recorded for the report to the parent, with its location
/// and, when `RUST_BACKTRACE` asks for one, its backtrace, and not printed: `join` returns it as
/// [`JoinError::Panicked`](super::JoinError::Panicked), and the child prints it only when the
/// parent has gone. Every other panic (in the parent, or in other threads of a child) is printed
/// by the previous hook as usual.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_panic_hook_now);
}

fn install_panic_hook_now() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_TARGET.with(std::cell::Cell::get) {
            return previous(info);
        }
        let location = info
            .location()
            .map(|loc| format!("{}:{}:{}", loc.file(), loc.line(), loc.column()));
        let bt = std::backtrace::Backtrace::capture();
        let backtrace =
            (bt.status() == std::backtrace::BacktraceStatus::Captured).then(|| bt.to_string());
        *PANIC_SEEN.lock().unwrap_or_else(|e| e.into_inner()) = Some((location, backtrace));
    }));
}
