//! Any input: a stream of manager requests (postcard), run against a fresh server table by two
//! clients in turn, then every waiting call expired and both clients released, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multiproc::manager::__fuzz_requests(data);
});
