"""Python's side of benches/object.rs: repr and pickle of the same messages, per call."""
import pickle
import timeit

CASES = {
    "message": {"id": 7, "name": "worker-1", "args": (1.5, "x", None), "tags": ["a", "b"],
                "blob": bytes(64)},
    "1000 ints": list(range(1000)),
    "1000 strs": ["item-%d" % i for i in range(1000)],
}

for name, v in CASES.items():
    data = pickle.dumps(v, 4)
    for label, fn in (("repr", lambda: repr(v)), ("dumps", lambda: pickle.dumps(v, 4)),
                      ("loads", lambda: pickle.loads(data))):
        n, t = timeit.Timer(fn).autorange()
        best = min(timeit.Timer(fn).repeat(5, n)) / n
        print("%-6s %-10s %9.2f us" % (label, name, best * 1e6))
