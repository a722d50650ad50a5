//! `Object` against CPython: the same values built in Python (from exact code points, bytes and
//! float bits) must print the same `repr` and compare the same way, for every interpreter found.

mod common;

mod pyenv;

use multiproc::obj;
use multiproc::object::{BigInt, Dict, Object, Set};
use pyenv::{Rng, py_expr, random_object};

const SCRIPT: &str = r#"
import sys, struct
def _f(h): return struct.unpack('>d', bytes.fromhex(h))[0]
def _s(cps): return ''.join(map(chr, cps))
out = sys.stdout.buffer
for line in sys.stdin.buffer.read().decode().splitlines():
    out.write(repr(eval(line)).encode('utf-8') + b'\n')
"#;

/// Asserts that each object prints as `python` prints the same value.
fn compare(python: &pyenv::Python, objects: &[Object]) {
    let input: String = objects.iter().map(|o| py_expr(o) + "\n").collect();
    let out = pyenv::run(python, SCRIPT, input.as_bytes());
    let out = String::from_utf8(out).expect("python prints UTF-8");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), objects.len(), "python {}", python.version);
    eprintln!(
        "python {}: comparing {} values",
        python.version,
        objects.len()
    );
    let mut failures = Vec::new();
    for (o, want) in objects.iter().zip(&lines) {
        let got = o.to_string();
        if got != *want {
            failures.push(format!("  rust:   {got}\n  python: {want}\n  ({o:?})"));
        }
        // Python's repr reads back as the same value (each Python, whatever its Unicode tables).
        match want.parse::<Object>() {
            Ok(back) if pyenv::same(&back, o) => {}
            Ok(back) => failures.push(format!("  parsed: {back}\n  python: {want}")),
            Err(e) => failures.push(format!("  {e}\n  python: {want}")),
        }
    }
    assert!(
        failures.is_empty(),
        "python {}: {} of {} differ:\n{}",
        python.version,
        failures.len(),
        objects.len(),
        failures.join("\n")
    );
}

fn s(text: &str) -> Object {
    Object::from(text)
}

fn fixed_cases() -> Vec<Object> {
    let mut v = vec![
        obj!(["沐风", 666, "精易"]),
        obj!({1: "1", "2": 2, 0.25: None}),
        obj!(None),
        obj!(true),
        obj!(false),
        obj!(0),
        obj!(-1),
        obj!(i64::MAX),
        obj!(i64::MIN),
        Object::from(u64::MAX),
        Object::from(i128::MIN),
        Object::BigInt(
            format!("-{}", "1234567890".repeat(12))
                .parse::<BigInt>()
                .unwrap(),
        ),
        obj!([]),
        obj!(()),
        obj!((1,)),
        obj!((1, 2)),
        obj!(((),)),
        obj!({}),
        obj!({ 1 }),
        obj!({1, 2, 3}),
        Object::Set(Set::new()),
        Object::FrozenSet(Set::new()),
        Object::FrozenSet(Set::try_from_iter([1, 2]).unwrap()),
        obj!({(1, 2): [None, {"a": (3.5,)}], "k": {1, 2}}),
        obj!([[[]], [()], [{}]]),
    ];
    for x in [
        0.0,
        -0.0,
        0.25,
        1.0,
        -1.5,
        0.1,
        0.2 + 0.1,
        1e16,
        1e15,
        123456789012345678.0,
        1e-4,
        1e-5,
        1.5e-5,
        1e22,
        1e23,
        2.5e-300,
        5e-324,
        2.2250738585072014e-308,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1.0 / 3.0,
        100.0,
        9999999999999998.0,
        12345.678,
        0.000123,
        299792458.0,
        -1e100,
    ] {
        v.push(Object::Float(x));
    }
    for text in [
        "",
        "a",
        "'",
        "\"",
        "'\"",
        "it's",
        "say \"hi\"",
        "both ' and \"",
        "\\",
        "\\n",
        "\n\r\t",
        "\u{0}\u{1}\u{1f}\u{7f}",
        "\u{80}\u{9f}\u{a0}\u{a1}\u{ad}\u{ff}",
        "é ü ß ñ",
        "沐风 精易",
        "\u{2028}\u{2029}\u{200b}\u{200d}\u{feff}",
        "\u{3000}ideographic space",
        "\u{e000}\u{f8ff}",
        "\u{fffe}\u{ffff}",
        "😀 🎉",
        "\u{1d400}\u{10ffff}\u{e0001}\u{f0000}",
        "\u{378}\u{1fffe}",
        "tab\there",
        "Ω≈ç√∫",
        "\u{661}\u{6f1}",
        "\u{301}combining",
    ] {
        v.push(s(text));
    }
    for b in [
        &b""[..],
        b"abc",
        b"'",
        b"\"",
        b"'\"",
        b"\\",
        b"\x00\x01\x7f\x80\xff",
        b"\n\r\t",
        b"it's",
    ] {
        v.push(Object::bytes(b));
    }
    let mut d = Dict::new();
    d.insert(1, "a").unwrap();
    d.insert(1.0, "b").unwrap();
    d.insert(true, "c").unwrap();
    d.insert(2.5, Object::None).unwrap();
    v.push(Object::Dict(d));
    v
}

#[test]
fn fixed_cases_print_as_every_python() {
    let _leaks = common::leak_check();
    let cases = fixed_cases();
    for python in pyenv::interpreters() {
        compare(&python, &cases);
    }
}

#[test]
fn random_values_print_as_the_newest_python() {
    let _leaks = common::leak_check();
    // The printable-character table follows the newest Python's Unicode database.
    let Some(python) = pyenv::newest() else {
        return;
    };
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let cases: Vec<Object> = (0..3000).map(|_| random_object(&mut r, 3)).collect();
    compare(&python, &cases);
}

#[test]
fn floats_print_as_python_including_last_digit_ties() {
    let _leaks = common::leak_check();
    let Some(python) = pyenv::newest() else {
        return;
    };
    let mut r = Rng(0x0DDB_1A5E_5BAD_5EED);
    let mut cases = Vec::new();
    for i in 0..20_000u64 {
        let x = match i % 4 {
            // Quarters and eighths around 2^50..2^53: many exact ties in the 17th digit.
            0 => (r.next() >> 11) as f64 / (1u64 << (1 + r.below(3))) as f64,
            1 => (r.next() >> (11 + r.below(8))) as f64 / 2f64.powi(r.below(12) as i32),
            2 => f64::from_bits(r.next()),
            _ => (r.next() >> 11) as f64 * 10f64.powi(r.below(40) as i32 - 20),
        };
        cases.push(Object::Float(if r.below(2) == 0 { x } else { -x }));
    }
    compare(&python, &cases);
}

fn small_number(r: &mut Rng) -> Object {
    match r.below(9) {
        0 => Object::Bool(r.below(2) == 0),
        1 | 2 => Object::Int(r.below(7) as i64 - 3),
        3 => Object::Int(r.next() as i64 >> r.below(64)),
        4 => Object::from(BigInt::from_signed_bytes_le(
            &(0..9 + r.below(8))
                .map(|_| r.next() as u8)
                .collect::<Vec<_>>(),
        )),
        5 => Object::Float((r.below(13) as f64 - 6.0) / 2.0),
        6 => Object::Float(
            [
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                -0.0,
                9.3e18,
                -9.3e18,
                1e300,
            ][r.below(7) as usize],
        ),
        7 => Object::Float(((r.next() >> 11) as f64) * 2f64.powi(r.below(40) as i32 - 10)),
        _ => Object::Float(f64::from_bits(r.next())),
    }
}

fn comparable(r: &mut Rng, kind: u64, depth: u32) -> Object {
    match kind {
        0 => small_number(r),
        1 => Object::from(
            (0..r.below(3))
                .map(|_| ['a', 'b', 'é', '沐'][r.below(4) as usize])
                .collect::<String>(),
        ),
        2 => Object::Bytes(
            (0..r.below(3))
                .map(|_| b"ab\xff"[r.below(3) as usize])
                .collect(),
        ),
        3 | 4 if depth > 0 => {
            let inner = r.below(3);
            let items = (0..r.below(4))
                .map(|_| comparable(r, inner, depth - 1))
                .collect();
            if kind == 3 {
                Object::List(items)
            } else {
                Object::Tuple(items)
            }
        }
        5 => Object::Set(Set::try_from_iter((0..r.below(4)).map(|_| r.below(4) as i64)).unwrap()),
        6 => Object::None,
        _ => obj!({(r.below(2) as i64): (r.below(2) as i64)}),
    }
}

#[test]
fn comparisons_match_python() {
    let _leaks = common::leak_check();
    let Some(python) = pyenv::newest() else {
        return;
    };
    let mut r = Rng(0xC0FF_EE00_DEAD_BEEF);
    let mut pairs = Vec::new();
    for _ in 0..4000 {
        let ka = r.below(8);
        let kb = if r.below(10) < 8 { ka } else { r.below(8) };
        pairs.push((comparable(&mut r, ka, 2), comparable(&mut r, kb, 2)));
    }
    let input: String = pairs
        .iter()
        .map(|(a, b)| format!("({}, {})\n", py_expr(a), py_expr(b)))
        .collect();
    let script = r#"
import sys, struct
def _f(h): return struct.unpack('>d', bytes.fromhex(h))[0]
def _s(cps): return ''.join(map(chr, cps))
for line in sys.stdin.read().splitlines():
    a, b = eval(line)
    try:
        r = ''.join('1' if x else '0' for x in (a < b, a <= b, a == b, a > b, a >= b))
    except TypeError:
        r = 'TypeError'
    print(r)
"#;
    let out = String::from_utf8(pyenv::run(&python, script, input.as_bytes())).unwrap();
    let mut failures = Vec::new();
    let mut ordered = 0;
    for ((a, b), want) in pairs.iter().zip(out.lines()) {
        let got: String = [a < b, a <= b, a == b, a > b, a >= b]
            .iter()
            .map(|x| if *x { '1' } else { '0' })
            .collect();
        let ok = if want == "TypeError" {
            // Python refuses to order these; Rust's partial order has nothing to say either,
            // except that equal values are equal.
            matches!(a.partial_cmp(b), None | Some(std::cmp::Ordering::Equal))
                && (a.partial_cmp(b).is_some() == (a == b))
        } else {
            ordered += 1;
            got == want
        };
        if !ok {
            failures.push(format!("{a} vs {b}: rust {got}, python {want}"));
        }
    }
    assert!(ordered > 1000, "only {ordered} ordered pairs");
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
