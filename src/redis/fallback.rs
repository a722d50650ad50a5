//! The methods of a dict or list that have no Redis command of their own (`sort`, `index`,
//! `remove`, slices, `keys`, the reprs, …) run on a copy of the whole object by the manager's
//! own implementation, so both backends answer alike; a call that changes the object writes it
//! back in one optimistic transaction (`WATCH`, then `MULTI`/`EXEC`, again if another writer
//! came between). They cost a read of the whole object: the common methods have commands of
//! their own.

use redis::{Connection, Pipeline, RedisResult, Value};

use super::encode::{self, Encoding};
use super::object::{Plan, RedisObject, bytes};
use super::scripts::{self, S};
use crate::manager::{Call, Exception, ManagerError, Outcome, Referent};
use crate::object::{Dict, Object};

/// Methods that never change the object: no transaction needed.
const READ_ONLY: &[&str] = &[
    "__str__",
    "__repr__",
    "#GETVALUE",
    "copy",
    "keys",
    "values",
    "items",
    "__contains__",
    "__getitem__",
    "__len__",
    "count",
    "index",
    "__add__",
    "__mul__",
    "__rmul__",
    "__reversed__",
];

/// A dict method run on the whole dict.
pub(super) fn dict<'a>(
    o: &'a RedisObject,
    method: &str,
    args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    let (method, kwargs) = (method.to_owned(), kwargs.clone());
    Plan::Steps(Box::new(move || {
        let enc = o.codec();
        let keys = super::dict::keys(o);
        let load = |c: &mut Connection| -> RedisResult<Result<Object, ManagerError>> {
            let flat: Vec<Value> = scripts::call(S::DictItems, &keys).query(c)?;
            Ok(dict_of(enc, flat).map(Object::Dict))
        };
        let store = |new: &Object, p: &mut Pipeline| -> Result<(), ManagerError> {
            p.cmd("DEL").arg(&keys).ignore();
            let Object::Dict(d) = new else {
                return Ok(());
            };
            if d.is_empty() {
                return Ok(());
            }
            let mut cmd = scripts::call(S::DictSet, &keys);
            for (k, v) in d.iter() {
                let canon = encode::key(k).map_err(ManagerError::Raised)?;
                cmd.arg(canon)
                    .arg(encode::value(enc, k)?)
                    .arg(encode::value(enc, v)?);
            }
            p.add_command(cmd).ignore();
            Ok(())
        };
        run(o, &keys, "dict", &method, args, kwargs, load, store)
    }))
}

/// A list method run on the whole list.
pub(super) fn list<'a>(
    o: &'a RedisObject,
    method: &str,
    args: Vec<Object>,
    kwargs: &Dict,
) -> Plan<'a> {
    let (method, kwargs) = (method.to_owned(), kwargs.clone());
    Plan::Steps(Box::new(move || {
        let enc = o.codec();
        let key = o.key("items");
        let load = |c: &mut Connection| -> RedisResult<Result<Object, ManagerError>> {
            let items: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(c)?;
            Ok(items
                .iter()
                .map(|b| encode::object(enc, b))
                .collect::<Result<Vec<_>, _>>()
                .map(Object::List))
        };
        let store = |new: &Object, p: &mut Pipeline| -> Result<(), ManagerError> {
            p.cmd("DEL").arg(key).ignore();
            if let Object::List(items) = new {
                for chunk in items.chunks(1024) {
                    let encoded = chunk
                        .iter()
                        .map(|x| encode::value(enc, x))
                        .collect::<Result<Vec<_>, _>>()?;
                    p.cmd("RPUSH").arg(key).arg(encoded).ignore();
                }
            }
            Ok(())
        };
        run(
            o,
            std::slice::from_ref(&key),
            "list",
            &method,
            args,
            kwargs,
            load,
            store,
        )
    }))
}

/// The dict of a `DictItems` reply (key, value, key, value, …).
fn dict_of(enc: Encoding, flat: Vec<Value>) -> Result<Dict, ManagerError> {
    let mut d = Dict::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let (Some(k), Some(v)) = (bytes(k)?, bytes(v)?) else {
            return Err(ManagerError::Protocol("a dict entry half written".into()));
        };
        d.insert(encode::object(enc, &k)?, encode::object(enc, &v)?)
            .map_err(|e| ManagerError::Protocol(e.to_string()))?;
    }
    Ok(d)
}

/// Loads the object, runs the manager's `typeid` method on it, and stores it back if it
/// changed, all under `WATCH keys`.
#[allow(clippy::too_many_arguments)]
fn run(
    o: &RedisObject,
    keys: &[&str],
    typeid: &str,
    method: &str,
    args: Vec<Object>,
    kwargs: Dict,
    load: impl Fn(&mut Connection) -> RedisResult<Result<Object, ManagerError>>,
    store: impl Fn(&Object, &mut Pipeline) -> Result<(), ManagerError>,
) -> Result<Object, ManagerError> {
    let read_only = READ_ONLY.contains(&method);
    let enc = o.codec();
    o.shared.pool.run(|c| {
        loop {
            if !read_only {
                redis::cmd("WATCH").arg(keys).exec(c)?;
            }
            let outcome = load(c)?.and_then(|before| {
                let old = encode::value(enc, &before)?;
                let mut r = crate::manager::create(typeid, Call::new(typeid, vec![before]))
                    .map_err(ManagerError::Raised)?;
                let answer = call(r.as_mut(), method, args.clone(), kwargs.clone())?;
                let after = r.value();
                let changed = !read_only && encode::value(enc, &after)? != old;
                Ok((answer, changed.then_some(after)))
            });
            let (answer, after) = match outcome {
                Ok(x) => x,
                Err(e) => {
                    if !read_only {
                        redis::cmd("UNWATCH").exec(c)?;
                    }
                    return Ok(Err(e));
                }
            };
            let Some(after) = after else {
                if !read_only {
                    redis::cmd("UNWATCH").exec(c)?;
                }
                return Ok(Ok(answer));
            };
            let mut p = redis::pipe();
            p.atomic();
            if let Err(e) = store(&after, &mut p) {
                redis::cmd("UNWATCH").exec(c)?;
                return Ok(Err(e));
            }
            match p.query::<Value>(c)? {
                // Another writer came between: again.
                Value::Nil => continue,
                _ => return Ok(Ok(answer)),
            }
        }
    })?
}

/// Calls `method` on the manager's object `r`, as its server would.
fn call(
    r: &mut dyn Referent,
    method: &str,
    args: Vec<Object>,
    kwargs: Dict,
) -> Result<Object, ManagerError> {
    match method {
        "__str__" | "__repr__" | "#GETVALUE" => return Ok(super::dict::shown(method, r)),
        _ => {}
    }
    if !r.exposed().contains(&method) {
        return Err(ManagerError::Raised(super::object::no_method(
            r.typeid(),
            method,
        )));
    }
    let mut c = Call::new(method, args);
    c.kwargs = kwargs;
    match r.call(c).map_err(ManagerError::Raised)? {
        Outcome::Value(v) => Ok(v),
        _ => Err(ManagerError::Raised(Exception::type_error(format!(
            "{method}() of a {} is not available on Redis (it answers with a proxy)",
            r.typeid()
        )))),
    }
}
