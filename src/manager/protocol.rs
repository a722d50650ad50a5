//! The manager's requests and replies, in the shape of Python's protocol.
//!
//! A request is Python's 4-tuple `(object id, method, args, kwargs)`; an id of `None` names the
//! server itself, whose methods are Python's control requests (`create`, `incref`, `decref`,
//! `dummy`, `number_of_objects`, `shutdown`) plus `lookup` for objects published by name. A
//! reply is a value (`#RETURN`), an exception raised by the method (`#ERROR`), or a new object
//! behind a proxy (`#PROXY`). Rust clients carry these through postcard, whose decoder bounds
//! nesting and allocation by the frame; nothing in a request is ever run.

use serde::{Deserialize, Serialize};

use super::exception::{Exception, ExceptionKind};
use super::referent::Call;
use super::table::{Answer, Holder, ObjectId, ProxyInfo, Table, Woken};
use crate::object::{Dict, Object};

/// One request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The object called, or `None` for the server.
    pub id: Option<ObjectId>,
    /// The method.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Object>,
    /// Keyword arguments.
    pub kwargs: Dict,
}

/// A [`Request`] to send, its method borrowed: encoded as a `Request` is, without a copy of
/// the method's name.
#[derive(Debug, Serialize)]
pub(crate) struct Outgoing<'a> {
    /// The object called, or `None` for the server.
    pub id: Option<ObjectId>,
    /// The method.
    pub method: &'a str,
    /// Positional arguments.
    pub args: Vec<Object>,
    /// Keyword arguments.
    pub kwargs: Dict,
}

/// One reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The method returned a value (`#RETURN`).
    Return(Object),
    /// The method raised (`#ERROR`).
    Error(Exception),
    /// The method returned a new object, held by the caller (`#PROXY`).
    Proxy {
        /// The object.
        id: ObjectId,
        /// Its type.
        typeid: String,
        /// The methods its proxy may call.
        exposed: Vec<String>,
    },
}

impl From<ProxyInfo> for Reply {
    fn from(p: ProxyInfo) -> Self {
        Reply::Proxy {
            id: p.id,
            typeid: p.typeid.into(),
            exposed: p.exposed.iter().map(|&m| m.to_owned()).collect(),
        }
    }
}

/// The reply to an answer; none yet for a call that waits.
fn reply(r: Result<Answer, Exception>) -> Option<Reply> {
    match r {
        Ok(Answer::Value(v)) => Some(Reply::Return(v)),
        Ok(Answer::Proxy(p)) => Some(p.into()),
        Ok(Answer::Waiting) => None,
        Err(e) => Some(Reply::Error(e)),
    }
}

/// Replies for the callers of waiting calls that completed.
pub(crate) fn replies(woken: Woken) -> Vec<(Holder, Reply)> {
    woken
        .into_iter()
        .filter_map(|(who, r)| Some((who, reply(r)?)))
        .collect()
}

/// An object id argument of a control request.
fn id_arg(call: Call) -> Result<ObjectId, Exception> {
    match call.one()? {
        Object::Int(i) => u64::try_from(i)
            .map_err(|_| Exception::msg(ExceptionKind::ValueError, "an object id is not negative")),
        other => Err(Exception::type_error(format!(
            "an object id is an int, not {}",
            other.type_name()
        ))),
    }
}

/// What a server does on behalf of one client.
pub(crate) struct Session<'a> {
    /// The server's objects.
    pub table: &'a Table,
    /// The objects published by name.
    pub names: &'a std::sync::RwLock<std::collections::HashMap<String, ObjectId>>,
    /// Who holds the references the client is given: its session.
    pub holder: Holder,
    /// Who calls: the client's connection, which waits and holds locks.
    pub who: Holder,
}

/// What one request did.
#[derive(Debug)]
pub(crate) struct Handled {
    /// The reply to send to this client; `None` while its call waits (its answer comes later,
    /// among the `woken` of another request, and its next requests must wait until then).
    pub reply: Option<Reply>,
    /// Replies owed to other clients whose waiting calls this request completed.
    pub woken: Vec<(Holder, Reply)>,
    /// What to do next.
    pub next: Next,
}

/// What the caller of [`Session::handle`] does after sending the reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Go on reading requests.
    Continue,
    /// The client asked the server to stop.
    Shutdown,
}

impl Session<'_> {
    /// Runs one request.
    pub fn handle(&self, req: Request) -> Handled {
        let call = Call {
            who: self.who,
            method: req.method,
            args: req.args,
            kwargs: req.kwargs,
        };
        let mut next = Next::Continue;
        let (reply, woken) = match req.id {
            Some(id) => {
                let (answer, woken) = self.table.call(id, call, self.holder);
                (reply(answer), replies(woken))
            }
            None => match self.control(call) {
                Ok(Some(r)) => (Some(r), Vec::new()),
                Ok(None) => {
                    next = Next::Shutdown;
                    (Some(Reply::Return(Object::None)), Vec::new())
                }
                Err(e) => (Some(Reply::Error(e)), Vec::new()),
            },
        };
        Handled { reply, woken, next }
    }

    /// Runs `req` here if it is cheap and its object is free now (control requests always
    /// are); otherwise hands it back, to be run by [`handle`](Self::handle) on a thread where
    /// it delays nobody.
    pub fn try_handle(&self, req: Request, max_cost: u64) -> Result<Handled, Request> {
        let Some(id) = req.id else {
            return Ok(self.handle(req));
        };
        let call = Call {
            who: self.who,
            method: req.method,
            args: req.args,
            kwargs: req.kwargs,
        };
        match self.table.try_call(id, call, self.holder, max_cost) {
            Ok((answer, woken)) => Ok(Handled {
                reply: reply(answer),
                woken: replies(woken),
                next: Next::Continue,
            }),
            Err(call) => Err(Request {
                id: Some(id),
                method: call.method,
                args: call.args,
                kwargs: call.kwargs,
            }),
        }
    }

    /// A request to the server itself; `None` asks it to stop.
    fn control(&self, call: Call) -> Result<Option<Reply>, Exception> {
        let done = |o: Object| Ok(Some(Reply::Return(o)));
        match call.method.as_str() {
            "dummy" => {
                call.arity(0, 0)?;
                done(Object::None)
            }
            "create" => {
                let mut call = call;
                if call.args.is_empty() {
                    return Err(Exception::type_error("create needs the typeid"));
                }
                let typeid = match call.args.remove(0) {
                    Object::Str(s) => s,
                    other => {
                        return Err(Exception::type_error(format!(
                            "a typeid is a str, not {}",
                            other.type_name()
                        )));
                    }
                };
                let nested = super::nested::has_proxy(call.args.iter().chain(call.kwargs.values()));
                let referent = self.table.create(&typeid, call)?;
                Ok(Some(
                    self.table
                        .try_insert_holding(self.holder, referent, nested)?
                        .into(),
                ))
            }
            "incref" => Ok(Some(self.table.incref(self.holder, id_arg(call)?)?.into())),
            "decref" => {
                self.table.decref(self.holder, id_arg(call)?)?;
                done(Object::None)
            }
            "lookup" => {
                let name = call.one()?;
                let id = name
                    .as_str()
                    .and_then(|n| self.names.read().ok()?.get(n).copied())
                    .ok_or_else(|| Exception::new(ExceptionKind::KeyError, vec![name.clone()]))?;
                Ok(Some(self.table.incref(self.holder, id)?.into()))
            }
            "number_of_objects" => {
                call.arity(0, 0)?;
                done(Object::from(self.table.len()))
            }
            "shutdown" => {
                call.arity(0, 0)?;
                Ok(None)
            }
            other => Err(Exception::msg(
                ExceptionKind::AttributeError,
                format!("the manager has no method {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::RwLock;

    use super::*;
    use crate::obj;

    fn req(id: Option<ObjectId>, method: &str, args: Vec<Object>) -> Request {
        Request {
            id,
            method: method.into(),
            args,
            kwargs: Dict::new(),
        }
    }

    #[test]
    fn an_outgoing_request_is_encoded_as_a_request() {
        let mut kwargs = Dict::new();
        kwargs.insert("block", false).unwrap();
        for (id, method, args, kwargs) in [
            (
                Some(3),
                "__setitem__",
                vec![obj!(1), obj!("x")],
                Dict::new(),
            ),
            (None, "create", vec![obj!("dict")], Dict::new()),
            (Some(u64::MAX), "get", vec![], kwargs),
        ] {
            let mut ours = Vec::new();
            let out = Outgoing {
                id,
                method,
                args: args.clone(),
                kwargs: kwargs.clone(),
            };
            crate::codec::encode_plain_into(&out, &mut ours).unwrap();
            let back: Request = crate::codec::decode(&ours, Vec::new()).unwrap();
            assert_eq!(
                back,
                Request {
                    id,
                    method: method.into(),
                    args,
                    kwargs
                }
            );
            let mut theirs = Vec::new();
            crate::codec::encode_plain_into(&back, &mut theirs).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_seed_dict_through_requests() {
        let table = Table::default();
        let names = RwLock::new(HashMap::new());
        let s = Session {
            table: &table,
            names: &names,
            holder: Holder::Client(7),
            who: Holder::Client(7),
        };
        let reply = s
            .handle(req(None, "create", vec!["dict".into()]))
            .reply
            .unwrap();
        let Reply::Proxy {
            id,
            typeid,
            exposed,
        } = reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!(typeid, "dict");
        assert!(exposed.iter().any(|m| m == "__setitem__"));
        for (k, v) in [
            (obj!(1), obj!("1")),
            (obj!("2"), obj!(2)),
            (obj!(0.25), obj!(None)),
        ] {
            let r = s
                .handle(req(Some(id), "__setitem__", vec![k, v]))
                .reply
                .unwrap();
            assert_eq!(r, Reply::Return(Object::None));
        }
        let r = s.handle(req(Some(id), "__str__", vec![])).reply.unwrap();
        assert_eq!(r, Reply::Return("{1: '1', '2': 2, 0.25: None}".into()));
        let r = s
            .handle(req(Some(id), "__getitem__", vec!["zz".into()]))
            .reply
            .unwrap();
        assert!(matches!(&r, Reply::Error(e) if e.kind() == ExceptionKind::KeyError));
        // The reply travels through postcard unchanged.
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert_eq!(postcard::from_bytes::<Reply>(&bytes).unwrap(), r);
        let r = s
            .handle(req(None, "number_of_objects", vec![]))
            .reply
            .unwrap();
        assert_eq!(r, Reply::Return(obj!(1)));
        let r = s
            .handle(req(None, "decref", vec![Object::from(id)]))
            .reply
            .unwrap();
        assert_eq!(r, Reply::Return(Object::None));
        let r = s
            .handle(req(None, "number_of_objects", vec![]))
            .reply
            .unwrap();
        assert_eq!(r, Reply::Return(obj!(0)));
        let h = s.handle(req(None, "shutdown", vec![]));
        assert_eq!(h.next, Next::Shutdown);
        assert!(h.woken.is_empty());
    }

    #[test]
    fn bad_requests_are_errors() {
        let table = Table::default();
        let names = RwLock::new(HashMap::new());
        let s = Session {
            table: &table,
            names: &names,
            holder: Holder::Client(1),
            who: Holder::Client(1),
        };
        for r in [
            req(None, "create", vec![]),
            req(None, "create", vec![obj!(5)]),
            req(None, "create", vec!["subprocess.Popen".into()]),
            req(None, "incref", vec![obj!(-1)]),
            req(None, "decref", vec![obj!(12345)]),
            req(None, "lookup", vec!["nothing".into()]),
            req(None, "exec", vec![]),
            req(Some(99), "__len__", vec![]),
        ] {
            let h = s.handle(r.clone());
            assert!(matches!(h.reply, Some(Reply::Error(_))), "{r:?}: {h:?}");
            assert_eq!(h.next, Next::Continue);
        }
    }
}

#[cfg(test)]
mod fuzz_smoke {
    use super::*;
    use crate::obj;
    use crate::testing::Rng;

    fn encode(reqs: &[Request]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in reqs {
            out.extend(postcard::to_allocvec(r).unwrap());
        }
        out
    }

    #[test]
    fn mangled_request_streams_never_panic() {
        let call = |id: Option<u64>, m: &str, args: Vec<Object>| Request {
            id,
            method: m.into(),
            args,
            kwargs: Dict::new(),
        };
        let valid = encode(&[
            call(None, "create", vec!["list".into(), obj!([3, 1, 2])]),
            call(None, "create", vec!["Lock".into()]),
            call(None, "create", vec!["Barrier".into(), 2.into()]),
            call(None, "create", vec!["Queue".into(), 1.into()]),
            call(Some(1), "sort", vec![]),
            call(Some(2), "acquire", vec![]),
            call(Some(2), "acquire", vec![true.into(), 0.5.into()]),
            call(Some(3), "wait", vec![]),
            call(Some(4), "put", vec![1.into()]),
            call(Some(4), "put", vec![2.into(), true.into(), 0.1.into()]),
            call(Some(1), "__mul__", vec![3.into()]),
            call(None, "decref", vec![1.into()]),
        ]);
        crate::manager::__fuzz_requests(&valid);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut data = valid.clone();
            for _ in 0..(rng.next() % 8 + 1) {
                let at = (rng.next() as usize) % data.len();
                match rng.next() % 3 {
                    0 => data[at] = rng.next() as u8,
                    1 => data.truncate(at.max(1)),
                    _ => data.insert(at, rng.next() as u8),
                }
            }
            crate::manager::__fuzz_requests(&data);
        }
        for len in 0..200 {
            let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            crate::manager::__fuzz_requests(&noise);
        }
    }
}
