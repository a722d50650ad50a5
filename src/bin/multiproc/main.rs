//! The `multiproc` command.

mod bench;

use std::process::ExitCode;

const USAGE: &str = "\
usage: multiproc <command> [options]

commands:
  info                     print what this machine offers to multiproc (CPUs, version)
  bench [--quick] [--python PATH | --no-python]
                           measure multiproc and Python's multiprocessing side by side
                           (default interpreter: python3)
  help                     print this text
  --version                print the version";

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
        Some("bench") => match bench_options(&args[1..]).and_then(|o| bench::run(&o)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("multiproc bench: {e}");
                ExitCode::FAILURE
            }
        },
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

fn bench_options(args: &[String]) -> Result<bench::Options, String> {
    let mut opts = bench::Options {
        python: Some("python3".into()),
        quick: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--no-python" => opts.python = None,
            "--python" => {
                opts.python = Some(
                    it.next()
                        .ok_or("--python needs an interpreter path")?
                        .clone(),
                )
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(opts)
}
