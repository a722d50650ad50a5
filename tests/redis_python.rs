//! The Redis backend with pickled values (`RedisOptions::pickle`): Python reads what Rust
//! stored with `pickle.loads`, and Rust reads what Python pushed with `pickle.dumps`.
#![cfg(all(feature = "redis", feature = "python"))]

mod common;
mod redis_server;

use std::io::Write;
use std::process::{Command, Stdio};

use multiproc::obj;
use multiproc::redis::Redis;
use redis_server::RedisServer;

/// Runs `python3 -c script` with `input` on its standard input; its standard output.
fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn python_reads_and_writes_pickled_objects() {
    let _leaks = common::leak_check();
    let server = RedisServer::start();
    let m = Redis::options().pickle(true).connect(&server.url).unwrap();
    let mut raw = redis::Client::open(server.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();

    // Rust -> Python: a dict in insertion order, keys and values pickled.
    let d = m.dict("d").unwrap();
    d.set(1, "one").unwrap();
    d.set("k", obj!((1, 2.5, ()))).unwrap();
    d.set(0.25, obj!([b"b"])).unwrap();
    let order: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg("{mp:default:d}:order")
        .arg(0)
        .arg(-1)
        .query(&mut raw)
        .unwrap();
    let mut lines = String::new();
    for field in order {
        for hash in ["{mp:default:d}:keys", "{mp:default:d}:values"] {
            let b: Vec<u8> = redis::cmd("HGET")
                .arg(hash)
                .arg(&field)
                .query(&mut raw)
                .unwrap();
            lines.push_str(&hex(&b));
            lines.push(' ');
        }
        lines.push('\n');
    }
    let shown = python(
        "import sys, pickle\n\
         d = {}\n\
         for line in sys.stdin:\n\
         \x20   k, v = line.split()\n\
         \x20   d[pickle.loads(bytes.fromhex(k))] = pickle.loads(bytes.fromhex(v))\n\
         print(repr(d))",
        &lines,
    );
    assert_eq!(shown.trim_end(), d.to_string());

    // Python -> Rust: items pushed by Python, taken by a Rust consumer.
    let q = m.queue("jobs", 0).unwrap();
    let pickles = python(
        "import pickle\n\
         for job in [{'job': 7}, 'two', None]:\n\
         \x20   print(pickle.dumps(job).hex())",
        "",
    );
    for line in pickles.lines() {
        let bytes: Vec<u8> = (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
            .collect();
        redis::cmd("RPUSH")
            .arg("{mp:default:jobs}:items")
            .arg(bytes)
            .exec(&mut raw)
            .unwrap();
    }
    assert_eq!(q.get().unwrap(), obj!({"job": 7}));
    assert_eq!(q.get().unwrap(), obj!("two"));
    assert_eq!(q.get().unwrap(), multiproc::Object::None);
}
