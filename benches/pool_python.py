"""Python's side of benches/pool.rs: multiprocessing.Pool on the same three jobs.

Prints one line per figure: `name seconds`. Run by the bench itself (same run, same load).
"""
import multiprocessing as mp
import sys
import time


def trivial(x):
    return x + 1


def one_ms(x):
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    return x


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    quick = "--quick" in sys.argv
    n = 100_000 if quick else 1_000_000
    with mp.get_context("fork").Pool(2) as p:
        t = best(lambda: p.map(trivial, range(n)), 3)
        print("map_trivial_per_s %.1f" % (n / t))
        t = best(lambda: p.map(one_ms, range(1000)), 1 if quick else 3)
        print("map_1000x1ms_s %.4f" % t)
    for method in ("fork", "spawn"):
        ctx = mp.get_context(method)

        def start_first():
            with ctx.Pool(2) as p:
                p.apply(trivial, (1,))

        print("start_first_result_%s_s %.4f" % (method, best(start_first, 3 if quick else 5)))


if __name__ == "__main__":
    main()
