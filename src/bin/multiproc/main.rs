//! The `multiproc` command.

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Python's multiprocessing for Rust: tools around the `multiproc` crate.
#[derive(Parser)]
#[command(name = "multiproc", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this machine offers to multiproc (version, CPUs, pid).
    Info,
    /// Measure multiproc beside Python's multiprocessing, the Rust peer crates and the
    /// machine's floor, in one run.
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::Options),
    /// Run a manager server until SIGTERM or SIGINT: clients connect with
    /// `Manager::connect(ADDR, authkey)` and find the published objects with `Manager::get`.
    Serve {
        /// Where to listen: IP:PORT, [IPv6]:PORT, unix:PATH (created 0600) or abstract:NAME.
        #[arg(long, value_name = "ADDR")]
        listen: multiproc::Address,
        /// A file holding the authkey every client must prove (one trailing newline is
        /// ignored). Required for TCP and abstract: addresses.
        #[arg(long, value_name = "FILE")]
        authkey_file: Option<std::path::PathBuf>,
        /// Publish an object under a name, e.g. `--object jobs=Queue --object state=dict`
        /// (types, in any case: dict, list, Namespace, Queue, JoinableQueue, Lock, RLock,
        /// Semaphore, BoundedSemaphore, Event, Condition). Python's manager clients reach NAME
        /// with `register('NAME')`.
        #[arg(long, value_name = "NAME=TYPE", value_parser = parse_object)]
        object: Vec<(String, String)>,
        /// The largest request a client may send, in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
        max_request: u64,
        /// The most one object may hold, in bytes (about: the bytes of its strings plus 32
        /// per item); a call past it raises MemoryError.
        #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
        max_object_size: usize,
        /// The most all objects together may hold, in bytes (default: no limit); a call
        /// past it raises MemoryError.
        #[arg(long, value_name = "BYTES")]
        max_memory: Option<usize>,
        /// Also accept the HMAC-MD5 handshake of Python 3.11 and older clients (Python's own
        /// `SyncManager(address, authkey).connect()` clients are served too).
        #[arg(long)]
        allow_legacy_md5: bool,
    },
}

fn parse_object(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, typeid)) if !name.is_empty() && !typeid.is_empty() => {
            // The registry's spelling (`queue` is taken for `Queue`).
            let typeid = multiproc::manager::BUILTIN_TYPEIDS
                .iter()
                .find(|t| t.eq_ignore_ascii_case(typeid))
                .map_or(typeid, |t| t);
            Ok((name.to_owned(), typeid.to_owned()))
        }
        _ => Err(format!("expected NAME=TYPE, got {s:?}")),
    }
}

/// The bounds of `multiproc serve`, in bytes.
struct Bounds {
    request: u64,
    object: usize,
    memory: Option<usize>,
    /// Also accept Python 3.11's HMAC-MD5 handshake.
    legacy_md5: bool,
}

/// `multiproc serve`: binds, publishes, says where, serves until a termination signal.
fn serve(
    listen: multiproc::Address,
    authkey_file: Option<&std::path::Path>,
    objects: &[(String, String)],
    bounds: &Bounds,
) -> Result<(), String> {
    use std::io::Write;
    let authkey = match authkey_file {
        Some(path) => {
            let mut key = std::fs::read(path)
                .map_err(|e| format!("cannot read the authkey file {}: {e}", path.display()))?;
            if key.last() == Some(&b'\n') {
                key.pop();
            }
            if key.is_empty() {
                return Err(format!("the authkey file {} is empty", path.display()));
            }
            Some(key)
        }
        None => None,
    };
    let mut server =
        multiproc::manager::Server::bind(listen, authkey.as_deref()).map_err(|e| e.to_string())?;
    server.set_max_request(bounds.request);
    server.set_max_object_size(bounds.object);
    if let Some(m) = bounds.memory {
        server.set_max_memory(m);
    }
    server.allow_legacy_md5(bounds.legacy_md5);
    for (name, typeid) in objects {
        server
            .publish(name, typeid, vec![])
            .map_err(|e| format!("cannot publish {name}={typeid}: {e}"))?;
    }
    // Before any other thread starts, so that every thread has the signals blocked.
    server
        .stop_on_termination_signals()
        .map_err(|e| format!("cannot take the termination signals: {e}"))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "serving on {}", server.address());
    let _ = out.flush();
    drop(out);
    server.serve_forever().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    multiproc::init();
    // A child of `multiproc bench`'s procspawn peer runs its function here and exits.
    #[cfg(feature = "bench-peers")]
    procspawn::init();
    // clap exits with 2 on a usage error and 0 for --help/--version, printing to the right stream.
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            authkey_file,
            object,
            max_request,
            max_object_size,
            max_memory,
            allow_legacy_md5,
        } => match serve(
            listen,
            authkey_file.as_deref(),
            &object,
            &Bounds {
                request: max_request,
                object: max_object_size,
                memory: max_memory,
                legacy_md5: allow_legacy_md5,
            },
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("multiproc serve: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Info => {
            println!("multiproc {}", env!("CARGO_PKG_VERSION"));
            println!("cpu_count: {}", multiproc::cpu_count());
            let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
            println!("usable_cpus: {usable}");
            println!("pid: {}", std::process::id());
            ExitCode::SUCCESS
        }
        Command::Bench(opts) => match bench::run(&opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("multiproc bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
