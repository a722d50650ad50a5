//! The programs of the tutorial this crate started from, run with multiproc.
//!
//! Each program prints what its Python original prints, under a `== program N` heading (see
//! `tests/seed.rs`).

use multiproc::manager::{DictProxy, ListProxy, Manager};
use multiproc::object::Object;
use multiproc::queue::Queue;
use multiproc::shm::{Array, Value};
use multiproc::{Connection, Process, obj, pipe};

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

/// Program 3: a manager. A server process holds a dict and a list; the child changes them
/// through proxies, and the parent prints what the server holds.
fn fill((d, l): (DictProxy, ListProxy)) {
    d.set(1, "1").expect("set d[1]");
    d.set("2", 2).expect("set d['2']");
    d.set(0.25, ()).expect("set d[0.25]");
    l.reverse().expect("reverse the list");
}

fn program3() {
    let manager = Manager::start().expect("start the manager");
    let d = manager.dict().expect("create the dict");
    let l = manager
        .list((0..10).collect::<Vec<i32>>())
        .expect("create the list");
    let p = Process::start(fill, (d.clone(), l.clone())).expect("start the child");
    p.join().expect("join the child");
    println!("{d}");
    println!("{l}");
}

/// Program 4: a queue. The child puts a list on a queue it received as its argument; the parent
/// gets it, after the child has ended (the message waits in shared memory).
fn put_list(q: Queue<Object>) {
    q.put(obj!(["沐风", 666, "精易"])).expect("put the list");
}

fn program4() {
    let q = Queue::new().expect("create the queue");
    let p = Process::start(put_list, q.clone()).expect("start the child");
    p.join().expect("join the child");
    println!("{}", q.get().expect("get the list"));
}

/// Program 5: a duplex pipe. The child sends a list through its end; the parent receives it
/// from the other end and answers.
fn send_list(mut conn: Connection) {
    conn.send(&obj!(["沐风", 666, "精易"]))
        .expect("send the list");
    conn.close().expect("close the child's end");
}

fn program5() {
    let (mut parent_conn, child_conn) = pipe(true).expect("create the pipe");
    let p = Process::start(send_list, child_conn).expect("start the child");
    p.join().expect("join the child");
    let data: Object = parent_conn.recv().expect("receive the list");
    println!("{data}");
    println!("主进程接收: {data}");
    // Python's `send(666)` lands in the child's end, which the parent still holds there. Here
    // that end moved into the child, which closed it: the send reports the closed peer.
    let _ = parent_conn.send(&666);
}

fn main() {
    multiproc::init();
    println!("== program 1");
    program1();
    println!("== program 2");
    program2();
    println!("== program 3");
    program3();
    println!("== program 4");
    program4();
    println!("== program 5");
    program5();
}
