//! A work queue shared by several programs through Redis: the `remote_manager` example with
//! its objects in Redis instead of a manager server. The code is the same but for the
//! connect line.
//!
//! Each client connects by URL (as a program on another machine would), takes jobs until it
//! gets `None`, and records its work with an atomic `update_with`. The parent fills the queue
//! and prints the results.
//!
//! `cargo run --features redis --example redis_queue [URL]`: with no URL (or
//! `MULTIPROC_REDIS_URL`), it starts a `redis-server` of its own on a Unix socket and stops it
//! at the end.

use multiproc::Process;
use multiproc::object::Object;
use multiproc::redis::Redis;

/// The objects' namespace: one per run, so that a shared server is not disturbed.
fn namespace() -> String {
    format!("redis_queue-example-{}", std::process::id())
}

/// A client program: everything it needs is the URL.
fn worker((url, ns, name): (String, String, String)) -> u32 {
    let redis = Redis::options()
        .namespace(ns)
        .connect(&url)
        .expect("connect to Redis");
    let jobs = redis.queue("jobs", 0).expect("the job queue");
    let results = redis.dict("results").expect("the results");
    let mut done = 0;
    loop {
        match jobs.get().expect("a job") {
            Object::None => return done,
            job => {
                let n = job.as_i64().expect("a number");
                results.set(n, n * n).expect("record the square");
                results
                    .update_with(format!("done by {name}"), "add", 1)
                    .expect("count");
                done += 1;
            }
        }
    }
}

/// A `redis-server` of this example's own, on a Unix socket in a fresh directory.
struct OwnServer {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl OwnServer {
    fn start() -> (OwnServer, String) {
        let dir = std::env::temp_dir().join(format!("multiproc-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the server");
        let socket = dir.join("r.sock");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server), or give a URL");
        let start = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(start.elapsed().as_secs() < 10, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (
            OwnServer { child, dir },
            format!("redis+unix://{}", socket.display()),
        )
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() {
    multiproc::init();
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MULTIPROC_REDIS_URL").ok());
    let (_server, url) = match given {
        Some(url) => (None, url),
        None => {
            let (server, url) = OwnServer::start();
            (Some(server), url)
        }
    };
    // The one line that differs from the manager's example.
    let redis = Redis::options()
        .namespace(namespace())
        .connect(&url)
        .expect("connect to Redis");
    let jobs = redis.queue("jobs", 0).unwrap();

    let clients: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let args = (url.clone(), namespace(), name.to_owned());
            Process::start(worker, args).expect("start")
        })
        .collect();
    for n in 0..20 {
        jobs.put(n).unwrap();
    }
    for _ in &clients {
        jobs.put(Object::None).unwrap();
    }
    let total: u32 = clients.into_iter().map(|c| c.join().expect("join")).sum();
    let results = redis.dict("results").unwrap();
    let squares: i64 = (0..20)
        .map(|n: i64| results.get_item(n).unwrap().as_i64().unwrap())
        .sum();
    println!("jobs done: {total}");
    println!("sum of squares: {squares}");
    let count = |name: &str| {
        results
            .get(format!("done by {name}"))
            .unwrap()
            .and_then(|o| o.as_i64())
            .unwrap_or(0)
    };
    println!("counted by the clients: {}", count("a") + count("b"));
    drop((jobs, results));
    redis.delete("jobs").unwrap();
    redis.delete("results").unwrap();
}
