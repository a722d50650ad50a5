//! A manager on TCP with an authkey, and two separate client processes.
//!
//! The server publishes a job queue and a results dict; each client connects by address and
//! key (as a program on another machine would), takes jobs until it gets `None`, and records
//! its work with an atomic `update_with`. The parent fills the queue and prints the results.
//!
//! `cargo run --example remote_manager`

use multiproc::manager::{DictProxy, Manager, Server};
use multiproc::{Address, Object, Process};

const AUTHKEY: &[u8] = b"a secret shared by the server and its clients";

/// A client program: everything it needs is the address and the key.
fn worker((address, name): (String, String)) -> u32 {
    let address: Address = address.parse().expect("an address");
    let manager = Manager::connect(address, AUTHKEY).expect("connect to the manager");
    let jobs = manager.get("jobs").expect("the job queue");
    let results =
        DictProxy::try_from(manager.get("results").expect("the results")).expect("a dict");
    let mut done = 0;
    loop {
        match jobs.call("get", vec![]).expect("a job") {
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

fn main() {
    multiproc::init();
    let server = Server::bind("127.0.0.1:0".parse::<Address>().unwrap(), Some(AUTHKEY))
        .expect("bind the server");
    server
        .publish("jobs", "Queue", vec![])
        .expect("publish the queue");
    server
        .publish("results", "dict", vec![])
        .expect("publish the dict");
    let address = server.address().to_string();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());

    let clients: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| Process::start(worker, (address.clone(), name.to_owned())).expect("start"))
        .collect();
    let manager = Manager::connect(address.parse::<Address>().unwrap(), AUTHKEY).unwrap();
    let jobs = manager.get("jobs").unwrap();
    for n in 0..20 {
        jobs.call("put", vec![n.into()]).unwrap();
    }
    for _ in &clients {
        jobs.call("put", vec![Object::None]).unwrap();
    }
    let total: u32 = clients.into_iter().map(|c| c.join().expect("join")).sum();
    let results = DictProxy::try_from(manager.get("results").unwrap()).unwrap();
    let squares: i64 = (0..20)
        .map(|n: i64| results.get_item(n).unwrap().as_i64().unwrap())
        .sum();
    println!("jobs done: {total}");
    println!("sum of squares: {squares}");
    let a = results
        .get("done by a")
        .unwrap()
        .and_then(|o| o.as_i64())
        .unwrap_or(0);
    let b = results
        .get("done by b")
        .unwrap()
        .and_then(|o| o.as_i64())
        .unwrap_or(0);
    println!("counted by the clients: {}", a + b);
    drop((jobs, results, manager));
    stopper.stop();
    serving.join().unwrap().expect("the server stopped cleanly");
}
