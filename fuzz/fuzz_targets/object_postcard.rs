//! Any input: decoding an `Object` from postcard returns (never panics or overflows the stack),
//! and whatever it accepts survives encode + decode exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::Object;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = postcard::from_bytes::<Object>(data) {
        let bytes = postcard::to_allocvec(&o).expect("encode");
        let again: Object = postcard::from_bytes(&bytes).expect("own encoding reads back");
        assert!(again.identical(&o));
    }
});
