//! What children print: nothing of the test harness, and no report the parent receives.
//!
//! Each test runs one inner test of this binary in a fresh copy of it and checks that copy's
//! output: the outer test's own output is captured by the harness and cannot be inspected.

mod common;

use std::process::{Command, Output};

use multiproc::{JoinError, Process, StartMethod};

multiproc::test_support!();

const INNER: &str = "MULTIPROC_TEST_QUIET_INNER";

fn boom(_: ()) -> u8 {
    panic!("an intended panic")
}

fn one(_: ()) -> u8 {
    1
}

/// Runs `test` alone in a copy of this binary (with `RUST_BACKTRACE` as given) and returns its
/// output; `None` inside that copy.
fn run_inner(test: &str, backtrace: &str) -> Option<Output> {
    if std::env::var_os(INNER).is_some() {
        return None;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .env("RUST_BACKTRACE", backtrace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some(out)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn children_print_no_test_banner() {
    let _leaks = common::leak_check();
    if let Some(out) = run_inner("children_print_no_test_banner", "0") {
        let (stdout, stderr) = text(&out);
        // The copy's own banner only: its children printed none.
        assert_eq!(stdout.matches("running 1 test").count(), 1, "{stdout}");
        assert_eq!(stdout.matches("running ").count(), 1, "{stdout}");
        assert!(stderr.is_empty(), "{stderr}");
        return;
    }
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        for _ in 0..3 {
            let p = Process::builder().method(method).start(one, ()).unwrap();
            assert_eq!(p.join().unwrap(), 1);
        }
    }
}

#[test]
fn a_joined_panic_is_not_printed() {
    let _leaks = common::leak_check();
    for backtrace in ["0", "1"] {
        if let Some(out) = run_inner("a_joined_panic_is_not_printed", backtrace) {
            let (_, stderr) = text(&out);
            assert!(
                !stderr.contains("panic"),
                "RUST_BACKTRACE={backtrace}: {stderr}"
            );
            assert!(
                !stderr.contains("backtrace"),
                "RUST_BACKTRACE={backtrace}: {stderr}"
            );
            continue;
        }
        let wants_backtrace = std::env::var("RUST_BACKTRACE").as_deref() == Ok("1");
        for method in [StartMethod::Spawn, StartMethod::Fork] {
            let p = Process::builder().method(method).start(boom, ()).unwrap();
            match p.join() {
                Err(JoinError::Panicked(info)) => {
                    assert_eq!(info.message(), "an intended panic");
                    assert!(info.location().unwrap().contains("process_quiet.rs"));
                    // The backtrace travels to the parent when the child was asked for one.
                    assert_eq!(info.backtrace().is_some(), wants_backtrace, "{info:?}");
                }
                other => panic!("expected a panic, got {other:?}"),
            }
        }
        return;
    }
}

#[test]
fn a_dropped_childs_panic_is_printed_by_the_parent() {
    let _leaks = common::leak_check();
    const LOG: &str = "MULTIPROC_TEST_QUIET_LOG";
    let Some(log) = std::env::var_os(LOG) else {
        // Outer: the copy's standard error goes to a file that the copy itself can watch.
        let log = std::env::temp_dir().join(format!("multiproc-quiet-{}", std::process::id()));
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "a_dropped_childs_panic_is_printed_by_the_parent",
                "--exact",
                "--nocapture",
            ])
            .env(LOG, &log)
            .stderr(std::fs::File::create(&log).unwrap())
            .output()
            .unwrap();
        let stderr = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        assert!(out.status.success(), "{out:?}\n{stderr}");
        assert_eq!(
            stderr.matches("dropped without join").count(),
            2,
            "{stderr}"
        );
        assert_eq!(stderr.matches("an intended panic").count(), 2, "{stderr}");
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let wait_for_reports = |n: usize| loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("dropped without join").count() >= n {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no report: {text}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // Dropped after it ended: the drop prints the report.
    let ended = Process::start(boom, ()).unwrap();
    while ended.is_alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child does not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(ended);
    wait_for_reports(1);
    // Dropped while it runs (it panics after a while): the reaper prints it.
    let running = Process::start(nap_then_boom, 200).unwrap();
    drop(running);
    wait_for_reports(2);
}

fn nap_then_boom(ms: u64) -> u8 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    panic!("an intended panic")
}

/// Writes to a pipe whose reader is gone: an error, as in any Rust program, not `SIGPIPE`.
fn write_to_a_closed_pipe(_: ()) -> String {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.write_all(b"x").unwrap_err().kind().to_string()
}

#[test]
fn a_test_child_ignores_sigpipe_as_the_runtime_does() {
    let _leaks = common::leak_check();
    let p = Process::start(write_to_a_closed_pipe, ()).unwrap();
    assert_eq!(
        p.join().unwrap(),
        std::io::ErrorKind::BrokenPipe.to_string()
    );
}
