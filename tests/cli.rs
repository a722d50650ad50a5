//! The `multiproc` command.

mod common;

use std::process::Command;

fn multiproc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn info_and_version() {
    let _leaks = common::leak_check();
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
fn usage_mistakes_exit_2_and_name_the_mistake() {
    let _leaks = common::leak_check();
    for (args, says) in [
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
        (&["info", "foo"][..], "unexpected argument 'foo'"),
        (
            &["bench", "--python"][..],
            "a value is required for '--python <PATH>'",
        ),
        (&["bench", "--frob"][..], "unexpected argument '--frob'"),
        (
            &["bench", "--no-python", "--python", "x"][..],
            "cannot be used with",
        ),
        (&[][..], "Usage: multiproc"),
    ] {
        let out = multiproc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn every_subcommand_has_help() {
    let _leaks = common::leak_check();
    for args in [
        &["--help"][..],
        &["help"][..],
        &["info", "--help"][..],
        &["bench", "--help"][..],
        &["help", "bench"][..],
    ] {
        let out = multiproc(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(text.contains("Usage: multiproc"), "{args:?}: {text}");
    }
    let bench = multiproc(&["bench", "--help"]);
    let text = String::from_utf8_lossy(&bench.stdout);
    assert!(text.contains("--no-python"), "{text}");
}

#[test]
fn bench_prints_a_side_by_side_table() {
    let _leaks = common::leak_check();
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
fn a_missing_interpreter_is_a_runtime_error() {
    let _leaks = common::leak_check();
    let out = multiproc(&["bench", "--python", "/nonexistent/python"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
}
