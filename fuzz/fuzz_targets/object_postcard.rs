//! Any input, raw or expanded from a short program (see `common`): decoding an `Object` from
//! postcard returns (never panics or overflows the stack), whatever it accepts survives
//! encode + decode exactly, and converts to and from serde types without recursion trouble.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use multiproc::Object;
use multiproc::object::{from_object, to_object};

/// Postcard fragments: object kinds with lengths (list of 1, dict of 1, tuple of 2, ...).
const SNIPPETS: &[&[u8]] = &[
    &[7, 1],
    &[8, 2],
    &[9, 1, 5, 1, b'k'],
    &[10, 1],
    &[11, 1],
    &[0],
    &[2, 2],
    &[3, 20],
    &[5, 3, b'a', b'b', b'c'],
    &[6, 1, 0],
    &[4, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f],
    &[7, 0xff, 0xff, 0x03],
];

fuzz_target!(|data: &[u8]| {
    let input = common::input(data, SNIPPETS);
    if let Ok(o) = postcard::from_bytes::<Object>(&input) {
        let bytes = postcard::to_allocvec(&o).expect("encode");
        let again: Object = postcard::from_bytes(&bytes).expect("own encoding reads back");
        assert!(again.identical(&o));
        assert!(to_object(&o).expect("an object converts").identical(&o));
        let back: Object = from_object(o.clone()).expect("an object converts back");
        assert!(back.identical(&o));
        if let Err(e) = from_object::<Vec<(String, i64)>>(o) {
            assert!(e.to_string().len() <= 2048);
        }
    }
});
