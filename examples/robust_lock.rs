//! A lock whose holder is killed: Python's other processes would wait forever; here the next
//! acquirer gets the lock at once, told that the owner died, and repairs the data.
//!
//! Prints (with the child's pid):
//!
//! ```text
//! child 1234 holds the lock, balance half-updated: 50
//! parent: the holder died while holding the lock; repairing balance 50 -> 100
//! parent: balance 100
//! ```

use std::time::Duration;

use multiproc::{Event, Process, Value};

/// Takes the lock, writes half of an update, says so, and waits to be killed.
fn half_update((balance, holding): (Value<i64>, Event)) {
    let mut guard = balance.lock().expect("lock");
    *guard = 50;
    println!(
        "child {} holds the lock, balance half-updated: {}",
        std::process::id(),
        *guard
    );
    holding.set();
    std::thread::sleep(Duration::from_secs(600));
}

fn main() {
    multiproc::init();
    let balance = Value::new(0i64).expect("create the value");
    let holding = Event::new().expect("create the event");
    let child =
        Process::start(half_update, (balance.clone(), holding.clone())).expect("start the child");
    // Wait until the child holds the lock, then kill it with SIGKILL.
    holding.wait();
    child.kill().expect("kill the child");
    let _ = child.join();

    match balance.lock() {
        Ok(guard) => println!("parent: balance {}", *guard),
        Err(owner_died) => {
            let mut guard = owner_died.into_inner();
            println!(
                "parent: the holder died while holding the lock; repairing balance {} -> 100",
                *guard
            );
            *guard = 100;
            guard.clear_poison();
        }
    }
    println!(
        "parent: balance {}",
        *balance.lock().expect("the lock is healthy again")
    );
}
