use super::*;

/// One object of every kind, nested.
pub(crate) fn every_kind() -> Object {
    let mut fs = Set::new();
    fs.insert(3).unwrap();
    fs.insert("x").unwrap();
    obj!([
        None,
        true,
        false,
        0,
        -1,
        i64::MAX,
        i64::MIN,
        u64::MAX,
        i128::MIN,
        (BigInt::from_str_radix10("123456789012345678901234567890123456789012345678901234567890")),
        0.25,
        -0.0,
        1e300,
        f64::INFINITY,
        "",
        "沐风 'q' \"d\" \n\t\u{0}",
        (Object::bytes(b"\x00\xff'\"abc".to_vec())),
        (Object::bytes(Vec::new())),
        [],
        [1, [2, [3]]],
        (),
        (1,),
        (1, "a", (2.5, None)),
        {},
        {1: "1", "2": 2, 0.25: None, (1, 2): [3], None: {}},
        (Object::Set(Set::new())),
        {1, 2, (3, 4)},
        (Object::FrozenSet(Set::new())),
        (Object::FrozenSet(fs.clone())),
        {(Object::FrozenSet(fs)): "frozen key"}
    ])
}

impl BigInt {
    fn from_str_radix10(s: &str) -> BigInt {
        s.parse().unwrap()
    }
}

#[test]
fn seed_messages_print_as_python() {
    assert_eq!(
        obj!(["沐风", 666, "精易"]).to_string(),
        "['沐风', 666, '精易']"
    );
    assert_eq!(
        obj!({1: "1", "2": 2, 0.25: None}).to_string(),
        "{1: '1', '2': 2, 0.25: None}"
    );
}

#[test]
fn macro_forms() {
    assert!(obj!(None).identical(&Object::None));
    assert!(obj!(()).identical(&Object::Tuple(vec![])));
    assert!(obj!((1)).identical(&Object::Int(1)));
    assert!(obj!((1,)).identical(&Object::Tuple(vec![1.into()])));
    assert!(obj!((None,)).identical(&Object::Tuple(vec![Object::None])));
    assert!(obj!(([1])).identical(&obj!([1])));
    assert!(obj!([None]).identical(&Object::List(vec![Object::None])));
    assert!(obj!([1, 2,]).identical(&Object::from(vec![1, 2])));
    assert!(obj!({ 1 }).identical(&__macro_set(vec![1.into()])));
    assert!(obj!({-1: -2.5}).identical(&__macro_dict(vec![((-1).into(), (-2.5).into())])));
    let x = 3;
    assert_eq!(obj!([x, x + 1, (x * 2)]).to_string(), "[3, 4, 6]");
    assert_eq!(obj!({"k": [1, 2].len()}).to_string(), "{'k': 2}");
    assert_eq!(
        obj!({"a": {"b": {1, 2}}, "c": (None, [])}).to_string(),
        "{'a': {'b': {1, 2}}, 'c': (None, [])}"
    );
    assert_eq!(obj!(vec![1, 2]).to_string(), "[1, 2]");
    assert_eq!(obj!({(1, 2): None,}).to_string(), "{(1, 2): None}");
}

#[test]
#[should_panic(expected = "unhashable type: 'list'")]
fn macro_panics_on_unhashable_key() {
    let _ = obj!({[1]: 2});
}

#[test]
fn python_equality_and_keys() {
    assert_eq!(obj!(1), obj!(1.0));
    assert_eq!(obj!(1), obj!(true));
    assert_ne!(obj!([1]), obj!((1,)));
    assert_ne!(obj!("a"), Object::bytes(*b"a"));
    assert_ne!(obj!(f64::NAN), obj!(f64::NAN));
    assert_eq!(obj!({1: 2, 3: 4}), obj!({3: 4, 1: 2}));
    assert_eq!(
        obj!({1, 2}),
        Object::FrozenSet(Set::try_from_iter([2, 1]).unwrap())
    );
    // 1, 1.0 and True are one key; the first key object stays.
    let d = obj!({1: "a", 1.0: "b", true: "c"});
    assert_eq!(d.to_string(), "{1: 'c'}");
    // Big integers and integral floats beyond i64.
    let big = Object::from(BigInt::from_f64(1e20).unwrap());
    let mut d = Dict::new();
    d.insert(big.clone(), 1).unwrap();
    assert_eq!(d.get(&obj!(1e20)), Some(&obj!(1)));
    assert_eq!(big, obj!(1e20));
    assert_eq!(Object::BigInt(BigInt::from(5i64)), obj!(5));
    let mut d = Dict::new();
    d.insert(Object::BigInt(BigInt::from(5i64)), 1).unwrap();
    assert!(d.contains_key(&obj!(5.0)));
    // NaN keys are one key.
    let mut s = Set::new();
    s.insert(f64::NAN).unwrap();
    assert!(!s.insert(-f64::NAN).unwrap());
    // Nested hashable keys.
    let mut d = Dict::new();
    d.insert((1, (2.0, "x")), 0).unwrap();
    assert!(d.contains_key(&obj!((1.0, (2, "x")))));
    // Unhashable keys are errors, never panics, and lookups just miss.
    for k in [obj!([1]), obj!({}), Object::Set(Set::new()), obj!((1, [2]))] {
        let err = Dict::new().insert(k.clone(), 0).unwrap_err();
        assert!(err.to_string().starts_with("unhashable type: '"), "{err}");
        assert!(Set::new().insert(k.clone()).is_err());
        assert_eq!(d.get(&k), None);
    }
}

#[test]
fn removal_keeps_order() {
    let mut d = obj!({1: 1, 2: 2, 3: 3});
    let dm = d.as_dict_mut().unwrap();
    dm.remove(&obj!(1));
    dm.insert(1, 1).unwrap();
    assert_eq!(d.to_string(), "{2: 2, 3: 3, 1: 1}");
}

#[test]
fn conversions_both_ways() {
    assert_eq!(i32::try_from(obj!(-5)).unwrap(), -5);
    assert!(u8::try_from(obj!(-1)).is_err());
    assert_eq!(u64::try_from(Object::from(u64::MAX)).unwrap(), u64::MAX);
    assert_eq!(i128::try_from(Object::from(i128::MIN)).unwrap(), i128::MIN);
    assert_eq!(f64::try_from(obj!(2)).unwrap(), 2.0);
    assert_eq!(String::try_from(obj!("s")).unwrap(), "s");
    assert!(String::try_from(obj!(1)).is_err());
    assert_eq!(Vec::<u16>::try_from(obj!((1, 2))).unwrap(), [1, 2]);
    assert_eq!(Option::<bool>::try_from(obj!(None)).unwrap(), None);
    let t: (i64, String, Option<f64>) = obj!((1, "a", None)).try_into().unwrap();
    assert_eq!(t, (1, "a".into(), None));
    assert!(<(i64, i64)>::try_from(obj!((1,))).is_err());
    assert!(Object::from(Some(1)).identical(&obj!(1)));
    assert!(Object::from(None::<i32>).identical(&Object::None));
    assert!(Object::from('c').identical(&obj!("c")));
    assert!(Object::from(u128::MAX).identical(&Object::BigInt(BigInt::from(u128::MAX))));
    assert!(Object::from(5u128).identical(&Object::Int(5)));
    // Byte strings are bytes, borrowed as a slice or an array; owned, a list (serde's view).
    assert!(Object::from(&[1u8, 2][..]).identical(&Object::bytes([1, 2])));
    assert!(Object::from(b"\x00\xff".as_slice()).identical(&obj!(b"\x00\xff")));
    assert!(obj!([b"ab".as_slice(), &b"cd"[..1]]).identical(&obj!([b"ab", b"c"])));
    assert!(Object::from(vec![1u8, 2]).identical(&obj!([1, 2])));
    assert!(Object::from(&[1u16, 2][..]).identical(&obj!([1, 2])));
    assert!(Object::from(&["a", "b"][..]).identical(&obj!(["a", "b"])));
    assert!(Object::from(&[obj!(None)][..]).identical(&obj!([None])));
    // serde's byte paths: `serde_bytes`-style bytes are bytes, a `Vec<u8>` a list; both read
    // back into a `Vec<u8>`.
    assert!(to_object(&vec![1u8, 2]).unwrap().identical(&obj!([1, 2])));
    assert_eq!(from_object::<Vec<u8>>(obj!([1, 2])).unwrap(), [1, 2]);
    assert_eq!(
        from_object::<Vec<u8>>(Object::bytes([1, 2])).unwrap(),
        [1, 2]
    );
    assert_eq!(
        from_object::<[u8; 2]>(Object::bytes([1, 2])).unwrap(),
        [1, 2]
    );
    let e = String::try_from(obj!([1, 2])).unwrap_err();
    assert_eq!(e.to_string(), "expected String, found list [1, 2]");
}

#[test]
fn postcard_round_trips_every_kind() {
    let o = every_kind();
    let bytes = postcard::to_allocvec(&o).unwrap();
    let back: Object = postcard::from_bytes(&bytes).unwrap();
    assert!(back.identical(&o), "{back}");
    // Through the crate's codec as well.
    let mut buf = Vec::new();
    let fds = crate::codec::encode_into(&o, &mut buf).unwrap();
    assert!(fds.is_empty());
    let back: Object = crate::codec::decode(&buf, fds).unwrap();
    assert!(back.identical(&o));
    // Each element alone too.
    for item in o.as_slice().unwrap() {
        let b = postcard::to_allocvec(item).unwrap();
        let back: Object = postcard::from_bytes(&b).unwrap();
        assert!(back.identical(item), "{item}");
    }
    // NaN survives with its bits.
    let nan = Object::Float(f64::NAN);
    let back: Object = postcard::from_bytes(&postcard::to_allocvec(&nan).unwrap()).unwrap();
    assert!(back.identical(&nan));
}

#[test]
fn to_object_and_from_object_round_trip_every_kind() {
    let o = every_kind();
    let back = to_object(&o).unwrap();
    assert!(back.identical(&o), "{back}");
    let back: Object = from_object(o.clone()).unwrap();
    assert!(back.identical(&o), "{back}");
}

#[test]
fn json_uses_the_natural_mapping() {
    let o = obj!({"a": [1, 2.5, None, true], "b": {"c": "d"}, "big": (Object::from(u128::MAX))});
    let text = serde_json::to_string(&o).unwrap();
    assert_eq!(
        text,
        r#"{"a":[1,2.5,null,true],"b":{"c":"d"},"big":340282366920938463463374607431768211455}"#
    );
    // Tuples, sets and bytes come back as lists; serde_json reads integers beyond u64 as floats.
    let o = obj!({"t": (1, "x"), "s": {2}, "b": (Object::bytes(*b"hi"))});
    let back: Object = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(
        back.to_string(),
        "{'t': [1, 'x'], 's': [2], 'b': [104, 105]}"
    );
    let back: Object =
        serde_json::from_str(r#"{"x": [1, {"y": null}], "z": 18446744073709551615}"#).unwrap();
    assert_eq!(
        back.to_string(),
        "{'x': [1, {'y': None}], 'z': 18446744073709551615}"
    );
}

#[test]
fn typed_values_through_objects() {
    use serde::{Deserialize, Serialize};
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Unit,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Msg {
        id: u64,
        name: String,
        shapes: Vec<Shape>,
        maybe: Option<(i32, bool)>,
        raw: Object,
        #[serde(with = "bytes_as_bytes")]
        blob: Vec<u8>,
    }
    mod bytes_as_bytes {
        pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            serde_bytes_like(d)
        }
        fn serde_bytes_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                    Ok(v)
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
    let m = Msg {
        id: u64::MAX,
        name: "n".into(),
        shapes: vec![
            Shape::Unit,
            Shape::Circle(1.5),
            Shape::Rect { w: 1, h: 2 },
            Shape::Pair(-1, 1),
        ],
        maybe: Some((3, false)),
        raw: every_kind(),
        blob: vec![0, 1, 255],
    };
    let o = to_object(&m).unwrap();
    let text = o.to_string();
    assert!(
        text.starts_with(
            "{'id': 18446744073709551615, 'name': 'n', 'shapes': ['Unit', {'Circle': 1.5}, \
         {'Rect': {'w': 1, 'h': 2}}, {'Pair': (-1, 1)}], 'maybe': (3, False), 'raw': [None, "
        ),
        "{text}"
    );
    assert!(text.ends_with("'blob': b'\\x00\\x01\\xff'}"), "{text}");
    let back: Msg = from_object(o).unwrap();
    assert!(back.raw.identical(&m.raw));
    assert_eq!(back, m);
    // Wrong shapes are errors.
    assert!(from_object::<Msg>(obj!({"id": 1})).is_err());
    assert!(from_object::<u8>(obj!(256)).is_err());
    assert!(from_object::<Shape>(obj!({"Nope": 1})).is_err());
    let err = to_object(&std::collections::HashMap::from([(vec![1], 2)])).unwrap_err();
    assert_eq!(err.to_string(), "unhashable type: 'list' as map key");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // postcard bytes of `n` nested one-element lists (variant 7, length 1) around None.
    fn nested(n: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..n {
            bytes.extend([7, 1]);
        }
        bytes.push(0);
        bytes
    }
    let err = postcard::from_bytes::<Object>(&nested(MAX_DEPTH + 1)).unwrap_err();
    let _ = err;
    assert!(postcard::from_bytes::<Object>(&nested(100_000)).is_err());
    // Exactly at the limit it decodes, within a test thread's stack.
    let bytes = nested(MAX_DEPTH);
    let o: Object = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let o = postcard::from_bytes::<Object>(&bytes).unwrap();
            // Display, clone, compare and drop at that depth too.
            assert_eq!(o.to_string().len(), 2 * MAX_DEPTH + 4);
            assert!(o.clone().identical(&o));
            o
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(o.as_slice().is_some());
}

#[test]
fn size_of_object_stays_small() {
    assert_eq!(std::mem::size_of::<Object>(), 32);
}

#[test]
fn objects_are_send_and_sync() {
    fn assert<T: Send + Sync + 'static>() {}
    assert::<Object>();
    assert::<Dict>();
    assert::<Set>();
    assert::<ConvertError>();
    assert::<Unhashable<(Object, Object)>>();
    assert::<SerdeError>();
}

#[test]
fn comparisons_with_rust_values_and_item_access() {
    assert_eq!(obj!(1), 1);
    assert_eq!(obj!(1.0), 1);
    assert_eq!(obj!(true), 1);
    assert_eq!(obj!(2), 2.0);
    assert_eq!(Object::from(u64::MAX), u64::MAX);
    assert_eq!(obj!("a"), "a");
    assert_ne!(obj!("a"), "b");
    assert_ne!(obj!(1), "1");
    let o = obj!([1, (2, 3), {"k": None}]);
    assert_eq!(o.get_item(&obj!(0)), Some(&obj!(1)));
    assert_eq!(o.get_item(&obj!(-3)), Some(&obj!(1)));
    assert_eq!(o.get_item(&obj!(-4)), None);
    assert_eq!(o.get_item(&obj!(i64::MIN)), None);
    assert_eq!(o.get_item(&obj!("0")), None);
    assert_eq!(
        o.get_item(&obj!(1)).unwrap().get_item(&obj!(true)),
        Some(&obj!(3))
    );
    assert_eq!(
        o.get_item(&obj!(2)).unwrap().get_item(&obj!("k")),
        Some(&Object::None)
    );
    assert_eq!(o.len(), Some(3));
    assert_eq!(Object::bytes(*b"ab").len(), Some(2));
    assert_eq!(Object::None.len(), None);
}

/// `identical`, except that any NaN matches any NaN (text has one `nan`).
fn same(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Float(x), Object::Float(y)) if x.is_nan() && y.is_nan() => true,
        (Object::List(x), Object::List(y)) | (Object::Tuple(x), Object::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Object::Dict(x), Object::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        (Object::Set(x), Object::Set(y)) | (Object::FrozenSet(x), Object::FrozenSet(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        _ => a.identical(b),
    }
}

#[test]
fn display_parses_back() {
    let o = every_kind();
    let back: Object = o.to_string().parse().unwrap();
    assert!(same(&back, &o), "{back}");
    for text in [
        "None",
        "[1, -2, +3, 1_000, 0x_ff, 0o17, 0b101, -0x8000000000000001, 123456789012345678901234567890]",
        "(1.5, -0.0, .5, 5., 1e3, 1E-3, inf, -inf, nan, 1_0.2_5)",
        "('a' \"b\" '''c'd''' \"\"\"e\"f\"\"\")",
        r"'\x41\u00e9\U0001F600\101\0\n\t\\\'\q'",
        r"b'\x00\xff\101\q'",
        "{ }",
        "{1: 2, 'a': [3], (4, 5): {6}, }",
        "{1, 2, 2, 1.0}",
        "set()",
        "set([3, 1])",
        "frozenset()",
        "frozenset({2, 1})",
        " ( ( 1 ) , ) ",
        "[\n  1,\n  2,\n]",
    ] {
        let o: Object = match text.parse() {
            Ok(o) => o,
            Err(e) => panic!("{text}: {e}"),
        };
        let again: Object = o.to_string().parse().unwrap();
        assert!(same(&again, &o), "{text} -> {o}");
    }
    let o: Object = "[0x_ff, -0x8000000000000001, 1_0.2_5, 0b101]"
        .parse()
        .unwrap();
    assert_eq!(o.to_string(), "[255, -9223372036854775809, 10.25, 5]");
    let o: Object = r"'\x41\u00e9\U0001F600\101\0\q'".parse().unwrap();
    assert_eq!(o.as_str(), Some("Aé😀A\0\\q"));
    let o: Object = "{1: 'a', 1.0: 'b', True: 'c'}".parse().unwrap();
    assert_eq!(o.to_string(), "{1: 'c'}");
}

#[test]
fn bad_literals_are_errors() {
    for text in [
        "",
        "[",
        "[1,,]",
        "(1 2)",
        "{1: }",
        "{1: 2, 3}",
        "{[1]: 2}",
        "{[1], 2}",
        "'abc",
        "'a\nb'",
        "b'é'",
        r"'\ud800'",
        r"'\x4'",
        "01",
        "1__0",
        "_1",
        "1_",
        "0x",
        "0xg",
        "1e",
        "--1",
        "foo",
        "print('x')",
        "__import__('os')",
        "[1] + [2]",
        "{'a': 1}.keys()",
        "set(1)",
        "1 2",
        "(,)",
    ] {
        assert!(text.parse::<Object>().is_err(), "{text:?} parsed");
    }
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert!(deep.parse::<Object>().is_err());
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(ok.parse::<Object>().is_ok());
}

#[test]
fn parsing_garbage_never_panics() {
    let alphabet: Vec<char> = "[](){}:,'\"bB\\xuUN0123456789.eE+-_ \n\tNoneTrueFalsinfatrozé沐😀"
        .chars()
        .collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let valid = every_kind().to_string();
    for round in 0..20_000 {
        let text: String = if round % 2 == 0 {
            (0..next() % 24)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        } else {
            // A valid literal, cut and with a character replaced.
            let mut chars: Vec<char> = valid.chars().collect();
            chars.truncate((next() % (chars.len() as u64 + 1)) as usize);
            if !chars.is_empty() {
                let i = (next() % chars.len() as u64) as usize;
                chars[i] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            chars.into_iter().collect()
        };
        if let Ok(o) = text.parse::<Object>() {
            let again: Object = o.to_string().parse().unwrap();
            assert!(same(&again, &o), "{text:?}");
        }
    }
}

/// Runs `f` under a watchdog: a quadratic conversion of the sizes below takes minutes, the
/// linear ones milliseconds.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("conversion did not finish within a minute")
}

#[test]
fn huge_ints_print_parse_and_fail_in_linear_time() {
    within_a_minute(|| {
        // A 1 MiB magnitude (2.5 million decimal digits): repr is hexadecimal, exact, and reads
        // back; an error quoting it stays short.
        let mut bytes = vec![0xa5u8; 1 << 20];
        bytes.push(0x01);
        let big = BigInt::from_signed_bytes_le(&bytes);
        assert_eq!(big.bits(), (1 << 23) + 1);
        let o = Object::from(big.clone());
        let text = o.to_string();
        assert!(text.starts_with("0x1a5a5"), "{}", &text[..10]);
        assert_eq!(text.len(), 2 + 1 + 2 * (1 << 20));
        assert!(text.parse::<Object>().unwrap().identical(&o));
        assert!(
            format!("-{text}")
                .parse::<Object>()
                .unwrap()
                .identical(&Object::from(-big))
        );
        let err = i64::try_from(o.clone()).unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
        let err = from_object::<i64>(o.clone()).unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
        let err = from_object::<u8>(Object::from("x".repeat(10 << 20))).unwrap_err();
        assert!(err.to_string().len() < 1100, "{}", err.to_string().len());
        // Decimal text is limited to 4300 digits, both ways.
        let limit = "7".repeat(MAX_STR_DIGITS);
        let b: BigInt = limit.parse().unwrap();
        assert_eq!(b.to_string(), limit);
        let over = "7".repeat(MAX_STR_DIGITS + 1);
        assert!(over.parse::<BigInt>().is_err());
        let err = over.parse::<Object>().unwrap_err();
        assert!(err.to_string().contains("4300"), "{err}");
        assert!("7".repeat(1 << 20).parse::<Object>().is_err());
        // 10**4300 has 4301 digits: it prints in hexadecimal; 10**4300 - 1 in decimal.
        let ten: BigInt = format!("1{}", "0".repeat(MAX_STR_DIGITS - 1))
            .parse()
            .unwrap();
        assert_eq!(ten.to_string().len(), MAX_STR_DIGITS);
        let nines: BigInt = "9".repeat(MAX_STR_DIGITS).parse().unwrap();
        assert_eq!(nines.to_string(), "9".repeat(MAX_STR_DIGITS));
        // 10**4300 = (10**4300 - 1) + 1, carried through the bytes.
        let mut above = nines.to_signed_bytes_le();
        for b in above.iter_mut() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
        let above = BigInt::from_signed_bytes_le(&above);
        assert_eq!(above.bits(), 14285);
        assert!(above.to_string().starts_with("0x"));
        // Octal and binary literals are linear too.
        let octal = format!("0o{}", "7".repeat(1 << 20));
        assert_eq!(
            octal.parse::<Object>().unwrap().to_string().len(),
            2 + (3 << 20) / 4
        );
        let binary = format!("0b1{}", "0".repeat(1 << 20));
        assert!(
            binary
                .parse::<Object>()
                .unwrap()
                .to_string()
                .starts_with("0x1000")
        );
    });
}

/// Values nested exactly `MAX_DEPTH` deep, of each container kind and mixed.
fn deepest_values() -> Vec<(&'static str, Object)> {
    let wrap = |f: &dyn Fn(Object, usize) -> Object| {
        let mut o = Object::None;
        for level in 0..MAX_DEPTH {
            o = f(o, level);
        }
        o
    };
    let key = |o: Object| Dict::try_from_iter([("k", o)]).unwrap();
    vec![
        ("lists", wrap(&|o, _| Object::List(vec![o, Object::Int(1)]))),
        (
            "tuples",
            wrap(&|o, _| Object::Tuple(vec![Object::Int(1), o])),
        ),
        ("dicts", wrap(&|o, _| Object::Dict(key(o)))),
        (
            "frozensets",
            wrap(&|o, _| Object::FrozenSet(Set::try_from_iter([o]).unwrap())),
        ),
        (
            "mixed",
            wrap(&|o, level| match level % 3 {
                0 => Object::List(vec![o]),
                1 => Object::Dict(key(o)),
                _ => Object::Tuple(vec![o]),
            }),
        ),
    ]
}

/// On a 2 MiB thread, in the profile the tests are built in: every operation on the deepest
/// value the decoders accept, and the decoders one level deeper.
#[test]
fn deepest_values_work_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            for (name, o) in deepest_values() {
                let text = o.to_string();
                assert!(text.len() > MAX_DEPTH, "{name}");
                assert!(format!("{o:?}").len() > MAX_DEPTH, "{name}");
                let copy = o.clone();
                assert!(copy == o && copy.identical(&o), "{name}");
                let _ = o.partial_cmp(&copy);
                let _ = o.is_hashable();
                let back: Object = from_object(o.clone()).unwrap();
                assert!(back.identical(&o), "{name}");
                let json: serde_json::Value = from_object(o.clone()).unwrap();
                drop(json);
                assert!(to_object(&o).unwrap().identical(&o), "{name}");
                let bytes = postcard::to_allocvec(&o).unwrap();
                let back: Object = postcard::from_bytes(&bytes).unwrap();
                assert!(back.identical(&o), "{name}");
                assert!(serde_json::to_string(&o).unwrap().len() > MAX_DEPTH);
                let parsed: Object = text.parse().unwrap();
                assert!(parsed == o, "{name}");
                if o.is_hashable() {
                    let mut s = Set::new();
                    s.insert(o.clone()).unwrap();
                    assert!(s.contains(&o), "{name}");
                }
                #[cfg(feature = "python")]
                {
                    use crate::codec::pickle;
                    let p = pickle::dumps(&o);
                    assert!(pickle::loads(&p).unwrap().identical(&o), "{name}");
                    let back: Object = pickle::from_slice(&p).unwrap();
                    assert!(back.identical(&o), "{name}");
                }
                // One level more: every decoder refuses it cleanly.
                let deeper = Object::List(vec![o]);
                let bytes = postcard::to_allocvec(&deeper).unwrap();
                assert!(postcard::from_bytes::<Object>(&bytes).is_err(), "{name}");
                assert!(deeper.to_string().parse::<Object>().is_err(), "{name}");
                #[cfg(feature = "python")]
                assert!(
                    crate::codec::pickle::loads(&crate::codec::pickle::dumps(&deeper)).is_err()
                );
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// `to_object` and `from_object` hand an `Object` over whole, inside other types too; the
/// postcard encoding of an `Object` stays what it was (the tagged form).
#[test]
fn objects_inside_typed_values_are_handed_over_whole() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Msg {
        id: u32,
        body: Object,
        more: Vec<Object>,
    }
    let msg = Msg {
        id: 7,
        body: obj!({"k": [1, (2, b"x")]}),
        more: vec![obj!(None), obj!({1, 2})],
    };
    let o = to_object(&msg).unwrap();
    assert!(o.identical(&obj!({"id": 7, "body": {"k": [1, (2, b"x")]}, "more": [None, {1, 2}]})));
    let back: Msg = from_object(o).unwrap();
    assert!(back.body.identical(&msg.body) && back.more[1].identical(&msg.more[1]));
    // Tagged form: variant 7 (list), 2 items: variant 2 (int) zigzag 1, variant 5 (str) "a".
    assert_eq!(
        postcard::to_allocvec(&obj!([1, "a"])).unwrap(),
        [7, 2, 2, 2, 5, 1, b'a']
    );
    let back: Object = postcard::from_bytes(&[7, 2, 2, 2, 5, 1, b'a']).unwrap();
    assert!(back.identical(&obj!([1, "a"])));
}
