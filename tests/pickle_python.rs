//! `codec::pickle` against real CPython 3.11, 3.12 and 3.13: what Python pickles (every protocol)
//! reads back with Python's own `repr`; what Rust pickles, Python unpickles to the same `repr`
//! and pickles back unchanged; what is not plain data is refused.
#![cfg(feature = "python")]

mod common;

mod pyenv;

use multiproc::codec::pickle::{self, PickleError};
use multiproc::obj;
use multiproc::object::{BigInt, Dict, Object, Set};
use pyenv::{Rng, random_object};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Python values covering every kind, sizes past each opcode's short form and batching, shared
/// references, deep nesting. Each is pickled with every protocol the interpreter has.
const PY_VALUES: &str = r#"
import functools, pickle, sys
x = [1, 2]
VALUES = [
    None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**63 - 1, -2**63,
    2**63, -2**63 - 1, 10**30, -10**30, 2**2000, -(2**2047),
    0.0, -0.0, 1.5, 1e16, 1e-5, float('inf'), float('-inf'), float('nan'), 1 / 3,
    '', 'abc', '沐风', "it's", 'a\\b\n\r\t\x00\x1a', '\u2028\x85', '😀', 'x' * 300, 'é' * 70000,
    'back\\slash \\u0041',
    b'', b'abc', bytes(range(256)), b'x' * 300, bytearray(b'ba'), bytearray(),
    [], [1], list(range(2500)), (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), tuple(range(1500)),
    {}, {1: '1', '2': 2, 0.25: None}, {(1, 2): [3], None: {}, frozenset([1]): b''},
    {i: str(i) for i in range(1200)}, {1: 'a', 1.0: 'b', True: 'c'},
    set(), {1, 2, 3}, set(range(1500)), frozenset(), frozenset({'a'}), {frozenset({1}), (2, 3)},
    [x, x, (x,)], {'k': x, 'j': x},
    functools.reduce(lambda acc, _: [acc], range(300), None),
    ['沐风', 666, '精易'],
]
out = sys.stdout
for v in VALUES:
    # bytearray arrives as bytes.
    r = repr(bytes(v) if isinstance(v, bytearray) else v).encode('utf-8').hex()
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        out.write('%d %s %s\n' % (proto, pickle.dumps(v, proto).hex(), r))
"#;

#[test]
fn python_pickles_read_with_pythons_repr() {
    let _leaks = common::leak_check();
    for python in pyenv::interpreters() {
        let out = String::from_utf8(pyenv::run(&python, PY_VALUES, b"")).unwrap();
        let mut checked = 0;
        let mut failures = Vec::new();
        for line in out.lines() {
            let mut parts = line.split(' ');
            let (proto, data, want) = match (parts.next(), parts.next(), parts.next()) {
                (Some(p), Some(d), Some(r)) => (p, unhex(d), String::from_utf8(unhex(r)).unwrap()),
                _ => panic!("bad line {line:?}"),
            };
            match pickle::loads(&data) {
                Ok(o) if o.to_string() == want => {
                    // Python's repr also reads back as the same value.
                    if !want.parse::<Object>().is_ok_and(|p| pyenv::same(&p, &o)) {
                        failures.push(format!("repr does not parse back: {}", short(&want)));
                    }
                }
                Ok(o) => failures.push(format!(
                    "protocol {proto}: got {} want {}",
                    short(&o.to_string()),
                    short(&want)
                )),
                Err(e) => failures.push(format!("protocol {proto}: {e} for {}", short(&want))),
            }
            checked += 1;
        }
        eprintln!("python {}: {checked} pickles read", python.version);
        assert!(checked > 300, "too few pickles: {checked}");
        assert!(
            failures.is_empty(),
            "python {}:\n{}",
            python.version,
            failures.join("\n")
        );
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 120 {
        s.chars().take(117).collect::<String>() + "..."
    } else {
        s.to_owned()
    }
}

/// Has a set or frozenset with several elements somewhere (Python orders those by hash).
fn has_big_set(o: &Object) -> bool {
    match o {
        Object::Set(s) | Object::FrozenSet(s) => s.len() > 1 || s.iter().any(has_big_set),
        Object::List(v) | Object::Tuple(v) => v.iter().any(has_big_set),
        Object::Dict(d) => d.iter().any(|(k, v)| has_big_set(k) || has_big_set(v)),
        _ => false,
    }
}

const PY_ECHO: &str = r#"
import pickle, sys
out = sys.stdout
for line in sys.stdin.read().split():
    v = pickle.loads(bytes.fromhex(line))
    out.write('%s %s\n' % (repr(v).encode('utf-8').hex(), pickle.dumps(v, 4).hex()))
"#;

fn rust_objects() -> Vec<Object> {
    let mut fs = Set::new();
    fs.insert(3).unwrap();
    fs.insert("x").unwrap();
    let mut v = vec![
        obj!(["沐风", 666, "精易"]),
        obj!({1: "1", "2": 2, 0.25: None}),
        obj!([
            None,
            true,
            false,
            0,
            -1,
            255,
            256,
            65535,
            65536,
            (i64::MIN),
            (i64::MAX)
        ]),
        Object::from(u64::MAX),
        Object::from(i128::MIN),
        Object::BigInt(format!("-{}", "9".repeat(700)).parse::<BigInt>().unwrap()),
        obj!([
            0.0,
            -0.0,
            1e16,
            1e-5,
            (f64::INFINITY),
            (f64::NEG_INFINITY),
            (f64::NAN)
        ]),
        obj!(["", "it's", "a\\b\n\u{0}", "\u{2028}", "😀"]),
        Object::from("é".repeat(70_000)),
        Object::bytes((0..=255).collect::<Vec<u8>>()),
        Object::bytes(vec![1u8; 300]),
        obj!([(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]),
        Object::from((0..2500).collect::<Vec<i32>>()),
        Object::Tuple((0..1500).map(Object::from).collect()),
        Object::Dict(Dict::try_from_iter((0..1200).map(|i| (i, i.to_string()))).unwrap()),
        obj!({(1, 2): [3], None: {}, (Object::FrozenSet(fs.clone())): b"".to_vec()}),
        Object::Set(Set::new()),
        Object::FrozenSet(Set::new()),
        Object::Set(Set::try_from_iter(0..1500).unwrap()),
        obj!({1, 2, 3}),
        Object::FrozenSet(fs),
    ];
    let mut deep = Object::None;
    for _ in 0..300 {
        deep = Object::List(vec![deep]);
    }
    v.push(deep);
    let mut r = Rng(0xA5A5_5A5A_1234_8765);
    v.extend((0..1500).map(|_| random_object(&mut r, 3)));
    v
}

#[test]
fn rust_pickles_read_by_python() {
    let _leaks = common::leak_check();
    let objects = rust_objects();
    let input: String = objects
        .iter()
        .map(|o| hex(&pickle::dumps(o)) + "\n")
        .collect();
    // Python's repr of a str follows its own Unicode database; Object's follows the newest.
    let newest = pyenv::newest().map(|p| p.version);
    for python in pyenv::interpreters() {
        let same_unicode = Some(&python.version) == newest.as_ref();
        let out = String::from_utf8(pyenv::run(&python, PY_ECHO, input.as_bytes())).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), objects.len(), "python {}", python.version);
        let mut failures = Vec::new();
        for (o, line) in objects.iter().zip(lines) {
            let (repr, again) = line.split_once(' ').expect("two fields");
            let repr = String::from_utf8(unhex(repr)).unwrap();
            // Python's own pickle of what it read, back in Rust.
            let back = pickle::loads(&unhex(again)).expect("python's pickle reads");
            if has_big_set(o) {
                // Python prints and re-pickles sets in hash order: compare by value.
                if back != *o {
                    failures.push(format!("value differs: {}", short(&o.to_string())));
                }
            } else {
                if same_unicode && repr != o.to_string() {
                    failures.push(format!(
                        "repr {} vs {}",
                        short(&repr),
                        short(&o.to_string())
                    ));
                }
                if !back.identical(o) {
                    failures.push(format!("round trip differs: {}", short(&o.to_string())));
                }
            }
        }
        eprintln!(
            "python {}: {} objects checked",
            python.version,
            objects.len()
        );
        assert!(
            failures.is_empty(),
            "python {}:\n{}",
            python.version,
            failures.join("\n")
        );
    }
}

const PY_FORBIDDEN: &str = r#"
import collections, datetime, os, pickle, sys
class Point:
    def __init__(self): self.x = 1
VALUES = [
    collections.OrderedDict(a=1), datetime.date(2020, 1, 1), 1j, Exception('x'),
    os.system, Point(), [1, Point], {'k': collections.deque([1])}, Ellipsis,
    NotImplemented, type(None),
]
for v in VALUES:
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        try:
            data = pickle.dumps(v, proto)
        except Exception:
            continue
        sys.stdout.write('%d %s %s\n' % (proto, data.hex(), type(v).__name__))
"#;

/// `range` and `slice` (what a manager request for `l[1:2]` or `m.list(range(3))` carries)
/// are read as data, in every protocol.
const PY_RANGE_SLICE: &str = r#"
import pickle, sys
for v in [range(3), range(10, 0, -3), slice(1, 2), slice(None, None, -1)]:
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        sys.stdout.write('%d %s %r\n' % (proto, pickle.dumps(v, proto).hex(), v))
"#;

#[test]
fn ranges_and_slices_are_read_as_data() {
    for python in pyenv::interpreters() {
        let out = String::from_utf8(pyenv::run(&python, PY_RANGE_SLICE, b"")).unwrap();
        for line in out.lines() {
            let (proto, rest) = line.split_once(' ').unwrap();
            let (hex, repr) = rest.split_once(' ').unwrap();
            let got = pickle::loads(&unhex(hex)).unwrap().to_string();
            let want = match repr {
                "range(0, 3)" => "[0, 1, 2]",
                "range(10, 0, -3)" => "[10, 7, 4, 1]",
                other => other,
            };
            assert_eq!(got, want, "Python {} protocol {proto}", python.version);
        }
        assert!(out.lines().count() >= 16);
    }
}

#[test]
fn python_objects_that_are_not_plain_data_are_refused() {
    let _leaks = common::leak_check();
    for python in pyenv::interpreters() {
        let out = String::from_utf8(pyenv::run(&python, PY_FORBIDDEN, b"")).unwrap();
        let mut checked = 0;
        for line in out.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            let err = pickle::loads(&unhex(parts[1]))
                .map(|o| o.to_string())
                .expect_err(&format!("{} protocol {} decoded", parts[2], parts[0]));
            assert!(
                matches!(err, PickleError::Forbidden { .. }),
                "{} protocol {}: {err}",
                parts[2],
                parts[0]
            );
            checked += 1;
        }
        assert!(
            checked > 50,
            "python {}: only {checked} cases",
            python.version
        );
    }
}

/// Python's `Connection.send` pickles with `ForkingPickler`; its `recv` unpickles frames we write.
/// One Python process plays both ends of a `Pipe`: what `send` puts in a frame is read here, and
/// our pickles go through `send_bytes` to come out of `recv`.
const PY_CONNECTION: &str = r#"
import sys
from multiprocessing import Pipe
r, w = Pipe(duplex=False)
out = sys.stdout
values = [['沐风', 666, '精易'], {1: '1', '2': 2, 0.25: None}, (None, b'x', {3}, frozenset()), 10**40]
for v in values:
    w.send(v)
    out.write('sent %s %s\n' % (r.recv_bytes().hex(), repr(v).encode().hex()))
for line in sys.stdin.read().split():
    w.send_bytes(bytes.fromhex(line))
    out.write('recv %s\n' % repr(r.recv()).encode().hex())
"#;

#[test]
fn python_connection_send_and_recv_payloads() {
    let _leaks = common::leak_check();
    let ours = [
        obj!(["沐风", 666, "精易"]),
        obj!({1: "1", "2": 2, 0.25: None}),
        obj!((None, b"x", { 3 }, (Object::FrozenSet(Set::new())))),
        Object::BigInt("10000000000000000000000000000000000000000".parse().unwrap()),
    ];
    let input: String = ours.iter().map(|o| hex(&pickle::dumps(o)) + "\n").collect();
    for python in pyenv::interpreters() {
        let out = String::from_utf8(pyenv::run(&python, PY_CONNECTION, input.as_bytes())).unwrap();
        let mut received = ours.iter();
        let mut lines = 0;
        for line in out.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                ["sent", payload, repr] => {
                    let o = pickle::loads(&unhex(payload)).expect("Python's send payload");
                    assert_eq!(o.to_string(), String::from_utf8(unhex(repr)).unwrap());
                }
                ["recv", repr] => {
                    let want = received.next().expect("one reply per pickle").to_string();
                    assert_eq!(String::from_utf8(unhex(repr)).unwrap(), want);
                }
                _ => panic!("bad line {line:?}"),
            }
            lines += 1;
        }
        assert_eq!(lines, 8, "python {}", python.version);
    }
}
