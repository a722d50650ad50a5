//! What a run shows: the table on stdout, the JSON file of raw samples, and the figures both
//! (and the chart) are made of.

use std::fmt::Write as _;

use super::scenarios::Scenario;
use super::{Cell, Row, Run};

/// The `q` quantile (0..=1) of sorted values, interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The median seconds per operation and the spread (half the interquartile range over the
/// median) of a cell; `None` without samples.
pub fn summary(cell: &Cell) -> Option<(f64, f64)> {
    if cell.samples.is_empty() {
        return None;
    }
    let mut v = cell.samples.clone();
    v.sort_by(f64::total_cmp);
    let median = quantile(&v, 0.5);
    let spread = (quantile(&v, 0.75) - quantile(&v, 0.25)) / 2.0 / median;
    Some((median, spread))
}

fn median_of(row: &Row<'_>, system: &str) -> Option<f64> {
    row.cells
        .iter()
        .find(|c| c.system == system)
        .and_then(summary)
        .map(|(m, _)| m)
}

/// The figures of a row that the table and the chart show.
pub struct Figures {
    pub ours: Option<f64>,
    pub python: Option<f64>,
    /// The fastest peer: its name and median.
    pub peer: Option<(String, f64)>,
    pub floor: Option<f64>,
}

impl Figures {
    pub fn of(row: &Row<'_>) -> Figures {
        let ours = median_of(row, "multiproc");
        let peer = row
            .cells
            .iter()
            .filter(|c| !matches!(c.system.as_str(), "multiproc" | "python" | "floor"))
            .filter_map(|c| summary(c).map(|(m, _)| (c.system.clone(), m)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let floor = if row.scenario.is_floor {
            None
        } else {
            median_of(row, "floor")
        };
        Figures {
            ours,
            python: median_of(row, "python"),
            peer,
            floor,
        }
    }

    /// How many times faster multiproc is than Python.
    pub fn vs_python(&self) -> Option<f64> {
        Some(self.python? / self.ours?)
    }

    /// How many times faster multiproc is than the best peer.
    pub fn vs_peer(&self) -> Option<f64> {
        Some(self.peer.as_ref()?.1 / self.ours?)
    }

    /// How many times its floor multiproc's figure is.
    pub fn above_floor(&self) -> Option<f64> {
        Some(self.ours? / self.floor?)
    }
}

/// A time per operation, or a bandwidth for bulk scenarios.
pub fn human(seconds: f64, bytes: u64) -> String {
    if bytes > 0 {
        return format!("{:.2} GB/s", bytes as f64 / seconds / 1e9);
    }
    if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else if seconds >= 1e-6 {
        format!("{:.2} µs", seconds * 1e6)
    } else {
        format!("{:.1} ns", seconds * 1e9)
    }
}

fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".to_owned(),
    }
}

fn figure(cell: Option<&Cell>, bytes: u64) -> String {
    match cell.and_then(summary) {
        Some((m, s)) => format!("{} ±{:.0}%", human(m, bytes), s * 100.0),
        None => "–".to_owned(),
    }
}

/// Prints the table: the scenarios, then the floors.
pub fn table(run: &Run<'_>) {
    let w = 36;
    let m = super::machine::describe();
    println!(
        "multiproc {} · {} · {} ({} usable CPUs) · Linux {} · load {}",
        env!("CARGO_PKG_VERSION"),
        m.date,
        m.cpu,
        m.cpus,
        m.kernel,
        m.load
    );
    println!(
        "{:<w$} {:<9} {:>18} {:>18} {:>8} {:>28} {:>8} {:>14} {:>8}",
        "scenario",
        "placement",
        "multiproc",
        "python",
        "vs py",
        "best Rust peer",
        "vs peer",
        "floor",
        "÷ floor"
    );
    for row in run.rows.iter().filter(|r| !r.scenario.is_floor) {
        let f = Figures::of(row);
        let bytes = row.scenario.bytes;
        let cell = |s: &str| row.cells.iter().find(|c| c.system == s);
        let peer = match &f.peer {
            Some((name, m)) => format!("{name} {}", human(*m, bytes)),
            None if !unbuilt_peers(row.scenario).is_empty() => "not built".to_owned(),
            None => "–".to_owned(),
        };
        let floor = f.floor.map_or("–".to_owned(), |m| human(m, bytes));
        println!(
            "{:<w$} {:<9} {:>18} {:>18} {:>8} {:>28} {:>8} {:>14} {:>8}",
            row.scenario.what,
            row.placement.name(),
            figure(cell("multiproc"), bytes),
            figure(cell("python"), bytes),
            ratio(f.vs_python()),
            peer,
            ratio(f.vs_peer()),
            floor,
            ratio(f.above_floor()),
        );
    }
    println!();
    println!("{:<w$} {:<9} {:>18}", "floor", "placement", "figure");
    for row in run.rows.iter().filter(|r| r.scenario.is_floor) {
        let cell = row.cells.first();
        println!(
            "{:<w$} {:<9} {:>18}",
            row.scenario.what,
            row.placement.name(),
            figure(cell, row.scenario.bytes)
        );
    }
    println!();
    if !super::peers::BUILT {
        println!(
            "Rust peers ({}) are not in this build: `{}` adds them",
            peer_names().join(", "),
            super::peers::HOW_TO_BUILD
        );
    }
    if !super::scenarios::REDIS_BUILT {
        println!("{}", redis_not_built());
    }
    for ((system, error), rows) in errors(run) {
        println!("no figure of {system} ({}): {error}", rows.join(", "));
    }
    let (py, peers) = (
        run.python.as_deref().unwrap_or("not measured"),
        if super::peers::BUILT {
            "measured"
        } else {
            "not built"
        },
    );
    println!();
    println!(
        "median ±spread (half the interquartile range) of {} rounds; python {py}; Rust peers {peers}; \
         vs py / vs peer: how many times faster multiproc is; ÷ floor: how many times its floor",
        run.rounds
    );
}

/// Each system's distinct reasons for cells without a figure (a `redis-server` that is not
/// installed, say), with the scenarios they struck.
type Missing<'a> = ((&'a str, &'a str), Vec<&'static str>);

fn errors<'a>(run: &'a Run<'_>) -> Vec<Missing<'a>> {
    let mut errors: Vec<Missing<'a>> = Vec::new();
    let cells = run
        .rows
        .iter()
        .flat_map(|r| r.cells.iter().map(move |c| (r.scenario.name, c)));
    for (name, cell) in cells {
        let Some(e) = cell.error.as_deref() else {
            continue;
        };
        let key = (cell.system.as_str(), e);
        match errors.iter_mut().find(|(seen, _)| *seen == key) {
            Some((_, names)) if names.contains(&name) => {}
            Some((_, names)) => names.push(name),
            None => errors.push((key, vec![name])),
        }
    }
    errors
}

/// What a build without the Redis rows says of them.
pub fn redis_not_built() -> String {
    format!(
        "Redis rows ({}) are not in this build: `{}` adds them",
        super::scenarios::REDIS_ROWS.join(", "),
        super::scenarios::REDIS_HOW_TO_BUILD
    )
}

/// The peers of `scenario` that this build lacks (all of them without `bench-peers`).
fn unbuilt_peers(scenario: &Scenario) -> Vec<&'static str> {
    if super::peers::BUILT {
        Vec::new()
    } else {
        super::peers::of(scenario.name).collect()
    }
}

/// Every peer crate, once each.
fn peer_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = Vec::new();
    for (_, p) in super::peers::PEERS {
        if !names.contains(p) {
            names.push(p);
        }
    }
    names
}

/// Prints the scenario names for `--only`.
pub fn list(all: &[Scenario]) {
    for s in all {
        let kind = if s.is_floor { "floor" } else { "scenario" };
        let placed = if s.placed { ", in 3 placements" } else { "" };
        println!("{:<28} {kind}: {}{placed}", s.name, s.what);
    }
    if !super::scenarios::REDIS_BUILT {
        println!("{}", redis_not_built());
    }
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt_string(s: Option<&str>) -> String {
    s.map_or("null".to_owned(), string)
}

/// A JSON number (non-finite figures, which JSON lacks, as null).
fn number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:e}")
    } else {
        "null".to_owned()
    }
}

fn opt_number(x: Option<f64>) -> String {
    x.map_or("null".to_owned(), number)
}

/// The run as JSON: the machine, the settings, and every sample of every cell.
pub fn json(run: &Run<'_>) -> String {
    let m = super::machine::describe();
    let mut out = String::from("{\n");
    let _ = writeln!(
        out,
        "  \"multiproc\": {},",
        string(env!("CARGO_PKG_VERSION"))
    );
    let _ = writeln!(out, "  \"date\": {},", string(&m.date));
    let _ = writeln!(
        out,
        "  \"machine\": {{\"cpu\": {}, \"cpus\": {}, \"kernel\": {}, \"load\": {}}},",
        string(&m.cpu),
        m.cpus,
        string(&m.kernel),
        string(&m.load)
    );
    let _ = writeln!(out, "  \"python\": {},", opt_string(run.python.as_deref()));
    let _ = writeln!(out, "  \"peers\": {},", super::peers::BUILT);
    let not_built: &[&str] = if super::scenarios::REDIS_BUILT {
        &[]
    } else {
        super::scenarios::REDIS_ROWS
    };
    let not_built: Vec<String> = not_built.iter().map(|n| string(n)).collect();
    let _ = writeln!(out, "  \"rows_not_built\": [{}],", not_built.join(", "));
    let _ = writeln!(out, "  \"quick\": {},", run.quick);
    let _ = writeln!(out, "  \"rounds\": {},", run.rounds);
    let _ = writeln!(
        out,
        "  \"sample_target_seconds\": {},",
        number(run.target_seconds)
    );
    out.push_str("  \"rows\": [");
    for (i, row) in run.rows.iter().enumerate() {
        let f = Figures::of(row);
        let s = row.scenario;
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        let _ = write!(
            out,
            "    {{\"scenario\": {}, \"what\": {}, \"placement\": {}, \"is_floor\": {}, \"floor\": {}, \
             \"bytes_per_op\": {}, \"floor_seconds\": {}, \"speedup_vs_python\": {}, \
             \"speedup_vs_best_peer\": {}, \"times_floor\": {}, \"peers_not_built\": [{}], \
             \"systems\": [",
            string(s.name),
            string(s.what),
            string(row.placement.name()),
            s.is_floor,
            opt_string(s.floor),
            s.bytes,
            opt_number(f.floor),
            opt_number(f.vs_python()),
            opt_number(f.vs_peer()),
            opt_number(f.above_floor()),
            unbuilt_peers(s)
                .iter()
                .map(|p| string(p))
                .collect::<Vec<_>>()
                .join(", "),
        );
        for (j, c) in row.cells.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            let samples: Vec<String> = c.samples.iter().map(|&x| number(x)).collect();
            let _ = write!(
                out,
                "{{\"system\": {}, \"batch\": {}, \"median_seconds\": {}, \"seconds_per_op\": [{}], \"error\": {}}}",
                string(&c.system),
                c.batch,
                opt_number(summary(c).map(|(m, _)| m)),
                samples.join(", "),
                opt_string(c.error.as_deref()),
            );
        }
        out.push_str("]}");
    }
    out.push_str("\n  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::placement::Placement;
    use crate::bench::scenarios::all;

    fn cell(system: &str, samples: &[f64]) -> Cell {
        Cell {
            system: system.to_owned(),
            batch: 1,
            samples: samples.to_vec(),
            error: None,
        }
    }

    #[test]
    fn a_cell_is_its_median_and_half_its_interquartile_range() {
        let (m, s) = summary(&cell("multiproc", &[5.0, 1.0, 3.0, 2.0, 4.0])).unwrap();
        assert_eq!(m, 3.0);
        assert_eq!(s, (4.0 - 2.0) / 2.0 / 3.0);
        assert!(summary(&cell("multiproc", &[])).is_none());
        assert_eq!(summary(&cell("python", &[7.0])).unwrap(), (7.0, 0.0));
    }

    #[test]
    fn ratios_compare_the_medians_of_one_row() {
        let scenarios = all();
        let row = Row {
            scenario: scenarios
                .iter()
                .find(|s| s.name == "pipe_round_trip")
                .unwrap(),
            placement: Placement::SameCpu,
            cells: vec![
                cell("multiproc", &[2.0, 2.0, 2.0]),
                cell("python", &[10.0, 10.0, 10.0]),
                cell("slow-peer", &[8.0]),
                cell("fast-peer", &[3.0]),
                cell("floor", &[1.0, 1.0]),
            ],
        };
        let f = Figures::of(&row);
        assert_eq!(f.vs_python(), Some(5.0));
        assert_eq!(f.peer.as_ref().unwrap().0, "fast-peer");
        assert_eq!(f.vs_peer(), Some(1.5));
        assert_eq!(f.above_floor(), Some(2.0));
        let bare = Row {
            cells: vec![cell("multiproc", &[2.0])],
            ..row
        };
        let f = Figures::of(&bare);
        assert_eq!(
            (f.vs_python(), f.vs_peer(), f.above_floor()),
            (None, None, None)
        );
    }

    #[test]
    fn each_reason_for_a_missing_figure_is_said_once_per_system() {
        let scenarios = all();
        let named = |n: &str| scenarios.iter().find(|s| s.name == n).unwrap();
        let failed = |system: &str, e: &str| Cell {
            error: Some(e.to_owned()),
            ..cell(system, &[])
        };
        let missing = "redis-server is not installed";
        let row = |name, placement| Row {
            scenario: named(name),
            placement,
            cells: vec![
                failed("multiproc", missing),
                failed("redis", missing),
                cell("floor", &[1.0]),
            ],
        };
        let run = Run {
            quick: true,
            rounds: 1,
            target_seconds: 0.01,
            python: None,
            rows: vec![
                row("pipe_round_trip", Placement::Unpinned),
                row("pipe_round_trip", Placement::SameCpu),
                row("manager_call_unix", Placement::Unpinned),
            ],
        };
        let both = vec!["pipe_round_trip", "manager_call_unix"];
        assert_eq!(
            errors(&run),
            vec![
                (("multiproc", missing), both.clone()),
                (("redis", missing), both)
            ]
        );
    }

    #[test]
    fn json_strings_and_numbers_are_escaped() {
        assert_eq!(string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
        assert_eq!(string("µs ×"), "\"µs ×\"");
        assert_eq!(number(f64::NAN), "null");
        assert_eq!(number(f64::INFINITY), "null");
        assert_eq!(number(1.5e-6).parse::<f64>().unwrap(), 1.5e-6);
    }

    #[test]
    fn bulk_rows_read_as_bandwidth() {
        assert_eq!(human(1e-3, 1 << 20), "1.05 GB/s");
        assert_eq!(human(2.5e-6, 0), "2.50 µs");
        assert_eq!(human(2.5e-3, 0), "2.50 ms");
        assert_eq!(human(25e-9, 0), "25.0 ns");
    }
}
