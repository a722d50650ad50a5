//! The server's table of objects: who holds a reference to what, and the one lock per object
//! that makes its calls atomic.
//!
//! Every reference belongs to a client (a connection's session), so that when a client goes
//! away, cleanly or killed, [`Table::release_client`] drops exactly the references it held and
//! frees the objects nobody else holds: Python's manager keeps such objects until the server
//! stops. Objects published under a name are held by the server itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::custom::Types;
use super::exception::{Exception, ExceptionKind};
use super::limits::{self, Limits};
use super::nested;
pub(crate) use super::referent::Holder;
use super::referent::{Call, CallResult, Outcome, Referent};
use crate::object::Object;

/// The most one call counts as growth, so that the table's total cannot overflow.
const MAX_GROWTH: usize = 1 << 56;

/// The identity of an object on one server; never reused while the server runs.
pub(crate) type ObjectId = u64;

/// What a call gives its caller.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// A value.
    Value(Object),
    /// A new object, registered with one reference held by the caller.
    Proxy(ProxyInfo),
    /// Nothing yet: the call waits, and its answer comes later among the [`Woken`] of another
    /// call, of [`Table::expire`] or of [`Table::release`]. The caller's next requests must
    /// wait for it.
    Waiting,
}

/// Calls that were waiting and have now completed: each caller and its answer.
pub(crate) type Woken = Vec<(Holder, Result<Answer, Exception>)>;

/// What a client needs to build a proxy of an object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProxyInfo {
    /// The object.
    pub id: ObjectId,
    /// Its type's name in the registry.
    pub typeid: &'static str,
    /// The methods a proxy may call.
    pub exposed: &'static [&'static str],
}

/// Objects held for a call that brings proxies of them (see [`Table::pin`]).
#[derive(Default)]
#[must_use]
struct Pins(Vec<ObjectId>);

/// A call that waits.
struct Parked {
    ticket: u64,
    who: Holder,
    deadline: Option<Instant>,
}

/// An object and the calls waiting on it, under the object's own lock.
struct Slot {
    referent: Box<dyn Referent>,
    /// In arrival order: the first is resumed first.
    parked: Vec<Parked>,
    /// A bound on the bytes the object holds, counted in the table's total (see
    /// [`limits`](super::limits)).
    bytes: usize,
    /// The bytes it held when last measured.
    measured: usize,
    /// Taken out of the table: its bytes are no longer counted.
    freed: bool,
    /// It was given proxies of others to hold: a change is followed by a scan.
    holds_proxies: bool,
}

struct Entry {
    slot: Arc<Mutex<Slot>>,
    typeid: &'static str,
    exposed: &'static [&'static str],
    /// References by holder; the object is freed when none is left.
    refs: HashMap<Holder, usize>,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<ObjectId, Entry>,
    /// The objects each holder references, for releasing a client at once.
    held: HashMap<Holder, HashSet<ObjectId>>,
    /// The objects that keep state for a holder (a lock it holds, a call of it that waits),
    /// to be told when it goes.
    touched: HashMap<Holder, HashSet<ObjectId>>,
    /// The objects with waiting calls.
    waiting: HashSet<ObjectId>,
    /// The objects that were given proxies of others to hold (see `nested`).
    containers: HashSet<ObjectId>,
    /// References containers gave up, released at their deadline.
    handover: Vec<(ObjectId, Instant)>,
    next_id: ObjectId,
}

/// The objects of one server.
pub(crate) struct Table {
    inner: Mutex<Inner>,
    /// The types it makes beside the built-in ones.
    types: std::sync::RwLock<Types>,
    /// How much one object may hold.
    max_object: AtomicUsize,
    /// How much all objects may hold.
    max_total: AtomicUsize,
    /// The sum of the bounds of its objects' sizes.
    total: AtomicUsize,
}

/// The `KeyError` Python's server raises for an unknown object id, a message for humans.
fn unknown(id: ObjectId) -> Exception {
    Exception::msg(
        ExceptionKind::KeyError,
        format!("no object {id:#x} on this manager (released, or never created)"),
    )
}

/// A poisoned lock means a method panicked half-way; the table's own state is updated in
/// single steps that cannot panic half-way, so it stays consistent and is used as it is.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Table {
    /// No objects, the built-in types, the default limits.
    fn default() -> Self {
        let limits = Limits::default();
        Table {
            inner: Mutex::default(),
            types: std::sync::RwLock::default(),
            max_object: AtomicUsize::new(limits.object),
            max_total: AtomicUsize::new(limits.total),
            total: AtomicUsize::new(0),
        }
    }
}

impl Table {
    /// A table that makes the types of `types` too, and bounds its objects by `limits`.
    pub fn new(types: Types, limits: Limits) -> Self {
        let t = Table::default();
        *t.types() = types;
        t.set_limits(limits);
        t
    }

    /// Bounds the objects by `limits` from now on.
    pub fn set_limits(&self, limits: Limits) {
        self.max_object.store(limits.object, Ordering::Relaxed);
        self.max_total.store(limits.total, Ordering::Relaxed);
    }

    /// The bounds of the objects.
    pub fn limits(&self) -> Limits {
        Limits {
            object: self.max_object.load(Ordering::Relaxed),
            total: self.max_total.load(Ordering::Relaxed),
        }
    }

    /// The bytes the objects hold, as counted (an upper bound, see [`limits`]).
    pub fn bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// The registered types, to add one.
    pub fn types(&self) -> std::sync::RwLockWriteGuard<'_, Types> {
        self.types.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes an object of `typeid` (registered or built-in) from its constructor's call.
    pub fn create(&self, typeid: &str, call: Call) -> Result<Box<dyn Referent>, Exception> {
        let types = self.types.read().unwrap_or_else(PoisonError::into_inner);
        types.create(typeid, call)
    }

    /// Registers `referent` with one reference held by `holder`, whatever its size (the
    /// server's own objects).
    pub fn insert(&self, holder: Holder, referent: Box<dyn Referent>) -> ProxyInfo {
        let bytes = referent.measure(usize::MAX).unwrap_or(MAX_GROWTH);
        self.insert_sized(holder, referent, bytes, false)
    }

    /// Registers `referent` for `holder` if it fits the limits; `MemoryError` otherwise.
    pub fn try_insert(
        &self,
        holder: Holder,
        referent: Box<dyn Referent>,
    ) -> Result<ProxyInfo, Exception> {
        self.try_insert_holding(holder, referent, false)
    }

    /// As [`try_insert`](Self::try_insert); when `nested` (its constructor was given proxies
    /// of other objects) the new object holds a reference to each.
    pub fn try_insert_holding(
        &self,
        holder: Holder,
        referent: Box<dyn Referent>,
        nested: bool,
    ) -> Result<ProxyInfo, Exception> {
        let limit = self.limits();
        let room = limit.total.saturating_sub(self.bytes());
        let Some(bytes) = referent.measure(limit.object.min(room)) else {
            return Err(if limit.object <= room {
                limits::object_too_large(limit.object)
            } else {
                limits::server_full(limit.total)
            });
        };
        let present = nested.then(|| nested::proxies_in([&referent.value()]));
        let pins = match &present {
            Some(present) => self.pin(present)?,
            None => Pins::default(),
        };
        let info = self.insert_sized(holder, referent, bytes, nested);
        if let Some(present) = present {
            let freed = Self::hold_contents(&mut lock(&self.inner), info.id, present);
            debug_assert!(freed.is_empty(), "a new object only adds references");
        }
        self.unpin(pins);
        Ok(info)
    }

    /// Checks that every object `ids` names lives, and holds it ([`Holder::Arriving`]) until
    /// [`unpin`](Self::unpin): a container is never given a proxy of an object that does not
    /// exist, or is freed before the container holds it. `KeyError` for the first that does
    /// not live (as Python's server, which looks each proxy up as it reads the request).
    fn pin(&self, ids: &HashMap<ObjectId, usize>) -> Result<Pins, Exception> {
        let mut t = lock(&self.inner);
        if let Some(id) = ids.keys().find(|id| !t.objects.contains_key(id)) {
            return Err(unknown(*id));
        }
        for id in ids.keys() {
            if let Some(entry) = t.objects.get_mut(id) {
                *entry.refs.entry(Holder::Arriving).or_default() += 1;
            }
        }
        let held = t.held.entry(Holder::Arriving).or_default();
        held.extend(ids.keys());
        Ok(Pins(ids.keys().copied().collect()))
    }

    /// Drops the holds [`pin`](Self::pin) took (freeing what nothing else holds).
    fn unpin(&self, pins: Pins) {
        for id in pins.0 {
            let _ = self.decref(Holder::Arriving, id);
        }
    }

    fn insert_sized(
        &self,
        holder: Holder,
        referent: Box<dyn Referent>,
        bytes: usize,
        holds_proxies: bool,
    ) -> ProxyInfo {
        self.total.fetch_add(bytes, Ordering::Relaxed);
        let mut t = lock(&self.inner);
        t.next_id += 1;
        let id = t.next_id;
        let info = ProxyInfo {
            id,
            typeid: referent.typeid(),
            exposed: referent.exposed(),
        };
        let slot = Slot {
            referent,
            parked: Vec::new(),
            bytes,
            measured: bytes,
            freed: false,
            holds_proxies,
        };
        t.objects.insert(
            id,
            Entry {
                slot: Arc::new(Mutex::new(slot)),
                typeid: info.typeid,
                exposed: info.exposed,
                refs: HashMap::from([(holder, 1)]),
            },
        );
        t.held.entry(holder).or_default().insert(id);
        info
    }

    /// Adds a reference to `id` for `holder` (a proxy was copied, or arrived in a message).
    pub fn incref(&self, holder: Holder, id: ObjectId) -> Result<ProxyInfo, Exception> {
        let mut t = lock(&self.inner);
        let entry = t.objects.get_mut(&id).ok_or_else(|| unknown(id))?;
        *entry.refs.entry(holder).or_default() += 1;
        let info = ProxyInfo {
            id,
            typeid: entry.typeid,
            exposed: entry.exposed,
        };
        t.held.entry(holder).or_default().insert(id);
        Ok(info)
    }

    /// The type and methods of object `id`, if it lives.
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub fn info(&self, id: ObjectId) -> Option<ProxyInfo> {
        let t = lock(&self.inner);
        let e = t.objects.get(&id)?;
        Some(ProxyInfo {
            id,
            typeid: e.typeid,
            exposed: e.exposed,
        })
    }

    /// Drops one reference of `holder` to `id`, freeing the object when it was the last.
    pub fn decref(&self, holder: Holder, id: ObjectId) -> Result<(), Exception> {
        let freed = {
            let mut t = lock(&self.inner);
            let entry = t.objects.get_mut(&id).ok_or_else(|| unknown(id))?;
            let Some(n) = entry.refs.get_mut(&holder) else {
                return Err(Exception::msg(
                    ExceptionKind::KeyError,
                    format!("this client holds no reference to object {id:#x}"),
                ));
            };
            *n -= 1;
            if *n == 0 {
                entry.refs.remove(&holder);
                if let Some(h) = t.held.get_mut(&holder) {
                    h.remove(&id);
                }
            }
            match Self::free_if_unheld(&mut t, id) {
                Some(e) => Ok(e),
                None => Err(Self::take_unreachable(&mut t, id)),
            }
        };
        // Dropped outside the table's lock: a large object takes time to free.
        match freed {
            Ok(e) => {
                self.release_contents(id);
                self.forget(e);
            }
            Err(cycle) => self.free_taken(cycle),
        }
        Ok(())
    }

    /// The objects reachable from `id` going up to the containers that hold it, when every
    /// one of them is held by containers only: a cycle of containers no client can reach any
    /// more (`a.append(b); b.append(a)`, both proxies dropped). Taken out of the table, each
    /// with whether it was a container; nothing when any is held otherwise.
    fn take_unreachable(t: &mut Inner, id: ObjectId) -> Vec<(ObjectId, Entry, bool)> {
        let mut seen = HashSet::from([id]);
        let mut stack = vec![id];
        while let Some(x) = stack.pop() {
            let Some(e) = t.objects.get(&x) else {
                continue;
            };
            for h in e.refs.keys() {
                match h {
                    Holder::Object(c) => {
                        if seen.insert(*c) {
                            stack.push(*c);
                        }
                    }
                    _ => return Vec::new(),
                }
            }
        }
        let mut taken = Vec::new();
        for x in seen {
            if let Some(e) = t.objects.get_mut(&x) {
                e.refs.clear();
            }
            if let Some(e) = Self::free_if_unheld(t, x) {
                taken.push((x, e, t.containers.remove(&x)));
            }
        }
        taken
    }

    /// Frees what [`take_unreachable`](Self::take_unreachable) took, and the references its
    /// containers held to objects outside it.
    fn free_taken(&self, taken: Vec<(ObjectId, Entry, bool)>) {
        for (x, e, container) in taken {
            self.forget(e);
            if container {
                let _ = self.release(Holder::Object(x));
            }
        }
    }

    /// Drops the references a freed container `id` held to the objects stored in it.
    fn release_contents(&self, id: ObjectId) {
        if lock(&self.inner).containers.remove(&id) {
            let _ = self.release(Holder::Object(id));
        }
    }

    /// Drops every reference `holder` has and gives back what it held (a client disconnected
    /// or died): its waiting calls are cancelled, its locks released. Returns how many objects
    /// were freed, and the calls of others that could complete because of it.
    pub fn release(&self, holder: Holder) -> (usize, Woken) {
        // Freed containers release what they held in turn, without recursion.
        let mut todo = vec![holder];
        let mut count = 0;
        let mut woken = Woken::new();
        while let Some(h) = todo.pop() {
            let (n, w, containers) = self.release_one(h);
            count += n;
            woken.extend(w);
            todo.extend(containers.into_iter().map(Holder::Object));
        }
        (count, woken)
    }

    /// [`release`](Self::release) of one holder; also returns the freed containers.
    fn release_one(&self, holder: Holder) -> (usize, Woken, Vec<ObjectId>) {
        let (touched, freed, containers, cycles) = {
            let mut t = lock(&self.inner);
            let touched: Vec<Arc<Mutex<Slot>>> = t
                .touched
                .remove(&holder)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|id| Some(Arc::clone(&t.objects.get(&id)?.slot)))
                .collect();
            let ids = t.held.remove(&holder).unwrap_or_default();
            let mut containers = Vec::new();
            let mut cycles = Vec::new();
            let freed: Vec<_> = ids
                .into_iter()
                .filter_map(|id| {
                    t.objects.get_mut(&id)?.refs.remove(&holder);
                    let Some(e) = Self::free_if_unheld(&mut t, id) else {
                        cycles.extend(Self::take_unreachable(&mut t, id));
                        return None;
                    };
                    if t.containers.remove(&id) {
                        containers.push(id);
                    }
                    Some(e)
                })
                .collect();
            (touched, freed, containers, cycles)
        };
        self.free_taken(cycles);
        let mut woken = Woken::new();
        for slot in touched {
            let mut s = lock(&slot);
            let (mine, others): (Vec<_>, Vec<_>) =
                s.parked.drain(..).partition(|p| p.who == holder);
            s.parked = others;
            for p in mine {
                s.referent.cancel(p.ticket);
            }
            s.referent.client_gone(holder);
            self.resume_parked(&mut s, &mut woken);
        }
        let n = freed.len();
        for e in freed {
            self.forget(e);
        }
        (n, woken, containers)
    }

    /// Uncounts an entry taken out of the table, and frees it (unless a call holds it still:
    /// then the call's end does).
    fn forget(&self, e: Entry) {
        let mut s = lock(&e.slot);
        s.freed = true;
        self.total.fetch_sub(s.bytes, Ordering::Relaxed);
    }

    /// Sets the references container `id` holds to the objects `present` in it (by count).
    /// Returns the objects nobody holds any more, to be freed (and whether each held others).
    fn hold_contents(
        t: &mut Inner,
        id: ObjectId,
        present: HashMap<ObjectId, usize>,
    ) -> Vec<(ObjectId, Entry, bool)> {
        let holder = Holder::Object(id);
        t.containers.insert(id);
        let mut children: HashSet<ObjectId> = t.held.get(&holder).cloned().unwrap_or_default();
        children.extend(present.keys());
        let mut gone = Vec::new();
        let mut dropped = Vec::new();
        for child in children {
            // A container naming itself needs no reference: it lives while it is reachable.
            if child == id {
                continue;
            }
            let want = present.get(&child).copied().unwrap_or(0);
            let Some(entry) = t.objects.get_mut(&child) else {
                continue;
            };
            if want == 0 {
                entry.refs.remove(&holder);
                if entry.refs.is_empty() {
                    gone.push(child);
                } else {
                    dropped.push(child);
                }
            } else {
                entry.refs.insert(holder, want);
            }
            let held = t.held.entry(holder).or_default();
            if want == 0 {
                held.remove(&child);
            } else {
                held.insert(child);
            }
        }
        let mut freed = Vec::new();
        for child in gone {
            if let Some(e) = Self::free_if_unheld(t, child) {
                freed.push((child, e, t.containers.remove(&child)));
            }
        }
        // A child still held, but only by a cycle of containers nobody reaches any more.
        for child in dropped {
            freed.extend(Self::take_unreachable(t, child));
        }
        freed
    }

    /// Keeps the objects named by proxies a reply hands out for [`nested::HANDOVER`], so that
    /// the taker (`pop`, `Queue.get`) finds them when it takes its own reference.
    fn hand_over(t: &mut Inner, ids: HashMap<ObjectId, usize>) {
        let deadline = Instant::now() + nested::HANDOVER;
        for (child, n) in ids {
            let Some(entry) = t.objects.get_mut(&child) else {
                continue;
            };
            *entry.refs.entry(Holder::Handover).or_default() += n;
            t.held.entry(Holder::Handover).or_default().insert(child);
            t.handover.extend(std::iter::repeat_n((child, deadline), n));
        }
    }

    /// Drops the references containers gave up whose deadline passed at `now`.
    fn end_handovers(&self, now: Instant) {
        let due: Vec<ObjectId> = {
            let mut t = lock(&self.inner);
            let (due, kept): (Vec<_>, Vec<_>) = t.handover.drain(..).partition(|(_, d)| *d <= now);
            t.handover = kept;
            due.into_iter().map(|(id, _)| id).collect()
        };
        for id in due {
            let _ = self.decref(Holder::Handover, id);
        }
    }

    fn free_if_unheld(t: &mut Inner, id: ObjectId) -> Option<Entry> {
        if t.objects.get(&id)?.refs.is_empty() {
            t.waiting.remove(&id);
            t.objects.remove(&id)
        } else {
            None
        }
    }

    /// The number of live objects (Python's `_number_of_objects()`).
    pub fn len(&self) -> usize {
        lock(&self.inner).objects.len()
    }

    fn slot(&self, id: ObjectId) -> Result<Arc<Mutex<Slot>>, Exception> {
        let t = lock(&self.inner);
        Ok(Arc::clone(
            &t.objects.get(&id).ok_or_else(|| unknown(id))?.slot,
        ))
    }

    /// Turns a referent's outcome into an answer; a new object is registered for `who`.
    fn answer(&self, who: Holder, r: CallResult) -> Result<Answer, Exception> {
        Ok(match r? {
            Outcome::Value(v) => Answer::Value(v),
            Outcome::Referent(r) => Answer::Proxy(self.try_insert(who, r)?),
            Outcome::Wait { .. } => Answer::Waiting,
        })
    }

    /// Runs a method of object `id` on behalf of `call.who`, under the object's own lock, so
    /// that calls on one object are atomic with respect to each other while calls on other
    /// objects run alongside. A new object the method returns is registered for `owner` (the
    /// caller's session). Returns the call's answer and the waiting calls that completed
    /// because of it.
    pub fn call(
        &self,
        id: ObjectId,
        call: Call,
        owner: Holder,
    ) -> (Result<Answer, Exception>, Woken) {
        let slot = match self.slot(id) {
            Ok(s) => s,
            Err(e) => return (Err(e), Woken::new()),
        };
        let guard = lock(&slot);
        self.call_locked(id, guard, call, owner)
    }

    /// As [`call`](Self::call), but only if the object is free now and the call is cheap (at
    /// most `max_cost` by [`Referent::cost`]); otherwise the call comes back, to be run where
    /// waiting for the object or a long call stalls nobody else.
    pub fn try_call(
        &self,
        id: ObjectId,
        call: Call,
        owner: Holder,
        max_cost: u64,
    ) -> Result<(Result<Answer, Exception>, Woken), Call> {
        let slot = match self.slot(id) {
            Ok(s) => s,
            Err(e) => return Ok((Err(e), Woken::new())),
        };
        let guard = match slot.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(call),
        };
        if guard.referent.cost(&call) > max_cost {
            return Err(call);
        }
        // Measuring a large object is a long call too.
        let large = (guard.bytes / limits::SLOT) as u64 > max_cost;
        if large && self.measures(&guard, self.growth(&guard, &call)) {
            return Err(call);
        }
        // A change to an object that holds proxies is followed by a scan of all it holds.
        if guard.holds_proxies && !nested::reads_only(&call.method) {
            let scan = Call {
                who: call.who,
                method: "#GETVALUE".into(),
                args: Vec::new(),
                kwargs: crate::object::Dict::new(),
            };
            if guard.referent.cost(&scan) > max_cost {
                return Err(call);
            }
        }
        Ok(self.call_locked(id, guard, call, owner))
    }

    fn call_locked(
        &self,
        id: ObjectId,
        mut s: MutexGuard<'_, Slot>,
        call: Call,
        owner: Holder,
    ) -> (Result<Answer, Exception>, Woken) {
        let who = call.who;
        let was_waiting = !s.parked.is_empty();
        // What the call may add to the object, beyond what it holds: counted before the call
        // (refused if it would pass a limit), and kept as the object's bound after it.
        let growth = self.growth(&s, &call);
        if let Err(e) = self.make_room(&mut s, growth) {
            return (Err(e), Woken::new());
        }
        let carries = nested::has_proxy(call.args.iter().chain(call.kwargs.values()));
        // The proxies it brings name live objects, held until the container holds them: or
        // the call fails, the object unchanged.
        let pins = match carries {
            true => match self.pin(&nested::proxies_in(
                call.args.iter().chain(call.kwargs.values()),
            )) {
                Ok(pins) => pins,
                Err(e) => return (Err(e), Woken::new()),
            },
            false => Pins::default(),
        };
        let changes = !nested::reads_only(&call.method);
        let outcome = s.referent.dispatch(call);
        if !s.freed {
            s.bytes = s.bytes.saturating_add(growth);
            self.total.fetch_add(growth, Ordering::Relaxed);
            if limits::stale(s.bytes, s.measured) {
                self.remeasure(&mut s);
            }
        }
        let rescan = outcome.is_ok() && (carries || (changes && s.holds_proxies));
        s.holds_proxies |= carries;
        let returned = match &outcome {
            Ok(Outcome::Value(v)) if rescan => nested::proxies_in([v]),
            _ => HashMap::new(),
        };
        if let Ok(Outcome::Wait { ticket, timeout }) = &outcome {
            let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
            s.parked.push(Parked {
                ticket: *ticket,
                who,
                deadline,
            });
        }
        let remembers = s.parked.iter().any(|p| p.who == who) || s.referent.remembers(who);
        let mut woken = Woken::new();
        self.resume_parked(&mut s, &mut woken);
        let waiting = !s.parked.is_empty();
        // What the container holds once the calls this one completed took their share.
        let present = rescan.then(|| nested::proxies_in([&s.referent.value()]));
        drop(s);
        let mut returned = returned;
        if carries {
            // A waiting taker may have been handed what this call brought.
            for (_, r) in &woken {
                if let Ok(Answer::Value(v)) = r {
                    for (child, n) in nested::proxies_in([v]) {
                        *returned.entry(child).or_default() += n;
                    }
                }
            }
        }
        let mut freed = Vec::new();
        // Most calls neither wait nor leave state for their caller, on an object nobody
        // waits on, nor hand proxies around: the table has nothing to note.
        if remembers || waiting || was_waiting || !returned.is_empty() || present.is_some() {
            let mut t = lock(&self.inner);
            if remembers {
                t.touched.entry(who).or_default().insert(id);
            }
            if waiting {
                t.waiting.insert(id);
            } else {
                t.waiting.remove(&id);
            }
            Self::hand_over(&mut t, returned);
            if let Some(present) = present {
                freed = Self::hold_contents(&mut t, id, present);
            }
        }
        // Freed outside the table's lock, with what they held in turn.
        for (child, e, container) in freed {
            self.forget(e);
            if container {
                let _ = self.release(Holder::Object(child));
            }
        }
        self.unpin(pins);
        (self.answer(owner, outcome), woken)
    }

    /// What `call` may add to the object of `s` beyond what it holds: its arguments, and
    /// the copies of the object a repetition makes.
    fn growth(&self, s: &Slot, call: &Call) -> usize {
        let copies = limits::copies_added(s.referent.typeid(), call);
        limits::incoming(call)
            .saturating_add(copies.saturating_mul(s.bytes))
            .min(MAX_GROWTH)
    }

    /// Whether a call adding `growth` to the object of `s` will measure it.
    fn measures(&self, s: &Slot, growth: usize) -> bool {
        let limit = self.limits();
        let bound = s.bytes.saturating_add(growth);
        !s.freed
            && (bound > limit.object
                || self.bytes().saturating_add(growth) > limit.total
                || limits::stale(bound, s.measured))
    }

    /// Checks that `growth` more bytes fit the object of `s` and the table, measuring the
    /// object again if its bound says they would not.
    fn make_room(&self, s: &mut Slot, growth: usize) -> Result<(), Exception> {
        let limit = self.limits();
        let fits = |s: &Slot| {
            if s.bytes.saturating_add(growth) > limit.object {
                Err(limits::object_too_large(limit.object))
            } else if self.bytes().saturating_add(growth) > limit.total {
                Err(limits::server_full(limit.total))
            } else {
                Ok(())
            }
        };
        if s.freed || fits(s).is_ok() {
            return Ok(());
        }
        self.remeasure(s);
        fits(s)
    }

    /// Measures the object of `s` exactly, and counts what it holds now.
    fn remeasure(&self, s: &mut Slot) {
        let exact = s.referent.measure(usize::MAX).unwrap_or(MAX_GROWTH);
        if exact < s.bytes {
            self.total.fetch_sub(s.bytes - exact, Ordering::Relaxed);
        } else {
            self.total.fetch_add(exact - s.bytes, Ordering::Relaxed);
        }
        s.bytes = exact;
        s.measured = exact;
    }

    /// Resumes the waiting calls of a slot, in arrival order, until none completes.
    fn resume_parked(&self, s: &mut Slot, woken: &mut Woken) {
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < s.parked.len() {
                let Parked { ticket, who, .. } = s.parked[i];
                match s.referent.resume(ticket, who) {
                    Ok(Outcome::Wait { .. }) => i += 1,
                    r => {
                        s.parked.remove(i);
                        woken.push((who, self.answer(who, r)));
                        progressed = true;
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Answers the waiting calls whose deadline has passed at `now`.
    pub fn expire(&self, now: Instant) -> Woken {
        self.end_handovers(now);
        let slots = self.waiting_slots();
        let mut woken = Woken::new();
        for slot in slots {
            let mut s = lock(&slot);
            let mut i = 0;
            let mut changed = false;
            while i < s.parked.len() {
                let p = &s.parked[i];
                if p.deadline.is_some_and(|d| d <= now) {
                    let (ticket, who) = (p.ticket, p.who);
                    match s.referent.expire(ticket, who) {
                        Ok(Outcome::Wait { .. }) => {
                            // Still waiting (for a lock to come back), now without a limit.
                            s.parked[i].deadline = None;
                            i += 1;
                        }
                        r => {
                            s.parked.remove(i);
                            woken.push((who, self.answer(who, r)));
                        }
                    }
                    changed = true;
                } else {
                    i += 1;
                }
            }
            if changed {
                self.resume_parked(&mut s, &mut woken);
            }
        }
        woken
    }

    /// The objects with waiting calls.
    fn waiting_slots(&self) -> Vec<Arc<Mutex<Slot>>> {
        let t = lock(&self.inner);
        t.waiting
            .iter()
            .filter_map(|id| Some(Arc::clone(&t.objects.get(id)?.slot)))
            .collect()
    }

    /// The earliest deadline of a waiting call, for the server's poll time-out.
    pub fn next_deadline(&self) -> Option<Instant> {
        let handover = lock(&self.inner).handover.iter().map(|(_, d)| *d).min();
        self.waiting_slots()
            .iter()
            .filter_map(|slot| lock(slot).parked.iter().filter_map(|p| p.deadline).min())
            .chain(handover)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::create;

    fn call(who: Holder, method: &str, args: Vec<Object>) -> Call {
        Call {
            who,
            ..Call::new(method, args)
        }
    }

    fn new_dict(t: &Table, holder: Holder) -> ObjectId {
        t.insert(holder, create("dict", Call::new("", vec![])).unwrap())
            .id
    }

    #[test]
    fn an_object_lives_while_someone_holds_it() {
        let t = Table::default();
        let (a, b) = (Holder::Client(1), Holder::Client(2));
        let id = new_dict(&t, a);
        t.incref(b, id).unwrap();
        t.decref(a, id).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.decref(a, id).is_err(), "a holds nothing any more");
        t.decref(b, id).unwrap();
        assert_eq!(t.len(), 0);
        let err = t.call(id, call(b, "__len__", vec![]), b).0.unwrap_err();
        assert_eq!(err.kind(), ExceptionKind::KeyError);
    }

    #[test]
    fn a_departed_client_releases_what_it_held() {
        let t = Table::default();
        let (gone, stays) = (Holder::Client(1), Holder::Client(2));
        let shared = new_dict(&t, gone);
        t.incref(stays, shared).unwrap();
        let own = new_dict(&t, gone);
        t.incref(gone, own).unwrap(); // two references, one client
        let named = new_dict(&t, Holder::Server);
        t.incref(gone, named).unwrap();
        // An iterator the client got back is its own too.
        let iter = t.call(own, call(gone, "__iter__", vec![]), gone).0.unwrap();
        assert!(matches!(
            iter,
            Answer::Proxy(ProxyInfo {
                typeid: "Iterator",
                ..
            })
        ));
        assert_eq!(t.len(), 4);
        assert_eq!(t.release(gone).0, 2, "its dict and its iterator");
        assert_eq!(t.len(), 2, "the shared and the named objects remain");
        assert_eq!(t.release(gone).0, 0);
        t.call(shared, call(stays, "__len__", vec![]), stays)
            .0
            .unwrap();
        t.call(named, call(stays, "__len__", vec![]), stays)
            .0
            .unwrap();
    }

    #[test]
    fn calls_on_one_object_are_atomic() {
        let t = Arc::new(Table::default());
        let id = new_dict(&t, Holder::Server);
        let n = 4;
        let rounds = 500;
        let threads: Vec<_> = (0..n)
            .map(|c| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        let key = Object::from(c * rounds + i);
                        let who = Holder::Client(c);
                        let set = call(who, "__setitem__", vec![key, Object::None]);
                        t.call(id, set, who).0.unwrap();
                        let args = vec!["hits".into(), "add".into(), 1.into()];
                        t.call(id, call(who, "update_with", args), who).0.unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let len = t.call(id, Call::new("__len__", vec![]), Holder::Server).0;
        assert_eq!(len.unwrap(), Answer::Value(Object::from(n * rounds + 1)));
        let hits = Call::new("__getitem__", vec!["hits".into()]);
        let hits = t.call(id, hits, Holder::Server).0.unwrap();
        assert_eq!(
            hits,
            Answer::Value(Object::from(n * rounds)),
            "no update lost"
        );
    }
}
