use super::*;
use crate::obj;
use crate::object::tests::every_kind;
use crate::object::{Dict, Set};

#[test]
fn every_kind_round_trips() {
    let o = every_kind();
    let back = loads(&dumps(&o)).unwrap();
    assert!(back.identical(&o), "{back}");
    for item in o.as_slice().unwrap() {
        let back = loads(&dumps(item)).unwrap();
        assert!(back.identical(item), "{item}");
    }
    let nan = Object::Float(f64::NAN);
    assert!(loads(&dumps(&nan)).unwrap().identical(&nan));
}

#[test]
fn large_containers_are_batched_and_round_trip() {
    let big: Vec<i64> = (0..2500).map(|i| i * 1_000_003 - 7).collect();
    let list = Object::from(big.clone());
    let tuple = Object::Tuple(big.iter().map(|&i| Object::Int(i)).collect());
    let dict = Object::Dict(Dict::try_from_iter(big.iter().map(|&i| (i, i.to_string()))).unwrap());
    let set = Object::Set(Set::try_from_iter(big.iter().copied()).unwrap());
    let fset = Object::FrozenSet(Set::try_from_iter(big.iter().copied()).unwrap());
    let long_str = Object::from("é".repeat(70_000));
    let long_bytes = Object::bytes(vec![7u8; 70_000]);
    for o in [list, tuple, dict, set, fset, long_str, long_bytes] {
        assert!(loads(&dumps(&o)).unwrap().identical(&o));
    }
}

#[test]
fn typed_values_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Job {
        id: u64,
        name: String,
        weights: Vec<f32>,
        pair: (i8, Option<bool>),
    }
    let job = Job {
        id: u64::MAX,
        name: "j".into(),
        weights: vec![0.5, -1.0],
        pair: (-3, None),
    };
    let bytes = to_vec(&job).unwrap();
    assert_eq!(from_slice::<Job>(&bytes).unwrap(), job);
    assert!(matches!(
        from_slice::<Vec<u8>>(&bytes),
        Err(PickleError::Convert(_))
    ));
}

#[test]
fn integers_use_python_opcodes() {
    assert_eq!(dumps(&obj!(5)), b"\x80\x04K\x05.");
    assert_eq!(dumps(&obj!(300)), b"\x80\x04M\x2c\x01.");
    assert_eq!(dumps(&obj!(-1)), b"\x80\x04J\xff\xff\xff\xff.");
    assert_eq!(
        dumps(&obj!(1i64 << 40)),
        b"\x80\x04\x8a\x06\x00\x00\x00\x00\x00\x01."
    );
    for i in [
        0,
        255,
        256,
        65535,
        65536,
        -1,
        i32::MIN as i64,
        i32::MAX as i64 + 1,
        i64::MIN,
        i64::MAX,
    ] {
        assert!(loads(&dumps(&obj!(i))).unwrap().identical(&obj!(i)), "{i}");
    }
}

#[test]
fn protocol_0_text_opcodes() {
    // Python 3.11: pickle.dumps([b'ab', b'', bytearray(b'xy'), {1}, frozenset([2]), 10**20, -1, 1.5, 'a\\€\n'], 0)
    let p0 = b"(lp0\nc_codecs\nencode\np1\n(Vab\np2\nVlatin1\np3\ntp4\nRp5\nac__builtin__\nbytes\np6\n(tRp7\nac__builtin__\nbytearray\np8\n(g1\n(Vxy\np9\ng3\ntp10\nRp11\ntp12\nRp13\nac__builtin__\nset\np14\n((lp15\nI1\natp16\nRp17\nac__builtin__\nfrozenset\np18\n((lp19\nI2\natp20\nRp21\naL100000000000000000000L\naI-1\naF1.5\naVa\\u005c\\u20ac\\u000a\np22\na.";
    assert_eq!(
        loads(p0).unwrap().to_string(),
        "[b'ab', b'', b'xy', {1}, frozenset({2}), 100000000000000000000, -1, 1.5, 'a\\\\€\\n']"
    );
    assert_eq!(loads(b"I01\n.").unwrap(), obj!(true));
    assert!(loads(b"I01\n.").unwrap().identical(&obj!(true)));
    assert!(loads(b"(I1\nI2\nd.").unwrap().identical(&obj!({1: 2})));
    assert!(
        loads(b"Vx\\\\u0041\n.")
            .unwrap()
            .identical(&obj!("x\\\\u0041"))
    );
    assert!(loads(b"V\\U0001f600\n.").unwrap().identical(&obj!("😀")));
}

#[test]
fn shared_objects_are_copied_and_cycles_rejected() {
    // x = [1]; [x, x] with memo references (protocol 2 style).
    let shared = b"\x80\x02]q\x00(]q\x01K\x01ah\x01e.";
    assert!(loads(shared).unwrap().identical(&obj!([[1], [1]])));
    // A list appended to after being memoized and referenced: every copy sees the final list.
    let late = b"\x80\x02]q\x00(]q\x01h\x01eh\x01K\x07a0.";
    assert!(loads(late).unwrap().identical(&obj!([[7], [7]])));
    // x = []; x.append(x)
    let cyclic = b"\x80\x02]q\x00h\x00a.";
    let err = loads(cyclic).unwrap_err();
    assert!(err.to_string().contains("contains itself"), "{err}");
}

#[test]
fn expansion_bombs_hit_the_limit() {
    // Each level: a list of two references to the previous level; 40 levels = 2^40 leaves.
    let mut p = b"\x80\x04]\x94".to_vec();
    for level in 0..40u32 {
        p.extend(b"]");
        p.push(b'(');
        p.extend([b'j']);
        p.extend(level.to_le_bytes());
        p.extend([b'j']);
        p.extend(level.to_le_bytes());
        p.extend(b"e\x94");
    }
    p.push(b'.');
    let err = loads(&p).unwrap_err();
    assert!(matches!(err, PickleError::Limit(_)), "{err}");
    // With a budget large enough for a few levels, a smaller bomb decodes.
    let mut small = b"\x80\x04]\x94".to_vec();
    for level in 0..4u32 {
        small.extend(b"](j");
        small.extend(level.to_le_bytes());
        small.push(b'j');
        small.extend(level.to_le_bytes());
        small.extend(b"e\x94");
    }
    small.push(b'.');
    let o = loads(&small).unwrap();
    assert_eq!(o.to_string().matches("[]").count(), 16);
}

#[test]
fn deep_nesting_hits_the_limit_without_overflow() {
    // 1,000,000 TUPLE1 opcodes around None.
    let mut p = b"\x80\x04N".to_vec();
    p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    p.push(b'.');
    assert!(matches!(loads(&p), Err(PickleError::Limit(_))));
    // Deep lists built with APPEND.
    let mut p = b"\x80\x04".to_vec();
    p.extend(std::iter::repeat_n(b']', 100_000));
    p.extend(std::iter::repeat_n(b'a', 99_999));
    p.push(b'.');
    assert!(matches!(loads(&p), Err(PickleError::Limit(_))));
    // Exactly at the limit it works; one more is an error.
    let nested = |n: usize| {
        let mut p = b"\x80\x04N".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, n));
        p.push(b'.');
        p
    };
    assert!(loads(&nested(MAX_DEPTH)).is_ok());
    assert!(matches!(
        loads(&nested(MAX_DEPTH + 1)),
        Err(PickleError::Limit(_))
    ));
    // Python memoizes every list: nesting through memo references counts the same.
    let mut p = b"\x80\x04".to_vec();
    p.extend(std::iter::repeat_n(&b"]\x94"[..], MAX_DEPTH + 1).flatten());
    p.extend(std::iter::repeat_n(b'a', MAX_DEPTH));
    p.push(b'.');
    assert!(matches!(loads(&p), Err(PickleError::Limit(_))));
    let mut p = b"\x80\x04".to_vec();
    p.extend(std::iter::repeat_n(&b"]\x94"[..], MAX_DEPTH).flatten());
    p.extend(std::iter::repeat_n(b'a', MAX_DEPTH - 1));
    p.push(b'.');
    assert!(loads(&p).is_ok());
}

#[test]
fn hostile_lengths_do_not_allocate() {
    for p in [
        &b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
        b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x80",
        b"\x80\x04X\xff\xff\xff\xff",
        b"\x80\x04\x8b\xff\xff\xff\x7f",
        b"\x80\x04\x8b\xff\xff\xff\xff",
        b"\x80\x04\x96\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x80\x04T\xff\xff\xff\x7f",
    ] {
        assert!(loads(p).is_err());
    }
}

#[test]
fn forbidden_names_and_opcodes() {
    let cases: &[&[u8]] = &[
        b"cos\nsystem\n(S'echo hi'\ntR.",
        b"\x80\x04\x8c\x02os\x8c\x06system\x93.",
        b"\x80\x04\x8c\x0bcollections\x8c\x0bOrderedDict\x93)R.",
        b"\x80\x02cbuiltins\neval\nq\x00.",
        b"\x80\x02cbuiltins\nset\n)Rq\x00}b.",
        b"\x80\x02(i__main__\nC\n.",
        b"\x80\x02P1\n.",
        b"\x80\x02N\x82\x01.",
        b"\x80\x04]\x81.",
        b"\x80\x04K\x01)R.",
        b"\x80\x02c_codecs\nencode\n(Vx\nVutf-16\ntR.",
    ];
    for p in cases {
        match loads(p) {
            Err(PickleError::Forbidden { .. }) => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(p)),
        }
    }
    // The accepted names still need the right arguments.
    assert!(loads(b"cbuiltins\nset\n(K\x01tR.").is_err());
    assert!(loads(b"cbuiltins\nset\n.").is_err());
}

#[test]
fn malformed_inputs_are_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x80",
        b"\x80\x06N.",
        b"\x80\x04N",
        b"\x80\x04.",
        b"\x80\x04N.N",
        b"\x80\x04a.",
        b"\x80\x04K\x01a.",
        b"\x80\x04(e.",
        b"\x80\x04}(K\x01u.",
        b"\x80\x04h\x00.",
        b"\x80\x04\x94.",
        b"\x80\x04]\x8c\x01a\x90.",
        b"\x80\x04(]\x91.",
        b"\x80\x04}]K\x01s.",
        b"\x80\x04\x8c\x02\xed\xa0.",
        b"Vab\\u12\n.",
        b"V\\ud800\n.",
        b"Ifoo\n.",
        b"F1.2.3\n.",
        b"\x80\x04\xff.",
        b"\x80\x04\x97.",
    ];
    for p in cases {
        assert!(loads(p).is_err(), "{:?}", String::from_utf8_lossy(p));
    }
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_never_panics() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let seeds: Vec<Vec<u8>> = vec![
        dumps(&every_kind()),
        b"(lp0\nc_codecs\nencode\np1\n(Vab\np2\nVlatin1\np3\ntp4\nRp5\nac__builtin__\nset\np14\n((lp15\nI1\natp16\nRp17\na.".to_vec(),
        b"\x80\x02]q\x00(]q\x01K\x01ah\x01e.".to_vec(),
        // A manager request as Python 3.11 pickles it: four MEMOIZEs, no GET.
        b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00(\x8c\x011\x94\x8c\x0b__getitem__\x94\x8c\x01k\x94\x85\x94}\x94t\x94.".to_vec(),
    ];
    let opcodes = b"(.012FIJKLMNPQRSTUVXabcde}ghijl]opqrst)uGBC\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98";
    for round in 0..6000 {
        let input: Vec<u8> = match round % 4 {
            // Truncations of valid pickles.
            0 => {
                let s = &seeds[(r.next() % seeds.len() as u64) as usize];
                s[..(r.next() as usize % (s.len() + 1))].to_vec()
            }
            // Byte flips in valid pickles.
            1 => {
                let mut s = seeds[(r.next() % seeds.len() as u64) as usize].clone();
                for _ in 0..1 + r.next() % 4 {
                    let i = r.next() as usize % s.len();
                    s[i] = r.next() as u8;
                }
                s
            }
            // Random opcode soup with random arguments.
            2 => {
                let mut s = vec![0x80, 4];
                for _ in 0..r.next() % 64 {
                    s.push(opcodes[r.next() as usize % opcodes.len()]);
                    for _ in 0..r.next() % 3 {
                        s.push(r.next() as u8);
                    }
                }
                s.push(b'.');
                s
            }
            // Plain random bytes.
            _ => (0..r.next() % 48).map(|_| r.next() as u8).collect(),
        };
        // Must return (Ok or Err), never panic; successes must re-encode and decode identically.
        let read = loads(&input);
        if let Ok(o) = &read {
            assert!(loads(&dumps(o)).unwrap().identical(o));
        }
        // The first reading keeps no memo: it must answer as a reading that keeps it (with an
        // error where that one has an error; which one may differ, as a call is evaluated
        // when it settles, at the end for a memoized one).
        let kept = decode::read_keeping_memo(&input, &Limits::default());
        match (&read, &kept) {
            (Ok(a), Ok(b)) => assert!(a.identical(b), "{input:?}: {a} vs {b}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{input:?}: {read:?} vs {kept:?}"),
        }
    }
}

#[test]
fn huge_integers_cost_linear_time_and_short_errors() {
    // A 256 KiB LONG4 (once 7 s of CPU to print): reads, prints in hexadecimal, and a typed read
    // fails with a short message.
    let mut p = b"\x80\x04\x8b".to_vec();
    p.extend((256u32 << 10).to_le_bytes());
    p.extend(std::iter::repeat_n(0x5au8, 256 << 10));
    p.push(b'.');
    let o = loads(&p).unwrap();
    assert!(o.to_string().starts_with("0x5a5a"));
    assert!(loads(&dumps(&o)).unwrap().identical(&o));
    let err = from_slice::<i64>(&p).unwrap_err().to_string();
    assert!(err.len() < 120, "{err}");
    // Protocol 0's decimal opcodes: 4300 digits, as Python's int(str).
    for (op, suffix) in [(b'I', ""), (b'L', "L")] {
        let text = |digits: usize| {
            let mut p = vec![op];
            p.extend("9".repeat(digits).bytes());
            p.extend(suffix.bytes());
            p.extend(b"\n.");
            p
        };
        assert_eq!(
            loads(&text(crate::object::MAX_STR_DIGITS))
                .unwrap()
                .to_string(),
            "9".repeat(crate::object::MAX_STR_DIGITS)
        );
        let err = loads(&text(crate::object::MAX_STR_DIGITS + 1)).unwrap_err();
        assert!(err.to_string().contains("4300 digits"), "{err}");
        assert!(err.to_string().len() < 200, "{err}");
        assert!(loads(&text(1 << 20)).is_err());
    }
    // Names quoted in errors are cut short.
    let mut p = b"c".to_vec();
    p.extend("m".repeat(1 << 20).bytes());
    p.extend(b"\nx\n.");
    let err = loads(&p).unwrap_err().to_string();
    assert!(err.len() < 300, "{}", err.len());
}

#[test]
fn slices_and_pickled_proxies_are_read_as_data() {
    use crate::object::{ProxyRef, Slice};
    // Python 3.11: pickle.dumps((None, '__getitem__', (slice(2, 5),), {}), 4)
    let req = b"\x80\x04\x955\x00\x00\x00\x00\x00\x00\x00(N\x8c\x0b__getitem__\x94\x8c\x08builtins\x94\x8c\x05slice\x94\x93\x94K\x02K\x05N\x87\x94R\x94\x85\x94}\x94t\x94.";
    let o = loads(req).unwrap();
    assert_eq!(
        o.to_string(),
        "(None, '__getitem__', (slice(2, 5, None),), {})"
    );
    // d['x'] = <a ListProxy>: RebuildProxy(ListProxy, Token('list', ('127.0.0.1', 5000), '2a'), 'pickle', {})
    let req = b"\x80\x04\x95\x99\x00\x00\x00\x00\x00\x00\x00(\x8c\x011\x94\x8c\x0b__setitem__\x94\x8c\x01x\x94\x8c\x18multiprocessing.managers\x94\x8c\x0cRebuildProxy\x94\x93\x94(h\x03\x8c\tListProxy\x94\x93\x94h\x03\x8c\x05Token\x94\x93\x94)\x81\x94\x8c\x04list\x94\x8c\t127.0.0.1\x94M\x88\x13\x86\x94\x8c\x022a\x94\x87\x94b\x8c\x06pickle\x94}\x94t\x94R\x94\x86\x94}\x94t\x94.";
    let o = loads(req).unwrap();
    let args = o.as_slice().unwrap()[2].as_slice().unwrap();
    assert_eq!(args[1], Object::from(ProxyRef::new("list", 0x2a)));
    // Protocol 2, an AutoProxy with its exposed methods.
    let p = b"\x80\x02cmultiprocessing.managers\nRebuildProxy\nq\x00(cmultiprocessing.managers\nAutoProxy\nq\x01cmultiprocessing.managers\nToken\nq\x02)\x81q\x03X\x05\x00\x00\x00Queueq\x04X\x06\x00\x00\x00/tmp/sq\x05X\x02\x00\x00\x00ffq\x06\x87q\x07bX\x06\x00\x00\x00pickleq\x08}q\tX\x07\x00\x00\x00exposedq\nX\x03\x00\x00\x00getq\x0bX\x03\x00\x00\x00putq\x0c\x86q\rstq\x0eRq\x0f.";
    assert_eq!(
        loads(p).unwrap(),
        Object::from(ProxyRef::new("Queue", 0xff))
    );
    // A bare Token (get_methods' argument).
    let req = b"\x80\x04\x95_\x00\x00\x00\x00\x00\x00\x00(N\x8c\x0bget_methods\x94\x8c\x18multiprocessing.managers\x94\x8c\x05Token\x94\x93\x94)\x81\x94\x8c\x04list\x94\x8c\t127.0.0.1\x94M\x88\x13\x86\x94\x8c\x022a\x94\x87\x94b\x85\x94}\x94t\x94.";
    let o = loads(req).unwrap();
    assert_eq!(
        o.to_string(),
        "(None, 'get_methods', (<ListProxy object, typeid 'list' at 0x2a>,), {})"
    );
    // Our own pickles of both read back.
    let s = Object::from(Slice::new(None, 3, -1));
    assert_eq!(loads(&dumps(&s)).unwrap(), s);
    let r = Object::from(ProxyRef::new("dict", 7));
    assert_eq!(loads(&dumps(&r)).unwrap(), r);
}

#[test]
fn other_objects_and_states_stay_forbidden() {
    // An instance of another class, and BUILD on something that is not a Token.
    for p in [
        &b"\x80\x04\x8c\x08builtins\x8c\x06object\x93)\x81."[..],
        b"\x80\x04\x8c\x18multiprocessing.managers\x8c\x05Token\x93)\x81}b.",
        b"\x80\x04\x8c\x18multiprocessing.managers\x8c\x0cRebuildProxy\x93.",
        b"\x80\x04\x8c\x18multiprocessing.managers\x8c\x0bBaseManager\x93.",
        b"\x80\x04\x8c\x18multiprocessing.managers\x8c\x09ListProxy\x93.",
        b"\x80\x04]N\x85b.",
    ] {
        assert!(loads(p).is_err(), "{p:?}");
    }
    // A Token without its state.
    assert!(loads(b"\x80\x04\x8c\x18multiprocessing.managers\x8c\x05Token\x93)\x81.").is_err());
}
