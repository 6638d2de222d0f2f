"""Timing shared by the benchmark scripts (run as `python benchmarks/NAME.py`, so this folder is on sys.path)."""
import time


def best_time(fn, repeats):
    """(the fastest of `repeats` wall-clock runs of fn() in seconds, fn's last result)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result
