//! The `multiproc` command.

use std::process::ExitCode;

const USAGE: &str = "\
usage: multiproc <command>

commands:
  info        print what this machine offers to multiproc (CPUs, version)
  help        print this text
  --version   print the version";

fn main() -> ExitCode {
    multiproc::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("info") if args.len() == 1 => {
            println!("multiproc {}", env!("CARGO_PKG_VERSION"));
            println!("cpu_count: {}", multiproc::cpu_count());
            let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
            println!("usable_cpus: {usable}");
            println!("pid: {}", std::process::id());
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("multiproc {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("multiproc: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
