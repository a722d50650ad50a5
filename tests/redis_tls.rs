//! The Redis backend over TLS (`rediss://`, feature `redis-tls`), against a `redis-server` with
//! a certificate made for the test.
#![cfg(feature = "redis-tls")]

mod common;
mod redis_server;

use multiproc::obj;
use multiproc::redis::Redis;
use redis_server::RedisServer;

#[test]
fn proxies_work_over_tls() {
    let _leaks = common::leak_check();
    let server = RedisServer::start_tls();
    let m = Redis::connect(&server.url).unwrap();
    let d = m.dict("d").unwrap();
    d.set(1, "one").unwrap();
    assert_eq!(d.get_item(true).unwrap(), obj!("one"));
    let q = m.queue("q", 0).unwrap();
    q.put("job").unwrap();
    assert_eq!(q.get().unwrap(), obj!("job"));
    // The plain port is closed: only TLS reaches it.
    let plain = server.url.replace("rediss://", "redis://");
    assert!(Redis::connect(&plain).is_err());
}
