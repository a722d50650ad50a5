//! Who may act as a child, and what a parent can know about its children: forged child markers
//! are refused, and a parent that ignores `SIGCHLD` still gets the truth from `join`.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use multiproc::{Descriptor, JoinError, Process, StartMethod};

multiproc::test_support!();

fn one(_: ()) -> u32 {
    1
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Runs this test binary's child entry (the test `test_support!` defines, whose `init()` acts as
/// a child when the marker says so) with `marker` in the environment and `sock` as its
/// descriptor 5, through `sh` so that the program's parent is this process.
fn run_with_marker(marker: &str, sock: UnixStream) -> Output {
    let exe = std::env::current_exe().unwrap();
    Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" __multiproc_child_entry --exact --quiet 5<&0 0</dev/null")
        .arg(exe)
        .env("MULTIPROC_CHILD", marker)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(sock)))
        .output()
        .unwrap()
}

fn assert_refused(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("refusing to run as a child") && stderr.contains(why),
        "stderr: {stderr}"
    );
    // Refused before the test harness ran: no test of this binary ran in it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("test result"), "stdout: {stdout}");
}

const SECRET: &str = "00112233445566778899aabbccddeeff";

#[test]
fn a_marker_with_a_wrong_secret_is_refused() {
    let _leaks = common::leak_check();
    let (ours, theirs) = UnixStream::pair().unwrap();
    (&ours).write_all(&[0x55; 16]).unwrap();
    let marker = format!("5,{},{SECRET}", std::process::id());
    let out = run_with_marker(&marker, theirs);
    assert_refused(&out, "secret");
}

#[test]
fn a_marker_without_a_secret_is_refused() {
    let _leaks = common::leak_check();
    let (_ours, theirs) = UnixStream::pair().unwrap();
    let marker = format!("5,{},{SECRET}", std::process::id());
    let out = run_with_marker(&marker, theirs);
    assert_refused(&out, "secret");
}

/// Makes a socket pair in this (child) process and hands one end back.
fn make_socketpair(_: ()) -> (Descriptor, Descriptor) {
    let (a, b) = UnixStream::pair().unwrap();
    (
        Descriptor::new(std::os::fd::OwnedFd::from(a)),
        Descriptor::new(std::os::fd::OwnedFd::from(b)),
    )
}

#[test]
fn a_marker_naming_a_socket_made_by_another_process_is_refused() {
    let _leaks = common::leak_check();
    // The parent (this process) is named, but the socket was made by another process.
    let (a, b) = Process::start(make_socketpair, ()).unwrap().join().unwrap();
    let theirs = UnixStream::from(b.into_owned_fd());
    let mut ours = UnixStream::from(a.into_owned_fd());
    ours.write_all(&[0x00; 16]).unwrap();
    let marker = format!("5,{},{}", std::process::id(), "00".repeat(16));
    let out = run_with_marker(&marker, theirs);
    assert_refused(&out, "not a socket made by the parent");
}

#[test]
fn a_marker_without_a_secret_field_is_not_a_marker() {
    let _leaks = common::leak_check();
    // The old two-field form (descriptor, parent pid) does not make a child: the program runs
    // as itself (here, the test harness running the child entry test, which then returns).
    let (_ours, theirs) = UnixStream::pair().unwrap();
    let out = run_with_marker(&format!("5,{}", std::process::id()), theirs);
    assert!(out.status.success(), "{out:?}");
}

/// Re-runs this test alone in a copy of this binary whose `SIGCHLD` is ignored (an ignored
/// signal stays ignored across `exec`). Returns `true` in that copy.
fn in_a_process_ignoring_sigchld(test: &str) -> bool {
    const VAR: &str = "MULTIPROC_TEST_SIGCHLD_IGNORED";
    if std::env::var_os(VAR).is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
            .unwrap();
        assert_ne!(ignored & (1 << (17 - 1)), 0, "SIGCHLD is not ignored here");
        return true;
    }
    // bash, since dash does not pass an ignored SIGCHLD on.
    let out = Command::new("bash")
        .arg("-c")
        .arg("trap '' CHLD; exec \"$0\" \"$1\" --exact --quiet --test-threads=1")
        .arg(std::env::current_exe().unwrap())
        .arg(test)
        .env(VAR, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

#[test]
fn a_parent_ignoring_sigchld_starts_and_joins_every_child() {
    let _leaks = common::leak_check();
    if !in_a_process_ignoring_sigchld("a_parent_ignoring_sigchld_starts_and_joins_every_child") {
        return;
    }
    for method in [StartMethod::Fork, StartMethod::Spawn] {
        for _ in 0..100 {
            let p = Process::builder().method(method).start(one, ()).unwrap();
            assert_eq!(p.join().unwrap(), 1);
        }
    }
}

#[test]
fn a_parent_ignoring_sigchld_sees_a_killed_child_end() {
    let _leaks = common::leak_check();
    if !in_a_process_ignoring_sigchld("a_parent_ignoring_sigchld_sees_a_killed_child_end") {
        return;
    }
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let p = Process::builder()
            .method(method)
            .start(sleep_ms, 600_000)
            .unwrap();
        assert!(p.is_alive());
        p.kill().unwrap();
        // The kernel discarded the status: the end is known, the code is not.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while p.is_alive() {
            assert!(
                std::time::Instant::now() < deadline,
                "is_alive() stays true"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(p.exitcode(), None);
        match p.join_timeout(Duration::from_secs(60)) {
            Err(multiproc::JoinTimeoutError::Failed(JoinError::StatusUnknown)) => {}
            other => panic!("{method:?}: expected StatusUnknown, got {other:?}"),
        }
    }
}

/// Panics with a known message (what the child reports still arrives).
fn fail(_: ()) {
    panic!("reported")
}

#[test]
fn a_parent_ignoring_sigchld_still_gets_what_the_child_reports() {
    let _leaks = common::leak_check();
    if !in_a_process_ignoring_sigchld("a_parent_ignoring_sigchld_still_gets_what_the_child_reports")
    {
        return;
    }
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let p = Process::builder().method(method).start(fail, ()).unwrap();
        match p.join() {
            Err(JoinError::Panicked(info)) => assert_eq!(info.message(), "reported"),
            other => panic!("{method:?}: expected a panic, got {other:?}"),
        }
    }
}
