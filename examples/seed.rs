//! The five programs of the tutorial this crate started from, run with multiproc.
//!
//! Each program prints what its Python original prints (see `tests/seed.rs`).

use multiproc::Process;

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

fn main() {
    multiproc::init();
    program1();
}
