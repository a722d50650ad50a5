//! The seed's second program: a `Value` and an `Array` shared with a child process.
//!
//! ```text
//! $ cargo run --example shared_values
//! 3.1415927
//! [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//! ```
//!
//! Python:
//!
//! ```python
//! from multiprocessing import Process, Value, Array
//!
//! def f(n, a):
//!     n.value = 3.1415927
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//!
//! if __name__ == '__main__':
//!     num = Value('d', 0.0)
//!     arr = Array('i', range(10))
//!     p = Process(target=f, args=(num, arr))
//!     p.start()
//!     p.join()
//!     print(num.value)
//!     print(arr[:])
//! ```

use multiproc::Process;
use multiproc::shm::{Array, Value};

#[allow(clippy::approx_constant)] // the seed's own literal
fn f((n, a): (Value<f64>, Array<i32>)) {
    n.store(3.1415927);
    for x in a.lock().unwrap().iter_mut() {
        *x = -*x;
    }
}

fn main() {
    multiproc::init();
    let num = Value::new(0.0f64).unwrap();
    let arr = Array::from_values(0..10).unwrap();
    let p = Process::start(f, (num.clone(), arr.clone())).unwrap();
    p.join().unwrap();
    println!("{}", num.load());
    println!("{:?}", arr.to_vec());
}
