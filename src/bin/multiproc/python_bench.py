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


def main():
    quick = "--quick" in sys.argv
    samples = 3 if quick else 9
    out = {
        "process_start_join_fork": process_start_join("fork", samples, 20 if quick else 50),
        "process_start_join_spawn": process_start_join("spawn", samples, 2 if quick else 5),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
