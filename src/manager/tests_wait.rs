//! Calls that wait, through the table: queues, locks, conditions, events, semaphores and
//! barriers, with clients that time out and clients that go away.

use std::time::{Duration, Instant};

use super::create;
use super::referent::{Call, Holder};
use super::table::{Answer, ObjectId, Table, Woken};
use crate::object::{Dict, Object};

const A: Holder = Holder::Client(1);
const B: Holder = Holder::Client(2);
const C: Holder = Holder::Client(3);
const D: Holder = Holder::Client(4);

fn new(t: &Table, typeid: &str, args: Vec<Object>) -> ObjectId {
    t.insert(Holder::Server, create(typeid, Call::new("", args)).unwrap())
        .id
}

fn call(t: &Table, who: Holder, id: ObjectId, method: &str, args: Vec<Object>) -> Done {
    call_kw(t, who, id, method, args, Dict::new())
}

fn call_kw(
    t: &Table,
    who: Holder,
    id: ObjectId,
    method: &str,
    args: Vec<Object>,
    kwargs: Dict,
) -> Done {
    let (answer, woken) = t.call(
        id,
        Call {
            who,
            method: method.into(),
            args,
            kwargs,
        },
        who,
    );
    Done {
        answer: show(answer),
        woken: shown(woken),
    }
}

/// What a call did, printed: its answer and the calls it completed.
#[derive(Debug, PartialEq)]
struct Done {
    answer: String,
    woken: Vec<(Holder, String)>,
}

fn show(r: Result<Answer, super::Exception>) -> String {
    match r {
        Ok(Answer::Value(v)) => v.to_string(),
        Ok(Answer::Waiting) => "waits".into(),
        Ok(Answer::Proxy(p)) => format!("proxy {}", p.typeid),
        Err(e) => format!("{}({e})", e.kind().python_name().1),
    }
}

fn shown(w: Woken) -> Vec<(Holder, String)> {
    w.into_iter().map(|(h, r)| (h, show(r))).collect()
}

fn done(answer: &str, woken: &[(Holder, &str)]) -> Done {
    Done {
        answer: answer.into(),
        woken: woken.iter().map(|(h, s)| (*h, (*s).to_owned())).collect(),
    }
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[test]
fn a_get_waits_for_a_put_and_times_out_as_empty() {
    let t = Table::default();
    let q = new(&t, "Queue", vec![]);
    assert_eq!(call(&t, A, q, "get", vec![]), done("waits", &[]));
    assert_eq!(
        call(&t, B, q, "put", vec![1.into()]),
        done("None", &[(A, "1")])
    );
    assert_eq!(call(&t, A, q, "get_nowait", vec![]), done("Empty()", &[]));
    let timeout = vec![true.into(), 0.5.into()];
    assert_eq!(call(&t, A, q, "get", timeout), done("waits", &[]));
    assert!(t.next_deadline().is_some());
    assert!(t.expire(Instant::now()).is_empty(), "not yet");
    assert_eq!(shown(t.expire(later())), [(A, "Empty()".into())]);
    assert_eq!(t.next_deadline(), None);
    let negative = vec![true.into(), (-1).into()];
    assert_eq!(
        call(&t, A, q, "get", negative).answer,
        "ValueError('timeout' must be a non-negative number)"
    );
}

#[test]
fn a_full_queue_keeps_the_waiting_put_until_there_is_room() {
    let t = Table::default();
    let q = new(&t, "Queue", vec![1.into()]);
    call(&t, A, q, "put", vec!["first".into()]);
    assert_eq!(
        call(&t, A, q, "put", vec!["second".into()]),
        done("waits", &[])
    );
    assert_eq!(
        call(&t, B, q, "put_nowait", vec!["third".into()]).answer,
        "Full()"
    );
    assert_eq!(
        call(&t, B, q, "get", vec![]),
        done("'first'", &[(A, "None")])
    );
    assert_eq!(call(&t, B, q, "get", vec![]).answer, "'second'");
    // A put by a client that leaves while it waits never happens.
    call(&t, A, q, "put", vec!["x".into()]);
    call(&t, A, q, "put", vec!["gone".into()]);
    t.release(A);
    assert_eq!(call(&t, B, q, "get", vec![]).answer, "'x'");
    assert_eq!(call(&t, B, q, "empty", vec![]).answer, "True");
}

#[test]
fn join_returns_after_the_last_task_done() {
    let t = Table::default();
    let q = new(&t, "JoinableQueue", vec![]);
    call(&t, A, q, "put", vec![1.into()]);
    call(&t, A, q, "put", vec![2.into()]);
    assert_eq!(call(&t, C, q, "join", vec![]), done("waits", &[]));
    call(&t, B, q, "get", vec![]);
    assert_eq!(call(&t, B, q, "task_done", vec![]), done("None", &[]));
    assert_eq!(
        call(&t, B, q, "task_done", vec![]),
        done("None", &[(C, "None")])
    );
    assert_eq!(
        call(&t, B, q, "task_done", vec![]).answer,
        "ValueError(task_done() called too many times)"
    );
}

#[test]
fn a_lock_is_handed_to_the_waiter_and_reports_an_owner_that_died() {
    let t = Table::default();
    let l = new(&t, "Lock", vec![]);
    assert_eq!(call(&t, A, l, "acquire", vec![]).answer, "True");
    assert_eq!(
        call(&t, B, l, "acquire", vec![false.into()]).answer,
        "False"
    );
    assert_eq!(call(&t, B, l, "acquire_robust", vec![]), done("waits", &[]));
    assert_eq!(call(&t, A, l, "release", vec![]), done("None", &[(B, "1")]));
    // A plain lock may be released by another client, as Python's.
    assert_eq!(call(&t, C, l, "release", vec![]).answer, "None");
    assert_eq!(
        call(&t, C, l, "release", vec![]).answer,
        "RuntimeError(release unlocked lock)"
    );
    // The holder goes away: the waiter gets the lock and is told.
    call(&t, A, l, "acquire", vec![]);
    assert_eq!(call(&t, B, l, "acquire_robust", vec![]).answer, "waits");
    let (_, woken) = t.release(A);
    assert_eq!(shown(woken), [(B, "2".into())]);
    call(&t, B, l, "release", vec![]);
    assert_eq!(
        call(&t, C, l, "acquire_robust", vec![]).answer,
        "1",
        "told once"
    );
    // With nobody waiting, the next acquirer is told.
    t.release(C);
    assert_eq!(call(&t, D, l, "acquire", vec![]).answer, "True");
    call(&t, D, l, "release", vec![]);
    let timeout = vec![true.into(), 0.01.into()];
    call(&t, A, l, "acquire", vec![]);
    assert_eq!(call(&t, B, l, "acquire", timeout).answer, "waits");
    assert_eq!(shown(t.expire(later())), [(B, "False".into())]);
    let bad = vec![false.into(), 1.into()];
    assert!(
        call(&t, B, l, "acquire", bad)
            .answer
            .starts_with("ValueError")
    );
}

#[test]
fn an_rlock_belongs_to_its_owner() {
    let t = Table::default();
    let l = new(&t, "RLock", vec![]);
    call(&t, A, l, "acquire", vec![]);
    assert_eq!(call(&t, A, l, "acquire", vec![false.into()]).answer, "True");
    assert_eq!(
        call(&t, B, l, "release", vec![]).answer,
        "RuntimeError(cannot release un-acquired lock)"
    );
    assert_eq!(call(&t, B, l, "acquire", vec![]).answer, "waits");
    assert_eq!(call(&t, A, l, "release", vec![]), done("None", &[]));
    assert_eq!(
        call(&t, A, l, "release", vec![]),
        done("None", &[(B, "True")])
    );
}

#[test]
fn notify_wakes_exactly_n_waiters() {
    let t = Table::default();
    let c = new(&t, "Condition", vec![]);
    for who in [A, B, C] {
        assert_eq!(call(&t, who, c, "acquire", vec![]).answer, "True");
        assert_eq!(call(&t, who, c, "wait", vec![]), done("waits", &[]));
    }
    assert_eq!(
        call(&t, D, c, "notify", vec![]).answer,
        "RuntimeError(cannot notify on un-acquired lock)"
    );
    call(&t, D, c, "acquire", vec![]);
    assert_eq!(
        call(&t, D, c, "notify", vec![]),
        done("None", &[]),
        "D holds the lock"
    );
    assert_eq!(
        call(&t, D, c, "release", vec![]),
        done("None", &[(A, "True")])
    );
    assert_eq!(
        call(&t, A, c, "release", vec![]),
        done("None", &[]),
        "B and C still wait"
    );
    call(&t, D, c, "acquire", vec![]);
    call(&t, D, c, "notify_all", vec![]);
    assert_eq!(
        call(&t, D, c, "release", vec![]),
        done("None", &[(B, "True")])
    );
    assert_eq!(
        call(&t, B, c, "release", vec![]),
        done("None", &[(C, "True")])
    );
    call(&t, C, c, "release", vec![]);
    // A wait that times out takes the lock back before it answers False.
    call(&t, A, c, "acquire", vec![]);
    let mut kw = Dict::new();
    kw.insert("timeout", 0.01).unwrap();
    assert_eq!(call_kw(&t, A, c, "wait", vec![], kw).answer, "waits");
    call(&t, B, c, "acquire", vec![]);
    assert!(t.expire(later()).is_empty(), "B holds the lock");
    assert_eq!(
        call(&t, B, c, "release", vec![]),
        done("None", &[(A, "False")])
    );
    assert_eq!(
        call(&t, B, c, "wait", vec![]).answer,
        "RuntimeError(cannot wait on un-acquired lock)"
    );
}

#[test]
fn an_event_releases_every_waiter() {
    let t = Table::default();
    let e = new(&t, "Event", vec![]);
    assert_eq!(call(&t, A, e, "wait", vec![]).answer, "waits");
    assert_eq!(call(&t, B, e, "wait", vec![1.into()]).answer, "waits");
    assert_eq!(
        call(&t, C, e, "set", vec![]),
        done("None", &[(A, "True"), (B, "True")])
    );
    call(&t, C, e, "clear", vec![]);
    assert_eq!(call(&t, A, e, "wait", vec![0.into()]).answer, "waits");
    assert_eq!(shown(t.expire(later())), [(A, "False".into())]);
}

#[test]
fn semaphores_count_and_a_bounded_one_refuses_extra_releases() {
    let t = Table::default();
    let s = new(&t, "BoundedSemaphore", vec![2.into()]);
    call(&t, A, s, "acquire", vec![]);
    call(&t, B, s, "acquire", vec![]);
    assert_eq!(call(&t, C, s, "acquire", vec![]).answer, "waits");
    assert_eq!(
        call(&t, A, s, "release", vec![]),
        done("None", &[(C, "True")])
    );
    call(&t, B, s, "release", vec![]);
    call(&t, C, s, "release", vec![]);
    assert_eq!(
        call(&t, C, s, "release", vec![]).answer,
        "ValueError(Semaphore released too many times)"
    );
    let plain = new(&t, "Semaphore", vec![0.into()]);
    assert_eq!(call(&t, A, plain, "release", vec![3.into()]).answer, "None");
    assert_eq!(call(&t, A, plain, "get_value", vec![]).answer, "3");
}

#[test]
fn a_barrier_releases_a_full_round_and_breaks_when_a_party_leaves() {
    let t = Table::default();
    let b = new(&t, "Barrier", vec![3.into()]);
    assert_eq!(call(&t, A, b, "wait", vec![]).answer, "waits");
    assert_eq!(call(&t, B, b, "wait", vec![]).answer, "waits");
    assert_eq!(
        call(&t, C, b, "wait", vec![]),
        done("2", &[(A, "0"), (B, "1")])
    );
    // A party that leaves while it waits breaks the barrier for the others.
    call(&t, A, b, "wait", vec![]);
    assert_eq!(call(&t, B, b, "wait", vec![]).answer, "waits");
    let (_, woken) = t.release(A);
    assert_eq!(shown(woken), [(B, "BrokenBarrierError()".into())]);
    assert_eq!(
        call(&t, C, b, "wait", vec![]).answer,
        "BrokenBarrierError()"
    );
    assert_eq!(
        call(&t, C, b, "__getattribute__", vec!["broken".into()]).answer,
        "True"
    );
    call(&t, C, b, "reset", vec![]);
    // A time-out breaks it too, for every waiter.
    assert_eq!(call(&t, B, b, "wait", vec![]).answer, "waits");
    assert_eq!(call(&t, C, b, "wait", vec![0.01.into()]).answer, "waits");
    let mut woken = shown(t.expire(later()));
    woken.sort_by_key(|(h, _)| *h == C);
    assert_eq!(
        woken,
        [
            (B, "BrokenBarrierError()".into()),
            (C, "BrokenBarrierError()".into())
        ]
    );
    let action = create("Barrier", Call::new("", vec![2.into(), "print".into()]));
    assert!(action.is_err(), "an action cannot run on the manager");
}
