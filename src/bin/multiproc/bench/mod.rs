//! `multiproc bench`: multiproc beside Python's multiprocessing, the Rust crates that do the
//! same jobs, and the machine's floor, measured in one run, interleaved, in stated CPU
//! placements.
// No `unsafe` but in `floors/raw.rs`, which says why it needs it.
#![deny(unsafe_code)]

#[cfg(feature = "bench-chart")]
mod chart;
mod floors;
mod machine;
mod peers;
mod placement;
mod python;
mod report;
mod scenarios;
mod watchdog;

use std::path::PathBuf;

use placement::{Placement, unpin};
use python::{Answer, Python};
use scenarios::{Measure, Scenario};

/// What `multiproc bench --help` says.
pub const LONG_ABOUT: &str = "\
Measure multiproc beside Python's multiprocessing, the Rust peer crates and the machine's
floor, in one run.

Every scenario (a Pipe round trip, 64 MiB through a Queue, a manager call over TCP, a
process start, a Pool map, ...) is measured for multiproc, for Python's multiprocessing (a
script shipped with this program, run by --python), for the Rust crates that have the
operation (ipc-channel, interprocess, procspawn and its pool; in builds with the feature
`bench-peers`, which the table of other builds names), and against its floor: the same
mechanism with no library in between (a raw socketpair round trip, a spin ping-pong on one
shared cache line, a futex wake, memcpy, raw fork and posix_spawn, the system calls behind a
named segment), measured in the same run. The Redis rows (a dict proxy call of the Redis
backend beside the raw `redis` crate, on a redis-server each sample starts) need the feature
`bench-redis`.

Latency scenarios run in three CPU placements: unpinned, both processes on one CPU, and one
per CPU (sched_setaffinity). Each cell is the median of several samples (the spread is half
the interquartile range, relative to the median); the samples of the systems of a row are
taken in turn, round after round, so that they share the machine's moods. Each system's batch
per sample is sized by a calibration run. The table gives the speed-up over Python, over
the best Rust peer, and how far each figure is above its floor.

The table goes to stdout, progress to stderr. `--json FILE` keeps every sample; `--svg
FILE` (feature `bench-chart`) draws the speed-up over Python and the distance to the floor
of each row. `--list` names the scenarios for `--only`. The full run takes a few minutes;
`--quick` under one. Everything:

    cargo run --release --features bench-peers,bench-redis,bench-chart -- bench --json FILE --svg FILE";

/// The settings of `multiproc bench` (see [`LONG_ABOUT`]).
#[derive(clap::Args)]
pub struct Options {
    /// Fewer rounds and shorter samples: a look in under a minute.
    #[arg(long)]
    quick: bool,
    /// Measure only this scenario or floor (repeatable; a scenario's floor is measured in its
    /// row).
    #[arg(long, value_name = "SCENARIO")]
    only: Vec<String>,
    /// Print the scenarios and floors, then exit.
    #[arg(long)]
    list: bool,
    /// The Python interpreter to compare with [default: python3, skipped if missing].
    #[arg(long, value_name = "PATH", conflicts_with = "no_python")]
    python: Option<String>,
    /// Measure without Python.
    #[arg(long)]
    no_python: bool,
    /// Write every sample, with the machine's description, to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the speed-up over Python and the distance to the floor as an SVG chart in FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// One system's samples in one row.
pub struct Cell {
    /// `multiproc`, `python`, a peer crate's name, or `floor`.
    pub system: String,
    /// Operations per sample.
    pub batch: u64,
    /// Seconds per operation, one per round.
    pub samples: Vec<f64>,
    /// Why this system has no figure.
    pub error: Option<String>,
}

/// A scenario in one placement, with a cell per system.
pub struct Row<'a> {
    pub scenario: &'a Scenario,
    pub placement: Placement,
    pub cells: Vec<Cell>,
}

/// The settings of a run, written beside its figures.
pub struct Run<'a> {
    pub quick: bool,
    pub rounds: usize,
    pub target_seconds: f64,
    pub python: Option<String>,
    pub rows: Vec<Row<'a>>,
}

/// Who is measured in a row.
enum System<'a> {
    Native(&'static str, Measure),
    Python(&'a str),
}

/// Runs what `opts` asks for and prints the table.
pub fn run(opts: &Options) -> Result<(), String> {
    let all = scenarios::all();
    if opts.list {
        report::list(&all);
        return Ok(());
    }
    #[cfg(not(feature = "bench-chart"))]
    if opts.svg.is_some() {
        return Err("this build draws no chart: build with `--features bench-chart`".into());
    }
    let chosen = choose(&all, &opts.only)?;
    watchdog::start();
    let mut python = match (&opts.python, opts.no_python) {
        (_, true) => None,
        (Some(p), false) => Some(Python::start(p)?),
        (None, false) => match Python::start("python3") {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("multiproc bench: without Python: {e}");
                None
            }
        },
    };
    if !peers::BUILT {
        eprintln!(
            "multiproc bench: without the Rust peers (`{}` adds them)",
            peers::HOW_TO_BUILD
        );
    }
    let (rounds, target) = if opts.quick { (3, 0.01) } else { (15, 0.08) };
    let mut run = Run {
        quick: opts.quick,
        rounds,
        target_seconds: target,
        python: python.as_ref().map(|p| p.version.clone()),
        rows: Vec::new(),
    };
    let jobs: Vec<(&Scenario, Placement)> = chosen
        .iter()
        .flat_map(|s| {
            let places = if s.placed {
                Placement::all()
            } else {
                vec![Placement::Unpinned]
            };
            places.into_iter().map(move |p| (*s, p))
        })
        .collect();
    for (n, (scenario, placement)) in jobs.iter().enumerate() {
        eprintln!(
            "[{}/{}] {} ({})",
            n + 1,
            jobs.len(),
            scenario.what,
            placement.name()
        );
        let row = measure_row(scenario, *placement, &mut python, rounds, target);
        run.rows.push(row);
    }
    drop(python);
    report::table(&run);
    if let Some(path) = &opts.json {
        std::fs::write(path, report::json(&run))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    #[cfg(feature = "bench-chart")]
    if let Some(path) = &opts.svg {
        chart::draw(&run, path)?;
    }
    Ok(())
}

/// The scenarios `only` names; all of them when it is empty.
fn choose<'a>(all: &'a [Scenario], only: &[String]) -> Result<Vec<&'a Scenario>, String> {
    if only.is_empty() {
        return Ok(all.iter().collect());
    }
    for name in only {
        if scenarios::REDIS_ROWS.contains(&name.as_str()) && !scenarios::REDIS_BUILT {
            return Err(report::redis_not_built());
        }
        if !all.iter().any(|s| s.name == name) {
            return Err(format!(
                "no scenario {name:?} (see `multiproc bench --list`)"
            ));
        }
    }
    Ok(all
        .iter()
        .filter(|s| only.iter().any(|n| n == s.name))
        .collect())
}

/// Measures every system of a row: a calibration run each, then `rounds` rounds, one sample
/// of each system per round.
fn measure_row<'a>(
    scenario: &'a Scenario,
    placement: Placement,
    python: &mut Option<Python>,
    rounds: usize,
    target: f64,
) -> Row<'a> {
    let mut systems = vec![System::Native(
        if scenario.is_floor {
            "floor"
        } else {
            "multiproc"
        },
        scenario.ours,
    )];
    if let (Some(name), Some(_)) = (scenario.python, python.as_ref()) {
        systems.push(System::Python(name));
    }
    systems.extend(
        scenario
            .peers
            .iter()
            .map(|p| System::Native(p.name, p.measure)),
    );
    if let Some(floor) = scenario.floor_measure {
        systems.push(System::Native("floor", floor));
    }
    let mut cells: Vec<Cell> = systems
        .iter()
        .map(|s| Cell {
            system: match s {
                System::Native(name, _) => (*name).to_owned(),
                System::Python(_) => "python".to_owned(),
            },
            batch: 1,
            samples: Vec::new(),
            error: None,
        })
        .collect();
    for (system, cell) in systems.iter().zip(&mut cells) {
        let run = |batch| sample(system, placement, python, batch);
        match calibrate(run, target, scenario.min_batch) {
            Ok(batch) => cell.batch = batch,
            Err(e) => cell.error = Some(e),
        }
    }
    for _ in 0..rounds {
        for (system, cell) in systems.iter().zip(&mut cells) {
            if cell.error.is_some() {
                continue;
            }
            match sample(system, placement, python, cell.batch) {
                Ok(Some(seconds)) => cell.samples.push(seconds / cell.batch as f64),
                Ok(None) => cell.error = Some("not in this system".into()),
                Err(e) => cell.error = Some(e),
            }
        }
    }
    for cell in &cells {
        if let Some(e) = &cell.error {
            eprintln!("  {}: {e}", cell.system);
        }
    }
    Row {
        scenario,
        placement,
        cells,
    }
}

/// One sample: the seconds of `batch` operations (`None`: the system lacks the scenario).
fn sample(
    system: &System<'_>,
    placement: Placement,
    python: &mut Option<Python>,
    batch: u64,
) -> Result<Option<f64>, String> {
    let what = || match system {
        System::Native(name, _) => {
            format!("a sample of {name} ({}, batch {batch})", placement.name())
        }
        System::Python(name) => format!("Python's {name} ({}, batch {batch})", placement.name()),
    };
    let result = watchdog::watch(what, || match system {
        System::Native(_, measure) => measure(placement, batch).map(Some),
        System::Python(name) => match python.as_mut() {
            Some(py) => py.sample(name, placement, batch).map(|a| match a {
                Answer::Seconds(s) => Some(s),
                Answer::NotThere => None,
            }),
            None => Ok(None),
        },
    });
    unpin();
    result
}

/// The batch whose sample takes about `target` seconds: doubles (or more) from `min_batch`
/// until a run
/// takes half the target, then scales. Growing that far keeps a fixed cost inside the timed
/// part (the wake-up of a sleeping peer) a small share of the sample.
fn calibrate(
    mut run: impl FnMut(u64) -> Result<Option<f64>, String>,
    target: f64,
    min_batch: u64,
) -> Result<u64, String> {
    let mut batch = min_batch.max(1);
    loop {
        let Some(t) = run(batch)? else {
            return Err("not in this system".into());
        };
        if t >= target / 2.0 || batch >= 1 << 26 {
            let scaled = (batch as f64 * target / t.max(1e-9)).round();
            return Ok((scaled as u64).clamp(min_batch.max(1), 1 << 28));
        }
        let grow = (target / 2.0 / t.max(1e-9)).clamp(2.0, 100.0);
        batch = (batch as f64 * grow) as u64;
    }
}
