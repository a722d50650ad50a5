//! The tutorial's `Pipe()` program: a child sends a list through one end of a duplex pipe, the
//! parent receives it from the other end and answers.
//!
//! Prints, like its Python original:
//!
//! ```text
//! ['沐风', 666, '精易']
//! 主进程接收: ['沐风', 666, '精易']
//! ```

use multiproc::object::Object;
use multiproc::{Connection, Process, obj, pipe};

fn f(mut conn: Connection) {
    conn.send(&obj!(["沐风", 666, "精易"]))
        .expect("send the list");
    conn.close().expect("close the child's end");
}

fn main() {
    multiproc::init();
    let (mut parent_conn, child_conn) = pipe(true).expect("create the pipe");
    let p = Process::start(f, child_conn).expect("start the child");
    p.join().expect("join the child");

    let data: Object = parent_conn.recv().expect("receive the list");
    println!("{data}");
    println!("主进程接收: {data}");
    // Python's `send(666)` succeeds because the parent still holds the child's end. Here that
    // end moved into the child, which has closed it, so the send reports the closed peer.
    let sent = parent_conn.send(&666);
    assert!(
        matches!(sent, Err(multiproc::SendError::Disconnected)),
        "{sent:?}"
    );
}
