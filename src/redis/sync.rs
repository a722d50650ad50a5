//! `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` and `Event` in Redis.
//!
//! A lock is a lease, not a mutex: the key `owner` holds the holder's token with a TTL of
//! [`RedisOptions::lease`](super::RedisOptions::lease), renewed by the holder's heartbeat
//! thread. A holder that dies stops renewing, and the lock is free once the lease runs out;
//! the key `held`, set by every acquire and cleared only by a release, tells the next
//! acquirer that the owner died ([`Acquired::OwnerDied`](crate::manager::Acquired)). Each
//! acquire also increments a fencing counter (`fence`; the method `fencing_token` answers
//! it): a holder that was paused past its lease may still act, so a resource that must never
//! see two holders checks that the tokens it is given only grow.

use redis::Value;

use super::Renew;
use super::object::{Plan, RedisObject, arity, int, no_method, unexpected, wait_limit};
use super::scripts::{self, S};
use crate::manager::{Exception, ExceptionKind, ManagerError};
use crate::object::{Dict, Object};

fn lock_keys(o: &RedisObject) -> [&str; 5] {
    [
        o.key("owner"),
        o.key("held"),
        o.key("fence"),
        o.key("waiters"),
        o.key("count"),
    ]
}

/// The methods of the synchronisation types.
pub(super) fn plan<'a>(
    o: &'a RedisObject,
    method: &str,
    args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    match o.typeid.as_str() {
        "Lock" | "RLock" => lock(o, method, args, kwargs),
        "Semaphore" | "BoundedSemaphore" => semaphore(o, method, args, kwargs),
        "Event" => event(o, method, args, kwargs),
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}

fn lock<'a>(o: &'a RedisObject, method: &str, args: Vec<Object>, kwargs: &Dict) -> Plan<'a> {
    let keys = lock_keys(o);
    match method {
        "acquire" | "acquire_robust" => {
            let limit = match wait_limit(args, kwargs, ["blocking", "timeout"], true) {
                Ok(l) => l,
                Err(e) => return Plan::raise(e),
            };
            let robust = method == "acquire_robust";
            Plan::Steps(Box::new(move || {
                let token = o.local().thread_name(&o.me);
                let lease = u64::try_from(o.shared.lease.as_millis()).unwrap_or(u64::MAX);
                let got = o.wait_until(limit, keys[3], |wake| {
                    let mut cmd = scripts::call(S::LockAcquire, &keys);
                    cmd.arg(&token).arg(lease.max(1)).arg(wake);
                    cmd.arg(if o.typeid == "RLock" { "1" } else { "0" });
                    match o.query::<Value>(&cmd)? {
                        Value::Array(v) if v.len() == 2 => Ok(Some((int(&v[0])?, int(&v[1])?))),
                        Value::Array(_) => Ok(None),
                        other => Err(unexpected(&other)),
                    }
                })?;
                let Some((how, fence)) = got else {
                    return Ok(if robust {
                        Object::Int(0)
                    } else {
                        Object::Bool(false)
                    });
                };
                let mut local = o.local();
                local.fence = fence;
                match local.holds.iter_mut().find(|(t, _)| *t == token) {
                    Some((_, n)) => *n += 1,
                    None => {
                        local.holds.push((token.clone(), 1));
                        o.shared.renew(keys[0].to_owned(), Renew::Lock { token });
                    }
                }
                Ok(if robust {
                    Object::Int(how)
                } else {
                    Object::Bool(true)
                })
            }))
        }
        "release" => {
            if let Err(e) = arity(method, &args, 0, 0) {
                return Plan::raise(e);
            }
            Plan::Steps(Box::new(move || {
                let token = o.local().thread_name(&o.me);
                let mut cmd = scripts::call(S::LockRelease, &keys);
                cmd.arg(&token);
                if o.query::<i64>(&cmd)? == 0 {
                    let msg = if o.typeid == "RLock" {
                        "cannot release un-acquired lock"
                    } else {
                        "release unlocked lock"
                    };
                    return Err(ManagerError::Raised(Exception::msg(
                        ExceptionKind::RuntimeError,
                        msg,
                    )));
                }
                let mut local = o.local();
                if let Some(i) = local.holds.iter().position(|(t, _)| *t == token) {
                    local.holds[i].1 -= 1;
                    if local.holds[i].1 == 0 {
                        local.holds.swap_remove(i);
                        o.shared.forget(keys[0]);
                    }
                }
                Ok(Object::None)
            }))
        }
        "locked" => {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(keys[0]);
            Plan::one(cmd, |v| Ok(Object::Bool(int(&v)? == 1)))
        }
        "fencing_token" => Plan::Done(Ok(Object::Int(o.local().fence))),
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}

/// A holder that goes away without releasing: the lock is freed at once, and the next
/// acquirer is told its owner died. Only over a connection already open: a server that
/// cannot be reached now lets the lease run out instead.
pub(super) fn abandon(o: &RedisObject, token: &str) {
    let keys = lock_keys(o);
    o.shared.forget(keys[0]);
    let mut cmd = scripts::call(S::LockAbandon, &keys);
    cmd.arg(token);
    o.shared.pool.if_connected(|c| cmd.query::<Value>(c));
}

/// Waits, at most `limit`, until `script` over the keys `[state, waiters]` answers 1 (it
/// registers the wake list it is given in `waiters` when it answers 0); `True` if it did in
/// time.
fn wait_for<'a>(
    o: &'a RedisObject,
    limit: Option<std::time::Duration>,
    script: S,
    state: &'a str,
    waiters: &'a str,
) -> Plan<'a> {
    Plan::Steps(Box::new(move || {
        let got = o.wait_until(limit, waiters, |wake| {
            let mut cmd = scripts::call(script, &[state, waiters]);
            cmd.arg(wake);
            Ok((o.query::<i64>(&cmd)? == 1).then_some(()))
        })?;
        Ok(Object::Bool(got.is_some()))
    }))
}

fn semaphore<'a>(o: &'a RedisObject, method: &str, args: Vec<Object>, kwargs: &Dict) -> Plan<'a> {
    let (value, waiters) = (o.key("value"), o.key("waiters"));
    match method {
        "acquire" => {
            let limit = match wait_limit(args, kwargs, ["blocking", "timeout"], true) {
                Ok(l) => l,
                Err(e) => return Plan::raise(e),
            };
            wait_for(o, limit, S::SemAcquire, value, waiters)
        }
        "release" => {
            let n = match args.first() {
                None => 1,
                Some(Object::Int(n)) if *n >= 1 => *n,
                Some(_) => {
                    return Plan::raise(Exception::msg(
                        ExceptionKind::ValueError,
                        "n must be one or more",
                    ));
                }
            };
            let mut cmd = scripts::call(S::SemRelease, &[value, waiters]);
            cmd.arg(n).arg(o.limit);
            Plan::one(cmd, |v| match int(&v)? {
                0 => Err(ManagerError::Raised(Exception::msg(
                    ExceptionKind::ValueError,
                    "Semaphore released too many times",
                ))),
                _ => Ok(Object::None),
            })
        }
        "get_value" => {
            let mut cmd = redis::cmd("GET");
            cmd.arg(value);
            Plan::one(cmd, |v| Ok(Object::from(int(&v)?)))
        }
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}

fn event<'a>(o: &'a RedisObject, method: &str, args: Vec<Object>, kwargs: &Dict) -> Plan<'a> {
    let (flag, waiters) = (o.key("flag"), o.key("waiters"));
    match method {
        "set" => Plan::one(scripts::call(S::EventSet, &[flag, waiters]), |_| {
            Ok(Object::None)
        }),
        "clear" => {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(flag);
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "is_set" => {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(flag);
            Plan::one(cmd, |v| Ok(Object::Bool(int(&v)? == 1)))
        }
        "wait" => {
            let mut timeout = args;
            if let Some(t) = kwargs.get(&Object::from("timeout")) {
                timeout = vec![t.clone()];
            }
            if timeout.len() > 1 {
                return Plan::raise(Exception::type_error("wait() takes at most 1 argument"));
            }
            // As `(block=True, timeout)`.
            let limit = match wait_limit(
                [vec![Object::Bool(true)], timeout].concat(),
                &Dict::new(),
                ["block", "timeout"],
                false,
            ) {
                Ok(l) => l,
                Err(e) => return Plan::raise(e),
            };
            wait_for(o, limit, S::EventWait, flag, waiters)
        }
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}
