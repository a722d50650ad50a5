#![allow(dead_code)] // Each target uses part of this module.

//! Shared by the targets: a small input expanded into a large one, so that a 4 KB input can
//! reach the sizes where decoders used to break (megabytes of nesting, repetition, memo
//! references), while libFuzzer still mutates a short program.

/// The most bytes an expansion produces: with the decoders' default budgets this keeps one run
/// well within libFuzzer's default memory limit (2 GiB).
pub const MAX_EXPANDED: usize = 4 << 20;

/// Fragments that matter to the decoders (pickle opcodes with their arguments, and literal
/// syntax), picked by index in the program.
pub const PICKLE_SNIPPETS: &[&[u8]] = &[
    b"\x80\x04",
    b"]\x94",
    b"}\x94",
    b")",
    b"(",
    b"e",
    b"a",
    b"s",
    b"u",
    b"t",
    b"l",
    b"d",
    b"N",
    b"K\x01",
    b"\x85",
    b"\x86",
    b"R",
    b"h\x00",
    b"h\x01",
    b"h\x02",
    b"j\x00\x00\x00\x00",
    b"\x94",
    b"2",
    b"0",
    b"1",
    b"\x8c\x01a\x94",
    b"\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94",
    b"\x8c\x08builtins\x94\x8c\tfrozenset\x94\x93\x94",
    b"cbuiltins\nset\n",
    b"c_codecs\nencode\n",
    b"\x8f",
    b"\x90",
    b"\x91",
    b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x8b\x00\x01\x00\x00",
    b"I99999999999999999999999\n",
    b"L99999999999999999999999L\n",
    b"Va\n",
    b"p0\n",
    b"g0\n",
    b"C\x01x",
    b"G\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b".",
];

/// Fragments of Python literals, for the parser.
pub const LITERAL_SNIPPETS: &[&[u8]] = &[
    b"[", b"]", b"(", b")", b"{", b"}", b", ", b": ", b"None", b"True", b"1", b"-1", b"0x", b"ff",
    b"0o7", b"0b1", b"9", b"1.5e300", b"'a'", b"b'\\x00'", b"\"\\u00e9\"", b"set()", b"frozenset(",
    b"inf", b"nan", b"1_000",
];

/// Expands a program: each instruction is a tag byte and its arguments.
///
/// - `tag % 4 == 0`: a literal of `next + 1` bytes;
/// - `tag % 4 == 1`: the snippet `snippets[next % len]`;
/// - `tag % 4 == 2`: the previous piece again, `2^(next % 21) - 1` more times;
/// - `tag % 4 == 3`: the previous piece again, `u16` (little-endian) more times.
///
/// Output stops at [`MAX_EXPANDED`] bytes.
pub fn expand(program: &[u8], snippets: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    let mut i = 0;
    let next = |i: &mut usize| {
        let b = program.get(*i).copied();
        *i += 1;
        b
    };
    while let Some(tag) = next(&mut i) {
        let times = match tag % 4 {
            0 => {
                let n = usize::from(next(&mut i).unwrap_or(0)) + 1;
                let end = (i + n).min(program.len());
                last = program[i.min(end)..end].to_vec();
                i = end;
                1
            }
            1 => {
                let k = usize::from(next(&mut i).unwrap_or(0)) % snippets.len();
                last = snippets[k].to_vec();
                1
            }
            2 => (1usize << (next(&mut i).unwrap_or(0) % 21)) - 1,
            _ => {
                let lo = next(&mut i).unwrap_or(0);
                let hi = next(&mut i).unwrap_or(0);
                usize::from(u16::from_le_bytes([lo, hi]))
            }
        };
        for _ in 0..times {
            if out.len() + last.len() > MAX_EXPANDED {
                return out;
            }
            out.extend_from_slice(&last);
        }
    }
    out
}

/// Raw bytes when the first byte is even, else the expansion of the rest.
pub fn input(data: &[u8], snippets: &[&[u8]]) -> Vec<u8> {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => expand(rest, snippets),
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    }
}
