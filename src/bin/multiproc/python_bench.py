"""Python's multiprocessing figures for `multiproc bench`, measured the same way.

Prints one JSON object: {"name": seconds_per_operation, ...}. Every figure is the median of
several samples, each sample timing a batch of operations.
"""
import json
import multiprocessing as mp
import statistics
import sys
import time


def noop(x):
    return x + 1


def target(x):
    pass


def process_start_join(method, samples, batch):
    ctx = mp.get_context(method)
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for i in range(batch):
            p = ctx.Process(target=target, args=(i,))
            p.start()
            p.join()
        times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def add_many(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def locked_increment(samples, n):
    ctx = mp.get_context("fork")
    times = []
    for _ in range(samples):
        v = ctx.Value("q", 0)
        procs = [ctx.Process(target=add_many, args=(v, n)) for _ in range(2)]
        t = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        times.append((time.perf_counter() - t) / (2 * n))
        assert v.value == 2 * n
    return statistics.median(times)


def shm_create_attach_unlink(samples, batch):
    from multiprocessing import shared_memory

    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(batch):
            a = shared_memory.SharedMemory(create=True, size=4096)
            b = shared_memory.SharedMemory(name=a.name)
            b.close()
            a.close()
            a.unlink()
        times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def echo(conn):
    # Until None: a forked child holds copies of the parent's ends, so it never sees EOF.
    while True:
        v = conn.recv()
        if v is None:
            break
        conn.send(v)


def pipe_round_trip(samples, batch):
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b,))
    p.start()
    b.close()
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for i in range(batch):
            a.send(i)
            a.recv()
        times.append((time.perf_counter() - t) / batch)
    a.send(None)
    p.join()
    return statistics.median(times)


def drain(conn):
    # An empty message asks "all delivered?"; a one-byte message ends.
    while True:
        m = conn.recv_bytes()
        if not m:
            conn.send_bytes(b"")
        elif len(m) == 1:
            break


def pipe_bulk_1mib(samples, batch):
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=drain, args=(b,))
    p.start()
    msg = b"x" * (1 << 20)
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(batch):
            a.send_bytes(msg)
        a.send_bytes(b"")
        assert a.recv_bytes() == b""
        times.append((time.perf_counter() - t) / batch)
    a.send_bytes(b"x")
    p.join()
    return statistics.median(times)


def produce(q, n):
    for i in range(n):
        q.put(i)


def queue_small(samples, n):
    ctx = mp.get_context("fork")
    times = []
    for _ in range(samples):
        q = ctx.Queue()
        t = time.perf_counter()
        p = ctx.Process(target=produce, args=(q, n))
        p.start()
        for i in range(n):
            assert q.get() == i
        times.append((time.perf_counter() - t) / n)
        p.join()
    return statistics.median(times)


def manager_call(samples, batch):
    with mp.get_context("fork").Manager() as m:
        d = m.dict({"k": 1})
        times = []
        for _ in range(samples):
            t = time.perf_counter()
            for _ in range(batch):
                d["k"]
            times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def manager_start(samples, batch):
    ctx = mp.get_context("fork")
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(batch):
            with ctx.Manager() as m:
                m.dict()
        times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def main():
    quick = "--quick" in sys.argv
    samples = 3 if quick else 9
    out = {
        "process_start_join_fork": process_start_join("fork", samples, 20 if quick else 50),
        "process_start_join_spawn": process_start_join("spawn", samples, 2 if quick else 5),
        "value_lock_increment_2proc": locked_increment(samples, 20_000 if quick else 200_000),
        "shm_create_attach_unlink": shm_create_attach_unlink(samples, 200 if quick else 1000),
        "pipe_round_trip": pipe_round_trip(samples, 500 if quick else 5000),
        "pipe_bulk_1mib": pipe_bulk_1mib(samples, 20 if quick else 200),
        "queue_small": queue_small(samples, 20_000 if quick else 200_000),
        "manager_call": manager_call(samples, 500 if quick else 5000),
        "manager_start": manager_start(samples, 5 if quick else 20),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
