//! `list` in Redis: one LIST of encoded items. Indexing, appending and popping at the ends are
//! single commands; `insert`, `del l[i]` and `pop(i)` in the middle are scripts (O(n), as
//! for Python's list), with a tombstone that no encoded item can equal. The rest runs on a
//! copy through the manager's list ([`fallback`](super::fallback)).

use super::encode;
use super::fallback;
use super::object::{Plan, RedisObject, int, stored, token, unexpected};
use super::scripts::{self, S};
use crate::manager::{Exception, ExceptionKind, ManagerError, iterate};
use crate::object::{Dict, Object};

fn index_error(msg: &str) -> ManagerError {
    ManagerError::Raised(Exception::msg(ExceptionKind::IndexError, msg))
}

/// A tombstone: an encoded item never starts with 0xFF 0xFE (no variant has that tag).
fn tombstone() -> Vec<u8> {
    let mut t = vec![0xFF, 0xFE];
    t.extend(token().into_bytes());
    t
}

/// An index argument that fits an `i64`; `None` for a slice or another type (the fallback
/// answers those as the manager does).
fn index(o: &Object) -> Option<i64> {
    match o {
        Object::Bool(b) => Some(i64::from(*b)),
        Object::Int(i) => Some(*i),
        _ => None,
    }
}

/// The `list` methods.
pub(super) fn plan<'a>(
    o: &'a RedisObject,
    method: &str,
    mut args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    let key = o.key("items");
    let i = args.first().and_then(index);
    let native = kwargs.is_empty()
        && match (method, args.len()) {
            ("append" | "extend", 1) => true,
            ("__getitem__" | "__delitem__", 1) | ("__setitem__" | "insert", 2) => i.is_some(),
            ("pop", 0) | ("__len__" | "clear", 0) => true,
            ("pop", 1) => i.is_some(),
            _ => false,
        };
    if !native {
        return fallback::list(o, method, args, kwargs);
    }
    let c = o.codec();
    let encode_arg = |x: &Object| encode::value(c, x);
    match method {
        "append" => {
            let mut cmd = redis::cmd("RPUSH");
            match encode_arg(&args[0]) {
                Ok(b) => cmd.arg(key).arg(b),
                Err(e) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "extend" => {
            let items = match iterate(args.swap_remove(0)) {
                Ok(items) => items,
                Err(e) => return Plan::raise(e),
            };
            if items.is_empty() {
                return Plan::Done(Ok(Object::None));
            }
            let encoded: Result<Vec<Vec<u8>>, _> = items.iter().map(encode_arg).collect();
            let mut cmd = redis::cmd("RPUSH");
            match encoded {
                Ok(b) => cmd.arg(key).arg(b),
                Err(e) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "__getitem__" => {
            let mut cmd = redis::cmd("LINDEX");
            cmd.arg(key).arg(i);
            Plan::one(cmd, move |v| {
                stored(c, v)?.ok_or_else(|| index_error("list index out of range"))
            })
        }
        "__setitem__" => {
            let mut cmd = scripts::call(S::ListSet, &[key]);
            match encode_arg(&args[1]) {
                Ok(b) => cmd.arg(i).arg(b),
                Err(e) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, move |v| match int(&v)? {
                0 => Err(index_error("list assignment index out of range")),
                _ => Ok(Object::None),
            })
        }
        "__delitem__" => {
            let mut cmd = scripts::call(S::ListDel, &[key]);
            cmd.arg(i).arg(tombstone());
            Plan::one(cmd, move |v| match int(&v)? {
                0 => Err(index_error("list assignment index out of range")),
                _ => Ok(Object::None),
            })
        }
        "insert" => {
            let mut cmd = scripts::call(S::ListInsert, &[key]);
            match encode_arg(&args[1]) {
                Ok(b) => cmd.arg(i).arg(b).arg(tombstone()),
                Err(e) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "pop" => {
            let mut cmd = scripts::call(S::ListPop, &[key]);
            cmd.arg(i.unwrap_or(-1)).arg(tombstone());
            Plan::one(cmd, move |v| {
                let redis::Value::Array(parts) = v else {
                    return Err(unexpected(&v));
                };
                let mut parts = parts.into_iter();
                match parts.next().map(|s| int(&s)).transpose()? {
                    Some(0) => Err(index_error("pop from empty list")),
                    Some(1) => Err(index_error("pop index out of range")),
                    _ => Ok(stored(c, parts.next().unwrap_or_default())?.unwrap_or_default()),
                }
            })
        }
        "__len__" => {
            let mut cmd = redis::cmd("LLEN");
            cmd.arg(key);
            Plan::one(cmd, move |v| Ok(Object::from(int(&v)?)))
        }
        _ => {
            // "clear"
            let mut cmd = redis::cmd("DEL");
            cmd.arg(key);
            Plan::one(cmd, |_| Ok(Object::None))
        }
    }
}
