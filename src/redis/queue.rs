//! `Queue` and `JoinableQueue` in Redis: the reliable-queue pattern, with leases.
//!
//! Items wait in the LIST `items`. A `get` moves the first one, in one step, into the
//! consumer's own in-flight LIST (`LMOVE`, or `BLMOVE` when it waits), so an item is always
//! in exactly one list: it cannot be lost between the queue and the consumer. Each consumer
//! (a thread of a proxy handle in one process) names itself in the set `consumers` and keeps a lease key
//! alive (a TTL of [`RedisOptions::lease`](super::RedisOptions::lease), renewed by a
//! heartbeat thread at a third of it). A consumer killed with items in hand stops renewing;
//! once its lease has expired, the next `get` of anyone (or the next slice of a waiting `get`)
//! moves its in-flight items back to the front of the queue, where another consumer takes
//! them: delivery is at least once.
//!
//! An item in hand is done when its consumer calls `task_done` or goes away cleanly (its
//! proxy dropped); for a `Queue` also when it asks for the next one. The `unfinished` counter
//! (both types have `task_done` and `join`, as Python's `queue.Queue` does) is changed only
//! by `put` (+1) and `task_done` (-1), so an item given back after a crash stays counted
//! until someone finishes it, and `join` waits for it, on any machine.
//!
//! Why lists and leases rather than Streams with consumer groups (`XREADGROUP`,
//! `XAUTOCLAIM`): a stream keeps acknowledged entries until trimmed and claims by idle
//! time, which cannot tell a slow consumer from a dead one; a lease renewed by a live
//! process can. Lists also give `qsize` exactly (`LLEN`) and `BLMOVE` waits on the server.

use std::time::Duration;

use redis::Value;

use super::Renew;
use super::encode;
use super::object::{Plan, RedisObject, arity, int, no_method, seconds, stored, wait_limit};
use super::scripts::{self, S};
use crate::manager::{Exception, ExceptionKind, ManagerError};
use crate::object::{Dict, Object};

fn joinable(o: &RedisObject) -> bool {
    o.typeid == "JoinableQueue"
}

fn lease_ms(o: &RedisObject) -> u64 {
    u64::try_from(o.shared.lease.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The `Queue` and `JoinableQueue` methods.
pub(super) fn plan<'a>(
    o: &'a RedisObject,
    method: &str,
    mut args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    let items = o.key("items");
    let c = o.codec();
    match method {
        "put" | "put_nowait" => {
            if args.is_empty() {
                return Plan::raise(Exception::type_error("put() missing 1 required argument"));
            }
            let item = match encode::value(c, &args.remove(0)) {
                Ok(b) => b,
                Err(e) => return Plan::Done(Err(e)),
            };
            let limit = if method == "put_nowait" {
                Ok(Some(Duration::ZERO))
            } else {
                wait_limit(args, kwargs, ["block", "timeout"], false)
            };
            let limit = match limit {
                Ok(l) => l,
                Err(e) => return Plan::raise(e),
            };
            let put = move |wake: &str| {
                let mut cmd =
                    scripts::call(S::QueuePut, &[items, o.key("room"), o.key("unfinished")]);
                cmd.arg(item.as_slice()).arg(o.limit).arg(wake);
                cmd
            };
            if o.limit <= 0 {
                // Never full: one command.
                return Plan::one(put(""), |_| Ok(Object::None));
            }
            Plan::Steps(Box::new(move || {
                let done = o.wait_until(limit, o.key("room"), |wake| {
                    Ok((o.query::<i64>(&put(wake))? == 1).then_some(()))
                })?;
                match done {
                    Some(()) => Ok(Object::None),
                    None => Err(ManagerError::Raised(Exception::new(
                        ExceptionKind::Full,
                        vec![],
                    ))),
                }
            }))
        }
        "get" | "get_nowait" => {
            let limit = if method == "get_nowait" {
                Ok(Some(Duration::ZERO))
            } else {
                wait_limit(args, kwargs, ["block", "timeout"], false)
            };
            match limit {
                Ok(limit) => Plan::Steps(Box::new(move || get(o, limit))),
                Err(e) => Plan::raise(e),
            }
        }
        "qsize" | "empty" | "full" => {
            let mut cmd = redis::cmd("LLEN");
            cmd.arg(items);
            let (which, max) = (method.to_owned(), o.limit);
            Plan::one(cmd, move |v| {
                let n = int(&v)?;
                Ok(match which.as_str() {
                    "qsize" => Object::from(n),
                    "empty" => Object::Bool(n == 0),
                    _ => Object::Bool(max > 0 && n >= max),
                })
            })
        }
        "task_done" => {
            if let Err(e) = arity(method, &args, 0, 0) {
                return Plan::raise(e);
            }
            // The calling thread's item in hand, if it took one.
            let mine = {
                let mut local = o.local();
                let name = local.thread_name(&o.me);
                if local.consumers.contains(&name) {
                    inflight(o, &name)
                } else {
                    o.key_of("inflight:")
                }
            };
            let cmd = scripts::call(
                S::QueueTaskDone,
                &[o.key("unfinished"), o.key("joiners"), &mine],
            );
            Plan::one(cmd, |v| match int(&v)? {
                0 => Err(ManagerError::Raised(Exception::msg(
                    ExceptionKind::ValueError,
                    "task_done() called too many times",
                ))),
                _ => Ok(Object::None),
            })
        }
        "join" => Plan::Steps(Box::new(move || {
            let joiners = o.key("joiners");
            o.wait_until(None, joiners, |wake| {
                let mut cmd = scripts::call(S::JoinCheck, &[o.key("unfinished"), joiners]);
                cmd.arg(wake);
                Ok((o.query::<i64>(&cmd)? == 1).then_some(()))
            })?;
            Ok(Object::None)
        })),
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}

fn inflight(o: &RedisObject, consumer: &str) -> String {
    o.key_of(&format!("inflight:{consumer}"))
}

/// The consumer the calling thread is: each thread of a handle holds its own item in hand,
/// so that one thread's next `get` does not count another's item as done.
fn consumer(o: &RedisObject) -> String {
    let mut local = o.local();
    let name = local.thread_name(&o.me);
    if !local.consumers.contains(&name) {
        o.shared
            .renew(o.key_of(&format!("lease:{name}")), Renew::Lease);
        local.consumers.push(name.clone());
    }
    name
}

/// One `get`: takes an item (giving back the items of dead consumers first), or waits on the
/// server (`BLMOVE`) in slices of at most the lease, taking again after each, until `limit`.
fn get(o: &RedisObject, limit: Option<Duration>) -> Result<Object, ManagerError> {
    let id = consumer(o);
    let c = o.codec();
    let (items, consumers, room) = (o.key("items"), o.key("consumers"), o.key("room"));
    let (mine, lease) = (inflight(o, &id), o.key_of(&format!("lease:{id}")));
    let take = |ack: bool| -> Result<Option<Object>, ManagerError> {
        let mut cmd = scripts::call(S::QueueTake, &[items, consumers, &mine, &lease, room]);
        cmd.arg(&id).arg(&o.prefix).arg(lease_ms(o));
        cmd.arg(if ack { "1" } else { "0" });
        stored(c, o.query::<Value>(&cmd)?)
    };
    if let Some(v) = take(!joinable(o))? {
        return Ok(v);
    }
    let deadline = limit.map(|l| std::time::Instant::now() + l);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left == Some(Duration::ZERO) {
            return Err(ManagerError::Raised(Exception::new(
                ExceptionKind::Empty,
                vec![],
            )));
        }
        let slice = left.map_or(o.shared.lease, |l| l.min(o.shared.lease));
        let mut blmove = redis::cmd("BLMOVE");
        blmove
            .arg(items)
            .arg(&mine)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(seconds(slice));
        let got = o
            .shared
            .pool
            .blocking(slice, |c| blmove.query::<Value>(c))?;
        if let Some(v) = stored(c, got)? {
            if o.limit > 0 {
                let _ = o.query::<Value>(&scripts::call(S::QueueMadeRoom, &[room]));
            }
            return Ok(v);
        }
        // The slice ended: give back what dead consumers held, and take again.
        if let Some(v) = take(false)? {
            return Ok(v);
        }
    }
}

/// The consumers of a handle that goes away cleanly: the items they hold count as done (as
/// in Python, an item got and never marked done is the program's affair), their leases and
/// names go. Only over a connection already open: a server that cannot be reached now lets
/// the leases run out instead.
pub(super) fn leave(o: &RedisObject, ids: &[String]) {
    let mut p = redis::pipe();
    for id in ids {
        let lease = o.key_of(&format!("lease:{id}"));
        o.shared.forget(&lease);
        let mut cmd = scripts::call(
            S::QueueLeave,
            &[o.key("consumers"), &inflight(o, id), &lease],
        );
        cmd.arg(id);
        p.add_command(cmd).ignore();
    }
    o.shared.pool.if_connected(|c| p.exec(c));
}
