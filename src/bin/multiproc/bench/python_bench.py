"""Python's multiprocessing figures for `multiproc bench`, measured the same way.

Run as a server: each line on stdin is `NAME PLACEMENT BATCH CPU_PARENT CPU_CHILD`; the
answer is one line on stdout, `ok SECONDS` (the time of BATCH operations), `none` (no such
scenario here) or `err MESSAGE`. PLACEMENT is `unpinned`, `same` (both on CPU_PARENT) or `two`
(the child on CPU_CHILD). The first line printed is `ready VERSION`. Children are started with
fork unless the scenario says spawn, as in the Rust figures.
"""
import ctypes
import multiprocessing as mp
import os
import sys
import time
from multiprocessing import managers, shared_memory

FORK = mp.get_context("fork")
ALL_CPUS = os.sched_getaffinity(0)
PLACE = {"placement": "unpinned", "parent": None, "child": None}


def pin(pid, cpu):
    os.sched_setaffinity(pid, ALL_CPUS if cpu is None else {cpu})


def placed(start):
    """Calls start() (which starts a child and returns an object with a pid), the child pinned
    where the placement puts it, this process where it puts the parent."""
    pin(0, PLACE["child"])
    started = start()
    pin(started_pid(started), PLACE["child"])
    pin(0, PLACE["parent"])
    return started


def started_pid(obj):
    if hasattr(obj, "pid"):
        return obj.pid
    return obj._process.pid  # a manager


def echo(conn):
    # Until None: a forked child holds copies of the parent's ends, so it never sees EOF.
    while True:
        v = conn.recv()
        if v is None:
            break
        conn.send(v)


def pipe_round_trip(batch):
    a, b = FORK.Pipe()
    p = placed(lambda: start(FORK.Process(target=echo, args=(b,))))
    a.send(0)
    a.recv()
    t = time.perf_counter()
    for i in range(batch):
        a.send(i)
        if a.recv() != i:
            raise RuntimeError("wrong echo")
    t = time.perf_counter() - t
    a.send(None)
    p.join()
    return t


def echo_bytes(conn):
    # Until a one-byte message.
    while True:
        m = conn.recv_bytes()
        if len(m) == 1:
            break
        conn.send_bytes(m)


def pipe_round_trip_64b(batch):
    a, b = FORK.Pipe()
    p = placed(lambda: start(FORK.Process(target=echo_bytes, args=(b,))))
    msg = b"x" * 64
    a.send_bytes(msg)
    a.recv_bytes()
    t = time.perf_counter()
    for _ in range(batch):
        a.send_bytes(msg)
        if len(a.recv_bytes()) != 64:
            raise RuntimeError("wrong echo")
    t = time.perf_counter() - t
    a.send_bytes(b"x")
    p.join()
    return t


def start(p):
    p.start()
    return p


def drain(conn):
    # An empty message asks "all delivered?"; a one-byte message ends.
    while True:
        m = conn.recv_bytes()
        if not m:
            conn.send_bytes(b"")
        elif len(m) == 1:
            break


def pipe_bulk(size, batch):
    a, b = FORK.Pipe()
    p = start(FORK.Process(target=drain, args=(b,)))
    msg = b"x" * size
    t = time.perf_counter()
    for _ in range(batch):
        a.send_bytes(msg)
    a.send_bytes(b"")
    if a.recv_bytes() != b"":
        raise RuntimeError("bad acknowledgement")
    t = time.perf_counter() - t
    a.send_bytes(b"x")
    p.join()
    return t


def produce(q, item, n):
    for _ in range(n + 1):
        q.put(item)


def queue_1to1(item, batch):
    q = FORK.Queue()
    p = start(FORK.Process(target=produce, args=(q, item, batch)))
    q.get()  # the producer runs
    t = time.perf_counter()
    for _ in range(batch):
        q.get()
    t = time.perf_counter() - t
    p.join()
    return t


def produce_range(q, go, n):
    if n > 0:
        q.put(0)  # starts the queue's feeder thread before the clock does
    go.wait()
    for i in range(1, n):
        q.put(i)
    q.put(None)


def consume(q, done):
    n = 0
    while q.get() is not None:
        n += 1
    done.put(n)


def queue_2to2(batch):
    q = FORK.Queue()
    done = FORK.SimpleQueue()
    go = FORK.Event()
    consumers = [start(FORK.Process(target=consume, args=(q, done))) for _ in range(2)]
    half = (batch + 1) // 2
    producers = [start(FORK.Process(target=produce_range, args=(q, go, n))) for n in (half, batch - half)]
    t = time.perf_counter()
    go.set()
    got = done.get() + done.get()
    t = time.perf_counter() - t
    for p in consumers + producers:
        p.join()
    if got != batch:
        raise RuntimeError(f"{got} of {batch} messages arrived")
    return t


def add_many(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def value_lock_increment(batch):
    n = (batch + 1) // 2
    v = FORK.Value("q", 0)
    p = placed(lambda: start(FORK.Process(target=add_many, args=(v, n))))
    t = time.perf_counter()
    add_many(v, n)
    p.join()
    t = time.perf_counter() - t
    if v.value != 2 * n:
        raise RuntimeError("lost increments")
    return t * batch / (2 * n)


ARRAY_LEN = 8 << 20
ARRAYS = {}


def array():
    if "a" not in ARRAYS:
        ARRAYS["a"] = FORK.Array("d", ARRAY_LEN)
        ARRAYS["buf"] = (ctypes.c_char * (ARRAY_LEN * 8))()
    return ARRAYS["a"], ARRAYS["buf"]


def array_write(batch):
    a, buf = array()
    t = time.perf_counter()
    for _ in range(batch):
        with a.get_lock():
            ctypes.memmove(a.get_obj(), buf, ARRAY_LEN * 8)
    return time.perf_counter() - t


def array_read(batch):
    a, buf = array()
    t = time.perf_counter()
    for _ in range(batch):
        with a.get_lock():
            ctypes.memmove(buf, a.get_obj(), ARRAY_LEN * 8)
    return time.perf_counter() - t


def manager_call(tcp, batch):
    if tcp:
        m = managers.SyncManager(address=("127.0.0.1", 0), authkey=b"multiproc bench", ctx=FORK)
    else:
        m = managers.SyncManager(ctx=FORK)
    placed(lambda: start_manager(m))
    try:
        d = m.dict({"k": 1})
        d["k"]
        t = time.perf_counter()
        for _ in range(batch):
            d["k"]
        return time.perf_counter() - t
    finally:
        m.shutdown()


def start_manager(m):
    m.start()
    return m


def manager_tcp_connect(batch):
    key = b"multiproc bench"
    server = start_manager(managers.SyncManager(address=("127.0.0.1", 0), authkey=key, ctx=FORK))
    try:
        t = time.perf_counter()
        for _ in range(batch):
            c = managers.SyncManager(address=server.address, authkey=key, ctx=FORK)
            c.connect()
            d = c.dict()
            l = c.list()
            del d, l, c
        return time.perf_counter() - t
    finally:
        server.shutdown()


def manager_start(batch):
    t = time.perf_counter()
    for _ in range(batch):
        with FORK.Manager() as m:
            m.dict()
    return time.perf_counter() - t


def target(x):
    pass


def process_start_join(method, batch):
    ctx = mp.get_context(method)
    t = time.perf_counter()
    for i in range(batch):
        p = ctx.Process(target=target, args=(i,))
        p.start()
        p.join()
    return time.perf_counter() - t


def shm_create_attach_unlink(batch):
    t = time.perf_counter()
    for _ in range(batch):
        a = shared_memory.SharedMemory(create=True, size=4096)
        b = shared_memory.SharedMemory(name=a.name)
        b.close()
        a.close()
        a.unlink()
    return time.perf_counter() - t


def trivial(x):
    return x + 1


def one_ms(x):
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
    return x


def pool_map(f, batch):
    with FORK.Pool(2) as p:
        p.map(f, [0])
        t = time.perf_counter()
        out = p.map(f, range(batch))
        elapsed = time.perf_counter() - t
    assert len(out) == batch
    return elapsed


def pool_start(batch):
    ctx = mp.get_context("spawn")
    total = 0.0
    for i in range(batch):
        t = time.perf_counter()
        with ctx.Pool(2) as p:
            assert p.apply(trivial, (i,)) == i + 1
            total += time.perf_counter() - t
    return total


SCENARIOS = {
    "pipe_round_trip": pipe_round_trip,
    "pipe_round_trip_64b": pipe_round_trip_64b,
    "pipe_bulk_1mib": lambda n: pipe_bulk(1 << 20, n),
    "pipe_bulk_64mib": lambda n: pipe_bulk(64 << 20, n),
    "queue_small": lambda n: queue_1to1(7, n),
    "queue_1kib": lambda n: queue_1to1(b"x" * 1024, n),
    "queue_64mib": lambda n: queue_1to1(b"x" * (64 << 20), n),
    "queue_2to2": queue_2to2,
    "value_lock_increment": value_lock_increment,
    "array_write_64mib": array_write,
    "array_read_64mib": array_read,
    "manager_call_unix": lambda n: manager_call(False, n),
    "manager_call_tcp": lambda n: manager_call(True, n),
    "manager_tcp_connect": manager_tcp_connect,
    "manager_start": manager_start,
    "process_fork": lambda n: process_start_join("fork", n),
    "process_spawn": lambda n: process_start_join("spawn", n),
    "shm_create_attach_unlink": shm_create_attach_unlink,
    "pool_map_trivial": lambda n: pool_map(trivial, n),
    "pool_map_1ms": lambda n: pool_map(one_ms, n),
    "pool_start": pool_start,
}


def serve():
    out = sys.stdout
    out.write("ready %d.%d.%d\n" % sys.version_info[:3])
    out.flush()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        name, placement, batch, parent, child = words
        f = SCENARIOS.get(name)
        if f is None:
            out.write("none\n")
            out.flush()
            continue
        PLACE["placement"] = placement
        cpu = {"unpinned": (None, None), "same": (int(parent), int(parent)), "two": (int(parent), int(child))}
        PLACE["parent"], PLACE["child"] = cpu[placement]
        try:
            seconds = f(int(batch))
            out.write("ok %r\n" % seconds)
        except Exception as e:  # reported on the table, not fatal
            out.write("err %s\n" % repr(e).replace("\n", " "))
        finally:
            pin(0, None)
        out.flush()


if __name__ == "__main__":
    serve()
