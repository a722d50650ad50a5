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
    /// Measure multiproc and Python's multiprocessing side by side, in one run.
    Bench {
        /// Fewer samples, for a quick look.
        #[arg(long)]
        quick: bool,
        /// The Python interpreter to compare with.
        #[arg(
            long,
            value_name = "PATH",
            default_value = "python3",
            conflicts_with = "no_python"
        )]
        python: String,
        /// Measure multiproc alone.
        #[arg(long)]
        no_python: bool,
    },
}

fn main() -> ExitCode {
    multiproc::init();
    // clap exits with 2 on a usage error and 0 for --help/--version, printing to the right stream.
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            println!("multiproc {}", env!("CARGO_PKG_VERSION"));
            println!("cpu_count: {}", multiproc::cpu_count());
            let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
            println!("usable_cpus: {usable}");
            println!("pid: {}", std::process::id());
            ExitCode::SUCCESS
        }
        Command::Bench {
            quick,
            python,
            no_python,
        } => {
            let opts = bench::Options {
                python: (!no_python).then_some(python),
                quick,
            };
            match bench::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("multiproc bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
