//! `examples/seed.rs` prints what the tutorial's Python programs print.

use std::path::PathBuf;
use std::process::Command;

/// The example binary `cargo test` built beside this test (`target/<profile>/examples/seed`).
fn seed_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("seed")
}

#[test]
fn seed_example_prints_the_tutorial_output() {
    let path = seed_example();
    let out = if path.exists() {
        Command::new(&path).output()
    } else {
        Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--example", "seed"])
            .output()
    }
    .expect("run the seed example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("== ")).collect();
    let expected: Vec<&str> = include_str!("seed_expected.txt").lines().collect();
    // Until every program of the tutorial is in the example, it prints a prefix of the output.
    assert!(
        !lines.is_empty() && lines.len() <= expected.len(),
        "{stdout}"
    );
    assert_eq!(lines, expected[..lines.len()], "seed output differs");
}
