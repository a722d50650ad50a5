//! Three producers and two consumers share a queue; one consumer is killed with `SIGKILL` in
//! the middle of the run, and a new one takes its place. Every message arrives once, except
//! at most one that the killed consumer had already taken out of the queue.
//!
//! Run with `cargo run --example queue`.

use std::time::Duration;

use multiproc::Process;
use multiproc::queue::Queue;
use multiproc::shm::{Array, RawValue};

const PRODUCERS: u32 = 3;
const PER_PRODUCER: u32 = 2000;

/// `Some((producer, n))`, or `None`: stop.
type Msg = Option<(u32, u32)>;

fn produce((q, me): (Queue<Msg>, u32)) {
    for n in 0..PER_PRODUCER {
        q.put(Some((me, n))).expect("put");
    }
}

/// Counts each message it takes in `seen`; `taken` tells the parent how far it got.
fn consume((q, seen, taken): (Queue<Msg>, Array<u8>, RawValue<u32>)) {
    while let Some((p, n)) = q.get().expect("get") {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen[(p * PER_PRODUCER + n) as usize] += 1;
        drop(seen);
        taken.store(taken.load() + 1);
    }
}

fn main() {
    multiproc::init();
    let q: Queue<Msg> = Queue::with_maxsize(64).expect("create the queue");
    let seen = Array::<u8>::new((PRODUCERS * PER_PRODUCER) as usize).expect("create the log");
    let start_consumer = || {
        let taken = RawValue::new(0u32).expect("create a counter");
        let p = Process::start(consume, (q.clone(), seen.clone(), taken.clone()))
            .expect("start a consumer");
        (p, taken)
    };
    let (steady, _) = start_consumer();
    let (victim, victim_taken) = start_consumer();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|me| Process::start(produce, (q.clone(), me)).expect("start a producer"))
        .collect();

    // Once the victim has taken a few hundred messages, kill it wherever it is.
    while victim_taken.load() < 300 {
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.kill().expect("kill the consumer");
    let _ = victim.join();
    println!("killed a consumer after it had taken at least 300 messages");
    let (replacement, _) = start_consumer();

    for p in producers {
        p.join().expect("join a producer");
    }
    q.put(None).expect("stop a consumer");
    q.put(None).expect("stop a consumer");
    steady.join().expect("join a consumer");
    replacement.join().expect("join a consumer");

    let seen = seen.to_vec();
    let twice = seen.iter().filter(|&&n| n > 1).count();
    let missing = seen.iter().filter(|&&n| n == 0).count();
    println!("messages delivered twice: {twice}");
    println!("messages lost: {missing} (at most the one the killed consumer had taken)");
    assert!(missing <= 1, "{missing} messages lost");
    println!("queue empty: {}", q.empty());
}
