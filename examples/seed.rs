//! The five programs of the tutorial this crate started from, run with multiproc.
//!
//! Each program prints what its Python original prints (see `tests/seed.rs`).

use multiproc::Process;
use multiproc::shm::{Array, Value};

/// Program 1: a process owns its memory. The child appends to its own copy of the list; the
/// parent's list stays empty.
fn task(mut data: Vec<i32>) {
    data.push(666);
}

fn program1() {
    let data_list: Vec<i32> = Vec::new();
    let p = Process::start(task, data_list.clone()).expect("start the child");
    p.join().expect("join the child");
    println!("主进程: {data_list:?}");
}

/// Program 2: shared memory. A `Value` and an `Array` live in memory the child maps too; what
/// the child writes, the parent reads.
#[allow(clippy::approx_constant)] // the tutorial's own digits
fn f((n, a): (Value<f64>, Array<i32>)) {
    n.store(3.1415927);
    for x in a.lock().expect("lock the array").iter_mut() {
        *x = -*x;
    }
}

fn program2() {
    let num = Value::new(0.0f64).expect("create the value");
    let arr = Array::from_values(0..10).expect("create the array");
    let p = Process::start(f, (num.clone(), arr.clone())).expect("start the child");
    p.join().expect("join the child");
    println!("{}", num.load());
    println!("{:?}", arr.to_vec());
}

fn main() {
    multiproc::init();
    program1();
    program2();
}
