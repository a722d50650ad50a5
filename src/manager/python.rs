//! Python's own manager clients: `multiprocessing.managers.SyncManager(address, authkey)
//! .connect()` and `BaseManager.register('get_queue')` clients, served unchanged.
//!
//! A connection whose first request is a pickle (protocol byte `0x80`) speaks Python's
//! protocol from then on: requests are pickled `(ident, method, args, kwds)` and replies are
//! pickled `('#RETURN', value)`, `('#ERROR', exception)`, `('#PROXY', (exposed, token))` or
//! `('#TRACEBACK', text)`. Object ids are Python's hexadecimal strings. Nothing in a request is
//! run: the only names a request may carry are `builtins.slice`, `builtins.range` and those a
//! pickled proxy is made of (`RebuildProxy`, `AutoProxy`, `Token` and the builtin proxy classes), read as data
//! ([`codec::pickle`](crate::codec::pickle)); any other name is answered with a
//! `#TRACEBACK` naming it, and the connection goes on.
//!
//! Python's client opens a new connection for every `create`, `incref` and `decref`, so the
//! references of Python clients belong to one holder for all of them, not to a connection:
//! they are dropped by the client's `decref`s (its proxies' finalizers), as in Python, and
//! the objects of a Python client that dies without them stay until the server stops (Python
//! keeps them too). Locks, conditions and waiting calls belong to the connection that made
//! the call (Python's: one connection per client thread).
//!
//! Where a Python client sees a difference from Python's own server:
//!
//! | What | Python's server | This server |
//! |---|---|---|
//! | `Array` read whole (`a[:]`, `_getvalue()`) | an `array.array` | a `list` of the same items |
//! | `a[1:3] = array('d', …)` into an `Array('i')` | `TypeError` (other type code) | accepted if the items fit the array's type code |
//! | `a[1:3] = array(…)` | any machine layout | little-endian layouts (x86-64, ARM64) |
//! | `Queue.shutdown` | 3.13 only | exposed to every client (3.11 and 3.12 clients see it in the exposed tuple) |
//! | `str(queue)` | `<queue.Queue object at 0x…>` | the same form, with this server's address |
//! | objects of a client killed before its `decref`s | kept until the server stops | kept until the server stops (parity) |
//!
//! What is served, next to Python's `SyncManager`: see the table in the [manager's
//! documentation](super). The second half of this file is the other direction: a Rust client
//! ([`Manager::connect_python`](super::Manager::connect_python)) of Python's own server.

use super::exception::{Exception, ExceptionKind};
use super::protocol::{Reply, Request};
use super::referent::{Call, Holder};
use super::server::Shared;
use super::table::{ObjectId, Table};
use crate::codec::pickle;
use crate::connection::Address;
use crate::object::Object;

/// Whether a request frame is a pickle (Python's client), not postcard (a Rust client, whose
/// frames start with an option tag, 0 or 1).
pub(crate) fn is_pickle(frame: &[u8]) -> bool {
    frame.first() == Some(&0x80)
}

/// What Python's client sees of the server's address, in its tokens: `(host, port)`, a path,
/// or an abstract name as bytes with its leading NUL.
pub(crate) fn address_object(a: &Address) -> Object {
    match a {
        Address::Tcp(s) => Object::Tuple(vec![s.ip().to_string().into(), s.port().into()]),
        Address::Unix(p) => Object::Str(p.to_string_lossy().into_owned()),
        Address::Abstract(name) => {
            let mut b = vec![0];
            b.extend_from_slice(name);
            Object::Bytes(b)
        }
    }
}

/// Python's ident for an object id: lower-case hex.
fn ident(id: ObjectId) -> Object {
    Object::Str(format!("{id:x}"))
}

fn parse_ident(o: &Object) -> Result<ObjectId, String> {
    match o {
        Object::Str(s) => u64::from_str_radix(s, 16).map_err(|_| format!("bad ident {s:?}")),
        Object::Int(i) if *i >= 0 => Ok(*i as u64),
        other => Err(format!("an ident is a str, not {}", other.type_name())),
    }
}

/// Reads a pickled request; the error is the text of a `#TRACEBACK`.
pub(crate) fn decode(frame: &[u8]) -> Result<Request, String> {
    let o = pickle::loads(frame).map_err(|e| format!("the request cannot be read: {e}"))?;
    let Object::Tuple(parts) = o else {
        return Err(format!("a request is a 4-tuple, not {}", o.type_name()));
    };
    let Ok([id, method, args, kwargs]) = <[Object; 4]>::try_from(parts) else {
        return Err("a request is a 4-tuple (ident, method, args, kwds)".into());
    };
    let id = match id {
        Object::None => None,
        other => Some(parse_ident(&other)?),
    };
    let (Object::Str(method), Object::Tuple(args) | Object::List(args), Object::Dict(kwargs)) =
        (method, args, kwargs)
    else {
        return Err("a request is (ident, str, tuple, dict)".into());
    };
    Ok(Request {
        id,
        method,
        args,
        kwargs,
    })
}

/// A `#TRACEBACK` reply frame: Python's client raises `RemoteError` with this text.
pub(crate) fn traceback(kind: &str, msg: &str, out: &mut Vec<u8>) {
    let text = format!(
        "Traceback (most recent call last):\n  (in the multiproc manager server)\n{kind}: {msg}\n"
    );
    let reply = Object::Tuple(vec!["#TRACEBACK".into(), text.into()]);
    pickle::dump_into(&reply, out);
}

/// The text of a `#TRACEBACK` for a request that could not be read.
pub(crate) fn refused(why: &str, out: &mut Vec<u8>) {
    traceback("ValueError", why, out);
}

fn exposed_tuple(exposed: &[&str]) -> Object {
    Object::Tuple(exposed.iter().map(|&m| Object::from(m)).collect())
}

/// Writes the pickle of `reply`, a method's answer, as Python's server sends it.
pub(crate) fn encode(reply: &Reply, table: &Table, address: &Object, out: &mut Vec<u8>) {
    let exposed = |id| table.info(id).map(|i| i.exposed);
    let address = &pickle::ProxyTarget {
        address,
        exposed: &exposed,
    };
    // Most replies are small: one allocation, not a few growths.
    out.reserve(64);
    pickle::wrap(out, |out| {
        match reply {
            Reply::Return(v) => {
                pickle::write_str(out, "#RETURN");
                pickle::write_value(out, v, address);
            }
            Reply::Error(e) => {
                let (module, name) = e.kind().python_name();
                pickle::write_str(out, "#ERROR");
                pickle::write_call(out, module, name, e.args());
            }
            Reply::Proxy {
                id,
                typeid,
                exposed,
            } => {
                pickle::write_str(out, "#PROXY");
                let names: Vec<&str> = exposed.iter().map(String::as_str).collect();
                pickle::write_value(out, &exposed_tuple(&names), address);
                pickle::write_token(out, typeid, address.address, *id);
                out.push(pickle::TUPLE2);
            }
        }
        out.push(pickle::TUPLE2);
    });
}

/// The methods every object answers besides its exposed ones, as Python's `fallback_mapping`.
const FALLBACKS: &[&str] = &["__str__", "__repr__", "#GETVALUE"];

/// What the server does with one request of a Python client.
pub(crate) enum Step {
    /// The reply is written: nothing to run.
    Done,
    /// Run this method call on the table and send its reply, with the references of Python's
    /// clients held by [`Holder::Python`].
    Call(Request),
}

/// Answers a control request of a Python client (`ident` None), or checks that a method call
/// names an object and an exposed method (Python answers both with a `#TRACEBACK`).
pub(crate) fn step(shared: &Shared, req: Request, address: &Object, out: &mut Vec<u8>) -> Step {
    let Some(id) = req.id else {
        control(shared, req, address, out);
        return Step::Done;
    };
    match shared.table.info(id) {
        None => traceback(
            "KeyError",
            &format!("'{id:x}' (no such object on this manager)"),
            out,
        ),
        Some(info)
            if !info.exposed.contains(&req.method.as_str())
                && !FALLBACKS.contains(&req.method.as_str()) =>
        {
            traceback(
                "AttributeError",
                &format!(
                    "method {:?} of {:?} object is not in exposed={}",
                    req.method,
                    info.typeid,
                    exposed_tuple(info.exposed)
                ),
                out,
            );
        }
        Some(_) => return Step::Call(req),
    }
    Step::Done
}

fn ok(v: Object, address: &Object, out: &mut Vec<u8>) {
    // Control replies hold no proxies.
    let to = pickle::ProxyTarget {
        address,
        exposed: &|_| None,
    };
    let o = Object::Tuple(vec!["#RETURN".into(), v]);
    pickle::dump_for(&o, out, &to);
}

fn exception_traceback(e: &Exception, out: &mut Vec<u8>) {
    traceback(e.kind().python_name().1, &e.to_string(), out);
}

/// Python's control requests, answered as Python's server answers them.
fn control(shared: &Shared, req: Request, address: &Object, out: &mut Vec<u8>) {
    let Request {
        method,
        mut args,
        kwargs,
        ..
    } = req;
    let table = &shared.table;
    let one_ident = |args: &[Object]| -> Result<ObjectId, String> {
        match args {
            [one] => parse_ident(one),
            _ => Err("expected one ident".into()),
        }
    };
    match method.as_str() {
        "dummy" | "accept_connection" => ok(Object::None, address, out),
        "create" => {
            if args.is_empty() {
                return traceback("TypeError", "create() needs a typeid", out);
            }
            let typeid = match args.remove(0) {
                Object::Str(s) => s,
                other => {
                    return traceback(
                        "TypeError",
                        &format!("a typeid is a str, not {}", other.type_name()),
                        out,
                    );
                }
            };
            // A name the server publishes: Python's `register('get_queue', callable=...)`,
            // whose callable returns the same object to every client.
            let named = shared
                .names
                .read()
                .ok()
                .and_then(|n| n.get(&typeid).copied());
            let info = match named {
                Some(id) => table.incref(Holder::Python, id),
                None if typeid == "Pool" => Err(Exception::msg(
                    ExceptionKind::TypeError,
                    "'Pool' is not served by this manager: a pool runs Python code on the server, \
                     and this server never runs code from its clients",
                )),
                None => {
                    let nested = super::nested::has_proxy(args.iter().chain(kwargs.values()));
                    let call = Call {
                        who: Holder::Python,
                        method: typeid.clone(),
                        args,
                        kwargs,
                    };
                    table
                        .create(&typeid, call)
                        .and_then(|r| table.try_insert_holding(Holder::Python, r, nested))
                }
            };
            match info {
                Ok(info) => ok(
                    Object::Tuple(vec![ident(info.id), exposed_tuple(info.exposed)]),
                    address,
                    out,
                ),
                Err(e) => exception_traceback(&e, out),
            }
        }
        "incref" | "decref" => {
            let id = match one_ident(&args) {
                Ok(id) => id,
                Err(e) => return traceback("TypeError", &e, out),
            };
            let r = if method == "incref" {
                table.incref(Holder::Python, id).map(drop)
            } else {
                table.decref(Holder::Python, id)
            };
            match r {
                Ok(()) => ok(Object::None, address, out),
                Err(e) => exception_traceback(&e, out),
            }
        }
        "get_methods" => match args.as_slice() {
            [Object::Proxy(token)] => match table.info(token.id) {
                Some(info) => ok(exposed_tuple(info.exposed), address, out),
                None => traceback("KeyError", &format!("'{:x}'", token.id), out),
            },
            _ => traceback("TypeError", "get_methods() takes a Token", out),
        },
        "number_of_objects" => ok(Object::from(table.len()), address, out),
        "debug_info" => ok(
            Object::Str(format!("{} objects on this manager", table.len())),
            address,
            out,
        ),
        "shutdown" if shared.clients_may_stop => {
            ok(Object::None, address, out);
            shared.stop();
        }
        "shutdown" => traceback(
            "RuntimeError",
            "this manager is stopped by its operator, not by its clients",
            out,
        ),
        other => traceback(
            "ValueError",
            &format!("{other:?} unrecognized (a control request this manager does not serve)"),
            out,
        ),
    }
}

// ---- the client side: a Rust client of Python's own manager server ----

/// The pickle of a request to a Python manager server at `address`: `(ident, method, args,
/// kwds)`, a proxy reference in it as Python pickles a proxy of that server.
pub(crate) fn encode_request(
    address: &Address,
    id: Option<ObjectId>,
    method: &str,
    args: Vec<Object>,
    kwargs: crate::object::Dict,
    out: &mut Vec<u8>,
) {
    let ident = id.map_or(Object::None, ident);
    // The client names objects by id; Python's server by its hex ident.
    let mut args = args;
    if id.is_none()
        && matches!(method, "incref" | "decref")
        && let [Object::Int(i)] = args.as_slice()
        && *i >= 0
    {
        args = vec![Object::Str(format!("{i:x}"))];
    }
    let req = Object::Tuple(vec![
        ident,
        method.into(),
        Object::Tuple(args),
        Object::Dict(kwargs),
    ]);
    let to = pickle::ProxyTarget {
        address: &address_object(address),
        exposed: &|_| None,
    };
    pickle::dump_for(&req, out, &to);
}

fn kind_of(name: &str) -> ExceptionKind {
    match name.rsplit('.').next().unwrap_or(name) {
        "KeyError" => ExceptionKind::KeyError,
        "IndexError" => ExceptionKind::IndexError,
        "ValueError" => ExceptionKind::ValueError,
        "TypeError" => ExceptionKind::TypeError,
        "AttributeError" => ExceptionKind::AttributeError,
        "StopIteration" => ExceptionKind::StopIteration,
        "MemoryError" => ExceptionKind::MemoryError,
        "OverflowError" => ExceptionKind::OverflowError,
        "Empty" => ExceptionKind::Empty,
        "Full" => ExceptionKind::Full,
        "ShutDown" => ExceptionKind::ShutDown,
        "BrokenBarrierError" => ExceptionKind::BrokenBarrierError,
        _ => ExceptionKind::RuntimeError,
    }
}

/// Reads the reply of a Python manager server to `method` (a `create` of `typeid` gives a
/// proxy); the error says why the reply is not one.
pub(crate) fn read_reply(
    bytes: &[u8],
    method: &str,
    typeid: Option<&str>,
) -> Result<Reply, String> {
    let mut limits = pickle::Limits::new();
    limits.exceptions = true;
    let o = pickle::loads_with(bytes, &limits).map_err(|e| e.to_string())?;
    let Object::Tuple(parts) = o else {
        return Err(format!("a reply is a 2-tuple, not {}", o.type_name()));
    };
    let Ok([Object::Str(kind), payload]) = <[Object; 2]>::try_from(parts) else {
        return Err("a reply is (kind, payload)".into());
    };
    let names = |o: &Object| -> Vec<String> {
        o.as_slice()
            .map(|v| {
                v.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match (kind.as_str(), payload) {
        ("#RETURN", Object::Tuple(v)) if method == "create" && v.len() == 2 => Reply::Proxy {
            id: parse_ident(&v[0])?,
            typeid: typeid.unwrap_or_default().to_owned(),
            exposed: names(&v[1]),
        },
        ("#RETURN", v) => Reply::Return(v),
        ("#PROXY", Object::Tuple(v)) => match v.as_slice() {
            [exposed, Object::Proxy(token)] => Reply::Proxy {
                id: token.id,
                typeid: token.typeid.clone(),
                exposed: names(exposed),
            },
            _ => return Err("a #PROXY reply is (exposed, token)".into()),
        },
        ("#ERROR", Object::Tuple(v))
            if v.len() == 3 && v[0].as_str() == Some(pickle::EXCEPTION_MARK) =>
        {
            let name = v[1].as_str().unwrap_or_default();
            let args = v[2].as_slice().map(<[Object]>::to_vec).unwrap_or_default();
            Reply::Error(Exception::new(kind_of(name), args))
        }
        ("#TRACEBACK" | "#UNSERIALIZABLE" | "#ERROR", v) => {
            let text = match v {
                Object::Str(s) => s,
                other => other.to_string(),
            };
            // Python's client raises RemoteError with the server's traceback; its last line
            // names the exception.
            let last = text.trim_end().lines().last().unwrap_or_default();
            let name = last.split(':').next().unwrap_or_default();
            Reply::Error(Exception::msg(kind_of(name), text))
        }
        (other, _) => return Err(format!("unknown reply kind {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// Requests as CPython 3.11 pickles them: create a dict, `d['x'] = <ListProxy>`,
    /// `l[2:5]`, `get_methods(token)`.
    const REQUESTS: &[&[u8]] = &[
        b"\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00(N\x8c\x06create\x94\x8c\x04dict\x94\x85\x94}\x94t\x94.",
        b"\x80\x04\x95\x99\x00\x00\x00\x00\x00\x00\x00(\x8c\x011\x94\x8c\x0b__setitem__\x94\x8c\x01x\x94\x8c\x18multiprocessing.managers\x94\x8c\x0cRebuildProxy\x94\x93\x94(h\x03\x8c\tListProxy\x94\x93\x94h\x03\x8c\x05Token\x94\x93\x94)\x81\x94\x8c\x04list\x94\x8c\t127.0.0.1\x94M\x88\x13\x86\x94\x8c\x022a\x94\x87\x94b\x8c\x06pickle\x94}\x94t\x94R\x94\x86\x94}\x94t\x94.",
        b"\x80\x04\x955\x00\x00\x00\x00\x00\x00\x00(\x8c\x011\x94\x8c\x0b__getitem__\x94\x8c\x08builtins\x94\x8c\x05slice\x94\x93\x94K\x02K\x05N\x87\x94R\x94\x85\x94}\x94t\x94.",
        b"\x80\x04\x95_\x00\x00\x00\x00\x00\x00\x00(N\x8c\x0bget_methods\x94\x8c\x18multiprocessing.managers\x94\x8c\x05Token\x94\x93\x94)\x81\x94\x8c\x04list\x94\x8c\t127.0.0.1\x94M\x88\x13\x86\x94\x8c\x022a\x94\x87\x94b\x85\x94}\x94t\x94.",
    ];

    #[test]
    fn pythons_requests_are_served_and_mangled_ones_refused() {
        let shared = Shared::new().unwrap();
        let address = Object::Tuple(vec!["127.0.0.1".into(), 5000.into()]);
        let mut out = Vec::new();
        let req = decode(REQUESTS[0]).unwrap();
        assert!(matches!(step(&shared, req, &address, &mut out), Step::Done));
        let reply = pickle::loads(&out).unwrap();
        assert_eq!(reply.to_string()[..13], *"('#RETURN', (");
        assert_eq!(shared.table.len(), 1);
        let mut rng = Rng(0x5eed);
        for _ in 0..4000 {
            let mut data = REQUESTS[(rng.next() % 4) as usize].to_vec();
            for _ in 0..(rng.next() % 6 + 1) {
                let at = (rng.next() as usize) % data.len();
                match rng.next() % 3 {
                    0 => data[at] = rng.next() as u8,
                    1 => data.truncate(at.max(1)),
                    _ => data.insert(at, rng.next() as u8),
                }
            }
            out.clear();
            match decode(&data) {
                Ok(req) => {
                    if let Step::Call(req) = step(&shared, req, &address, &mut out) {
                        let call = Call {
                            who: Holder::Client(1),
                            method: req.method,
                            args: req.args,
                            kwargs: req.kwargs,
                        };
                        let (answer, _) =
                            shared.table.call(req.id.unwrap_or(0), call, Holder::Python);
                        let reply = match answer {
                            Ok(super::super::table::Answer::Value(v)) => Reply::Return(v),
                            Ok(_) => continue,
                            Err(e) => Reply::Error(e),
                        };
                        encode(&reply, &shared.table, &address, &mut out);
                    }
                }
                Err(why) => refused(&why, &mut out),
            }
            // Every reply is one whole pickle; those this decoder refuses name an exception
            // class (which Python's client loads).
            assert!(
                out.starts_with(&[0x80, 4]) && out.ends_with(b"."),
                "{out:?}"
            );
            if let Err(e) = pickle::loads(&out) {
                assert!(
                    matches!(&e, pickle::PickleError::Forbidden { what, .. } if what.contains("Error") || what.contains("Empty") || what.contains("Full") || what.contains("StopIteration")),
                    "{e}"
                );
            }
        }
        let _ = shared.table.release(Holder::Python);
        let _ = shared.table.release(Holder::Client(1));
    }
}
