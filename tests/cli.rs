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
    let out = multiproc(&[
        "bench",
        "--quick",
        "--only",
        "process_fork",
        "--python",
        "python3",
    ]);
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
    // A figure for multiproc, Python and the floor; the speed-up over Python and the distance
    // to the floor (no Rust peer starts by fork).
    assert_eq!(fork.matches('×').count(), 2, "{fork}");
    assert_eq!(
        fork.matches(" ms").count() + fork.matches(" µs").count(),
        3,
        "{fork}"
    );
}

/// A cheap run's JSON file holds every sample of every system of its rows.
#[test]
fn bench_writes_its_samples_as_json() {
    let _leaks = common::leak_check();
    let path = std::env::temp_dir().join(format!("multiproc-bench-{}.json", std::process::id()));
    let out = multiproc(&[
        "bench",
        "--quick",
        "--no-python",
        "--only",
        "shm_create_attach_unlink",
        "--only",
        "mutex_uncontended",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rounds = json["rounds"].as_u64().unwrap();
    assert!(json["quick"].as_bool().unwrap());
    assert!(json["python"].is_null(), "{text}");
    let rows = json["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shm_create_attach_unlink", "mutex_uncontended"]);
    let shm = &rows[0];
    assert_eq!(shm["floor"], "shm_syscalls");
    let systems: Vec<&str> = shm["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["multiproc", "floor"], "{text}");
    for row in rows {
        for system in row["systems"].as_array().unwrap() {
            assert!(system["error"].is_null(), "{system}");
            let samples = system["seconds_per_op"].as_array().unwrap();
            assert_eq!(samples.len() as u64, rounds, "{system}");
            assert!(
                samples.iter().all(|s| s.as_f64().unwrap() > 0.0),
                "{system}"
            );
            assert!(system["batch"].as_u64().unwrap() >= 1);
        }
    }
    assert!(shm["times_floor"].as_f64().unwrap() > 0.0, "{text}");
}

#[test]
fn bench_names_an_unknown_scenario() {
    let _leaks = common::leak_check();
    let out = multiproc(&["bench", "--no-python", "--only", "frob"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario \"frob\""));
}

#[test]
fn a_missing_interpreter_is_a_runtime_error() {
    let _leaks = common::leak_check();
    let out = multiproc(&["bench", "--python", "/nonexistent/python"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
}

/// A build without the Rust peers says so in its table, in the rows that have a peer, and
/// names the feature that adds them; a build with them measures them.
#[test]
fn bench_names_the_peers_it_lacks_or_measures_them() {
    let _leaks = common::leak_check();
    let out = multiproc(&["bench", "--quick", "--no-python", "--only", "pool_start"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("Pool start + first result"))
        .unwrap();
    if cfg!(feature = "bench-peers") {
        assert!(row.contains("procspawn "), "{row}");
    } else {
        assert!(row.contains("not built"), "{row}");
        assert!(text.contains("--features bench-peers` adds them"), "{text}");
    }
}

/// A build with the Redis rows measures `d['k']` through the Redis backend beside the raw
/// `redis` crate, on a `redis-server` of its own (or says that none is installed); a build
/// without them names them and the feature that adds them.
#[test]
fn bench_measures_the_redis_row_or_names_its_feature() {
    let _leaks = common::leak_check();
    if !cfg!(feature = "redis") {
        let out = multiproc(&["bench", "--no-python", "--only", "redis_proxy_call"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("redis_proxy_call, redis_pipelined) are not in this build")
                && err.contains("`cargo build --release --features bench-redis` adds them"),
            "{err}"
        );
        let list = multiproc(&["bench", "--list"]);
        let text = String::from_utf8_lossy(&list.stdout);
        assert!(text.contains("--features bench-redis` adds them"), "{text}");
        return;
    }
    let path =
        std::env::temp_dir().join(format!("multiproc-bench-redis-{}.json", std::process::id()));
    let out = multiproc(&[
        "bench",
        "--quick",
        "--no-python",
        "--only",
        "redis_proxy_call",
        "--json",
        path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["rows_not_built"], serde_json::json!([]), "{text}");
    let installed = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let rows = json["rows"].as_array().unwrap();
    assert!(rows.len() >= 2, "{text}");
    for row in rows {
        assert_eq!(row["scenario"], "redis_proxy_call");
        assert_eq!(row["floor"], "socketpair_round_trip");
        let systems = row["systems"].as_array().unwrap();
        let names: Vec<&str> = systems
            .iter()
            .map(|s| s["system"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["multiproc", "redis", "floor"], "{text}");
        for system in &systems[..2] {
            if installed {
                assert!(system["error"].is_null(), "{system}");
                let samples = system["seconds_per_op"].as_array().unwrap();
                assert_eq!(samples.len() as u64, json["rounds"].as_u64().unwrap());
                assert!(samples.iter().all(|s| s.as_f64().unwrap() > 0.0));
            } else {
                let error = system["error"].as_str().unwrap();
                assert!(error.contains("redis-server is not installed"), "{error}");
            }
        }
        if installed {
            assert!(row["speedup_vs_best_peer"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    if !installed {
        assert!(stdout.contains("redis-server is not installed"), "{stdout}");
    }
}
