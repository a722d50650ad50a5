//! A storm of `SIGKILL`s on the producers and consumers of one queue: afterwards every
//! acknowledged put was delivered once (or counted as dropped by a dead reader, or lost by a
//! consumer killed between its `get` and its record), nothing is torn or duplicated, and no
//! shared-memory file, descriptor or zombie is left. The queue is a `JoinableQueue` with a
//! maximum message size: `join` returns once the survivors have marked their tasks done, the
//! dead consumers' tasks released.
//!
//! What is left is checked by `common::leak_check` when the test ends.

mod common;

use std::time::{Duration, Instant};

use multiproc::Process;
use multiproc::queue::{GetError, JoinableQueue, Queue};
use multiproc::shm::{Array, RawArray, RawValue, Value};

multiproc::test_support!();

/// `(id, padding, a queue holding the id's low byte, for one id in 61)`: the padding's length
/// and bytes follow from the id. The inner queues travel through the side channel.
type Msg = (u32, Vec<u8>, Option<Queue<u8>>);

fn inner_queue(id: u32) -> Option<Queue<u8>> {
    id.is_multiple_of(61).then(|| {
        let q = Queue::new().unwrap();
        q.put(id as u8).unwrap();
        q
    })
}

/// Ids per producer incarnation.
const IDS: u32 = 4000;

fn padding(id: u32) -> Vec<u8> {
    let n = match id % 97 {
        0 => 40_000, // through the stream area (larger than it: streamed in pieces)
        1 => 3000,   // through the stream area, in one piece
        _ => (id % 300) as usize,
    };
    (0..n)
        .map(|k| (k as u32).wrapping_mul(31).wrapping_add(id) as u8)
        .collect()
}

fn producer((q, progress, inc): (JoinableQueue<Msg>, RawArray<u64>, u32)) {
    for k in 0..IDS {
        let id = inc * IDS + k;
        q.put((id, padding(id), inner_queue(id))).unwrap();
        // Acknowledged: recorded only after `put` returned.
        progress.set(inc as usize, u64::from(k) + 1).unwrap();
    }
}

fn record(seen: &Array<u8>, torn: &RawValue<u32>, (id, pad, inner): Msg) {
    let inner_ok = match inner {
        Some(q) => id.is_multiple_of(61) && q.get_nowait().ok() == Some(id as u8),
        None => !id.is_multiple_of(61),
    };
    if pad != padding(id) || id as usize >= seen.len() || !inner_ok {
        torn.store(1);
        return;
    }
    let mut g = seen.lock().unwrap_or_else(|e| e.into_inner());
    g[id as usize] = g[id as usize].saturating_add(1);
}

type ConsumerArgs = (JoinableQueue<Msg>, Array<u8>, RawValue<u32>, Value<u32>);

fn consumer((q, seen, torn, lost): ConsumerArgs) {
    loop {
        match q.get_timeout(Duration::from_secs(60)) {
            Ok(m) => {
                record(&seen, &torn, m);
                q.task_done().unwrap();
            }
            // Its inner queue was lost with a consumer killed holding it in the side channel.
            Err(GetError::Decode(_)) => {
                *lost.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                q.task_done().unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

enum Role {
    Producer,
    Consumer,
}

/// What a new producer or consumer gets.
struct World {
    q: JoinableQueue<Msg>,
    seen: Array<u8>,
    progress: RawArray<u64>,
    torn: RawValue<u32>,
    lost: Value<u32>,
    next_inc: u32,
}

impl World {
    fn start(&mut self, role: &Role) -> Process<()> {
        match role {
            Role::Producer => {
                let inc = self.next_inc;
                self.next_inc += 1;
                Process::start(producer, (self.q.clone(), self.progress.clone(), inc)).unwrap()
            }
            Role::Consumer => Process::start(
                consumer,
                (
                    self.q.clone(),
                    self.seen.clone(),
                    self.torn.clone(),
                    self.lost.clone(),
                ),
            )
            .unwrap(),
        }
    }
}

#[test]
fn kill_storm_loses_nothing_acknowledged() {
    let _leaks = common::leak_check();
    storm(240, Duration::from_secs(300));
}

/// The same, with 3000 kills: `cargo test --release --test queue_storm -- --ignored`.
#[test]
#[ignore = "long: 3000 kills"]
fn long_kill_storm_loses_nothing_acknowledged() {
    let _leaks = common::leak_check();
    storm(3000, Duration::from_secs(1800));
}

/// Kills producers and consumers `kills` times, then checks the books (aborting the whole
/// test binary if that takes longer than `limit`).
fn storm(kills_wanted: usize, limit: Duration) {
    // Producer incarnations at most (ids = incarnation × IDS + k).
    let incarnations = kills_wanted + 10;
    let _watchdog = std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("kill storm: watchdog fired");
        std::process::abort();
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = common::Rng(seed);
    {
        let q: JoinableQueue<Msg> = Queue::options()
            .maxsize(32)
            .stream_size(16 * 1024)
            .max_message_size(64 * 1024)
            .create_joinable()
            .unwrap();
        let seen = Array::<u8>::new(IDS as usize * incarnations).unwrap();
        let progress = RawArray::<u64>::new(incarnations).unwrap();
        let torn = RawValue::new(0u32).unwrap();
        let lost = Value::new(0u32).unwrap();
        let mut w = World {
            q: q.clone(),
            seen: seen.clone(),
            progress: progress.clone(),
            torn: torn.clone(),
            lost: lost.clone(),
            next_inc: 0,
        };
        let mut procs: Vec<(Role, Process<()>)> = Vec::new();
        for i in 0..6 {
            let role = if i % 2 == 0 {
                Role::Producer
            } else {
                Role::Consumer
            };
            let p = w.start(&role);
            procs.push((role, p));
        }
        let mut consumer_kills = 0u64;
        let mut kills = 0usize;
        let storm = Instant::now();
        while kills < kills_wanted && (w.next_inc as usize) < incarnations {
            std::thread::sleep(Duration::from_micros(rng.below(4000)));
            let i = rng.below(procs.len() as u64) as usize;
            let (role, p) = &procs[i];
            p.kill().unwrap();
            kills += 1;
            if matches!(role, Role::Consumer) {
                consumer_kills += 1;
            }
            let (role, p) = procs.swap_remove(i);
            let _ = p.join();
            let p = w.start(&role);
            procs.push((role, p));
        }
        assert_eq!(kills, kills_wanted);
        assert!(storm.elapsed() < limit);
        // Everyone left is killed too, at whatever moment.
        for (role, p) in procs.drain(..) {
            p.kill().unwrap();
            if matches!(role, Role::Consumer) {
                consumer_kills += 1;
            }
            let _ = p.join();
        }
        // Drain what is left: the dead are reaped on the way.
        loop {
            match q.get_timeout(Duration::from_millis(500)) {
                Ok(m) => {
                    record(&seen, &torn, m);
                    q.task_done().unwrap();
                }
                Err(GetError::Timeout) => break,
                Err(GetError::Decode(_)) => {
                    *lost.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    q.task_done().unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(torn.load(), 0, "a torn message was delivered (seed {seed})");
        let seen = seen.to_vec();
        let progress = progress.to_vec();
        let dup = seen.iter().filter(|&&n| n > 1).count();
        assert_eq!(dup, 0, "messages delivered twice (seed {seed})");
        let mut acked = 0u64;
        let mut missing = 0u64;
        for inc in 0..w.next_inc as usize {
            for k in 0..progress[inc] as u32 {
                acked += 1;
                if seen[(inc as u32 * IDS + k) as usize] == 0 {
                    missing += 1;
                }
            }
        }
        let s = q.stats();
        assert!(acked > 1000, "too few messages went through: {acked}");
        assert!(
            missing <= s.dropped + consumer_kills + u64::from(lost.load()),
            "{missing} acknowledged messages lost; {} dropped by dead readers, {} inner queues \
             lost, {consumer_kills} \
             consumers killed (seed {seed}, {s:?})",
            s.dropped,
            lost.load()
        );
        assert!(q.empty());
        assert!(q.join_timeout(Duration::from_secs(10)), "join waits: {s:?}");
        assert_eq!(q.unfinished_tasks(), 0);
        assert_eq!(q.stats().rejected, 0);
    }
    // No child, descriptor or /dev/shm file left: checked by `common::leak_check`.
}
