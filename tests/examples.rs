//! The feature examples run and print what their docs say.

mod common;

use std::process::Command;

fn run_example(name: &str) -> String {
    // Through cargo, so that the example is rebuilt if it is older than the library.
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn robust_lock_repairs_after_a_killed_holder() {
    let _leaks = common::leak_check();
    let out = run_example("robust_lock");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("child ") && lines[0].ends_with("balance half-updated: 50"));
    assert_eq!(
        lines[1..],
        [
            "parent: the holder died while holding the lock; repairing balance 50 -> 100",
            "parent: balance 100"
        ]
    );
}

#[test]
fn pipe_and_shared_values_print_the_tutorial_lines() {
    let _leaks = common::leak_check();
    assert_eq!(
        run_example("pipe"),
        "['沐风', 666, '精易']\n主进程接收: ['沐风', 666, '精易']\n"
    );
    assert_eq!(
        run_example("shared_values"),
        "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n"
    );
}

#[test]
fn remote_manager_serves_two_client_processes() {
    let _leaks = common::leak_check();
    assert_eq!(
        run_example("remote_manager"),
        "jobs done: 20\nsum of squares: 2470\ncounted by the clients: 20\n"
    );
}

#[test]
fn pool_finishes_its_job_despite_a_killed_worker() {
    let _leaks = common::leak_check();
    let out = run_example("pool");
    assert!(out.contains("killed worker "), "{out}");
    assert!(
        out.ends_with("primes below 2000000: 148933 (40 ranges)\n"),
        "{out}"
    );
}
