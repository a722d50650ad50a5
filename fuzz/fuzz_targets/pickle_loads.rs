//! Any input, raw or expanded from a short program (see `common`): `pickle::loads` returns
//! (never panics, never overflows the stack, never allocates without bound), whatever it
//! accepts survives `dumps` + `loads` exactly, and conversions of it fail with short messages.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use multiproc::Object;
use multiproc::codec::pickle::{self, Limits};

fuzz_target!(|data: &[u8]| {
    let input = common::input(data, common::PICKLE_SNIPPETS);
    // A small budget takes the limit paths everywhere.
    let _ = pickle::loads_with(&input, Limits::new().max_bytes(input.len() * 8));
    if let Ok(o) = pickle::loads(&input) {
        let again = pickle::loads(&pickle::dumps(&o)).expect("own pickle reads back");
        assert!(again.identical(&o));
        let text = o.to_string();
        if let Ok(back) = text.parse::<Object>() {
            assert_eq!(back.to_string(), text);
        }
        for err in [
            pickle::from_slice::<i64>(&input).err().map(|e| e.to_string()),
            pickle::from_slice::<(String, u8)>(&input).err().map(|e| e.to_string()),
            i32::try_from(o).err().map(|e| e.to_string()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(err.len() <= 2048, "a message of {} bytes", err.len());
        }
    }
});
