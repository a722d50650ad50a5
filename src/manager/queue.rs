//! The managed `Queue` and `JoinableQueue`: Python's `queue.Queue` on the server.
//!
//! `get` on an empty queue and `put` on a full one wait as parked calls; a waiting `put`
//! keeps its item here until there is room (a client that goes away meanwhile takes its item
//! with it: the put never happened). `task_done`/`join` count unfinished items as Python's.
//! `shutdown(immediate=False)` is Python 3.13's: later puts raise `queue.ShutDown`, gets take
//! what is left and then raise it, and `immediate` empties the queue first (its items count
//! as done for `join`). Waiting calls are woken to see it.

use std::collections::{BTreeMap, VecDeque};

use super::exception::{Exception, ExceptionKind};
use super::referent::{
    Call, CallResult, Holder, Outcome, Referent, int_arg, not_exposed, timeout_arg, truthy,
};
use crate::object::Object;

/// A waiting call.
enum Waiter {
    Get,
    Put(Object),
    Join,
}

/// A queue held by the manager.
pub(crate) struct Queue {
    joinable: bool,
    items: VecDeque<Object>,
    /// 0: no limit.
    maxsize: usize,
    unfinished: usize,
    waiters: BTreeMap<u64, Waiter>,
    next_ticket: u64,
    /// `shutdown()` was called: Python 3.13's `is_shutdown`.
    shut_down: bool,
}

impl Queue {
    /// `Queue(maxsize=0)` (or `JoinableQueue`) from its constructor's arguments.
    pub fn create(call: Call, joinable: bool) -> Result<Self, Exception> {
        let maxsize = match call.params(&["maxsize"])?.pop().flatten() {
            None => 0,
            // Python treats a negative maxsize as no limit.
            Some(n) => usize::try_from(int_arg(&n, "maxsize")?).unwrap_or(0),
        };
        Ok(Queue {
            joinable,
            items: VecDeque::new(),
            maxsize,
            unfinished: 0,
            waiters: BTreeMap::new(),
            next_ticket: 0,
            shut_down: false,
        })
    }

    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }

    fn wait(&mut self, w: Waiter, timeout: Option<std::time::Duration>) -> CallResult {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.waiters.insert(ticket, w);
        Ok(Outcome::Wait { ticket, timeout })
    }

    fn push(&mut self, item: Object) {
        self.items.push_back(item);
        self.unfinished += 1;
    }
}

/// `(block, timeout)` of `get(block=True, timeout=None)` and `put(item, block, timeout)`.
fn blocking(
    block: Option<Object>,
    timeout: Option<Object>,
) -> Result<(bool, Option<std::time::Duration>), Exception> {
    let block = block.is_none_or(|b| truthy(&b));
    // Python checks the time-out only when it would wait.
    let timeout = if block { timeout_arg(timeout)? } else { None };
    Ok((block, timeout))
}

fn empty() -> Exception {
    Exception::new(ExceptionKind::Empty, vec![])
}

fn full() -> Exception {
    Exception::new(ExceptionKind::Full, vec![])
}

fn shut_down() -> Exception {
    Exception::new(ExceptionKind::ShutDown, vec![])
}

impl Referent for Queue {
    fn measure(&self, budget: usize) -> Option<usize> {
        super::limits::weigh(&self.items, budget)
    }

    fn typeid(&self) -> &'static str {
        if self.joinable {
            "JoinableQueue"
        } else {
            "Queue"
        }
    }

    fn exposed(&self) -> &'static [&'static str] {
        &[
            "empty",
            "full",
            "get",
            "get_nowait",
            "join",
            "put",
            "put_nowait",
            "qsize",
            "shutdown",
            "task_done",
        ]
    }

    fn call(&mut self, call: Call) -> CallResult {
        match call.method.as_str() {
            "put" | "put_nowait" => {
                let nowait = call.method == "put_nowait";
                let mut p = if nowait {
                    call.params(&["item"])?
                } else {
                    call.params(&["item", "block", "timeout"])?
                }
                .into_iter();
                let Some(item) = p.next().flatten() else {
                    return Err(Exception::type_error("put() missing 'item'"));
                };
                let (block, timeout) = if nowait {
                    (false, None)
                } else {
                    blocking(p.next().flatten(), p.next().flatten())?
                };
                if self.shut_down {
                    Err(shut_down())
                } else if !self.full() {
                    self.push(item);
                    Ok(Object::None.into())
                } else if !block {
                    Err(full())
                } else {
                    self.wait(Waiter::Put(item), timeout)
                }
            }
            "get" | "get_nowait" => {
                let (block, timeout) = if call.method == "get_nowait" {
                    call.arity(0, 0)?;
                    (false, None)
                } else {
                    let mut p = call.params(&["block", "timeout"])?.into_iter();
                    blocking(p.next().flatten(), p.next().flatten())?
                };
                match self.items.pop_front() {
                    Some(x) => Ok(x.into()),
                    None if self.shut_down => Err(shut_down()),
                    None if !block => Err(empty()),
                    None => self.wait(Waiter::Get, timeout),
                }
            }
            "task_done" => {
                call.arity(0, 0)?;
                if self.unfinished == 0 {
                    return Err(Exception::msg(
                        ExceptionKind::ValueError,
                        "task_done() called too many times",
                    ));
                }
                self.unfinished -= 1;
                Ok(Object::None.into())
            }
            "join" => {
                call.arity(0, 0)?;
                if self.unfinished == 0 {
                    Ok(Object::None.into())
                } else {
                    self.wait(Waiter::Join, None)
                }
            }
            "shutdown" => {
                let immediate = call.params(&["immediate"])?.pop().flatten();
                self.shut_down = true;
                if immediate.is_some_and(|i| truthy(&i)) {
                    // Python's: each item taken out counts as done.
                    self.unfinished = self.unfinished.saturating_sub(self.items.len());
                    self.items.clear();
                }
                Ok(Object::None.into())
            }
            "qsize" => {
                call.arity(0, 0)?;
                Ok(Object::from(self.items.len()).into())
            }
            "empty" => {
                call.arity(0, 0)?;
                Ok(Object::Bool(self.items.is_empty()).into())
            }
            "full" => {
                call.arity(0, 0)?;
                Ok(Object::Bool(self.full()).into())
            }
            m => Err(not_exposed(self.typeid(), m)),
        }
    }

    fn resume(&mut self, ticket: u64, _: Holder) -> CallResult {
        let still = Ok(Outcome::Wait {
            ticket,
            timeout: None,
        });
        let ready = match self.waiters.get(&ticket) {
            Some(Waiter::Get) => !self.items.is_empty() || self.shut_down,
            Some(Waiter::Put(_)) => !self.full() || self.shut_down,
            Some(Waiter::Join) => self.unfinished == 0,
            None => {
                return Err(Exception::msg(
                    ExceptionKind::RuntimeError,
                    "no such call is waiting",
                ));
            }
        };
        if !ready {
            return still;
        }
        Ok(
            match self.waiters.remove(&ticket).expect("present, checked") {
                Waiter::Get => match self.items.pop_front() {
                    Some(x) => x,
                    None => return Err(shut_down()),
                },
                Waiter::Put(_) if self.shut_down => return Err(shut_down()),
                Waiter::Put(item) => {
                    self.push(item);
                    Object::None
                }
                Waiter::Join => Object::None,
            }
            .into(),
        )
    }

    fn expire(&mut self, ticket: u64, _: Holder) -> CallResult {
        match self.waiters.remove(&ticket) {
            Some(Waiter::Get) => Err(empty()),
            Some(Waiter::Put(_)) => Err(full()),
            Some(Waiter::Join) | None => Ok(Object::None.into()),
        }
    }

    fn cancel(&mut self, ticket: u64) {
        self.waiters.remove(&ticket);
    }

    fn cost(&self, call: &Call) -> u64 {
        match call.method.as_str() {
            "#GETVALUE" => self.items.len() as u64,
            _ => 0,
        }
    }

    /// Python's `repr` of a `queue.Queue` (what `str(proxy)` shows), `JoinableQueue`s too:
    /// the address is where the queue lives in the server, as CPython's is.
    fn repr(&self) -> String {
        format!(
            "<queue.Queue object at {:#x}>",
            std::ptr::from_ref(self).addr()
        )
    }

    fn value(&self) -> Object {
        Object::List(self.items.iter().cloned().collect())
    }
}
