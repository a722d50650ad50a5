//! Hostile pickles against the decoder's bounds, measured: a counting allocator records the
//! peak heap of each `loads`, and every call runs on a 2 MiB thread (the default size of a
//! spawned thread) in whatever profile the tests are built in.
#![cfg(feature = "python")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use multiproc::codec::pickle::{self, BYTES_PER_INPUT_BYTE, FIXED_BYTES, Limits, PickleError};
use multiproc::connection::Codec;
use multiproc::object::MAX_DEPTH;
use multiproc::{Connection, Object, Process, RecvError, obj, pipe};

multiproc::test_support!();

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, passed on as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One measurement at a time: the counters are process-wide (a test that allocates much
/// without measuring holds it too).
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `loads_with` on a 2 MiB thread; returns the result and the peak heap it added (the
/// input itself excluded).
fn measure(input: &[u8], limits: Limits) -> (Result<Object, PickleError>, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || {
                let base = LIVE.load(Ordering::Relaxed);
                PEAK.store(base, Ordering::Relaxed);
                let r = pickle::loads_with(input, &limits);
                let peak = PEAK.load(Ordering::Relaxed) - base;
                (r, peak)
            })
            .expect("spawn")
            .join()
            .expect("the decoder must not panic")
    })
}

/// The good message every test decodes after its hostile one.
fn good_message_still_decodes() {
    let good = pickle::dumps(&multiproc::obj!({"ok": [1, 2, (3, "x")]}));
    let (r, _) = measure(&good, Limits::new());
    assert_eq!(
        r.expect("good message").to_string(),
        "{'ok': [1, 2, (3, 'x')]}"
    );
}

fn repeat(head: &[u8], body: &[u8], n: usize, tail: &[u8]) -> Vec<u8> {
    let mut p = head.to_vec();
    p.reserve(body.len() * n + tail.len());
    for _ in 0..n {
        p.extend_from_slice(body);
    }
    p.extend_from_slice(tail);
    p
}

/// Python's `pickle.dumps([x] * n, 4)` for a memoized item `x`, batched as Python batches
/// (`APPENDS` every 1000 items).
fn python_list(item: &[u8], n: usize) -> Vec<u8> {
    let mut p = b"\x80\x04]\x94".to_vec();
    for chunk in 0..n.div_ceil(1000) {
        p.push(b'(');
        for _ in 0..(n - chunk * 1000).min(1000) {
            p.extend_from_slice(item);
        }
        p.push(b'e');
    }
    p.push(b'.');
    p
}

/// Hostile shapes, each about `n` bytes long.
fn hostile(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let s64 = {
        let mut s = b"\x80\x04]\x94(\x8c\x40".to_vec();
        s.extend([b'a'; 64]);
        s.push(0x94);
        s
    };
    vec![
        // The stack: a value per input byte, never collected.
        ("None flood", repeat(b"\x80\x04", b"N", n, b".")),
        ("MARK flood", repeat(b"\x80\x04", b"(", n, b"N.")),
        (
            "memoized empty lists",
            repeat(b"\x80\x04", b"]\x94", n / 2, b"."),
        ),
        (
            "memoized empty dicts",
            repeat(b"\x80\x04", b"}\x94", n / 2, b"."),
        ),
        (
            "empty tuples in a list",
            repeat(b"\x80\x04](", b")", n, b"e."),
        ),
        // One 64-byte str, then a reference to it per two bytes.
        (
            "copies of a short str",
            repeat(&s64, b"h\x01", n / 2, b"e."),
        ),
        // A list appended to one item at a time.
        ("APPEND of None", repeat(b"\x80\x04]", b"Na", n / 2, b".")),
        ("SETITEM of ints", {
            let mut p = b"\x80\x04}".to_vec();
            for i in 0..(n / 7) as u32 {
                p.push(b'J');
                p.extend(i.to_le_bytes());
                p.extend(b"Ns");
            }
            p.push(b'.');
            p
        }),
        // Two references to the previous level, 40 levels: 2^40 leaves if copied.
        ("shared-object bomb", {
            let mut p = b"\x80\x04]\x94".to_vec();
            for level in 0..40u32 {
                p.extend(b"](j");
                p.extend(level.to_le_bytes());
                p.push(b'j');
                p.extend(level.to_le_bytes());
                p.extend(b"e\x94");
            }
            p.push(b'.');
            p
        }),
        ("sets of ints", repeat(b"\x80\x04\x8f(", b"N", n, b"\x90.")),
        // set(set(...(set(()))...)) through the memo: a call per 6 bytes, no tuple between
        // them, so the final pass walks a long chain of frames.
        ("calls through the memo", {
            let mut p = b"\x80\x04\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94h\x02)R\x94".to_vec();
            for k in 3..(n / 12) as u32 {
                p.extend(b"h\x02j");
                p.extend(k.to_le_bytes());
                p.extend(b"R\x94");
            }
            p.push(b'.');
            p
        }),
    ]
}

/// The stated bound, measured: with a budget of `64·n` bytes, no shape makes the decoder's
/// heap exceed twice that (allocator slack included) plus a page or two.
#[test]
fn hostile_pickles_stay_within_twice_the_budget() {
    let n = 1 << 20;
    let budget = BYTES_PER_INPUT_BYTE * n;
    for (name, input) in hostile(n) {
        let (r, peak) = measure(&input, *Limits::new().max_bytes(budget));
        // Every shape is a whole pickle: a value, the limit, or (for calls of a set) a
        // malformed call.
        assert!(
            matches!(
                r,
                Ok(_) | Err(PickleError::Limit(_) | PickleError::Invalid { .. })
            ),
            "{name}: {r:?}"
        );
        assert!(
            peak <= 2 * budget + (64 << 10),
            "{name}: {peak} bytes of heap for a budget of {budget}"
        );
    }
    good_message_still_decodes();
}

/// The default budget: `FIXED_BYTES + 64·n`; a pickle of `None`s (50 MB of them once cost
/// 5.5 GB; here 4 MB) costs about 32 bytes per input byte instead of 109.
#[test]
fn default_budget_bounds_the_none_flood() {
    let n = 4 << 20;
    let input = repeat(b"\x80\x04", b"N", n, b".");
    let (r, peak) = measure(&input, Limits::new());
    assert!(r.expect("a stack of None is a valid pickle").is_none());
    assert!(
        peak <= 2 * (FIXED_BYTES + BYTES_PER_INPUT_BYTE * n),
        "{peak} bytes for {n} input bytes"
    );
    assert!(peak <= 40 * n, "{peak} bytes for {n} input bytes");
    good_message_still_decodes();
}

/// What Python writes fits the proportional part of the budget alone.
#[test]
fn python_shaped_pickles_fit_the_proportional_budget() {
    let n = 200_000;
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("[None] * n", python_list(b"N", n)),
        ("[[] for _ in range(n)]", python_list(b"]\x94", n)),
        ("[{} for _ in range(n)]", python_list(b"}\x94", n)),
        ("[() for _ in range(n)]", python_list(b")", n)),
        ("[True] * n", python_list(b"\x88", n)),
        (
            "['a'] * n (distinct objects)",
            python_list(b"\x8c\x01a\x94", n),
        ),
        ("[7] * n", python_list(b"K\x07", n)),
    ];
    for (name, input) in shapes {
        let budget = BYTES_PER_INPUT_BYTE * input.len();
        let (r, peak) = measure(&input, *Limits::new().max_bytes(budget));
        let o = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(o.len(), Some(n), "{name}");
        assert!(peak <= 2 * budget, "{name}: {peak} bytes");
    }
    // `[[None]] * n`: one list, shared n times, arrives as n copies: the fixed part of the
    // default budget is for such pickles.
    let mut shared = b"\x80\x04]\x94(]\x94Na".to_vec();
    shared.extend(std::iter::repeat_n(&b"h\x01"[..], n - 1).flatten());
    shared.extend(b"e.");
    let (r, _) = measure(&shared, Limits::new());
    assert_eq!(r.expect("shared list").len(), Some(n));
}

/// A chain of `REDUCE` over one whitelisted callable, without `STOP` (180 KB, which once
/// aborted the process) and with it, and the same through tuples: clean errors, no stack
/// overflow.
#[test]
fn reduce_chains_are_bounded() {
    let levels = 60_000;
    // cbuiltins.set, memoized; then `h0` per level, `()`, and `R` per level.
    let mut chain = b"\x80\x04\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94".to_vec();
    chain.extend(std::iter::repeat_n(&b"h\x02"[..], levels).flatten());
    chain.push(b')');
    chain.extend(std::iter::repeat_n(b'R', levels));
    let mut stopped = chain.clone();
    stopped.push(b'.');
    // set((set((...),)),): a tuple around each call.
    let mut tupled = b"\x80\x04\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94".to_vec();
    tupled.extend(std::iter::repeat_n(&b"h\x02"[..], levels).flatten());
    tupled.push(b')');
    tupled.extend(std::iter::repeat_n(&b"R\x85"[..], levels).flatten());
    tupled.push(b'.');
    for (name, input) in [
        ("chain", chain),
        ("chain + STOP", stopped),
        ("tupled", tupled),
    ] {
        let (r, peak) = measure(&input, Limits::new());
        assert!(r.is_err(), "{name}: {r:?}");
        assert!(peak <= 64 * input.len() + (1 << 20), "{name}: {peak} bytes");
    }
    good_message_still_decodes();
}

/// Nesting exactly at the limit decodes on a 2 MiB thread; one more level is a clean error;
/// both are dropped without overflow.
#[test]
fn nesting_at_the_limit_on_a_small_stack() {
    for (open, close) in [(&b"]\x94"[..], &b"a"[..]), (b"}\x94N", b"s"), (b"(", b"t")] {
        let nested = |depth: usize| {
            let mut p = b"\x80\x04".to_vec();
            p.extend(std::iter::repeat_n(open, depth).flatten());
            p.push(b'N');
            // Each level closes into the one around it (the innermost holds the `None`).
            p.extend(std::iter::repeat_n(close, depth).flatten());
            p.push(b'.');
            p
        };
        let (ok, _) = measure(&nested(MAX_DEPTH), Limits::new());
        ok.unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(open)));
        let (deep, _) = measure(&nested(MAX_DEPTH + 1), Limits::new());
        assert!(matches!(deep, Err(PickleError::Limit(_))), "{deep:?}");
    }
    good_message_still_decodes();
}

/// Hostile frames (a `REDUCE` chain, nesting past the limit), as a peer process sends them.
fn hostile_frames() -> Vec<Vec<u8>> {
    let mut chain = b"\x80\x04\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94".to_vec();
    chain.extend(std::iter::repeat_n(&b"h\x02"[..], 60_000).flatten());
    chain.push(b')');
    chain.extend(std::iter::repeat_n(b'R', 60_000));
    let mut deep = b"\x80\x04".to_vec();
    deep.extend(std::iter::repeat_n(&b"]\x94"[..], MAX_DEPTH + 1).flatten());
    deep.extend(std::iter::repeat_n(b'a', MAX_DEPTH));
    deep.push(b'.');
    vec![chain, deep]
}

/// A 256 KiB pickled int: valid, but no `i64`.
fn huge_int() -> Vec<u8> {
    let mut p = b"\x80\x04\x8b".to_vec();
    p.extend((256u32 << 10).to_le_bytes());
    p.extend(std::iter::repeat_n(0x5au8, 256 << 10));
    p.push(b'.');
    p
}

/// The peer: the hostile frames, the huge int, then a good message.
fn hostile_peer(mut c: Connection) -> usize {
    let frames = hostile_frames();
    for f in &frames {
        c.send_bytes(f).unwrap();
    }
    c.send_bytes(&huge_int()).unwrap();
    c.set_codec(Codec::Pickle);
    c.send(&obj!({"ok": [1, 2]})).unwrap();
    frames.len()
}

/// A receiver on a 2 MiB thread survives what a peer process sends and reads the good message
/// after it.
#[test]
fn a_receiver_survives_a_hostile_peer_process() {
    // Its allocations would count in another test's measurement.
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut rx, tx) = pipe(true).unwrap();
    let p = Process::start(hostile_peer, tx).unwrap();
    rx.set_codec(Codec::Pickle);
    let rx = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for _ in hostile_frames() {
                match rx.recv::<Object>() {
                    Err(RecvError::Decode(e)) => assert!(e.to_string().len() < 300, "{e}"),
                    other => panic!("{other:?}"),
                }
            }
            match rx.recv::<i64>() {
                Err(RecvError::Decode(e)) => assert!(e.to_string().len() < 300, "{e}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(rx.recv::<Object>().unwrap().to_string(), "{'ok': [1, 2]}");
        })
        .unwrap();
    rx.join().expect("the receiver survives");
    assert_eq!(p.join().unwrap(), 2);
    drop(serial);
}
