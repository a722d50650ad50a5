//! Any input: `pickle::loads` returns (never panics, never overflows the stack, never allocates
//! without bound), and whatever it accepts survives `dumps` + `loads` exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::codec::pickle;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = pickle::loads(data) {
        let again = pickle::loads(&pickle::dumps(&o)).expect("own pickle reads back");
        assert!(again.identical(&o));
    }
});
