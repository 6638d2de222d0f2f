"""What a profiled kernel would take on a real GPU: a roofline-style estimate.

    prof = kernel(grid, block, args, profile=True)
    est = estimate(prof, "H100", flops=2 * M * N * K)
    print(render_table([prof], flops=[2 * M * N * K]))
    roofline_plot([(prof, 2 * M * N * K)], "H100")

The model: the kernel takes as long as the slowest of its memory traffic (every sector its warps
request comes from DRAM: no cache), its arithmetic (FLOPs you pass: the counters do not count
them) and its shared-memory wavefronts (one per SM per clock), stretched when the grid has too
few blocks to give every SM one.  Left out: caches (L1/L2 catch re-reads, so the estimate is
pessimistic for kernels that re-read data; `memory_s_perfect_cache` is the other extreme),
instruction latency and issue limits, atomic throughput, tensor cores, launch overhead.  Trust it for which
resource bounds a kernel that fills the GPU, not to the microsecond.  Against an H200
(benchmarks/estimate_vs_gpu.py), it ranked the versions correctly for LayerNorm and softmax. It did not
for GELU, where float4 issues fewer loads, or for matmul, where a grid of a few blocks is latency-bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    name: str
    bandwidth: float          # DRAM bytes/s
    fp32_flops: float         # peak FP32 FLOP/s without tensor cores
    sms: int
    clock_hz: float           # boost clock
    max_threads_per_sm: int
    max_blocks_per_sm: int
    shared_per_sm: int        # bytes of shared memory an SM can give its blocks
    shared_per_block: int     # the most one block may use (dynamic, after opting in)
    registers_per_sm: int = 65536
    reserved_shared_per_block: int = 1024   # kept by the system for each resident block
    source: str = ""


# Bandwidth, FP32 peak and SM count from NVIDIA's data sheets and architecture whitepapers; the
# per-SM limits from the CUDA C++ Programming Guide, "Technical Specifications per Compute
# Capability" (compute capability 9.0, 8.0 and 8.9).
DEVICES = {
    "H100": Device("H100 SXM5 80GB", 3.35e12, 67e12, 132, 67e12 / (132 * 256), 2048, 32, 228 * 1024, 227 * 1024,
                   source="NVIDIA H100 Tensor Core GPU datasheet (SXM: 3.35 TB/s, FP32 67 TFLOPS); "
                          "NVIDIA H100 Tensor Core GPU Architecture whitepaper (132 SMs in H100 SXM5)"),
    "H200": Device("H200 SXM 141GB", 4.8e12, 67e12, 132, 67e12 / (132 * 256), 2048, 32, 228 * 1024, 227 * 1024,
                   source="NVIDIA H200 Tensor Core GPU datasheet (SXM: 4.8 TB/s, FP32 67 TFLOPS); the H100's "
                          "Hopper SM (132 SMs, compute capability 9.0)"),
    "A100": Device("A100 SXM4 80GB", 2.039e12, 19.5e12, 108, 1.41e9, 2048, 32, 164 * 1024, 163 * 1024,
                   source="NVIDIA A100 Tensor Core GPU datasheet (80GB SXM: 2,039 GB/s, FP32 19.5 TFLOPS); "
                          "NVIDIA A100 Tensor Core GPU Architecture whitepaper (108 SMs, 1410 MHz boost)"),
    "RTX 4090": Device("GeForce RTX 4090", 1.008e12, 82.6e12, 128, 2.52e9, 1536, 24, 100 * 1024, 99 * 1024,
                       source="NVIDIA Ada Lovelace GPU Architecture whitepaper, RTX 4090 column "
                              "(1008 GB/s, 82.6 TFLOPS FP32, 128 SMs, 2520 MHz boost)"),
}


def device(name) -> Device:
    if isinstance(name, Device):
        return name
    if name not in DEVICES:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(DEVICES)} (or pass an estimate.Device)")
    return DEVICES[name]


def occupancy(dev, threads_per_block: int, shared_bytes_per_block: int = 0,
              registers_per_thread: int | None = None) -> dict:
    """Resident blocks and warps per SM, and which limit sets them (the CUDA occupancy calculator's
    rules, without register-allocation details beyond 256-register warp granules).  Registers
    per thread come from nvrtc_check.kernel_registers where nvcc is installed."""
    dev = device(dev)
    warps = math.ceil(threads_per_block / 32)
    limits = {"threads": dev.max_threads_per_sm // (warps * 32), "blocks": dev.max_blocks_per_sm}
    if shared_bytes_per_block:
        if shared_bytes_per_block > dev.shared_per_block:
            raise ValueError(f"{shared_bytes_per_block} bytes of shared memory per block: more than the "
                             f"{dev.shared_per_block} a block may use on the {dev.name}")
        limits["shared memory"] = dev.shared_per_sm // (shared_bytes_per_block + dev.reserved_shared_per_block)
    if registers_per_thread:
        per_warp = math.ceil(registers_per_thread * 32 / 256) * 256
        limits["registers"] = dev.registers_per_sm // (per_warp * warps)
    blocks = min(limits.values())
    max_warps = dev.max_threads_per_sm // 32
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * warps, "max_warps_per_sm": max_warps,
            "occupancy": blocks * warps / max_warps, "limited_by": min(limits, key=limits.get),
            "registers": "given" if registers_per_thread else "unknown (pass registers_per_thread=)"}


def estimate(profile: dict, dev="H100", flops: float | None = None, registers_per_thread: int | None = None) -> dict:
    """Estimated time of the profiled launch on `dev`, the bound it hits, and the terms behind it."""
    dev = device(dev)
    g = profile["global"]
    moved = g["bytes_moved"]
    occ = occupancy(dev, profile["threads_per_block"], profile["shared_bytes_per_block"], registers_per_thread)
    if occ["blocks_per_sm"] == 0:
        raise ValueError(f"a block of {profile['threads_per_block']} threads with these resources cannot run on "
                         f"the {dev.name} (limited by {occ['limited_by']})")
    terms = {"memory": moved / dev.bandwidth,
             "compute": (flops or 0) / dev.fp32_flops,
             "shared memory": profile["shared"]["wavefronts"] / (dev.sms * dev.clock_hz)}
    # Blocks are spread over the SMs in waves; a grid smaller than one wave leaves SMs idle.
    per_wave = dev.sms * occ["blocks_per_sm"]
    waves = profile["blocks"] / per_wave
    fill = min(1.0, profile["blocks"] / dev.sms)
    bound = max(terms, key=terms.get)
    time_s = terms[bound] / fill
    if fill < 0.5:   # most SMs idle: the few busy ones wait on latency, not on a shared resource
        bound = f"latency ({profile['blocks']} blocks for {dev.sms} SMs)"
    return {"device": dev.name, "time_s": time_s, "bound": bound,
            "terms_s": terms, "memory_s_perfect_cache": 32 * g["unique_sectors"] / dev.bandwidth / fill,
            "bytes_moved": moved, "flops": flops,
            "arithmetic_intensity": flops / moved if flops and moved else None,
            "waves": waves, "sm_fill": fill, "occupancy": occ}


def _fmt_time(s: float) -> str:
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def render_table(profiles, devices=("H100", "RTX 4090"), flops=None, names=None) -> str:
    """A Markdown table: one row per profiled launch, with its traffic and estimated times."""
    flops = flops or [None] * len(profiles)
    names = names or [p["kernel"] for p in profiles]
    head = ["kernel", "global bytes moved", "coalescing", "bank conflicts", "barriers"]
    head += [f"{d if isinstance(d, str) else d.name} (bound)" for d in devices]
    rows = [head, ["---"] * len(head)]
    for name, prof, f in zip(names, profiles, flops):
        eff = prof["global"]["efficiency"]
        row = [name, f"{prof['global']['bytes_moved']:,}", "–" if eff is None else f"{eff:.0%}",
               f"{prof['shared']['bank_conflicts']:,}", f"{prof['barriers']:,}"]
        for d in devices:
            est = estimate(prof, d, flops=f)
            row.append(f"{_fmt_time(est['time_s'])} ({est['bound']})")
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def roofline_plot(points, dev="H100", ax=None):
    """Plot `dev`'s roofline and each (profile, flops) point at its arithmetic intensity
    (FLOPs per byte moved) and the FLOP rate the estimate gives it.  Returns the axes."""
    import matplotlib.pyplot as plt

    dev = device(dev)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ridge = dev.fp32_flops / dev.bandwidth
    xs = [ridge / 100, ridge, ridge * 100]
    ax.loglog(xs, [min(dev.fp32_flops, dev.bandwidth * x) for x in xs], "k-", label=f"{dev.name} roof")
    for prof, flops in points:
        est = estimate(prof, dev, flops=flops)
        if not est["arithmetic_intensity"]:
            raise ValueError(f"{prof['kernel']}: a roofline point needs flops > 0 and some global traffic")
        label = f"{prof['kernel']} ({est['bound']})"
        ax.loglog([est["arithmetic_intensity"]], [flops / est["time_s"]], "o", label=label)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("FLOP/s (estimated)")
    ax.legend(fontsize="small")
    return ax
