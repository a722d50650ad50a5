//! The managed locks, semaphores, events, conditions and barriers.
//!
//! Every wait is a parked call (see [`referent`](super::referent)): the server's threads never
//! block on them. Unlike Python's manager, a client that goes away, cleanly or killed, gives
//! back what it held: a `Lock`, `RLock` or `Condition` it held is released, and the next
//! acquirer is told its owner died (`acquire_robust` answers 2; Python's `acquire` still
//! answers `True`); a party waiting at a `Barrier` breaks it, so that the others raise
//! `BrokenBarrierError` instead of waiting forever. Semaphore permits are not owned (any client
//! may release), so a dead client's permits stay taken, as in Python.

use std::collections::BTreeMap;
use std::time::Duration;

use super::exception::{Exception, ExceptionKind};
use super::referent::{
    Call, CallResult, Holder, Outcome, Referent, int_arg, not_exposed, timeout_arg, truthy,
};
use crate::object::Object;

/// A ticket the object does not know: a server bug, answered as an error.
fn lost_waiter() -> Exception {
    Exception::msg(ExceptionKind::RuntimeError, "no such call is waiting")
}

/// Tickets in arrival order.
#[derive(Default)]
struct Tickets(u64);

impl Tickets {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// `(blocking, timeout)` of Python's `Lock.acquire(blocking=True, timeout=-1)`: whether to
/// wait, and for how long (`None`: no limit).
fn lock_wait(call: Call) -> Result<(bool, Option<Duration>), Exception> {
    let mut p = call.params(&["blocking", "timeout"])?.into_iter();
    let blocking = p.next().flatten().is_none_or(|b| truthy(&b));
    let timeout = match p.next().flatten() {
        None | Some(Object::None) => None,
        Some(t) if t == -1 => None,
        Some(t) if !blocking => {
            let _ = t;
            return Err(Exception::msg(
                ExceptionKind::ValueError,
                "can't specify a timeout for a non-blocking call",
            ));
        }
        Some(t) => timeout_arg(Some(t)).map_err(|_| {
            Exception::msg(
                ExceptionKind::ValueError,
                "timeout value must be a non-negative number",
            )
        })?,
    };
    Ok((blocking, timeout))
}

/// `(blocking, timeout)` of `Semaphore.acquire(blocking=True, timeout=None)`.
fn semaphore_wait(call: Call) -> Result<(bool, Option<Duration>), Exception> {
    let mut p = call.params(&["blocking", "timeout"])?.into_iter();
    let blocking = p.next().flatten().is_none_or(|b| truthy(&b));
    let timeout = p.next().flatten();
    if !blocking && !matches!(timeout, None | Some(Object::None)) {
        return Err(Exception::msg(
            ExceptionKind::ValueError,
            "can't specify timeout for non-blocking acquire",
        ));
    }
    Ok((blocking, timeout_arg(timeout)?))
}

/// What `acquire` answers: Python's `True`/`False`, or with `acquire_robust`, 0 (not
/// acquired), 1 (acquired) or 2 (acquired from an owner that died holding it).
fn acquired(robust: bool, got: bool, owner_died: bool) -> Object {
    match (robust, got) {
        (false, got) => Object::Bool(got),
        (true, false) => Object::Int(0),
        (true, true) => Object::Int(if owner_died { 2 } else { 1 }),
    }
}

/// The state of a (re-entrant) lock held by clients.
#[derive(Default)]
struct Owned {
    owner: Option<Holder>,
    count: usize,
    /// The last owner died holding it; the next acquirer is told.
    died: bool,
}

impl Owned {
    /// Takes the lock for `who` if it can (`reentrant`: again if `who` holds it); whether the
    /// owner before died holding it, if taken.
    fn try_take(&mut self, who: Holder, reentrant: bool, count: usize) -> Option<bool> {
        match self.owner {
            None => {
                self.owner = Some(who);
                self.count = count;
                Some(std::mem::take(&mut self.died))
            }
            Some(o) if reentrant && o == who => {
                self.count += count;
                Some(false)
            }
            Some(_) => None,
        }
    }

    fn client_gone(&mut self, who: Holder) {
        if self.owner == Some(who) {
            self.owner = None;
            self.count = 0;
            self.died = true;
        }
    }
}

/// `Lock` and `RLock`.
pub(crate) struct Lock {
    reentrant: bool,
    state: Owned,
    /// Waiting acquires: whether each answers as `acquire_robust`.
    waiters: BTreeMap<u64, bool>,
    tickets: Tickets,
}

impl Lock {
    /// A `Lock` (`reentrant == false`) or an `RLock`.
    pub fn new(reentrant: bool) -> Self {
        Lock {
            reentrant,
            state: Owned::default(),
            waiters: BTreeMap::new(),
            tickets: Tickets::default(),
        }
    }
}

impl Referent for Lock {
    fn typeid(&self) -> &'static str {
        if self.reentrant { "RLock" } else { "Lock" }
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["acquire", "release", "acquire_robust", "locked"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        let who = call.who;
        match call.method.as_str() {
            m @ ("acquire" | "acquire_robust") => {
                let robust = m == "acquire_robust";
                let (blocking, timeout) = lock_wait(call)?;
                match self.state.try_take(who, self.reentrant, 1) {
                    Some(died) => Ok(acquired(robust, true, died).into()),
                    None if !blocking => Ok(acquired(robust, false, false).into()),
                    None => {
                        let ticket = self.tickets.next();
                        self.waiters.insert(ticket, robust);
                        Ok(Outcome::Wait { ticket, timeout })
                    }
                }
            }
            "release" => {
                call.arity(0, 0)?;
                match self.state.owner {
                    None if !self.reentrant => Err(Exception::msg(
                        ExceptionKind::RuntimeError,
                        "release unlocked lock",
                    )),
                    // A plain lock may be released by anyone, as Python's.
                    Some(_) if !self.reentrant => {
                        self.state.owner = None;
                        self.state.count = 0;
                        Ok(Object::None.into())
                    }
                    Some(o) if o == who => {
                        self.state.count -= 1;
                        if self.state.count == 0 {
                            self.state.owner = None;
                        }
                        Ok(Object::None.into())
                    }
                    _ => Err(Exception::msg(
                        ExceptionKind::RuntimeError,
                        "cannot release un-acquired lock",
                    )),
                }
            }
            "locked" => {
                call.arity(0, 0)?;
                Ok(Object::Bool(self.state.owner.is_some()).into())
            }
            m => Err(not_exposed(self.typeid(), m)),
        }
    }

    fn resume(&mut self, ticket: u64, who: Holder) -> CallResult {
        let Some(&robust) = self.waiters.get(&ticket) else {
            return Err(lost_waiter());
        };
        match self.state.try_take(who, self.reentrant, 1) {
            Some(died) => {
                self.waiters.remove(&ticket);
                Ok(acquired(robust, true, died).into())
            }
            None => Ok(Outcome::Wait {
                ticket,
                timeout: None,
            }),
        }
    }

    fn expire(&mut self, ticket: u64, _: Holder) -> CallResult {
        let robust = self.waiters.remove(&ticket).unwrap_or_default();
        Ok(acquired(robust, false, false).into())
    }

    fn cancel(&mut self, ticket: u64) {
        self.waiters.remove(&ticket);
    }

    fn client_gone(&mut self, who: Holder) {
        self.state.client_gone(who);
    }

    fn remembers(&self, who: Holder) -> bool {
        self.state.owner == Some(who)
    }

    fn repr(&self) -> String {
        let state = if self.state.owner.is_some() {
            "locked"
        } else {
            "unlocked"
        };
        format!("<{} {state}>", self.typeid())
    }

    fn value(&self) -> Object {
        Object::Bool(self.state.owner.is_some())
    }
}

/// `Semaphore` and `BoundedSemaphore`.
pub(crate) struct Semaphore {
    value: u64,
    /// The initial value, for a bounded semaphore.
    bound: Option<u64>,
    waiters: BTreeMap<u64, ()>,
    tickets: Tickets,
}

impl Semaphore {
    /// A semaphore with `value` permits; `bounded` refuses to release beyond it.
    pub fn new(value: u64, bounded: bool) -> Self {
        Semaphore {
            value,
            bound: bounded.then_some(value),
            waiters: BTreeMap::new(),
            tickets: Tickets::default(),
        }
    }

    /// `Semaphore(value=1)` from its constructor's arguments.
    pub fn create(call: Call, bounded: bool) -> Result<Self, Exception> {
        let value = match call.params(&["value"])?.pop().flatten() {
            None => 1,
            Some(v) => u64::try_from(int_arg(&v, "semaphore initial value")?).map_err(|_| {
                Exception::msg(
                    ExceptionKind::ValueError,
                    "semaphore initial value must be >= 0",
                )
            })?,
        };
        Ok(Self::new(value, bounded))
    }
}

impl Referent for Semaphore {
    fn typeid(&self) -> &'static str {
        if self.bound.is_some() {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        }
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["acquire", "release", "get_value"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        match call.method.as_str() {
            "acquire" => {
                let (blocking, timeout) = semaphore_wait(call)?;
                if self.value > 0 {
                    self.value -= 1;
                    Ok(Object::Bool(true).into())
                } else if !blocking {
                    Ok(Object::Bool(false).into())
                } else {
                    let ticket = self.tickets.next();
                    self.waiters.insert(ticket, ());
                    Ok(Outcome::Wait { ticket, timeout })
                }
            }
            "release" => {
                let n = match call.params(&["n"])?.pop().flatten() {
                    None => 1,
                    Some(n) => u64::try_from(int_arg(&n, "n")?)
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| {
                            Exception::msg(ExceptionKind::ValueError, "n must be one or more")
                        })?,
                };
                let value = self.value.checked_add(n);
                match (value, self.bound) {
                    (Some(v), Some(b)) if v > b => Err(Exception::msg(
                        ExceptionKind::ValueError,
                        "Semaphore released too many times",
                    )),
                    (Some(v), _) => {
                        self.value = v;
                        Ok(Object::None.into())
                    }
                    (None, _) => Err(Exception::msg(
                        ExceptionKind::OverflowError,
                        "the semaphore's value would overflow",
                    )),
                }
            }
            "get_value" => {
                call.arity(0, 0)?;
                Ok(Object::from(self.value).into())
            }
            m => Err(not_exposed(self.typeid(), m)),
        }
    }

    fn resume(&mut self, ticket: u64, _: Holder) -> CallResult {
        if self.value > 0 {
            self.value -= 1;
            self.waiters.remove(&ticket);
            Ok(Object::Bool(true).into())
        } else {
            Ok(Outcome::Wait {
                ticket,
                timeout: None,
            })
        }
    }

    fn expire(&mut self, ticket: u64, _: Holder) -> CallResult {
        self.waiters.remove(&ticket);
        Ok(Object::Bool(false).into())
    }

    fn cancel(&mut self, ticket: u64) {
        self.waiters.remove(&ticket);
    }

    fn repr(&self) -> String {
        format!("<{} value={}>", self.typeid(), self.value)
    }

    fn value(&self) -> Object {
        Object::from(self.value)
    }
}

/// `Event`.
#[derive(Default)]
pub(crate) struct Event {
    flag: bool,
    waiters: BTreeMap<u64, ()>,
    tickets: Tickets,
}

impl Referent for Event {
    fn typeid(&self) -> &'static str {
        "Event"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["is_set", "set", "clear", "wait"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        match call.method.as_str() {
            "is_set" => {
                call.arity(0, 0)?;
                Ok(Object::Bool(self.flag).into())
            }
            "set" | "clear" => {
                let set = call.method == "set";
                call.arity(0, 0)?;
                self.flag = set;
                if set {
                    // Every waiter is released by this set, even if a clear follows at once.
                    self.waiters.clear();
                }
                Ok(Object::None.into())
            }
            "wait" => {
                let timeout = timeout_arg(call.params(&["timeout"])?.pop().flatten())?;
                if self.flag {
                    return Ok(Object::Bool(true).into());
                }
                let ticket = self.tickets.next();
                self.waiters.insert(ticket, ());
                Ok(Outcome::Wait { ticket, timeout })
            }
            m => Err(not_exposed(self.typeid(), m)),
        }
    }

    fn resume(&mut self, ticket: u64, _: Holder) -> CallResult {
        if self.waiters.contains_key(&ticket) {
            Ok(Outcome::Wait {
                ticket,
                timeout: None,
            })
        } else {
            Ok(Object::Bool(true).into())
        }
    }

    fn expire(&mut self, ticket: u64, _: Holder) -> CallResult {
        self.waiters.remove(&ticket);
        Ok(Object::Bool(self.flag).into())
    }

    fn cancel(&mut self, ticket: u64) {
        self.waiters.remove(&ticket);
    }

    fn repr(&self) -> String {
        format!("<Event {}>", if self.flag { "set" } else { "unset" })
    }

    fn value(&self) -> Object {
        Object::Bool(self.flag)
    }
}

/// A waiter of a [`Condition`].
enum CondWaiter {
    /// An `acquire` waiting for the lock.
    Acquire,
    /// A `wait` not yet notified, with the recursion count to restore.
    Waiting(usize),
    /// A `wait` notified (or timed out: `false`), waiting to take the lock back.
    Reacquire(usize, bool),
}

/// `Condition`, with its own re-entrant lock (Python's manager gives each its own `RLock`).
#[derive(Default)]
pub(crate) struct Condition {
    lock: Owned,
    waiters: BTreeMap<u64, CondWaiter>,
    tickets: Tickets,
}

impl Condition {
    fn must_hold(&self, who: Holder, what: &str) -> Result<(), Exception> {
        if self.lock.owner == Some(who) {
            Ok(())
        } else {
            Err(Exception::msg(
                ExceptionKind::RuntimeError,
                format!("cannot {what} on un-acquired lock"),
            ))
        }
    }

    fn wait_more(ticket: u64) -> CallResult {
        Ok(Outcome::Wait {
            ticket,
            timeout: None,
        })
    }
}

impl Referent for Condition {
    fn typeid(&self) -> &'static str {
        "Condition"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["acquire", "release", "wait", "notify", "notify_all"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        let who = call.who;
        match call.method.as_str() {
            "acquire" => {
                let (blocking, timeout) = lock_wait(call)?;
                match self.lock.try_take(who, true, 1) {
                    Some(_) => Ok(Object::Bool(true).into()),
                    None if !blocking => Ok(Object::Bool(false).into()),
                    None => {
                        let ticket = self.tickets.next();
                        self.waiters.insert(ticket, CondWaiter::Acquire);
                        Ok(Outcome::Wait { ticket, timeout })
                    }
                }
            }
            "release" => {
                call.arity(0, 0)?;
                self.must_hold(who, "release")?;
                self.lock.count -= 1;
                if self.lock.count == 0 {
                    self.lock.owner = None;
                }
                Ok(Object::None.into())
            }
            "wait" => {
                self.must_hold(who, "wait")?;
                let timeout = timeout_arg(call.params(&["timeout"])?.pop().flatten())?;
                let count = std::mem::take(&mut self.lock.count);
                self.lock.owner = None;
                let ticket = self.tickets.next();
                self.waiters.insert(ticket, CondWaiter::Waiting(count));
                Ok(Outcome::Wait { ticket, timeout })
            }
            "notify" | "notify_all" => {
                let n = if call.method == "notify" {
                    match call.params(&["n"])?.pop().flatten() {
                        None => 1,
                        Some(n) => usize::try_from(int_arg(&n, "n")?).unwrap_or(0),
                    }
                } else {
                    call.arity(0, 0)?;
                    usize::MAX
                };
                self.must_hold(who, "notify")?;
                // The longest waiting first, exactly `n` of them.
                let notified: Vec<(u64, usize)> = self
                    .waiters
                    .iter()
                    .filter_map(|(&t, w)| match w {
                        CondWaiter::Waiting(count) => Some((t, *count)),
                        _ => None,
                    })
                    .take(n)
                    .collect();
                for (ticket, count) in notified {
                    self.waiters
                        .insert(ticket, CondWaiter::Reacquire(count, true));
                }
                Ok(Object::None.into())
            }
            m => Err(not_exposed(self.typeid(), m)),
        }
    }

    fn resume(&mut self, ticket: u64, who: Holder) -> CallResult {
        let (count, answer) = match self.waiters.get(&ticket) {
            Some(CondWaiter::Acquire) => (1, true),
            Some(CondWaiter::Reacquire(count, notified)) => (*count, *notified),
            Some(CondWaiter::Waiting(_)) => return Self::wait_more(ticket),
            None => return Err(lost_waiter()),
        };
        match self.lock.try_take(who, true, count) {
            Some(_) => {
                self.waiters.remove(&ticket);
                Ok(Object::Bool(answer).into())
            }
            None => Self::wait_more(ticket),
        }
    }

    fn expire(&mut self, ticket: u64, who: Holder) -> CallResult {
        match self.waiters.get_mut(&ticket) {
            Some(CondWaiter::Acquire) => {
                self.waiters.remove(&ticket);
                Ok(Object::Bool(false).into())
            }
            // A wait that timed out takes its lock back before it returns `False`.
            Some(&mut CondWaiter::Waiting(count)) => {
                self.waiters
                    .insert(ticket, CondWaiter::Reacquire(count, false));
                self.resume(ticket, who)
            }
            Some(CondWaiter::Reacquire(..)) => self.resume(ticket, who),
            None => Err(lost_waiter()),
        }
    }

    fn cancel(&mut self, ticket: u64) {
        self.waiters.remove(&ticket);
    }

    fn client_gone(&mut self, who: Holder) {
        self.lock.client_gone(who);
    }

    fn remembers(&self, who: Holder) -> bool {
        self.lock.owner == Some(who)
    }

    fn repr(&self) -> String {
        let waiting = self
            .waiters
            .values()
            .filter(|w| matches!(w, CondWaiter::Waiting(_)))
            .count();
        format!(
            "<Condition({}, {waiting})>",
            if self.lock.owner.is_some() {
                "locked"
            } else {
                "unlocked"
            }
        )
    }

    fn value(&self) -> Object {
        Object::None
    }
}

/// `Barrier(parties, action=None, timeout=None)`.
pub(crate) struct Barrier {
    parties: usize,
    timeout: Option<Duration>,
    /// Parties arrived in the current round, each with its ticket and arrival index.
    arrived: BTreeMap<u64, usize>,
    /// Waiters whose round ended: their index, or `None` if the barrier broke.
    done: BTreeMap<u64, Option<usize>>,
    broken: bool,
    tickets: Tickets,
}

impl Barrier {
    /// A barrier from its constructor's arguments.
    pub fn create(call: Call) -> Result<Self, Exception> {
        let mut p = call.params(&["parties", "action", "timeout"])?.into_iter();
        let parties = match p.next().flatten() {
            Some(n) => usize::try_from(int_arg(&n, "parties")?).unwrap_or(0),
            None => return Err(Exception::type_error("Barrier() missing 'parties'")),
        };
        if parties == 0 {
            return Err(Exception::msg(
                ExceptionKind::ValueError,
                "parties must be > 0",
            ));
        }
        if !matches!(p.next().flatten(), None | Some(Object::None)) {
            return Err(Exception::type_error(
                "a Barrier's action is a function, which cannot run on the manager",
            ));
        }
        Ok(Barrier {
            parties,
            timeout: timeout_arg(p.next().flatten())?,
            arrived: BTreeMap::new(),
            done: BTreeMap::new(),
            broken: false,
            tickets: Tickets::default(),
        })
    }

    fn broken_error() -> Exception {
        Exception::new(ExceptionKind::BrokenBarrierError, vec![])
    }

    /// Ends the round for everyone waiting: broken (`None`) or released with their index.
    fn end_round(&mut self, broken: bool) {
        for (ticket, index) in std::mem::take(&mut self.arrived) {
            self.done.insert(ticket, (!broken).then_some(index));
        }
        if broken {
            self.broken = true;
        }
    }

    fn finish(&mut self, ticket: u64) -> CallResult {
        match self.done.remove(&ticket) {
            Some(Some(index)) => Ok(Object::from(index).into()),
            Some(None) => Err(Self::broken_error()),
            None => Ok(Outcome::Wait {
                ticket,
                timeout: None,
            }),
        }
    }
}

impl Referent for Barrier {
    fn typeid(&self) -> &'static str {
        "Barrier"
    }

    fn exposed(&self) -> &'static [&'static str] {
        &["__getattribute__", "wait", "abort", "reset"]
    }

    fn call(&mut self, call: Call) -> CallResult {
        match call.method.as_str() {
            "wait" => {
                let timeout = match call.params(&["timeout"])?.pop().flatten() {
                    None | Some(Object::None) => self.timeout,
                    t => timeout_arg(t)?,
                };
                if self.broken {
                    return Err(Self::broken_error());
                }
                let index = self.arrived.len();
                if index + 1 == self.parties {
                    self.end_round(false);
                    return Ok(Object::from(index).into());
                }
                let ticket = self.tickets.next();
                self.arrived.insert(ticket, index);
                Ok(Outcome::Wait { ticket, timeout })
            }
            "abort" => {
                call.arity(0, 0)?;
                self.end_round(true);
                Ok(Object::None.into())
            }
            "reset" => {
                call.arity(0, 0)?;
                if !self.arrived.is_empty() {
                    self.end_round(true);
                }
                self.broken = false;
                Ok(Object::None.into())
            }
            "__getattribute__" => {
                let name = call.one()?;
                match name.as_str() {
                    Some("parties") => Ok(Object::from(self.parties).into()),
                    Some("n_waiting") => Ok(Object::from(self.arrived.len()).into()),
                    Some("broken") => Ok(Object::Bool(self.broken).into()),
                    _ => Err(Exception::msg(
                        ExceptionKind::AttributeError,
                        format!("'Barrier' object has no attribute {name}"),
                    )),
                }
            }
            m => Err(not_exposed(self.typeid(), m)),
        }
    }

    fn resume(&mut self, ticket: u64, _: Holder) -> CallResult {
        self.finish(ticket)
    }

    /// A party that waited too long breaks the barrier, for itself and the others, as in
    /// Python.
    fn expire(&mut self, ticket: u64, _: Holder) -> CallResult {
        if self.arrived.contains_key(&ticket) {
            self.end_round(true);
        }
        self.finish(ticket)
    }

    /// A party that left while waiting breaks the barrier: the others would wait forever.
    fn cancel(&mut self, ticket: u64) {
        if self.arrived.remove(&ticket).is_some() {
            self.end_round(true);
        }
        self.done.remove(&ticket);
    }

    fn repr(&self) -> String {
        format!(
            "<Barrier parties={} n_waiting={} broken={}>",
            self.parties,
            self.arrived.len(),
            if self.broken { "True" } else { "False" }
        )
    }

    fn value(&self) -> Object {
        Object::None
    }
}
