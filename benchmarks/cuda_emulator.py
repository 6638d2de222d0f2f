"""CPU CUDA emulator speed: barriers, a warp-per-row layernorm, a tiled matmul, compile and load.

    python benchmarks/cuda_emulator.py

Each kernel is checked against numpy in the same run, and numpy's time is the named peer for
the ratios.  Targets (2 cores): barrier <= 50 ns per thread, layernorm (B*T=64, C=768) <= 2 ms,
matmul 512^3 <= 150 ms, cold compile <= 1 s, warm load <= 20 ms; performance counters cost nothing
when off (a plain launch runs a build without counting code) and are timed when on.
Kernel timings print wall time (best of --repeat) and the CPU time of all threads for that
run: on a machine shared with other work, CPU time / threads estimates the wall time on an idle one.
"""
import argparse
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmc_core.cuda import emulator, shim as cp  # noqa: E402

KERNELS = ROOT / "tests" / "cuda_kernels"

BARRIERS = r"""
extern "C" __global__ void barriers(float* out, int rounds) {
    __shared__ float s[1024];
    float v = threadIdx.x;
    for (int r = 0; r < rounds; r++) {
        s[threadIdx.x] = v;
        __syncthreads();
        v += s[(threadIdx.x + 1) % blockDim.x];
        __syncthreads();
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}
"""


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best_of(fn, repeat):
    """(wall seconds, CPU seconds of all threads) of the fastest of `repeat` runs."""
    times = []
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0, cpu_seconds() - c0))
    return min(times)


def bench_barrier(repeat):
    k = cp.RawModule(code=BARRIERS).get_function("barriers")
    rows = []
    for threads in (128, 1024):
        rounds = 200
        out = cp.zeros(threads, cp.float32)
        k((1,), (threads,), (out, np.int32(rounds)))
        t, c = best_of(lambda: k((1,), (threads,), (out, np.int32(rounds))), repeat)
        rows.append((threads, t / (2 * rounds * threads) * 1e9, c / (2 * rounds * threads) * 1e9))
    return rows


def layernorm_numpy(x, w, b):
    m = x.mean(1, keepdims=True)
    s = 1 / np.sqrt(((x - m) ** 2).mean(1, keepdims=True) + 1e-5)
    return (x - m) * s * w + b


def bench_layernorm(repeat):
    k = cp.RawModule(code=(KERNELS / "layernorm_warp.cu").read_text()).get_function("layernorm_forward")
    N, C, threads = 64, 768, 256
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C)).astype(np.float32)
    w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dx, dw, db = cp.asarray(x), cp.asarray(w), cp.asarray(b)
    out, mean, rstd = cp.zeros((N, C), cp.float32), cp.zeros(N, cp.float32), cp.zeros(N, cp.float32)
    args = (out, mean, rstd, dx, dw, db, np.int32(N), np.int32(C))
    grid = (N // (threads // 32),)
    k(grid, (threads,), args)
    err = np.abs(cp.asnumpy(out) - layernorm_numpy(x.astype(np.float64), w, b)).max()
    t = best_of(lambda: k(grid, (threads,), args), repeat)
    t_np = best_of(lambda: layernorm_numpy(x, w, b), repeat)[0]
    k(grid, (threads,), args, profile=True)   # builds the counting version once
    t_prof = best_of(lambda: k(grid, (threads,), args, profile=True), repeat)
    return t, t_np, err, t_prof


def bench_matmul(repeat):
    src = (KERNELS / "matmul_tiled.cu").read_text()
    mod = cp.RawModule(code=src, name_expressions=["matmul_tiled<1>", "matmul_tiled<4>", "matmul_tiled<8>"])
    M = N = K = 512
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
    da, db, out = cp.asarray(a), cp.asarray(b), cp.zeros((M, N), cp.float32)
    ref = a.astype(np.float64) @ b
    t_np = best_of(lambda: a @ b, repeat * 3)[0]
    rows = []
    for r in (1, 4, 8):
        k = mod.get_function(f"matmul_tiled<{r}>")
        args = (out, da, db, np.int32(M), np.int32(N), np.int32(K))
        k((N // 32, M // 32), (32, 32 // r), args)
        err = np.abs(cp.asnumpy(out) - ref).max()
        rows.append((r, best_of(lambda: k((N // 32, M // 32), (32, 32 // r), args), repeat), err))
    return rows, t_np


def bench_compile():
    emulator.runtime_library()
    nonce = uuid.uuid4().hex
    src = f"// {nonce}\n" + (KERNELS / "layernorm_warp.cu").read_text()
    t0 = time.perf_counter()
    mod = emulator.load_module(src)
    cold = time.perf_counter() - t0
    assert not mod.from_cache
    probe = ("import time, sys; from llmc_core.cuda import emulator; t0 = time.perf_counter(); "
             "emulator.runtime_library(); t1 = time.perf_counter(); "
             "m = emulator.load_module(sys.stdin.read()); t2 = time.perf_counter(); "
             "assert m.from_cache; print(t1 - t0, t2 - t1)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-c", probe], input=src, capture_output=True, text=True, env=env,
                           check=True).stdout.split() for _ in range(3)]
    return cold, min(float(r[0]) for r in runs), min(float(r[1]) for r in runs)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is reported")
    args = p.parse_args()
    workers = os.environ.get("LLMC_CUDA_THREADS") or os.cpu_count()
    print(f"CPU CUDA emulator, {workers} OS threads for blocks, {os.cpu_count()} cores visible, "
          f"load average {os.getloadavg()[0]:.2f}")

    cold, runtime_load, warm = bench_compile()
    print(f"compile, cold (layernorm module, g++ -O3): {cold * 1e3:8.1f} ms   target <= 1000 ms")
    print(f"load, warm (cached .so, fresh process x3):   {warm * 1e3:8.1f} ms   target <= 20 ms"
          f"   (+ {runtime_load * 1e3:.1f} ms to load the runtime, once per process)")

    for threads, ns, cpu_ns in bench_barrier(args.repeat):
        print(f"barrier round trip, block of {threads:4d}:       {ns:8.1f} ns/thread   target <= 50 ns   "
              f"(cpu {cpu_ns:.1f} ns)")

    (t, c), t_np, err, (tp, cp_) = bench_layernorm(args.repeat)
    print(f"layernorm fwd, warp per row, (64, 768):      {t * 1e3:8.2f} ms   target <= 2 ms     "
          f"(cpu {c * 1e3:.2f} ms); numpy {t_np * 1e3:.2f} ms, ratio {t / t_np:.1f}x; max |err| {err:.1e}")
    print(f"  the same with counters on (profile=True):  {tp * 1e3:8.2f} ms   (cpu {cp_ * 1e3:.2f} ms), "
          f"{cp_ / c:.0f}x the plain launch's CPU time")

    rows, t_np = bench_matmul(args.repeat)
    for r, (t, c), err in rows:
        print(f"matmul 512^3, 32x32 tiles, {r} rows/thread:   {t * 1e3:8.1f} ms   target <= 150 ms   "
              f"(cpu {c * 1e3:.0f} ms); numpy {t_np * 1e3:.2f} ms, ratio {t / t_np:.0f}x; max |err| {err:.1e}")


if __name__ == "__main__":
    main()
