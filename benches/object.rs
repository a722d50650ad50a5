//! `Object`: repr, postcard and pickle encode/decode of typical messages.
//!
//! The Python side of the comparison (same machine, same values):
//! `python3 benches/object_python.py`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc::obj;
use multiproc::object::Object;

/// A small heterogeneous message, as a worker would send.
fn message() -> Object {
    obj!({
        "id": 7,
        "name": "worker-1",
        "args": (1.5, "x", None),
        "tags": ["a", "b"],
        "blob": (Object::bytes(vec![0u8; 64]))
    })
}

fn int_list() -> Object {
    Object::from((0..1000).collect::<Vec<i64>>())
}

fn str_list() -> Object {
    Object::from((0..1000).map(|i| format!("item-{i}")).collect::<Vec<_>>())
}

fn cases() -> [(&'static str, Object); 3] {
    [
        ("message", message()),
        ("1000 ints", int_list()),
        ("1000 strs", str_list()),
    ]
}

fn repr(c: &mut Criterion) {
    let mut g = c.benchmark_group("repr");
    for (name, o) in cases() {
        g.bench_function(name, |b| b.iter(|| black_box(&o).to_string()));
    }
    g.finish();
}

fn postcard(c: &mut Criterion) {
    let mut g = c.benchmark_group("postcard");
    for (name, o) in cases() {
        let bytes = postcard::to_allocvec(&o).unwrap();
        g.bench_function(format!("encode {name}"), |b| {
            b.iter(|| postcard::to_allocvec(black_box(&o)).unwrap())
        });
        g.bench_function(format!("decode {name}"), |b| {
            b.iter(|| postcard::from_bytes::<Object>(black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

#[cfg(feature = "python")]
fn pickle(c: &mut Criterion) {
    use multiproc::codec::pickle;
    let mut g = c.benchmark_group("pickle");
    for (name, o) in cases() {
        let bytes = pickle::dumps(&o);
        g.bench_function(format!("dumps {name}"), |b| {
            b.iter(|| pickle::dumps(black_box(&o)))
        });
        g.bench_function(format!("loads {name}"), |b| {
            b.iter(|| pickle::loads(black_box(&bytes)).unwrap())
        });
    }
    // As CPython writes them: every str and the list memoized (MEMOIZE after each).
    let mut python = b"\x80\x04]\x94(".to_vec();
    for i in 0..1000 {
        let s = format!("item-{i}");
        python.extend([0x8c, s.len() as u8]);
        python.extend(s.as_bytes());
        python.push(0x94);
    }
    python.extend(b"e.");
    assert_eq!(
        pickle::loads(&python).unwrap().to_string(),
        str_list().to_string()
    );
    g.bench_function("loads 1000 strs (memoized, as Python writes)", |b| {
        b.iter(|| pickle::loads(black_box(&python)).unwrap())
    });
    g.finish();
}

#[cfg(not(feature = "python"))]
fn pickle(_: &mut Criterion) {}

criterion_group!(benches, repr, postcard, pickle);
criterion_main!(benches);
