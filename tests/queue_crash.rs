//! A producer or consumer killed at each step of a put or get (debug builds place a `SIGKILL`
//! there): the queue skips what a dead producer never finished, delivers again what a dead
//! consumer never returned, counts what a dead consumer lost, and carries on.
#![cfg(debug_assertions)]

mod common;

use std::time::{Duration, Instant};

use multiproc::queue::{
    __die_at, __die_at_any, __stall_at, BytesQueue, GetError, JoinableQueue, PutError, Queue,
};
use multiproc::{JoinError, Process};

multiproc::test_support!();

const LONG: Duration = Duration::from_secs(60);
const AFTER_CLAIM: u32 = 1;
const AFTER_TAKE: u32 = 2;
const AFTER_TOKEN: u32 = 3;
const MID_STREAM_WRITE: u32 = 4;
const MID_STREAM_READ: u32 = 5;
const BEFORE_HEAD: u32 = 6;
const SPILLED: u32 = 7;
const SPILL_READ: u32 = 8;
const SIDE_LOCKED: u32 = 9;
const SIDE_SENT: u32 = 10;
const SIDE_PASSING: u32 = 11;
const DIRECT_READ: u32 = 12;
const DIRECT_WAIT: u32 = 13;
const DIRECT_STALL: u32 = 14;
/// Large enough for its reader to copy it straight from its producer's memory.
const DIRECT: usize = 4 << 20;

fn die_putting((q, point, len): (BytesQueue, u32, usize)) {
    __die_at(point);
    q.put(vec![1u8; len]).unwrap();
    unreachable!("the put should have killed this process");
}

fn die_getting((q, point): (BytesQueue, u32)) {
    __die_at(point);
    let _ = q.get_timeout(LONG);
    unreachable!("the get should have killed this process");
}

/// Dies having copied out part of a streamed message, or all of a spilled one: which path the
/// producer takes depends on whether the consumer attached to its lane in time.
fn die_reading_large(q: BytesQueue) {
    __die_at_any(&[MID_STREAM_READ, SPILL_READ]);
    let _ = q.get_timeout(LONG);
    unreachable!("the get should have killed this process");
}

/// Waits on the (empty) queue long enough for a liveness check, which reaps the dead.
fn reap(q: &BytesQueue) {
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(GetError::Timeout)
    ));
}

fn killed(p: Process<()>) {
    match p.join() {
        Err(JoinError::Killed(9)) => {}
        other => panic!("expected a SIGKILL, got {other:?}"),
    }
}

#[test]
fn a_producer_killed_after_claiming_its_slot_is_skipped() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    killed(Process::start(die_putting, (q.clone(), AFTER_CLAIM, 10)).unwrap());
    // Its slot is at the head, claimed by the dead producer.
    assert_eq!(q.qsize(), 1);
    q.put(b"next").unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), b"next");
    let s = q.stats();
    assert_eq!((s.abandoned, s.got), (1, 1));
    assert!(q.empty());
}

#[test]
fn a_consumer_killed_after_taking_a_message_leaves_it_to_another() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    q.put(b"kept").unwrap();
    q.put(b"second").unwrap();
    killed(Process::start(die_getting, (q.clone(), AFTER_TAKE)).unwrap());
    let mut got = vec![q.get_timeout(LONG).unwrap(), q.get_timeout(LONG).unwrap()];
    got.sort();
    assert_eq!(got, [b"kept".to_vec(), b"second".to_vec()]);
    assert_eq!(q.stats().redelivered, 1);
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(multiproc::queue::GetError::Timeout)
    ));
}

#[test]
fn a_producer_killed_holding_the_stream_does_not_block_the_next_large_put() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    killed(Process::start(die_putting, (q.clone(), AFTER_TOKEN, 50_000)).unwrap());
    // Four large messages unread need every stream lane, the dead producer's too.
    for i in 0..4u8 {
        q.put_timeout(vec![i; 50_000], LONG).unwrap();
    }
    for i in 0..4u8 {
        assert_eq!(q.get_timeout(LONG).unwrap(), vec![i; 50_000]);
    }
}

#[test]
fn a_producer_killed_mid_stream_is_skipped() {
    let _leaks = common::leak_check();
    let q = Queue::options().stream_size(4096).create_bytes().unwrap();
    killed(Process::start(die_putting, (q.clone(), MID_STREAM_WRITE, 100_000)).unwrap());
    q.put(b"next").unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), b"next");
    assert_eq!(q.stats().abandoned, 1);
    // The stream is free again.
    let big = vec![3u8; 20_000];
    let reader = {
        let q = q.clone();
        std::thread::spawn(move || q.get_timeout(LONG).unwrap())
    };
    q.put(&big).unwrap();
    assert!(reader.join().unwrap() == big);
}

#[test]
fn a_consumer_killed_mid_stream_is_counted_as_dropped() {
    let _leaks = common::leak_check();
    let q = Queue::options().stream_size(4096).create_bytes().unwrap();
    let reader = Process::start(die_reading_large, q.clone()).unwrap();
    // Blocks until the reader is found dead, then returns: the message was delivered to it.
    q.put(vec![4u8; 100_000]).unwrap();
    killed(reader);
    reap(&q);
    let s = q.stats();
    assert_eq!(s.dropped, 1);
    q.put(b"after").unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), b"after");
}

/// Says it is there, then dies having copied a large message straight from its producer.
fn die_reading_direct((q, ready): (BytesQueue, Queue<u8>)) {
    __die_at(DIRECT_READ);
    ready.put(1).unwrap();
    let _ = q.get_timeout(LONG);
    unreachable!("the get should have killed this process");
}

fn get_len(q: BytesQueue) -> usize {
    q.get_timeout(LONG).unwrap().len()
}

#[test]
fn a_consumer_killed_copying_straight_from_the_producer_is_counted_as_dropped() {
    let _leaks = common::leak_check();
    let q = Queue::options().direct_copy(true).create_bytes().unwrap();
    let ready = Queue::new().unwrap();
    let reader = Process::start(die_reading_direct, (q.clone(), ready.clone())).unwrap();
    ready.get_timeout(LONG).unwrap();
    // Returns once the reader is found dead: the message was delivered to it.
    q.put(vec![4u8; DIRECT]).unwrap();
    killed(reader);
    reap(&q);
    let s = q.stats();
    assert_eq!((s.dropped, s.direct, s.abandoned), (1, 0, 0));
    // The lane, and direct copies, carry on.
    let reader = Process::start(get_len, q.clone()).unwrap();
    q.put(vec![5u8; DIRECT]).unwrap();
    assert_eq!(reader.join().unwrap(), DIRECT);
    assert!(q.stats().direct <= 1);
    q.put(b"after").unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), b"after");
}

fn die_while_read_directly(q: BytesQueue) {
    __die_at(DIRECT_WAIT);
    q.put(vec![6u8; DIRECT]).unwrap();
    unreachable!("the put should have killed this process");
}

/// Says it is there, then gets one message, pausing before each copy straight from a
/// producer's memory (long enough for the producer to die meanwhile).
fn stalled_get((q, ready): (BytesQueue, Queue<u8>)) -> (Vec<u8>, u64) {
    __stall_at(DIRECT_STALL);
    ready.put(1).unwrap();
    let m = q.get_timeout(LONG).unwrap();
    (m, q.stats().direct)
}

#[test]
fn a_producer_killed_while_its_reader_copies_from_it_loses_the_message() {
    let _leaks = common::leak_check();
    let q = Queue::options().direct_copy(true).create_bytes().unwrap();
    let ready = Queue::new().unwrap();
    let reader = Process::start(stalled_get, (q.clone(), ready.clone())).unwrap();
    ready.get_timeout(LONG).unwrap();
    killed(Process::start(die_while_read_directly, q.clone()).unwrap());
    q.put(b"after").unwrap();
    // The reader discarded what it copied from the dead producer, and took the next message.
    assert_eq!(reader.join().unwrap(), (b"after".to_vec(), 0));
    let s = q.stats();
    assert_eq!((s.abandoned, s.dropped, s.got), (1, 0, 1));
}

fn die_getting_typed((q, point): (Queue<u64>, u32)) {
    __die_at(point);
    let _ = q.get_timeout(LONG);
}

#[test]
fn a_dead_consumers_process_table_entry_is_reused() {
    let _leaks = common::leak_check();
    let q = Queue::options().max_handles(2).create::<u64>().unwrap();
    for _ in 0..5 {
        q.put(7).unwrap();
        let p = Process::start(die_getting_typed, (q.clone(), AFTER_TAKE)).unwrap();
        match p.join() {
            Err(JoinError::Killed(9)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(q.get_timeout(LONG).unwrap(), 7);
    }
    assert_eq!(q.stats().redelivered, 5);
}

fn attach_and_leave(q: Queue<u64>) -> usize {
    q.qsize()
}

#[test]
fn a_consumer_killed_before_moving_the_head_is_reaped_by_a_newcomer() {
    let _leaks = common::leak_check();
    // Two handles at most: the next process to attach takes the dead consumer's entry and
    // reaps it while the head still points at the dead consumer's slot.
    let q = Queue::options().max_handles(2).create::<u64>().unwrap();
    q.put(5).unwrap();
    let p = Process::start(die_getting_typed, (q.clone(), BEFORE_HEAD)).unwrap();
    match p.join() {
        Err(JoinError::Killed(9)) => {}
        other => panic!("{other:?}"),
    }
    let newcomer = Process::start(attach_and_leave, q.clone()).unwrap();
    assert_eq!(newcomer.join().unwrap(), 1);
    assert_eq!(q.get_timeout(LONG).unwrap(), 5);
    assert!(
        q.empty(),
        "qsize {} after the only message was taken",
        q.qsize()
    );
    q.put(6).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), 6);
}

fn hold_a_task(q: JoinableQueue<u32>) {
    let _task = q.get_timeout(LONG).unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn a_consumer_killed_before_task_done_does_not_block_join() {
    let _leaks = common::leak_check();
    let q = JoinableQueue::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let p = Process::start(hold_a_task, q.clone()).unwrap();
    let start = Instant::now();
    while q.qsize() == 2 {
        assert!(start.elapsed() < LONG, "the child took nothing");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(q.unfinished_tasks(), 2);
    p.kill().unwrap();
    killed(p);
    assert_eq!(q.get_timeout(LONG).unwrap(), 2);
    q.task_done().unwrap();
    assert!(
        q.join_timeout(LONG),
        "join waits for the dead consumer's task"
    );
    assert_eq!(q.unfinished_tasks(), 0);
    assert_eq!(q.stats().released, 1);
    assert!(q.task_done().is_err());
}

fn die_getting_task((q, point): (JoinableQueue<u32>, u32)) {
    __die_at(point);
    let _ = q.get_timeout(LONG);
    unreachable!("the get should have killed this process");
}

#[test]
fn a_task_whose_consumer_died_taking_it_is_delivered_again_and_joined() {
    let _leaks = common::leak_check();
    for point in [AFTER_TAKE, BEFORE_HEAD] {
        let q = JoinableQueue::new().unwrap();
        q.put(7).unwrap();
        killed(Process::start(die_getting_task, (q.clone(), point)).unwrap());
        // The task is not done: it comes back once the dead consumer is found.
        assert!(!q.join_timeout(Duration::from_millis(100)));
        assert_eq!(q.get_timeout(LONG).unwrap(), 7);
        assert_eq!(q.unfinished_tasks(), 1);
        q.task_done().unwrap();
        assert!(q.join_timeout(LONG));
        let s = q.stats();
        assert_eq!((s.redelivered, s.released), (1, 0), "point {point}");
    }
}

fn die_putting_task((q, point, len): (JoinableQueue<Vec<u8>>, u32, usize)) {
    __die_at(point);
    let _ = q.put(vec![1u8; len]);
    unreachable!("the put should have killed this process");
}

#[test]
fn a_task_whose_producer_died_putting_it_is_not_waited_for() {
    let _leaks = common::leak_check();
    for (point, len) in [
        (AFTER_CLAIM, 10),
        (AFTER_TOKEN, 50_000),
        (MID_STREAM_WRITE, 50_000),
    ] {
        let q = Queue::options()
            .stream_size(4096)
            .create_joinable()
            .unwrap();
        killed(Process::start(die_putting_task, (q.clone(), point, len)).unwrap());
        if point == MID_STREAM_WRITE {
            // Its slot was published: it counts until a consumer takes it and skips it.
            assert!(matches!(
                q.get_timeout(Duration::from_millis(100)),
                Err(GetError::Timeout)
            ));
        }
        assert!(
            q.join_timeout(LONG),
            "point {point}: join waits for a task never put"
        );
        assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
        // Killed holding only a stream lane, it had not claimed a slot yet.
        let abandoned = u64::from(point != AFTER_TOKEN);
        assert_eq!(q.stats().abandoned, abandoned, "point {point}");
    }
}

#[test]
fn a_task_lost_with_its_consumer_mid_stream_is_not_waited_for() {
    let _leaks = common::leak_check();
    let q = Queue::options()
        .stream_size(4096)
        .create_joinable()
        .unwrap();
    let reader = Process::start(die_reading_large, q.to_bytes_queue()).unwrap();
    q.put(vec![4u8; 100_000]).unwrap();
    killed(reader);
    assert!(q.join_timeout(LONG));
    assert_eq!(q.stats().dropped, 1);
}

fn put_large_message(q: BytesQueue) -> bool {
    matches!(q.put(vec![9u8; 5000]), Err(PutError::TooLarge(_, 5000)))
}

#[test]
fn a_put_above_the_maximum_size_hands_the_value_back() {
    let _leaks = common::leak_check();
    let q = Queue::options()
        .max_message_size(4096)
        .create::<Vec<u8>>()
        .unwrap();
    match q.put(vec![0u8; 5000]) {
        Err(PutError::TooLarge(v, n)) => assert_eq!((v.len(), n > 5000), (5000, true)),
        other => panic!("{other:?}"),
    }
    // The limit travels with the queue.
    let p = Process::start(put_large_message, q.to_bytes_queue()).unwrap();
    assert!(p.join().unwrap());
    assert!(q.empty());
}

fn fill_lanes(q: &BytesQueue) {
    // Four large messages unread hold the four stream lanes: the next one spills.
    for i in 0..4u8 {
        q.put(vec![i; 50_000]).unwrap();
    }
}

fn drain_lanes(q: &BytesQueue) {
    for i in 0..4u8 {
        assert!(q.get_timeout(LONG).unwrap() == vec![i; 50_000]);
    }
}

#[test]
fn a_producer_killed_after_spilling_before_publishing_is_skipped() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    fill_lanes(&q);
    killed(Process::start(die_putting, (q.clone(), SPILLED, 70_000)).unwrap());
    q.put(vec![8u8; 70_000]).unwrap();
    drain_lanes(&q);
    assert!(q.get_timeout(LONG).unwrap() == vec![8u8; 70_000]);
    assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
    assert_eq!(q.stats().abandoned, 1);
}

#[test]
fn a_producer_killed_after_spilling_a_stuck_stream_still_delivers_it() {
    let _leaks = common::leak_check();
    // The message is complete in the file, its slot published: the lane is let go by the
    // reaper and the consumer reads the message from the file.
    let q = Queue::options().stream_size(4096).create_bytes().unwrap();
    killed(Process::start(die_putting, (q.clone(), SPILLED, 100_000)).unwrap());
    assert!(q.get_timeout(LONG).unwrap() == vec![1u8; 100_000]);
    q.put(vec![2u8; 100_000]).unwrap();
    assert!(q.get_timeout(LONG).unwrap() == vec![2u8; 100_000]);
    assert_eq!(q.stats().abandoned, 0);
}

#[test]
fn a_consumer_killed_after_copying_a_spilled_message_out_is_counted_as_dropped() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    fill_lanes(&q);
    q.put(vec![9u8; 70_000]).unwrap();
    drain_lanes(&q);
    q.put(b"next").unwrap();
    killed(Process::start(die_getting, (q.clone(), SPILL_READ)).unwrap());
    assert_eq!(q.get_timeout(LONG).unwrap(), b"next");
    reap(&q);
    let s = q.stats();
    assert_eq!((s.dropped, s.redelivered), (1, 0));
}

#[test]
fn a_consumer_killed_holding_a_spilled_message_leaves_it_to_another() {
    let _leaks = common::leak_check();
    let q = BytesQueue::new().unwrap();
    fill_lanes(&q);
    q.put(vec![9u8; 70_000]).unwrap();
    drain_lanes(&q);
    killed(Process::start(die_getting, (q.clone(), AFTER_TAKE)).unwrap());
    assert!(q.get_timeout(LONG).unwrap() == vec![9u8; 70_000]);
    assert_eq!(q.stats().redelivered, 1);
}

fn die_sending_a_queue((q, point): (Queue<Queue<u8>>, u32)) {
    __die_at(point);
    let _ = q.put(Queue::new().unwrap());
    unreachable!("the put should have killed this process");
}

#[test]
fn a_producer_killed_holding_the_descriptor_channel_does_not_block_it() {
    let _leaks = common::leak_check();
    let q: Queue<Queue<u8>> = Queue::new().unwrap();
    killed(Process::start(die_sending_a_queue, (q.clone(), SIDE_LOCKED)).unwrap());
    // The kernel released its lock: the channel carries on.
    let inner = Queue::new().unwrap();
    inner.put(5).unwrap();
    q.put_timeout(inner, LONG).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap().get_timeout(LONG).unwrap(), 5);
    assert!(q.empty());
}

fn die_getting_a_queue((q, point): (Queue<Queue<u8>>, u32)) {
    __die_at(point);
    let _ = q.get_timeout(LONG);
    unreachable!("the get should have killed this process");
}

#[test]
fn descriptors_left_by_a_dead_producer_are_passed_over() {
    let _leaks = common::leak_check();
    let q: Queue<Queue<u8>> = Queue::new().unwrap();
    // Its descriptors are in the channel, its message never put.
    killed(Process::start(die_sending_a_queue, (q.clone(), SIDE_SENT)).unwrap());
    assert!(q.empty());
    for i in 0..3 {
        let inner = Queue::new().unwrap();
        inner.put(i).unwrap();
        q.put(inner).unwrap();
        assert_eq!(q.get_timeout(LONG).unwrap().get_timeout(LONG).unwrap(), i);
    }
    // A consumer killed while it holds the stray datagram (sending it back) loses only that.
    let inner = Queue::new().unwrap();
    inner.put(9).unwrap();
    q.put(inner).unwrap();
    killed(Process::start(die_getting_a_queue, (q.clone(), SIDE_PASSING)).unwrap());
    // Its message is delivered again, with its descriptors.
    assert_eq!(q.get_timeout(LONG).unwrap().get_timeout(LONG).unwrap(), 9);
    assert!(q.empty());
}
