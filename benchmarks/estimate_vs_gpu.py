"""The CPU backend's GPU-time estimate against the same kernels timed on a real GPU.

    python benchmarks/estimate_vs_gpu.py            # on an NVIDIA GPU: profile on the emulator, time on the GPU
    python benchmarks/estimate_vs_gpu.py --smoke    # anywhere: toy sizes, estimates only (tests the script)

llmc_core/cuda/estimate.py turns an emulator profile (bytes moved, shared-memory wavefronts, blocks) into a
roofline time, and says to trust it "for ratios between versions of a kernel and for which resource bounds
it, not to the microsecond". This checks that claim on the versions lessons 06 and 07 teach: GELU plain and
float4, LayerNorm one thread and one warp per row, softmax in three passes and online, matmul naive, tiled
and register-blocked. Per kernel it prints the estimate, the GPU's median time (CUDA events, L2 flushed,
10 runs) and their ratio; per family, whether the estimate orders the versions as the GPU does, and the
speed-up from the first version to the last, estimated and measured.
"""
import argparse
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cuda_kernels.py, beside this file


def sizes(smoke):
    """Big enough that a launch takes tens of microseconds on an H100/H200, small enough to profile in seconds."""
    if smoke:
        return SimpleNamespace(n=4096, N=64, C=96, rows=32, V=512, M=64, K=64, OC=128)
    return SimpleNamespace(n=1 << 24, N=16384, C=768, rows=2048, V=8192, M=512, K=768, OC=768)


def cases(nb, z):
    """(family, kernel, source, grid, block, args, flops) for every version; args are numpy arrays."""
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    i32, cdiv = np.int32, nb.ceil_div
    x = f32(z.n)
    ln = (np.empty((z.N, z.C), np.float32), np.empty(z.N, np.float32), np.empty(z.N, np.float32),
          f32(z.N, z.C), f32(z.C), f32(z.C), i32(z.N), i32(z.C))
    scores = f32(z.rows, z.V) * 4
    a, w, b = f32(z.M, z.K), f32(z.K, z.OC), f32(z.OC)
    mm = (np.empty((z.M, z.OC), np.float32), a, w, b, i32(z.M), i32(z.K), i32(z.OC))
    mm_flops = 2 * z.M * z.K * z.OC
    return [
        ("gelu", "gelu_forward", nb.gelu_forward_source(), (cdiv(z.n, 256),), (256,),
         (np.empty_like(x), x, i32(z.n)), None),
        ("gelu", "gelu_forward_float4", nb.gelu_forward_float4_source(), (cdiv(cdiv(z.n, 4), 256),), (256,),
         (np.empty_like(x), x, i32(z.n)), None),
        ("layernorm", "layernorm_forward", nb.layernorm_forward_source(), (cdiv(z.N, 128),), (128,), ln, None),
        ("layernorm", "layernorm_forward_warp", nb.layernorm_forward_warp_source(), (cdiv(z.N, 4),), (128,), ln,
         None),
        ("softmax", "softmax_forward", nb.softmax_forward_source(), (cdiv(z.rows, 128),), (128,),
         (np.empty_like(scores), scores, i32(z.rows), i32(z.V)), None),
        ("softmax", "softmax_online", nb.softmax_online_source(), (cdiv(z.rows, 4),), (128,),
         (np.empty_like(scores), scores, i32(z.rows), i32(z.V)), None),
        ("matmul", "matmul_naive", nb.matmul_naive_source(), (cdiv(z.OC, 16), cdiv(z.M, 16)), (16, 16), mm,
         mm_flops),
        ("matmul", "matmul_tiled", nb.matmul_tiled_source(), (cdiv(z.OC, 16), cdiv(z.M, 16)), (16, 16), mm,
         mm_flops),
        ("matmul", "matmul_blocked", nb.matmul_blocked_source(), (cdiv(z.OC, 128), cdiv(z.M, 128)), (256,), mm,
         mm_flops),
    ]


def estimate_device(gpu_name):
    """The estimate's device table entry for the GPU found (H100's figures where the GPU is not listed)."""
    from llmc_core.cuda.estimate import DEVICES
    return next((key for key in DEVICES if key.replace(" ", "").lower() in gpu_name.replace(" ", "").lower()),
                "H100")


def gpu_time_ms(nb, source, name, grid, block, args):
    """Median milliseconds of one launch on the GPU, the arrays copied there first."""
    from llmc_core.cuda import cp
    device_args = tuple(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
    kernel = nb.compiled(source, name)
    return nb.time_kernel(lambda: kernel(grid, block, device_args), warmup=2, reps=10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, no GPU timing: tests this script")
    args = parser.parse_args(argv)

    from cuda_kernels import gpu_or_reason, load_solutions
    from llmc_core.cuda.estimate import estimate
    from llmc_core.cuda.probing import profile_launch

    reason = gpu_or_reason()
    if reason is not None and not args.smoke:
        print(f"estimate_vs_gpu: no GPU: skipped ({reason}). Nothing was measured.")
        return 0
    nb = load_solutions()
    gpu = None if args.smoke else nb.device_peaks()["name"]
    dev = "H100" if gpu is None else estimate_device(gpu)
    print(f"estimates for the {dev} (estimate.py's table) against {gpu or 'no GPU (--smoke: estimates only)'}")
    print(f"{'kernel':24} {'bound (estimate)':34} {'estimate us':>11} {'GPU us':>9} {'GPU / est':>9}")
    rows = []
    for family, name, source, grid, block, launch_args, flops in cases(nb, sizes(args.smoke)):
        est = estimate(profile_launch(source, name, grid, block, launch_args), dev, flops=flops)
        measured = None if gpu is None else gpu_time_ms(nb, source, name, grid, block, launch_args) / 1e3
        rows.append((family, name, est["time_s"], measured))
        ratio = "" if measured is None else f"{measured / est['time_s']:9.2f}"
        gpu_us = "" if measured is None else f"{measured * 1e6:9.1f}"
        print(f"{name:24} {str(est['bound']):34} {est['time_s'] * 1e6:11.1f} {gpu_us:>9} {ratio:>9}")
    if gpu is None:
        return 0
    print("\nper family: does the estimate order the versions as the GPU does, and the first-to-last speed-up")
    agree = []
    for family in dict.fromkeys(r[0] for r in rows):
        versions = [r for r in rows if r[0] == family]
        by_est = [r[1] for r in sorted(versions, key=lambda r: r[2])]
        by_gpu = [r[1] for r in sorted(versions, key=lambda r: r[3])]
        agree.append(by_est == by_gpu)
        first, last = versions[0], versions[-1]
        print(f"  {family:10} order {'agrees' if by_est == by_gpu else 'DIFFERS'} (GPU fastest first: "
              f"{', '.join(by_gpu)}); {last[1]} is {first[2] / last[2]:.1f}x faster estimated, "
              f"{first[3] / last[3]:.1f}x measured")
    ratios = [r[3] / r[2] for r in rows]
    print(f"GPU time / estimate: median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}; "
          f"{sum(agree)} of {len(agree)} families ordered as on the GPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
