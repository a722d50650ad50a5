//! Unit tests of the queue on one process (several attachments at most).
use std::collections::VecDeque;

use super::*;

/// Random puts and gets (inline and streamed, blocking and not) against a `VecDeque`.
#[test]
fn one_thread_matches_a_vecdeque() {
    let q = Queue::options()
        .maxsize(5)
        .inline_size(48)
        .stream_size(4096)
        .create_bytes()
        .unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    // Messages above 48 bytes go through the stream lanes or spill to the file: any number
    // of them can be unread.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for step in 0..20_000u64 {
        match rand() % 4 {
            0 | 1 => {
                let len = match rand() % 8 {
                    0 => (rand() % 1024) as usize,
                    1 => (rand() % 10_000) as usize,
                    _ => (rand() % 60) as usize,
                };
                let msg: Vec<u8> = (0..len).map(|i| (i as u64 ^ step) as u8).collect();
                let full = model.len() == 5;
                match q.put_nowait(msg.clone()) {
                    Ok(()) => {
                        assert!(!full, "step {step}: put on a full queue");
                        model.push_back(msg);
                    }
                    Err(PutError::Full(back)) => {
                        assert!(full, "step {step}: refused with {} queued", model.len());
                        assert_eq!(back, msg);
                    }
                    Err(e) => panic!("step {step}: {e}"),
                }
            }
            _ => match q.get_nowait() {
                Ok(got) => assert_eq!(Some(got), model.pop_front(), "step {step}"),
                Err(GetError::Empty) => assert!(model.is_empty(), "step {step}"),
                Err(e) => panic!("step {step}: {e}"),
            },
        }
        assert_eq!(q.qsize(), model.len(), "step {step}");
    }
    let s = q.stats();
    assert_eq!((s.abandoned, s.dropped, s.redelivered), (0, 0, 0));
}

/// A consumer refuses a message above the maximum size that a producer put without
/// checking it (as a process ignoring the limit would), inline or streamed, and carries on.
#[test]
fn a_consumer_refuses_a_message_above_the_maximum() {
    let q = Queue::options()
        .inline_size(200)
        .stream_size(4096)
        .max_message_size(100)
        .create_bytes()
        .unwrap();
    let ring = &q.handle.ring;
    ring.put_unchecked(&[1; 150], 0, Wait::No).unwrap();
    ring.put_unchecked(&[2; 1000], 0, Wait::No).unwrap();
    q.put([3u8; 100]).unwrap();
    assert!(matches!(q.put([4u8; 101]), Err(PutError::TooLarge(_, 101))));
    assert!(matches!(
        q.get_nowait(),
        Err(GetError::TooLarge { len: 150 })
    ));
    assert!(matches!(
        q.get_nowait(),
        Err(GetError::TooLarge { len: 1000 })
    ));
    assert_eq!(q.get_nowait().unwrap(), [3u8; 100]);
    assert!(q.empty());
    let s = q.stats();
    assert_eq!((s.put, s.got, s.rejected), (3, 1, 2));
    // The lane of the refused large message is free again.
    for i in 0..4u8 {
        ring.put_unchecked(&[i; 1000], 0, Wait::No).unwrap();
    }
}

#[test]
fn join_counts_queued_taken_and_held_tasks() {
    let q = JoinableQueue::new().unwrap();
    assert!(q.task_done().is_err());
    q.put(1u8).unwrap();
    q.put(2u8).unwrap();
    assert_eq!(q.unfinished_tasks(), 2);
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.unfinished_tasks(), 2);
    assert!(!q.join_timeout(Duration::from_millis(1)));
    q.task_done().unwrap();
    assert_eq!(q.unfinished_tasks(), 1);
    assert_eq!(q.get().unwrap(), 2);
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::from_secs(10)));
    assert!(q.task_done().is_err());
    // A handle dropped with a task held releases it.
    let fd = q.handle.ring.fd().try_clone_to_owned().unwrap();
    let other: Queue<u8> = Queue {
        handle: Handle::new(Arc::new(Ring::attach(fd, None).unwrap())),
        _t: PhantomData,
    };
    q.put(3).unwrap();
    assert_eq!(other.get().unwrap(), 3);
    assert_eq!(q.unfinished_tasks(), 1);
    drop(other);
    assert_eq!(q.unfinished_tasks(), 0);
    assert_eq!(q.stats().released, 1);
}

/// The bytes of spilled messages are freed once they are got.
#[test]
fn spilled_messages_give_their_memory_back() {
    let q = Queue::options()
        .stream_size(4096)
        .maxsize(64)
        .create_bytes()
        .unwrap();
    let blocks = || rustix::fs::fstat(q.handle.ring.fd()).unwrap().st_blocks;
    let before = blocks();
    for i in 0..40u8 {
        q.put(vec![i; 200_000]).unwrap();
    }
    // 8 MB spilled, in 512-byte blocks.
    assert!(blocks() >= before + 15_000, "{} -> {}", before, blocks());
    for i in 0..40u8 {
        assert!(q.get_nowait().unwrap() == vec![i; 200_000]);
    }
    assert!(blocks() <= before + 8, "{} -> {}", before, blocks());
}
