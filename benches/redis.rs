//! The Redis backend's proxy calls beside the raw `redis` crate sending the same commands on
//! one connection, in the same run, against a `redis-server` this bench starts (Unix socket,
//! nothing saved).
//!
//! Target: a proxy call ≤ 1.2 × the raw crate's latency; pipelined throughput ≥ 0.8 × its.
//!
//! `cargo bench --features redis --bench redis`

use criterion::{Criterion, Throughput, criterion_group};

use multiproc::obj;
use multiproc::redis::Redis;

#[path = "../tests/redis_server/mod.rs"]
mod redis_server;
use redis_server::RedisServer;

const BATCH: i64 = 10_000;

fn calls(c: &mut Criterion) {
    let server = RedisServer::start();
    let m = Redis::connect(&server.url).unwrap();
    let mut raw = redis::Client::open(server.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut g = c.benchmark_group("redis");

    // The keys the proxies use, so that the raw client reads the same data.
    let (dict_values, list_items, value) = (
        "{mp:default:d}:values",
        "{mp:default:l}:items",
        "{mp:default:v}:value",
    );
    let d = m.dict("d").unwrap();
    d.set("key", 1).unwrap();
    let v = m.value("v", "i", 1).unwrap();
    let l = m.list("l").unwrap();
    l.append("x").unwrap();
    let canonical: Vec<u8> = redis::cmd("HKEYS")
        .arg(dict_values)
        .query::<Vec<Vec<u8>>>(&mut raw)
        .unwrap()
        .remove(0);

    g.bench_function("raw GET", |b| {
        b.iter(|| {
            redis::cmd("GET")
                .arg(value)
                .query::<Vec<u8>>(&mut raw)
                .unwrap()
        })
    });
    g.bench_function("proxy Value.get (GET)", |b| b.iter(|| v.get().unwrap()));
    g.bench_function("raw HGET", |b| {
        b.iter(|| {
            redis::cmd("HGET")
                .arg(dict_values)
                .arg(&canonical)
                .query::<Vec<u8>>(&mut raw)
                .unwrap()
        })
    });
    g.bench_function("proxy d['key'] (HGET)", |b| {
        b.iter(|| d.get_item("key").unwrap())
    });
    g.bench_function("raw LINDEX", |b| {
        b.iter(|| {
            redis::cmd("LINDEX")
                .arg(list_items)
                .arg(0)
                .query::<Vec<u8>>(&mut raw)
                .unwrap()
        })
    });
    g.bench_function("proxy l[0] (LINDEX)", |b| b.iter(|| l.get(0).unwrap()));
    g.bench_function("proxy d['key'] = 1 (script: HSETNX, HSET)", |b| {
        b.iter(|| d.set("key", 1).unwrap())
    });
    g.bench_function(
        "proxy update_with add (GET + compare-and-set script)",
        |b| b.iter(|| v.update_with("add", 1).unwrap()),
    );

    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("raw pipeline of 10k HGET", |b| {
        b.iter(|| {
            let mut p = redis::pipe();
            for _ in 0..BATCH {
                p.cmd("HGET").arg(dict_values).arg(&canonical);
            }
            p.query::<Vec<Vec<u8>>>(&mut raw).unwrap()
        })
    });
    g.bench_function("proxy pipeline of 10k d['key']", |b| {
        b.iter(|| {
            let calls = (0..BATCH).map(|_| (d.as_proxy(), "__getitem__", vec![obj!("key")]));
            m.pipeline(calls).unwrap()
        })
    });
    let encoded = {
        let mut p = redis::cmd("LINDEX");
        p.arg(list_items).arg(0);
        p.query::<Vec<u8>>(&mut raw).unwrap()
    };
    // Both end with the same LTRIM (back to one item) in a round trip of its own.
    let trim = |raw: &mut redis::Connection| {
        redis::cmd("LTRIM")
            .arg(list_items)
            .arg(0)
            .arg(0)
            .exec(raw)
            .unwrap()
    };
    g.bench_function("raw pipeline of 10k RPUSH", |b| {
        b.iter(|| {
            let mut p = redis::pipe();
            for _ in 0..BATCH {
                p.cmd("RPUSH").arg(list_items).arg(&encoded).ignore();
            }
            p.exec(&mut raw).unwrap();
            trim(&mut raw)
        })
    });
    g.bench_function("proxy pipeline of 10k l.append", |b| {
        b.iter(|| {
            let calls = (0..BATCH).map(|_| (l.as_proxy(), "append", vec![obj!("x")]));
            m.pipeline(calls).unwrap();
            trim(&mut raw)
        })
    });
    g.finish();
}

criterion_group!(benches, calls);

fn main() {
    multiproc::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
