//! Queues across real processes: many producers and consumers, every size, timeouts, close,
//! handles that travel, the counters.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use multiproc::queue::{BytesQueue, GetError, JoinableQueue, PutError, Queue, SimpleQueue};
use multiproc::{Connection, Process, pipe};

multiproc::test_support!();

const LONG: Duration = Duration::from_secs(60);

/// `None` ends a consumer.
type Msg = Option<(u32, u32)>;

fn produce((q, me, n): (Queue<Msg>, u32, u32)) {
    for i in 0..n {
        q.put(Some((me, i))).unwrap();
    }
}

fn consume(q: Queue<Msg>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    while let Some(m) = q.get_timeout(LONG).unwrap() {
        got.push(m);
    }
    got
}

#[test]
fn four_producers_four_consumers_exactly_once_in_order() {
    let _leaks = common::leak_check();
    const P: u32 = 4;
    const C: usize = 4;
    const N: u32 = 100_000;
    let q: Queue<Msg> = Queue::with_maxsize(256).unwrap();
    let consumers: Vec<_> = (0..C)
        .map(|_| Process::start(consume, q.clone()).unwrap())
        .collect();
    let producers: Vec<_> = (0..P)
        .map(|me| Process::start(produce, (q.clone(), me, N)).unwrap())
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for _ in 0..C {
        q.put(None).unwrap();
    }
    let mut count = vec![0u32; P as usize];
    for c in consumers {
        let got = c.join().unwrap();
        // Per producer, each consumer sees that producer's messages in the order they were put.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for (p, i) in got {
            if let Some(&prev) = last.get(&p) {
                assert!(i > prev, "producer {p}: {i} after {prev}");
            }
            last.insert(p, i);
            count[p as usize] += 1;
        }
    }
    // Every message exactly once: N per producer, and (by the order check) no repeats.
    assert_eq!(count, vec![N; P as usize]);
    let s = q.stats();
    assert_eq!(s.put, u64::from(P * N) + C as u64);
    assert_eq!(s.got, s.put);
    assert_eq!((s.abandoned, s.dropped, s.redelivered), (0, 0, 0));
    assert!(q.empty());
}

/// The bytes of message `i` of size `n`: a pattern that a torn or shifted copy breaks.
fn pattern(i: usize, n: usize) -> Vec<u8> {
    (0..n)
        .map(|k| (k.wrapping_mul(31) ^ i.wrapping_mul(7) ^ (k >> 9)) as u8)
        .collect()
}

const SIZES: [usize; 16] = [
    0,
    1,
    1071,
    1072,
    1073,
    4096,
    65_536,
    (1 << 20) - 1,
    1 << 20,
    (1 << 20) + 1,
    3 << 20,
    0,
    17,
    8 << 20,
    200_000,
    5,
];

fn put_sizes((q, tag): (BytesQueue, u8)) {
    for (i, &n) in SIZES.iter().enumerate() {
        let mut m = pattern(i, n);
        m.insert(0, tag);
        m.insert(1, i as u8);
        q.put(m).unwrap();
    }
}

#[test]
fn messages_of_every_size_from_two_producers_do_not_interleave() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    let a = Process::start(put_sizes, (q.clone(), 1)).unwrap();
    let b = Process::start(put_sizes, (q.clone(), 2)).unwrap();
    let mut next = [0usize; 3];
    for _ in 0..2 * SIZES.len() {
        let m = q.get_timeout(LONG).unwrap();
        let (tag, i) = (m[0] as usize, m[1] as usize);
        assert_eq!(i, next[tag], "producer {tag} out of order");
        next[tag] += 1;
        assert_eq!(m.len(), SIZES[i] + 2);
        assert!(
            m[2..] == pattern(i, SIZES[i]),
            "message {i} of {tag} is torn"
        );
    }
    a.join().unwrap();
    b.join().unwrap();
    assert!(q.empty());
    assert_eq!(q.stats().got, 2 * SIZES.len() as u64);
}

#[test]
fn a_message_larger_than_the_stream_area_streams_to_a_reader() {
    let _leaks = common::leak_check();
    let q = Queue::options().stream_size(4096).create_bytes().unwrap();
    let big = pattern(9, 3 << 20);
    let reader = {
        let q = q.clone();
        std::thread::spawn(move || q.get_timeout(LONG).unwrap())
    };
    q.put(&big).unwrap();
    assert!(reader.join().unwrap() == big);
}

fn put_one_large((q, i, n): (BytesQueue, usize, usize)) {
    q.put(pattern(i, n)).unwrap();
}

fn get_one_large((q, i, n): (BytesQueue, usize, usize)) -> (bool, u64) {
    let m = q.get_timeout(LONG).unwrap();
    (m == pattern(i, n), q.stats().direct)
}

#[test]
fn a_large_message_is_copied_straight_from_its_producers_memory() {
    let _leaks = common::leak_check();
    let q = Queue::options().direct_copy(true).create_bytes().unwrap();
    // A child's memory, read by its parent: the kernel allows it whatever Yama's setting.
    for (i, n) in [(1, 1 << 20), (2, (8 << 20) + 3)] {
        let p = Process::start(put_one_large, (q.clone(), i, n)).unwrap();
        assert!(q.get_timeout(LONG).unwrap() == pattern(i, n));
        p.join().unwrap();
        assert_eq!(q.stats().direct, i as u64);
    }
    // Just below the threshold: streamed.
    let p = Process::start(put_one_large, (q.clone(), 3, (1 << 20) - 1)).unwrap();
    assert!(q.get_timeout(LONG).unwrap() == pattern(3, (1 << 20) - 1));
    p.join().unwrap();
    assert_eq!(q.stats().direct, 2);
    // The parent's memory, read by a child (directly where allowed, else streamed), and
    // another thread's.
    let reader = Process::start(get_one_large, (q.clone(), 4, 5 << 20)).unwrap();
    q.put(pattern(4, 5 << 20)).unwrap();
    assert!(reader.join().unwrap().0);
    let reader = {
        let q = q.clone();
        std::thread::spawn(move || q.get_timeout(LONG).unwrap())
    };
    q.put(pattern(5, 2 << 20)).unwrap();
    assert!(reader.join().unwrap() == pattern(5, 2 << 20));
    let s = q.stats();
    assert_eq!((s.put, s.got, s.abandoned, s.dropped), (5, 5, 0, 0));
    assert!(s.direct >= 3, "{s:?}");
    // Not asked for: streamed.
    let q = BytesQueue::new().unwrap();
    let p = Process::start(put_one_large, (q.clone(), 6, 4 << 20)).unwrap();
    assert!(q.get_timeout(LONG).unwrap() == pattern(6, 4 << 20));
    p.join().unwrap();
    assert_eq!(q.stats().direct, 0);
}

#[test]
fn one_thread_puts_many_large_messages_before_getting_them() {
    let _leaks = common::leak_check();
    // Four lanes stream; the others spill to the segment's file. None waits for a reader.
    let q = BytesQueue::new().unwrap();
    for i in 0..40u8 {
        q.put(pattern(usize::from(i), 100_000 + usize::from(i)))
            .unwrap();
    }
    q.put_nowait(vec![77u8; 300_000]).unwrap();
    for i in 0..40u8 {
        assert!(q.get_nowait().unwrap() == pattern(usize::from(i), 100_000 + usize::from(i)));
    }
    assert!(q.get_nowait().unwrap() == vec![77u8; 300_000]);
    let s = q.stats();
    assert_eq!((s.put, s.got, s.abandoned), (41, 41, 0));
}

#[test]
fn one_thread_puts_a_message_larger_than_the_stream_area_then_gets_it() {
    let _leaks = common::leak_check();
    let q = Queue::options().stream_size(4096).create_bytes().unwrap();
    let big = pattern(3, 5 << 20);
    q.put(&big).unwrap();
    q.put_nowait(&big[..1 << 20]).unwrap();
    assert!(q.get_nowait().unwrap() == big);
    assert!(q.get_nowait().unwrap()[..] == big[..1 << 20]);
    assert!(q.empty());
}

#[test]
fn get_times_out_on_an_empty_queue() {
    let _leaks = common::leak_check();
    let q: Queue<u8> = Queue::new().unwrap();
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(30)),
        Err(GetError::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn put_on_a_full_queue_hands_the_value_back() {
    let _leaks = common::leak_check();
    let q: Queue<String> = Queue::with_maxsize(3).unwrap();
    assert_eq!(q.maxsize(), 3);
    for s in ["a", "b", "c"] {
        q.put(s.into()).unwrap();
    }
    assert!(q.full());
    match q.put_nowait("d".into()) {
        Err(PutError::Full(v)) => assert_eq!(v, "d"),
        other => panic!("{other:?}"),
    }
    let start = Instant::now();
    match q.put_timeout("e".into(), Duration::from_millis(30)) {
        Err(e @ PutError::Timeout(_)) => assert_eq!(e.into_inner(), "e"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.get().unwrap(), "a");
    q.put_nowait("d".into()).unwrap();
    assert_eq!(q.qsize(), 3);
}

fn get_one(q: Queue<u64>) -> u64 {
    q.get_timeout(LONG).unwrap()
}

#[test]
fn a_blocked_put_resumes_when_a_child_takes_a_message() {
    let _leaks = common::leak_check();
    let q: Queue<u64> = Queue::with_maxsize(1).unwrap();
    q.put(1).unwrap();
    let child = Process::start(get_one, q.clone()).unwrap();
    q.put_timeout(2, LONG).unwrap();
    assert_eq!(child.join().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
}

#[test]
fn a_large_put_without_a_reader_completes() {
    let _leaks = common::leak_check();
    let q = Queue::options().stream_size(4096).create_bytes().unwrap();
    let big = vec![5u8; 100_000];
    q.put_nowait(big.clone()).unwrap();
    q.put_timeout(&big[..], Duration::from_millis(20)).unwrap();
    q.put(b"after").unwrap();
    assert!(q.get_timeout(LONG).unwrap() == big);
    assert!(q.get_timeout(LONG).unwrap() == big);
    assert_eq!(q.get_timeout(LONG).unwrap(), b"after");
    assert_eq!(q.stats().abandoned, 0);
}

#[test]
fn close_stops_this_handle_only() {
    let _leaks = common::leak_check();
    let q: Queue<u8> = Queue::new().unwrap();
    let other = q.clone();
    q.put(1).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(2), Err(PutError::Closed(2))));
    assert!(matches!(q.get(), Err(GetError::Closed)));
    assert_eq!(other.get().unwrap(), 1);
    other.put(3).unwrap();
    assert_eq!(other.get().unwrap(), 3);
}

#[test]
fn an_unencodable_value_is_an_error_at_put() {
    let _leaks = common::leak_check();
    struct Refuses;
    impl serde::Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused"))
        }
    }
    impl<'de> serde::Deserialize<'de> for Refuses {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(Refuses)
        }
    }
    let q: Queue<Refuses> = Queue::new().unwrap();
    match q.put(Refuses) {
        Err(PutError::Encode(_, e)) => assert!(e.to_string().contains("refused"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(q.empty());
    // A queue of raw bytes has no side channel: a typed view of it cannot carry queues.
    let raw = BytesQueue::new().unwrap();
    let (mut a, mut b) = pipe(true).unwrap();
    a.send(&raw).unwrap();
    let typed: Queue<Queue<u8>> = b.recv().unwrap();
    match typed.put(Queue::new().unwrap()) {
        Err(PutError::Encode(_, e)) => assert!(e.to_string().contains("descriptor"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// Makes a queue, fills it, and sends it inside a message of `outer`; exits at once.
fn send_a_queue(outer: Queue<(String, Queue<u32>)>) {
    let inner = Queue::new().unwrap();
    for i in 0..3 {
        inner.put(i).unwrap();
    }
    outer.put(("inner".into(), inner)).unwrap();
}

#[test]
fn a_queue_travels_inside_another_queues_message() {
    let _leaks = common::leak_check();
    let outer: Queue<(String, Queue<u32>)> = Queue::new().unwrap();
    // The sender has exited when the message is got: the descriptors waited in the kernel.
    Process::start(send_a_queue, outer.clone())
        .unwrap()
        .join()
        .unwrap();
    let (name, inner) = outer.get_timeout(LONG).unwrap();
    assert_eq!(name, "inner");
    assert_eq!(
        (0..3)
            .map(|_| inner.get_timeout(LONG).unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // Many at once, got in another order than their descriptors were sent.
    let q: Queue<Queue<u32>> = Queue::new().unwrap();
    let inners: Vec<Queue<u32>> = (0..50).map(|_| Queue::new().unwrap()).collect();
    for (i, inner) in inners.iter().enumerate() {
        inner.put(i as u32).unwrap();
        q.put(inner.clone()).unwrap();
    }
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| q.get_timeout(LONG).unwrap().get_timeout(LONG).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u32> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    assert!(q.empty());
}

fn answer_through((q, n): (Queue<Connection>, u32)) {
    let mut c = q.get_timeout(LONG).unwrap();
    c.send(&(n * 2)).unwrap();
}

#[test]
fn a_connection_travels_through_a_queue() {
    let _leaks = common::leak_check();
    let q: Queue<Connection> = Queue::new().unwrap();
    let p = Process::start(answer_through, (q.clone(), 21)).unwrap();
    let (mut mine, theirs) = pipe(true).unwrap();
    q.put(theirs).unwrap();
    assert_eq!(mine.recv::<u32>().unwrap(), 42);
    p.join().unwrap();
}

#[test]
fn a_message_of_another_type_is_a_decode_error() {
    let _leaks = common::leak_check();
    let q: Queue<String> = Queue::new().unwrap();
    q.to_bytes_queue().put([0xffu8, 0xff]).unwrap();
    assert!(matches!(q.get(), Err(GetError::Decode(_))));
}

fn put_through_conn(mut conn: Connection) {
    let q: Queue<String> = conn.recv().unwrap();
    q.put("from the child".into()).unwrap();
}

#[test]
fn a_queue_travels_through_a_connection() {
    let _leaks = common::leak_check();
    let (mut parent, child) = pipe(true).unwrap();
    let p = Process::start(put_through_conn, child).unwrap();
    let q: Queue<String> = Queue::new().unwrap();
    parent.send(&q).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), "from the child");
    p.join().unwrap();
}

#[test]
fn a_received_non_queue_is_an_error() {
    let _leaks = common::leak_check();
    let (mut a, mut b) = pipe(true).unwrap();
    let v = multiproc::Value::new(1u64).unwrap();
    a.send(&v).unwrap();
    let err = b.recv::<Queue<u8>>().unwrap_err();
    assert!(err.to_string().contains("queue"), "{err}");
}

#[test]
fn threads_share_a_queue() {
    let _leaks = common::leak_check();
    let q: Queue<u32> = Queue::with_maxsize(8).unwrap();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..10_000 {
                    q.put(t * 100_000 + i).unwrap();
                }
            })
        })
        .collect();
    let mut seen = [0u32; 4];
    for _ in 0..40_000 {
        let v = q.get_timeout(LONG).unwrap();
        let (t, i) = ((v / 100_000) as usize, v % 100_000);
        assert_eq!(i, seen[t]);
        seen[t] += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
}

fn simple_child(q: SimpleQueue<String>) {
    let s = q.get().unwrap();
    q.put(s.to_uppercase()).unwrap();
}

#[test]
fn simple_queue_across_processes() {
    let _leaks = common::leak_check();
    let q = SimpleQueue::new().unwrap();
    q.put("hi".to_string()).unwrap();
    let p = Process::start(simple_child, q.clone()).unwrap();
    p.join().unwrap();
    assert_eq!(q.get().unwrap(), "HI");
    assert!(q.empty());
}

fn work((q, n): (JoinableQueue<u32>, u32)) {
    for _ in 0..n {
        q.get_timeout(LONG).unwrap();
        q.task_done().unwrap();
    }
}

#[test]
fn joinable_queue_joins_after_the_last_task_done() {
    let _leaks = common::leak_check();
    let q = JoinableQueue::new().unwrap();
    for i in 0..100 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished_tasks(), 100);
    assert!(!q.join_timeout(Duration::from_millis(10)));
    let workers: Vec<_> = (0..2)
        .map(|_| Process::start(work, (q.clone(), 50)).unwrap())
        .collect();
    q.join();
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.empty());
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn task_done_before_any_get_is_refused_and_counts_nothing() {
    let _leaks = common::leak_check();
    let q = JoinableQueue::new().unwrap();
    q.put(7u8).unwrap();
    // Unlike Python's (see "Differences from Python"): no process holds the task yet.
    assert!(q.task_done().is_err());
    assert_eq!(q.unfinished_tasks(), 1);
    assert!(!q.join_timeout(Duration::from_millis(10)));
    assert_eq!(q.get().unwrap(), 7);
    q.task_done().unwrap();
    assert!(q.join_timeout(LONG));
    assert!(q.task_done().is_err());
}

#[test]
fn task_done_too_many_times_is_an_error() {
    let _leaks = common::leak_check();
    let q = JoinableQueue::new().unwrap();
    q.put(1u8).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    assert_eq!(
        q.task_done().unwrap_err().to_string(),
        "task_done called too many times"
    );
    // A put that fails counts no task.
    let small = JoinableQueue::with_maxsize(1).unwrap();
    small.put(1u8).unwrap();
    assert!(small.put_nowait(2).is_err());
    assert_eq!(small.unfinished_tasks(), 1);
}

#[test]
fn the_queue_example_survives_a_killed_consumer() {
    let _leaks = common::leak_check();
    // Through cargo, so that the example is rebuilt if it is older than the library.
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "queue"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        "killed a consumer after it had taken at least 300 messages"
    );
    assert_eq!(lines[1], "messages delivered twice: 0");
    assert!(
        lines[2].starts_with("messages lost: 0 ") || lines[2].starts_with("messages lost: 1 "),
        "{out}"
    );
    assert_eq!(lines[3], "queue empty: true");
}

/// `(producer, n, bytes)`; `None` ends a consumer.
type Mixed = Option<(u32, u32, Vec<u8>)>;

fn mixed_len(n: u32) -> usize {
    match n % 10 {
        0..=2 => (n as usize * 7919) % 120_000, // large: through the stream lanes
        _ => (n % 1500) as usize,               // mostly inline
    }
}

fn put_mixed((q, me, count): (Queue<Mixed>, u32, u32)) {
    for n in 0..count {
        q.put(Some((me, n, pattern(n as usize, mixed_len(n)))))
            .unwrap();
    }
}

fn get_mixed(q: Queue<Mixed>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    while let Some((p, n, bytes)) = q.get_timeout(LONG).unwrap() {
        assert!(bytes == pattern(n as usize, mixed_len(n)), "{p}/{n} torn");
        got.push((p, n));
    }
    got
}

#[test]
fn mixed_sizes_three_producers_three_consumers() {
    let _leaks = common::leak_check();
    const P: u32 = 3;
    const N: u32 = 400;
    let q: Queue<Mixed> = Queue::with_maxsize(16).unwrap();
    let consumers: Vec<_> = (0..3)
        .map(|_| Process::start(get_mixed, q.clone()).unwrap())
        .collect();
    let producers: Vec<_> = (0..P)
        .map(|me| Process::start(put_mixed, (q.clone(), me, N)).unwrap())
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for _ in 0..3 {
        q.put(None).unwrap();
    }
    let mut seen = vec![vec![false; N as usize]; P as usize];
    for c in consumers {
        let mut last: HashMap<u32, u32> = HashMap::new();
        for (p, n) in c.join().unwrap() {
            assert!(
                last.insert(p, n).is_none_or(|prev| n > prev),
                "{p}: {n} out of order"
            );
            assert!(
                !std::mem::replace(&mut seen[p as usize][n as usize], true),
                "{p}/{n} twice"
            );
        }
    }
    assert!(seen.iter().flatten().all(|&s| s), "a message is missing");
}

fn put_pid(q: Queue<u32>) {
    q.put(std::process::id()).unwrap();
}

#[test]
fn a_forked_child_puts_on_a_queue() {
    let _leaks = common::leak_check();
    let q: Queue<u32> = Queue::new().unwrap();
    let p = multiproc::Builder::new()
        .method(multiproc::StartMethod::Fork)
        .start(put_pid, q.clone())
        .unwrap();
    let pid = p.pid();
    p.join().unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), pid);
    // The child's handles are gone with it: the queue still works for everyone.
    q.put(1).unwrap();
    assert_eq!(q.get().unwrap(), 1);
}
