//! `examples/seed.rs` prints what the tutorial's Python programs print.

mod common;

use std::process::Command;

/// The lines of `seed_expected.txt` that each of the tutorial's five programs prints.
const PROGRAM_LINES: [std::ops::Range<usize>; 5] = [0..1, 1..3, 3..5, 5..6, 6..8];

#[test]
fn seed_example_prints_the_tutorial_output() {
    let _leaks = common::leak_check();
    // Through cargo, so that the example is rebuilt if it is older than the library.
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "seed"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the seed example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected: Vec<&str> = include_str!("seed_expected.txt").lines().collect();
    // Sections: "== program N" followed by that program's lines.
    let mut seen = Vec::new();
    let mut lines = stdout.lines().peekable();
    while let Some(heading) = lines.next() {
        let n: usize = heading
            .strip_prefix("== program ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected a program heading, got {heading:?}\n{stdout}"));
        let mut got = Vec::new();
        while let Some(l) = lines.next_if(|l| !l.starts_with("== ")) {
            got.push(l);
        }
        assert_eq!(
            got,
            expected[PROGRAM_LINES[n - 1].clone()],
            "program {n} differs"
        );
        seen.push(n);
    }
    assert_eq!(seen, [1, 2, 3, 4, 5], "{stdout}");
}
