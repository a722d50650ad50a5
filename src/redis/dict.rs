//! `dict`, `Namespace` and `Value` in Redis.
//!
//! A dict is four keys: `keys` (HASH: canonical key -> the key as first inserted), `values`
//! (HASH: canonical key -> value), `order` (ZSET: canonical key scored by insertion number)
//! and `seq` (the insertion counter). Redis's own HASH keeps insertion order only while it is
//! small (about 512 fields); the ZSET keeps it at any size, and a key set again keeps its
//! place, as in Python. A `Namespace` is one HASH of attributes, a `Value` one STRING.

use redis::Value;

use super::encode;
use super::fallback;
use super::object::{Plan, RedisObject, arity, int, no_method, stored, unexpected};
use super::scripts::{self, S};
use crate::manager::{Exception, ExceptionKind, ManagerError, apply, reply_of};
use crate::object::{Dict, Object};

/// Bounded retries of an optimistic read-modify-write under contention.
const CAS_TRIES: usize = 10_000;

pub(super) fn keys(o: &RedisObject) -> [&str; 4] {
    [o.key("keys"), o.key("values"), o.key("order"), o.key("seq")]
}

fn missing(key: Object) -> Exception {
    Exception::new(ExceptionKind::KeyError, vec![key])
}

/// The `dict` methods.
pub(super) fn plan<'a>(
    o: &'a RedisObject,
    method: &str,
    mut args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    let k = keys(o);
    let c = o.codec();
    let native = kwargs.is_empty()
        && match (method, args.len()) {
            ("__setitem__" | "setdefault" | "compare_and_set" | "update_with", _) => true,
            ("__getitem__" | "__delitem__" | "__contains__", 1) => true,
            ("get" | "pop", 1 | 2) => true,
            ("__len__" | "popitem" | "clear", 0) => true,
            ("update", 1) => matches!(args[0], Object::Dict(_)),
            _ => false,
        };
    if !native {
        return fallback::dict(o, method, args, kwargs);
    }
    let canon = match args.first().map(encode::key) {
        Some(Err(e)) if method != "update" => return Plan::raise(e),
        Some(Ok(c)) => c,
        _ => Vec::new(),
    };
    match method {
        "__setitem__" => {
            if let Err(e) = arity(method, &args, 2, 2) {
                return Plan::raise(e);
            }
            let mut cmd = scripts::call(S::DictSet, &k);
            match (encode::value(c, &args[0]), encode::value(c, &args[1])) {
                (Ok(kb), Ok(vb)) => cmd.arg(canon).arg(kb).arg(vb),
                (Err(e), _) | (_, Err(e)) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "update" => {
            let Some(Object::Dict(d)) = args.pop() else {
                return Plan::Done(Ok(Object::None));
            };
            if d.is_empty() {
                return Plan::Done(Ok(Object::None));
            }
            let mut cmd = scripts::call(S::DictSet, &k);
            for (key, value) in d.iter() {
                match (
                    encode::key(key),
                    encode::value(c, key),
                    encode::value(c, value),
                ) {
                    (Ok(c), Ok(kb), Ok(vb)) => cmd.arg(c).arg(kb).arg(vb),
                    (Err(e), _, _) => return Plan::raise(e),
                    (_, Err(e), _) | (_, _, Err(e)) => return Plan::Done(Err(e)),
                };
            }
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "__getitem__" | "get" => {
            let mut cmd = redis::cmd("HGET");
            cmd.arg(k[1]).arg(canon);
            let strict = method == "__getitem__";
            let key = args.swap_remove(0);
            let default = args.pop().unwrap_or_default();
            Plan::one(cmd, move |v| match stored(c, v)? {
                Some(x) => Ok(x),
                None if strict => Err(ManagerError::Raised(missing(key))),
                None => Ok(default),
            })
        }
        "__delitem__" => {
            let mut cmd = scripts::call(S::DictDel, &k);
            cmd.arg(canon);
            let key = args.swap_remove(0);
            Plan::one(cmd, move |v| match int(&v)? {
                0 => Err(ManagerError::Raised(missing(key))),
                _ => Ok(Object::None),
            })
        }
        "__contains__" => {
            let mut cmd = redis::cmd("HEXISTS");
            cmd.arg(k[1]).arg(canon);
            Plan::one(cmd, move |v| Ok(Object::Bool(int(&v)? == 1)))
        }
        "__len__" => {
            let mut cmd = redis::cmd("HLEN");
            cmd.arg(k[1]);
            Plan::one(cmd, move |v| Ok(Object::from(int(&v)?)))
        }
        "pop" => {
            let mut cmd = scripts::call(S::DictPop, &k);
            cmd.arg(canon);
            let key = args.swap_remove(0);
            let default = args.pop();
            Plan::one(cmd, move |v| match (stored(c, v)?, default) {
                (Some(x), _) | (None, Some(x)) => Ok(x),
                (None, None) => Err(ManagerError::Raised(missing(key))),
            })
        }
        "popitem" => Plan::one(scripts::call(S::DictPopItem, &k), move |v| match v {
            Value::Nil => Err(ManagerError::Raised(Exception::msg(
                ExceptionKind::KeyError,
                "popitem(): dictionary is empty",
            ))),
            Value::Array(kv) if kv.len() == 2 => {
                let mut kv = kv.into_iter();
                let key = stored(c, kv.next().unwrap_or_default())?.unwrap_or_default();
                let value = stored(c, kv.next().unwrap_or_default())?.unwrap_or_default();
                Ok(Object::Tuple(vec![key, value]))
            }
            other => Err(unexpected(&other)),
        }),
        "setdefault" => {
            if let Err(e) = arity(method, &args, 1, 2) {
                return Plan::raise(e);
            }
            let default = args.get(1).cloned().unwrap_or_default();
            let mut cmd = scripts::call(S::DictSetDefault, &k);
            match (encode::value(c, &args[0]), encode::value(c, &default)) {
                (Ok(kb), Ok(vb)) => cmd.arg(canon).arg(kb).arg(vb),
                (Err(e), _) | (_, Err(e)) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, move |v| Ok(stored(c, v)?.unwrap_or_default()))
        }
        "clear" => {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(&k);
            Plan::one(cmd, |_| Ok(Object::None))
        }
        "update_with" | "compare_and_set" => {
            if let Err(e) = arity(method, &args, 3, 3) {
                return Plan::raise(e);
            }
            let cas = method == "compare_and_set";
            Plan::Steps(Box::new(move || {
                let [key, a, b]: [Object; 3] = args.try_into().unwrap_or_default();
                let get = |c: &mut redis::Connection| {
                    redis::cmd("HGET")
                        .arg(k[1])
                        .arg(&canon)
                        .query::<Option<Vec<u8>>>(c)
                };
                let set = |old: &Option<Vec<u8>>, new: &[u8]| {
                    let mut cmd = scripts::call(S::DictCas, &k);
                    cmd.arg(&canon).arg(encode::value(c, &key)?);
                    cmd.arg(if old.is_some() { "1" } else { "0" });
                    cmd.arg(old.as_deref().unwrap_or_default()).arg(new);
                    Ok(cmd)
                };
                read_modify_write(o, get, set, |cur| modify(cas, cur, &a, &b))
            }))
        }
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}

/// The new value of `update_with(op, operand)` (`cas`: false) or `compare_and_set(expected,
/// new)` (`cas`: true) over the current value, with the call's answer; `None`: nothing to
/// write (the comparison failed).
fn modify(
    cas: bool,
    current: Option<Object>,
    a: &Object,
    b: &Object,
) -> Result<(Option<Object>, Object), ManagerError> {
    if cas {
        let equal = current.clone().unwrap_or_default() == *a;
        return Ok((equal.then(|| b.clone()), Object::Bool(equal)));
    }
    let Some(op) = a.as_str() else {
        return Err(ManagerError::Raised(Exception::type_error(
            "update_with's operation is a str",
        )));
    };
    let new = apply(op, current, b.clone()).map_err(ManagerError::Raised)?;
    let answer = reply_of(&new);
    Ok((Some(new), answer))
}

/// An optimistic read-modify-write: reads the stored bytes with `get`, computes with
/// `change`, and writes with the compare-and-set command `set(old, new)`; again if another
/// writer came between.
fn read_modify_write(
    o: &RedisObject,
    get: impl Fn(&mut redis::Connection) -> redis::RedisResult<Option<Vec<u8>>>,
    set: impl Fn(&Option<Vec<u8>>, &[u8]) -> Result<redis::Cmd, ManagerError>,
    change: impl Fn(Option<Object>) -> Result<(Option<Object>, Object), ManagerError>,
) -> Result<Object, ManagerError> {
    let c = o.codec();
    for _ in 0..CAS_TRIES {
        let old = o.shared.pool.run(&get)?;
        let current = old.as_deref().map(|b| encode::object(c, b)).transpose()?;
        let (new, answer) = change(current)?;
        let Some(new) = new else {
            return Ok(answer);
        };
        let cmd = set(&old, &encode::value(c, &new)?)?;
        if o.query::<i64>(&cmd)? == 1 {
            return Ok(answer);
        }
    }
    Err(ManagerError::Protocol(format!(
        "{} changed under {CAS_TRIES} attempts to update it",
        o.name
    )))
}

/// The `Namespace` and `Value` methods.
pub(super) fn plan_small<'a>(
    o: &'a RedisObject,
    method: &str,
    args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    if !kwargs.is_empty() {
        return Plan::raise(Exception::type_error(format!(
            "{method}() takes no keyword arguments"
        )));
    }
    if o.typeid == "Namespace" {
        namespace(o, method, args)
    } else {
        value(o, method, args)
    }
}

fn attr_missing(name: &str) -> ManagerError {
    ManagerError::Raised(Exception::msg(
        ExceptionKind::AttributeError,
        format!("'Namespace' object has no attribute '{name}'"),
    ))
}

fn namespace<'a>(o: &'a RedisObject, method: &str, args: Vec<Object>) -> Plan<'a> {
    let c = o.codec();
    let hash = o.key("attrs");
    let name = match (method, args.first()) {
        ("__getattribute__" | "__setattr__" | "__delattr__", Some(Object::Str(s))) => s.clone(),
        ("__getattribute__" | "__setattr__" | "__delattr__", Some(other)) => {
            return Plan::raise(Exception::type_error(format!(
                "attribute name must be string, not '{}'",
                other.type_name()
            )));
        }
        _ => String::new(),
    };
    match (method, args.len()) {
        ("__getattribute__", 1) => {
            let mut cmd = redis::cmd("HGET");
            cmd.arg(hash).arg(&name);
            Plan::one(cmd, move |v| {
                stored(c, v)?.ok_or_else(|| attr_missing(&name))
            })
        }
        ("__setattr__", 2) => {
            let mut cmd = redis::cmd("HSET");
            match encode::value(c, &args[1]) {
                Ok(b) => cmd.arg(hash).arg(&name).arg(b),
                Err(e) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, |_| Ok(Object::None))
        }
        ("__delattr__", 1) => {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(hash).arg(&name);
            Plan::one(cmd, move |v| match int(&v)? {
                0 => Err(attr_missing(&name)),
                _ => Ok(Object::None),
            })
        }
        ("__str__" | "__repr__" | "#GETVALUE", 0) => {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(hash);
            let method = method.to_owned();
            Plan::one(cmd, move |v| {
                let mut attrs: Vec<(String, Vec<u8>)> = redis::from_redis_value(v)
                    .map_err(|e| ManagerError::Protocol(e.to_string()))?;
                attrs.sort();
                let mut d = Dict::new();
                for (k, b) in attrs {
                    let _ = d.insert(k, encode::object(c, &b)?);
                }
                let r = crate::manager::create("Namespace", with_kwargs(d))
                    .map_err(ManagerError::Raised)?;
                Ok(shown(&method, r.as_ref()))
            })
        }
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}

/// A constructor call with keyword arguments only.
fn with_kwargs(kwargs: Dict) -> crate::manager::Call {
    let mut c = crate::manager::Call::new("Namespace", vec![]);
    c.kwargs = kwargs;
    c
}

/// The answer of `__str__`/`__repr__` (Python's repr) or `#GETVALUE` (a copy) of the
/// manager's own object `r`.
pub(super) fn shown(method: &str, r: &dyn crate::manager::Referent) -> Object {
    if method == "#GETVALUE" {
        r.value()
    } else {
        Object::Str(r.repr())
    }
}

fn value<'a>(o: &'a RedisObject, method: &str, args: Vec<Object>) -> Plan<'a> {
    let c = o.codec();
    let key = o.key("value");
    match (method, args.len()) {
        ("get", 0) => {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            Plan::one(cmd, move |v| Ok(stored(c, v)?.unwrap_or_default()))
        }
        ("set", 1) => {
            let mut cmd = redis::cmd("SET");
            match encode::value(c, &args[0]) {
                Ok(b) => cmd.arg(key).arg(b),
                Err(e) => return Plan::Done(Err(e)),
            };
            Plan::one(cmd, |_| Ok(Object::None))
        }
        ("__str__" | "__repr__" | "#GETVALUE", 0) => {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            let method = method.to_owned();
            let typecode = o.typecode.clone();
            Plan::one(cmd, move |v| {
                let value = stored(c, v)?.unwrap_or_default();
                let call = crate::manager::Call::new("Value", vec![typecode, value]);
                let r = crate::manager::create("Value", call).map_err(ManagerError::Raised)?;
                Ok(shown(&method, r.as_ref()))
            })
        }
        ("update_with" | "compare_and_set", 2) => {
            let cas = method == "compare_and_set";
            Plan::Steps(Box::new(move || {
                let get = |c: &mut redis::Connection| {
                    redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(c)
                };
                let set = |old: &Option<Vec<u8>>, new: &[u8]| {
                    let mut cmd = scripts::call(S::StrCas, &[key]);
                    cmd.arg(if old.is_some() { "1" } else { "0" });
                    cmd.arg(old.as_deref().unwrap_or_default()).arg(new);
                    Ok(cmd)
                };
                read_modify_write(o, get, set, |cur| modify(cas, cur, &args[0], &args[1]))
            }))
        }
        _ => Plan::raise(no_method(&o.typeid, method)),
    }
}
