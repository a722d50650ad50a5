//! What Python's manager protocol puts in a pickle besides plain data, read as data: the
//! names a pickled proxy is made of (`RebuildProxy`, a proxy class, `Token` with its state),
//! and the exceptions a manager server replies with.

use super::{CallVal, Decoder, Global, Kind, Res, SeqKind, Slot, Val};
use crate::codec::pickle::PickleError;
use crate::object::{Object, ProxyRef};

/// The exceptions a Python manager server replies with, as `module.Name`.
pub(super) const EXCEPTIONS: &[&str] = &[
    "builtins.KeyError",
    "builtins.IndexError",
    "builtins.ValueError",
    "builtins.TypeError",
    "builtins.AttributeError",
    "builtins.StopIteration",
    "builtins.MemoryError",
    "builtins.OverflowError",
    "builtins.RuntimeError",
    "builtins.AssertionError",
    "builtins.NotImplementedError",
    "_queue.Empty",
    "queue.Empty",
    "queue.Full",
    "queue.ShutDown",
    "threading.BrokenBarrierError",
    "multiprocessing.managers.RemoteError",
];

/// The proxy classes a pickled proxy may name (`RebuildProxy`'s first argument).
pub(super) const PROXY_CLASSES: &[&str] = &[
    "AutoProxy",
    "DictProxy",
    "ListProxy",
    "NamespaceProxy",
    "ValueProxy",
    "ArrayProxy",
    "AcquirerProxy",
    "ConditionProxy",
    "EventProxy",
    "BarrierProxy",
    "IteratorProxy",
];

/// Refuses a proxy class anywhere but as the first argument of `RebuildProxy`, where it was
/// consumed: nothing else in a pickle may name a class.
pub(in crate::codec::pickle) fn no_stray_class(o: &Object) -> Res<()> {
    let mut todo = vec![o];
    while let Some(o) = todo.pop() {
        match o {
            Object::Str(s) if s.starts_with(CLASS_MARK) || s == super::ARRAY_MARK => {
                return Err(PickleError::Forbidden {
                    offset: 0,
                    what: format!("the class {} as a value", &s[1..]),
                });
            }
            Object::List(v) | Object::Tuple(v) => todo.extend(v),
            Object::Dict(d) => d.iter().for_each(|(k, v)| todo.extend([k, v])),
            Object::Set(s) | Object::FrozenSet(s) => todo.extend(s.iter()),
            _ => {}
        }
    }
    Ok(())
}

/// How a proxy class stands in `RebuildProxy`'s arguments: a `str` no Python name starts with.
pub(super) const CLASS_MARK: &str = "\0multiprocessing.managers.";

impl Decoder<'_> {
    /// `NEWOBJ`: only `Token()` (`cls.__new__(cls)`), whose state `BUILD` sets next.
    pub(super) fn new_token(&mut self, at: usize) -> Res<()> {
        if self.stack.len() < self.floor() + 2 {
            return self.forbidden(at, "an object instance");
        }
        let args = self.pop(at)?;
        let cls = self.pop(at)?;
        let is_token = |d: &Self, v: &Val| match v {
            Val::Global(g) => *g == Global::TokenNew,
            Val::Ref(s) => matches!(&d.slots[*s], Slot::Pending(Val::Global(Global::TokenNew))),
            _ => false,
        };
        if !is_token(self, &cls) {
            return self.forbidden(at, "an object instance");
        }
        if !matches!(args, Val::Empty(Kind::Seq(SeqKind::Tuple))) {
            return self.invalid(at, "Token() takes no arguments");
        }
        self.charge(size_of::<CallVal>())?;
        self.push(Val::Call(Box::new(CallVal {
            global: Global::TokenNew,
            args,
            offset: at,
            depth: 1,
        })))
    }

    /// `BUILD`: only the state `(typeid, address, id)` of a `Token` just made by `NEWOBJ`.
    pub(super) fn build_token(&mut self, at: usize) -> Res<()> {
        let state = self.pop(at)?;
        if self.stack.len() <= self.floor() {
            return self.invalid(at, "BUILD without an object");
        }
        match &state {
            Val::Cont(c) if c.kind == Kind::Seq(SeqKind::Tuple) => {}
            Val::Ref(_) => {}
            _ => return self.forbidden(at, "BUILD (object state)"),
        }
        let top = self.stack.len() - 1;
        let target = match &mut self.stack[top] {
            Val::Ref(s) => match &mut self.slots[*s] {
                Slot::Pending(v) => v,
                _ => return self.forbidden(at, "BUILD (object state)"),
            },
            v => v,
        };
        match target {
            Val::Call(c) if c.global == Global::TokenNew => {
                c.depth = state.depth().max(1);
                c.global = Global::Token;
                c.args = state;
                c.offset = at;
                let depth = c.depth;
                self.check_depth(depth)
            }
            _ => self.forbidden(at, "BUILD (object state)"),
        }
    }

    /// The calls of the manager's protocol, if `global` is one of them: a slice, a range, a
    /// `Token` with its state, `RebuildProxy`, an exception.
    pub(super) fn manager_call(
        &mut self,
        at: usize,
        global: Global,
        args: &mut [Object],
    ) -> Option<Res<Object>> {
        Some(match (global, args) {
            (Global::Slice, parts @ [_, ..]) if parts.len() <= 3 => {
                let mut parts: Vec<Object> = parts.iter_mut().map(std::mem::take).collect();
                if parts.len() == 1 {
                    parts.insert(0, Object::None);
                }
                parts.resize(3, Object::None);
                let [start, stop, step] = <[Object; 3]>::try_from(parts).expect("three parts");
                Ok(crate::object::Slice::of(start, stop, step).into())
            }
            (Global::Token, [Object::Str(typeid), _address, Object::Str(id)]) => {
                match u64::from_str_radix(id, 16) {
                    Ok(id) => Ok(ProxyRef::new(std::mem::take(typeid), id).into()),
                    Err(_) => self.invalid(at, "a Token's id is not hexadecimal"),
                }
            }
            (
                Global::RebuildProxy,
                [
                    Object::Str(func),
                    token @ Object::Proxy(_),
                    _,
                    Object::Dict(_),
                ],
            ) if func.starts_with(CLASS_MARK) => Ok(std::mem::take(token)),
            (Global::Range, [Object::Int(start), Object::Int(stop), Object::Int(step)])
                if *step != 0 =>
            {
                let (start, stop, step) = (*start as i128, *stop as i128, *step as i128);
                let n = if step > 0 {
                    (stop - start + step - 1).div_euclid(step)
                } else {
                    (start - stop - step - 1).div_euclid(-step)
                }
                .max(0);
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if let Err(e) = self.charge(n.saturating_mul(size_of::<Object>())) {
                    return Some(Err(e));
                }
                Ok(Object::List(
                    (0..n as i128)
                        .map(|i| Object::Int((start + i * step) as i64))
                        .collect(),
                ))
            }
            (Global::Exception(name), args) => Ok(Object::Tuple(vec![
                crate::codec::pickle::EXCEPTION_MARK.into(),
                (*name).into(),
                Object::Tuple(args.iter_mut().map(std::mem::take).collect()),
            ])),
            (Global::TokenNew, _) => self.invalid(at, "a Token without its state (BUILD)"),
            (Global::ArrayClass | Global::ArrayReconstructor, args) => {
                self.array_call(at, global, args)
            }
            _ => return None,
        })
    }
}
