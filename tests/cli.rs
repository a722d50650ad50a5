//! The `multiproc` command.

use std::process::Command;

fn multiproc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn info_and_version() {
    let out = multiproc(&["info"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("cpu_count: "), "{text}");
    let out = multiproc(&["--version"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("multiproc {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_command_is_an_error() {
    let out = multiproc(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"));
}

#[test]
fn bench_prints_a_side_by_side_table() {
    let out = multiproc(&["bench", "--quick", "--python", "python3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fork = text
        .lines()
        .find(|l| l.starts_with("Process start + join, fork"))
        .unwrap();
    // A figure for each side and a speed-up.
    assert_eq!(fork.matches('×').count(), 1, "{fork}");
    assert!(!fork.contains('–'), "{fork}");
}

#[test]
fn bench_options_are_checked() {
    let out = multiproc(&["bench", "--python"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--python needs"));
    let out = multiproc(&["bench", "--python", "/nonexistent/python"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
}
