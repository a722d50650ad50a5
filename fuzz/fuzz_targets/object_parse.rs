//! Any text, raw or expanded from a short program (see `common`): `str::parse::<Object>`
//! returns (never panics or overflows the stack, bounded time on long numbers), and what it
//! accepts prints back to text that parses to the same text again.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use multiproc::Object;

fuzz_target!(|data: &[u8]| {
    let input = common::input(data, common::LITERAL_SNIPPETS);
    let Ok(text) = std::str::from_utf8(&input) else {
        return;
    };
    match text.parse::<Object>() {
        Ok(o) => {
            let printed = o.to_string();
            let again: Object = printed.parse().expect("what Display prints reads back");
            assert_eq!(again.to_string(), printed);
        }
        Err(e) => assert!(e.to_string().len() <= 512, "{}", e.to_string().len()),
    }
});
