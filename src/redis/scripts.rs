//! The Lua scripts that make each multi-step operation one atomic step on the server.
//!
//! Every key a script touches shares the object's hash tag (`{mp:<namespace>:<name>}`), so an
//! object lives on one Redis Cluster slot. Scripts are loaded on every new connection
//! (`SCRIPT LOAD`) and called by their SHA-1 (`EVALSHA`); a server that forgot them (restarted,
//! `SCRIPT FLUSH`) gets them again.
//!
//! Waiting uses wake lists: a caller that cannot go on adds the name of a list of its own to
//! the object's waiter set *in the same script that found it could not*, then blocks on that
//! list (`BLPOP`); whatever changes the state pushes to every registered list and empties the
//! set. No wake-up is lost between the check and the wait, and nobody polls.

use std::sync::OnceLock;

use redis::{Connection, Script};

/// `wake(set)`: wakes every waiter registered in `set`.
const WAKE: &str = r"
local function wake(set)
  for _, w in ipairs(redis.call('SMEMBERS', set)) do
    redis.call('RPUSH', w, '1')
    redis.call('PEXPIRE', w, 60000)
  end
  redis.call('DEL', set)
end
";

/// The scripts, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum S {
    Open,
    DictSet,
    DictDel,
    DictPop,
    DictPopItem,
    DictSetDefault,
    DictItems,
    DictCas,
    StrCas,
    ListSet,
    ListDel,
    ListInsert,
    ListPop,
    QueuePut,
    QueueTake,
    QueueMadeRoom,
    QueueTaskDone,
    QueueLeave,
    JoinCheck,
    LockAcquire,
    LockRelease,
    LockRenew,
    LockAbandon,
    SemAcquire,
    SemRelease,
    EventSet,
    EventWait,
    Unwait,
}

const ALL: &[S] = &[
    S::Open,
    S::DictSet,
    S::DictDel,
    S::DictPop,
    S::DictPopItem,
    S::DictSetDefault,
    S::DictItems,
    S::DictCas,
    S::StrCas,
    S::ListSet,
    S::ListDel,
    S::ListInsert,
    S::ListPop,
    S::QueuePut,
    S::QueueTake,
    S::QueueMadeRoom,
    S::QueueTaskDone,
    S::QueueLeave,
    S::JoinCheck,
    S::LockAcquire,
    S::LockRelease,
    S::LockRenew,
    S::LockAbandon,
    S::SemAcquire,
    S::SemRelease,
    S::EventSet,
    S::EventWait,
    S::Unwait,
];

/// The Lua source of `s`.
fn source(s: S) -> &'static str {
    match s {
        // KEYS: meta. ARGV: typeid, then field/value pairs set if the object is new. Answers
        // the object's meta hash (flat), whose `type` says what it is.
        S::Open => {
            r"
local t = redis.call('HGET', KEYS[1], 'type')
if not t then
  redis.call('HSET', KEYS[1], 'type', ARGV[1])
  for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return redis.call('HGETALL', KEYS[1])"
        }
        // dict KEYS: keys (canonical -> original), values, order (zset), seq.
        // ARGV: (canonical, key, value) triples.
        S::DictSet => {
            r"
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[i])
  end
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
end
return 1"
        }
        S::DictDel => {
            r"
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1"
        }
        S::DictPop => {
            r"
local v = redis.call('HGET', KEYS[2], ARGV[1])
if v then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return v"
        }
        S::DictPopItem => {
            r"
local f = redis.call('ZRANGE', KEYS[3], -1, -1)[1]
if not f then return false end
local k = redis.call('HGET', KEYS[1], f)
local v = redis.call('HGET', KEYS[2], f)
redis.call('HDEL', KEYS[1], f)
redis.call('HDEL', KEYS[2], f)
redis.call('ZREM', KEYS[3], f)
return {k, v}"
        }
        // ARGV: canonical, key, default. Answers the value now stored.
        S::DictSetDefault => {
            r"
local v = redis.call('HGET', KEYS[2], ARGV[1])
if v then return v end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return ARGV[3]"
        }
        // Answers key, value, key, value, … in insertion order.
        S::DictItems => {
            r"
local out = {}
for _, f in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  out[#out + 1] = redis.call('HGET', KEYS[1], f)
  out[#out + 1] = redis.call('HGET', KEYS[2], f)
end
return out"
        }
        // ARGV: canonical, key, had ('0': the key was missing), old value, new value. Sets
        // the new value only if the stored one is still the old one.
        S::DictCas => {
            r"
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[3] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[4] then
  return 0
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
return 1"
        }
        // KEYS: the string. ARGV: had, old, new.
        S::StrCas => {
            r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1"
        }
        // list KEYS: the list. Indices as Python takes them (negative from the end).
        S::ListSet => {
            r"
local n = redis.call('LLEN', KEYS[1])
local i = tonumber(ARGV[1])
if i < 0 then i = i + n end
if i < 0 or i >= n then return 0 end
redis.call('LSET', KEYS[1], i, ARGV[2])
return 1"
        }
        // ARGV: index, a tombstone no item can equal.
        S::ListDel => {
            r"
local n = redis.call('LLEN', KEYS[1])
local i = tonumber(ARGV[1])
if i < 0 then i = i + n end
if i < 0 or i >= n then return 0 end
redis.call('LSET', KEYS[1], i, ARGV[2])
redis.call('LREM', KEYS[1], 1, ARGV[2])
return 1"
        }
        // ARGV: index (clamped as Python's insert does), item, tombstone.
        S::ListInsert => {
            r"
local n = redis.call('LLEN', KEYS[1])
local i = tonumber(ARGV[1])
if i < 0 then i = math.max(i + n, 0) elseif i > n then i = n end
if i == n then redis.call('RPUSH', KEYS[1], ARGV[2])
elseif i == 0 then redis.call('LPUSH', KEYS[1], ARGV[2])
else
  local pivot = redis.call('LINDEX', KEYS[1], i)
  redis.call('LSET', KEYS[1], i, ARGV[3])
  redis.call('LINSERT', KEYS[1], 'BEFORE', ARGV[3], ARGV[2])
  redis.call('LSET', KEYS[1], i + 1, pivot)
end
return 1"
        }
        // ARGV: index, tombstone. Answers {0} for an empty list, {1} out of range, {2, item}.
        S::ListPop => {
            r"
local n = redis.call('LLEN', KEYS[1])
if n == 0 then return {0} end
local i = tonumber(ARGV[1])
if i < 0 then i = i + n end
if i < 0 or i >= n then return {1} end
local v
if i == n - 1 then v = redis.call('RPOP', KEYS[1])
elseif i == 0 then v = redis.call('LPOP', KEYS[1])
else
  v = redis.call('LINDEX', KEYS[1], i)
  redis.call('LSET', KEYS[1], i, ARGV[2])
  redis.call('LREM', KEYS[1], 1, ARGV[2])
end
return {2, v}"
        }
        // queue KEYS: items, room waiters, unfinished. ARGV: item, maxsize, wake list (''
        // for no wait). Answers 1 when put, 0 when full.
        S::QueuePut => {
            r"
local max = tonumber(ARGV[2])
if max > 0 and redis.call('LLEN', KEYS[1]) >= max then
  if ARGV[3] ~= '' then redis.call('SADD', KEYS[2], ARGV[3]) end
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[3])
return 1"
        }
        // KEYS: items, consumers, my in-flight list, my lease, room waiters.
        // ARGV: me, key prefix, lease ms, ack ('1': the item in hand is done).
        // Gives the items of consumers whose lease expired back (to the front), then moves
        // the first item into my in-flight list and answers it (nil when empty).
        S::QueueTake => {
            r"
if ARGV[4] == '1' then redis.call('DEL', KEYS[3]) end
for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if c ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. ':lease:' .. c) == 0 then
    local l = ARGV[2] .. ':inflight:' .. c
    while redis.call('LMOVE', l, KEYS[1], 'RIGHT', 'LEFT') do end
    redis.call('SREM', KEYS[2], c)
  end
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
local v = redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT')
if v then wake(KEYS[5]) end
return v"
        }
        // After a blocking move: the room it made is told.
        S::QueueMadeRoom => {
            r"
wake(KEYS[1])
return 1"
        }
        // KEYS: unfinished, join waiters, my in-flight list.
        S::QueueTaskDone => {
            r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 0 then return 0 end
redis.call('LPOP', KEYS[3])
if redis.call('DECR', KEYS[1]) <= 0 then wake(KEYS[2]) end
return 1"
        }
        // A consumer that goes away cleanly. KEYS: consumers, its in-flight list, its lease.
        // ARGV: the consumer.
        S::QueueLeave => {
            r"
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[1], ARGV[1])
return 1"
        }
        // KEYS: unfinished, join waiters. ARGV: wake list.
        S::JoinCheck => {
            r"
if tonumber(redis.call('GET', KEYS[1]) or '0') <= 0 then return 1 end
if ARGV[1] ~= '' then redis.call('SADD', KEYS[2], ARGV[1]) end
return 0"
        }
        // lock KEYS: owner (token, with the lease as TTL), held (set while acquired, cleared
        // by a release: still set when the owner's lease ran out), fence, waiters, count.
        // ARGV: token, lease ms, wake list, reentrant. Answers {0} (held by another),
        // {1, fence} (acquired), {2, fence} (acquired from an owner that died).
        S::LockAcquire => {
            r"
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[1] and ARGV[4] == '1' then
    redis.call('INCR', KEYS[5])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, tonumber(redis.call('GET', KEYS[3]) or '0')}
  end
  if ARGV[3] ~= '' then redis.call('SADD', KEYS[4], ARGV[3]) end
  return {0}
end
local died = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], '1')
redis.call('SET', KEYS[5], '1')
local fence = redis.call('INCR', KEYS[3])
if died then return {2, fence} end
return {1, fence}"
        }
        // ARGV: token. Answers 0 when this token does not hold the lock.
        S::LockRelease => {
            r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('DECR', KEYS[5]) > 0 then return 1 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[5])
wake(KEYS[4])
return 1"
        }
        // KEYS: owner. ARGV: token, lease ms.
        S::LockRenew => {
            r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1"
        }
        // A holder that goes away without releasing: the lock is free at once, and the next
        // acquirer is told its owner died. KEYS as for acquire. ARGV: token.
        S::LockAbandon => {
            r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[5])
wake(KEYS[4])
return 1"
        }
        // semaphore KEYS: value, waiters. ARGV: wake list.
        S::SemAcquire => {
            r"
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
if ARGV[1] ~= '' then redis.call('SADD', KEYS[2], ARGV[1]) end
return 0"
        }
        // ARGV: n, bound (-1: none). Answers 0 when a bounded semaphore would pass its bound.
        S::SemRelease => {
            r"
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local bound = tonumber(ARGV[2])
if bound >= 0 and v + tonumber(ARGV[1]) > bound then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[1])
wake(KEYS[2])
return 1"
        }
        // event KEYS: flag, waiters.
        S::EventSet => {
            r"
redis.call('SET', KEYS[1], '1')
wake(KEYS[2])
return 1"
        }
        S::EventWait => {
            r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if ARGV[1] ~= '' then redis.call('SADD', KEYS[2], ARGV[1]) end
return 0"
        }
        // A waiter that stops waiting. KEYS: waiter set, its wake list.
        S::Unwait => {
            r"
redis.call('SREM', KEYS[1], KEYS[2])
redis.call('DEL', KEYS[2])
return 1"
        }
    }
}

/// The script `s` (its code and its hash), made once per process.
fn script(s: S) -> &'static (String, Script) {
    static SCRIPTS: OnceLock<Vec<(String, Script)>> = OnceLock::new();
    let all = SCRIPTS.get_or_init(|| {
        ALL.iter()
            .map(|&s| {
                let code = format!("{WAKE}{}", source(s));
                let script = Script::new(&code);
                (code, script)
            })
            .collect()
    });
    &all[ALL.iter().position(|&x| x == s).unwrap_or_default()]
}

/// An `EVALSHA` of `s` with `keys`, to which the caller adds the arguments.
pub(super) fn call(s: S, keys: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd("EVALSHA");
    c.arg(script(s).1.get_hash()).arg(keys.len()).arg(keys);
    c
}

/// Loads every script on `conn` (a new connection, or a server that forgot them).
pub(super) fn load(conn: &mut Connection) -> redis::RedisResult<()> {
    let mut p = redis::pipe();
    for &s in ALL {
        p.cmd("SCRIPT").arg("LOAD").arg(&script(s).0).ignore();
    }
    p.exec(conn)
}
