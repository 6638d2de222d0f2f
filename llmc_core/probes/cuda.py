"""Probes of lesson 06, CUDA kernels: the programming model, elementwise kernels, reductions.

Every probe launches the learner's kernel through the notebook's launcher on small seeded
float32 inputs, on whichever backend runs (the CPU emulator in CI and grading). Sizes are not
multiples of the block or tile sizes, so a missing bounds check shows; values are far from 0 and 1
(shifted means, scaled logits, nonzero gradient buffers for kernels that add), so a wrong formula
cannot hide. Tolerances allow the few-ulp differences between the emulator and a GPU (FMA,
fast intrinsics, atomic order). Kernels with barriers also run under the emulator's race exposure,
which reorders threads between barriers so a missing __syncthreads() gives wrong numbers.

Performance probes profile one launch of the learner's kernel on the CPU emulator (on any
machine, GPU or not) and judge its counters against limits derived from the kernel's job
(e.g. "reads each input float once, coalesced"). They return only whether each limit holds,
so any kernel within the limits matches the snapshot; a miss names the counter, its value,
the limit and the ratio.
"""
from contextlib import nullcontext

import numpy as np

from llmc_core.cuda import backend_name, cp, profile_launch
from llmc_core.cuda.profile import counter as profile_counter
from llmc_core.exercises import FLOAT32, FLOAT64, probe, raised

# No exercise of this lesson runs another: each launcher launches only its own kernel, and the
# backward probe computes the forward's mean and rstd itself.
USES = {}
# The first hint of a failing check names the concept; the probe's own hint (formula, API) comes with hint=2.
NUDGES = {
    "cuda/occupancy": "Each budget of the SM (warps, blocks, registers, shared memory) allows "
                      "some number of blocks; the smallest wins.",
    "cuda/gelu_forward": "One thread per element: each thread computes its global index, "
                         "and threads past the end do nothing.",
    "cuda/gelu_forward_float4": "One 16-byte float4 load and one float4 store per thread cover 4 "
                                "neighbouring elements.",
    "cuda/gelu_backward": "The chain rule, elementwise: GELU's derivative at x times dout.",
    "cuda/layernorm_forward": "Per row: the mean, the biased variance, then normalise, "
                              "scale and shift every channel.",
    "cuda/layernorm_forward_warp": "A warp shares a row: each lane handles a strided share of "
                                   "the channels, and shuffles combine the lanes' sums.",
    "cuda/layernorm_backward": "Row sums are a warp reduction; the column sums dweight and dbias "
                               "collect every row, so many threads add into one place.",
    "cuda/softmax_forward": "Subtract the row's max before exp, so that exp cannot overflow.",
    "cuda/softmax_online": "Keep a running max and a sum relative to it; when the max grows, "
                           "rescale the sum.",
}
ROWS = {"result['out']": ("row", "channel")}  # (N, C) outputs of the LayerNorm probes
COLUMNS = ("row", "column")  # (N, C) outputs of the softmax probes


def normal(seed, *shape, scale=1.0, shift=0.0):
    """A float32 host array of normal samples."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def dev(a, dtype=np.float32):
    """A contiguous device copy of a host array."""
    return cp.asarray(np.ascontiguousarray(a, dtype=dtype))


def host(a):
    return cp.asnumpy(a).astype(np.float32) if a.dtype == np.float32 else cp.asnumpy(a)


def races_exposed(seed):
    """On the CPU emulator: run threads in a seeded random order between barriers. On a GPU: nothing."""
    if backend_name() == "cpu":
        from llmc_core.cuda import race_exposure
        return race_exposure(seed)
    return nullcontext()


# --- occupancy -----------------------------------------------------------------------------------

WITHIN = "within the limit"


def measures_speed(func):
    """Mark a performance probe: a correct but slow kernel still counts as working for the exercises that use it."""
    func.measures_speed = True
    return func


def counters(source, name, grid, block, args, params, shared_mem=0):
    """The profile of one launch of kernel `name` of `source` on the CPU emulator (whatever the backend),
    its arrays renamed by position to `params`, the pointer parameters as the exercise names them."""
    prof = profile_launch(source, name, grid, block, args, shared_mem=shared_mem)
    prof["arrays"] = dict(zip(params, prof["arrays"].values()))
    return prof


def judged(prof, at_most=None, at_least=None):
    """{counter path: WITHIN, or how far the counter is from its limit}: what a performance probe returns.

    Only whether each limit holds goes into the snapshot, so every kernel within the limits passes. A miss
    reads e.g. "is 147,456, above the limit 6,451 (22.86x)", short enough for check() to show whole
    (the counter's path is its key).
    """
    number = lambda x: f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    result = {}
    for path, limit in (at_most or {}).items():
        value = profile_counter(prof, path)
        ratio = f" ({value / limit:.2f}x)" if limit else ""
        result[path] = WITHIN if value <= limit else f"is {number(value)}, above the limit {number(limit)}{ratio}"
    for path, minimum in (at_least or {}).items():
        value = profile_counter(prof, path)
        if value is None:
            result[path] = f"is undefined (no such accesses), below the minimum {number(minimum)}"
        elif value < minimum:
            ratio = f" ({minimum / value:.2f}x too low)" if value else ""
            result[path] = f"is {number(value)}, below the minimum {number(minimum)}{ratio}"
        else:
            result[path] = WITHIN
    return result


@probe("cuda/occupancy", points=2, **FLOAT64,
       hint="warps per block = ceil(threads / 32); blocks per SM = "
            "min(64 // warps, 32, 65536 // (registers * 32 * warps), shared // shared per "
            "block); occupancy = blocks * warps / 64.")
def occupancy_budgets(nb):
    """occupancy(threads, registers, shared bytes) for (256, 32, 0), (256, 64, 0), (256, 128, 0), (1024, 32, 0),
    (128, 32, 48 KiB), (64, 16, 0), (96, 40, 1000)"""
    configs = [(256, 32, 0), (256, 64, 0), (256, 128, 0), (1024, 32, 0), (128, 32, 48 * 1024), (64, 16, 0),
               (96, 40, 1000)]
    return [nb.occupancy(*c) for c in configs]


@probe("cuda/occupancy", points=1, **FLOAT64,
       hint=("A block of 100 threads still takes 4 whole warps: round up.",))
def partial_warp(nb):
    return [nb.occupancy(100, 32, 0), nb.occupancy(33, 255, 0)]


@probe("cuda/occupancy", points=1,
       hint=("Raise ValueError when a block has more than 1024 threads, "
             "or when one block needs more registers or shared memory than the SM has "
             "(zero blocks fit).",))
def blocks_that_do_not_fit(nb):
    return [raised(nb.occupancy, 2048, 32, 0), raised(nb.occupancy, 1024, 255, 0),
            raised(nb.occupancy, 256, 32, 300 * 1024)]


# --- gelu_forward --------------------------------------------------------------------------------

@probe("cuda/gelu_forward", points=2, **FLOAT32,
       hint="i = blockIdx.x * blockDim.x + threadIdx.x; out[i] = 0.5 x "
            "(1 + tanhf(0.79788456 (x + 0.044715 x^3))).")
def gelu_values(nb):
    return host(nb.gelu_forward(dev(normal(0, 1003, scale=3.0))))


@probe("cuda/gelu_forward", points=1, **FLOAT32,
       hint=("N = 5 is less than one block: threads with i >= N must not touch memory.",))
def gelu_smaller_than_a_block(nb):
    return host(nb.gelu_forward(dev(normal(1, 5, scale=3.0))))


# --- gelu_forward_float4 -------------------------------------------------------------------------

@probe("cuda/gelu_forward_float4", points=2, **FLOAT32,
       hint="Thread k loads reinterpret_cast<const float4*>(inp)[k] and stores 4 results as one "
            "float4.")
def gelu_float4_multiple_of_4(nb):
    return host(nb.gelu_forward_float4(dev(normal(2, 1024, scale=3.0))))


@probe("cuda/gelu_forward_float4", points=1, **FLOAT32,
       hint=("N = 1003 leaves 3 elements after the last whole float4: do them one at a time.",))
def gelu_float4_tail(nb):
    return host(nb.gelu_forward_float4(dev(normal(3, 1003, scale=3.0))))


@probe("cuda/gelu_forward_float4", points=1, **FLOAT32,
       hint=("N = 2: no whole float4 at all; thread 0 does both elements one at a time.",))
def gelu_float4_shorter_than_4(nb):
    return host(nb.gelu_forward_float4(dev(normal(4, 2, scale=3.0))))


@probe("cuda/gelu_forward_float4", points=1,
       hint=("Speed, not correctness: the counter above says how much a warp moves.",
             "A warp should move 512 bytes per load instruction (32 lanes x one float4): "
             "load with reinterpret_cast<const float4*>(inp)[k] and store one float4, "
             "not 4 floats one by one."))
@measures_speed
def gelu_float4_traffic(nb):
    """N = 16384 floats, 4096 threads in blocks of 256; limits: bytes moved <= 1.05 x 8N,
    one load and one store request per 128 floats, >= 90% coalesced"""
    N = 1 << 14
    x = normal(8, N)
    prof = counters(nb.gelu_forward_float4_source(), "gelu_forward_float4", (N // 4 // 256,), (256,),
                    (np.empty_like(x), x, np.int32(N)), ("out", "inp"))
    return judged(prof, at_most={"global.bytes_moved": 1.05 * 2 * 4 * N, "arrays.inp.load_requests": 1.05 * N / 128,
                                 "arrays.out.store_requests": 1.05 * N / 128},
                  at_least={"global.efficiency": 0.9})


# --- gelu_backward -------------------------------------------------------------------------------

@probe("cuda/gelu_backward", points=2, **FLOAT32,
       hint="dinp = (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)) "
            "* dout.")
def gelu_gradient(nb):
    x, dout = normal(5, 777, scale=3.0), normal(6, 777)
    return host(nb.gelu_backward(dev(x), dev(dout)))


# --- layernorm_forward ---------------------------------------------------------------------------

def layernorm_inputs(seed, N, C):
    x = normal(seed, N, C, scale=2.0, shift=3.0)  # mean far from 0, variance far from 1
    return x, normal(seed + 100, C, scale=0.5, shift=1.0), normal(seed + 200, C, scale=0.5)


def layernorm_outputs(fn, x, w, b):
    out, mean, rstd = fn(dev(x), dev(w), dev(b))
    return {"out": host(out), "mean": host(mean), "rstd": host(rstd)}


@probe("cuda/layernorm_forward", points=2, **FLOAT32, layout=ROWS,
       hint="One thread per row: mean, biased variance, rstd = rsqrtf(var + 1e-5), "
            "out = (x - mean) rstd weight + bias; write mean and rstd too.")
def layernorm_thread_per_row(nb):
    return layernorm_outputs(nb.layernorm_forward, *layernorm_inputs(10, 7, 100))


@probe("cuda/layernorm_forward", points=1, **FLOAT32, layout=ROWS,
       hint=("A constant row has variance 0: eps keeps rstd finite and out equals bias.",))
def layernorm_constant_row(nb):
    """x (3, 40) seeded normal(11) * 2 + 3 with row 1 all 7.0; weight, bias (40,)"""
    x, w, b = layernorm_inputs(11, 3, 40)
    x[1] = 7.0
    return layernorm_outputs(nb.layernorm_forward, x, w, b)


# --- layernorm_forward_warp ----------------------------------------------------------------------

@probe("cuda/layernorm_forward_warp", points=2, **FLOAT32, layout=ROWS,
       hint="row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; lane l reads channels l, "
            "l + 32, ...; sum with __shfl_xor_sync.")
def layernorm_warp_per_row(nb):
    return layernorm_outputs(nb.layernorm_forward_warp, *layernorm_inputs(12, 9, 100))


@probe("cuda/layernorm_forward_warp", points=1, **FLOAT32, layout=ROWS,
       hint=("C = 20 is less than a warp: lanes 20-31 hold no channel and must add 0.",))
def layernorm_warp_narrow_rows(nb):
    return layernorm_outputs(nb.layernorm_forward_warp, *layernorm_inputs(13, 5, 20))


@probe("cuda/layernorm_forward_warp", points=1, **FLOAT32,
       layout={"result['out']": ("row", "channel / 4")},
       hint=("C = 1600 (GPT-2 XL): each lane holds 50 channels.",))
def layernorm_warp_wide_rows(nb):
    """x (2, 1600) seeded normal(14) * 2 + 3; weight, bias (1600,); every 4th channel of out compared"""
    out = layernorm_outputs(nb.layernorm_forward_warp, *layernorm_inputs(14, 2, 1600))
    return {"out": out["out"][:, ::4], "mean": out["mean"], "rstd": out["rstd"]}


@probe("cuda/layernorm_forward_warp", points=1,
       hint=("Speed, not correctness: see which array is read too often or uncoalesced.",
             "Lane l reads channels l, l + 32, ... so that a warp reads 32 neighbouring floats "
             "at a time, keeps them in registers (read inp once, not once per pass) and writes "
             "out the same way."))
@measures_speed
def layernorm_warp_traffic(nb):
    """x (64, 768), 16 blocks of 4 warps; limits: inp read once and out written once (sectors <= 1.05 x N C / 8),
    both >= 90% coalesced"""
    N, C = 64, 768
    x, w, b = layernorm_inputs(15, N, C)
    args = (np.empty_like(x), np.empty(N, np.float32), np.empty(N, np.float32), x, w, b, np.int32(N), np.int32(C))
    prof = counters(nb.layernorm_forward_warp_source(), "layernorm_forward_warp", (N // 4,), (128,), args,
                    ("out", "mean", "rstd", "inp", "weight", "bias"))
    sectors = N * C * 4 / 32
    return judged(prof, at_most={"arrays.inp.load_sectors": 1.05 * sectors, "arrays.out.store_sectors": 1.05 * sectors},
                  at_least={"arrays.inp.load_efficiency": 0.9, "arrays.out.store_efficiency": 0.9})


# --- layernorm_backward --------------------------------------------------------------------------

def layernorm_backward_outputs(nb, seed, N, C):
    x, w, b = layernorm_inputs(seed, N, C)
    dout = normal(seed + 1, N, C)
    x_mean = x.mean(axis=1, dtype=np.float64)
    mean = x_mean.astype(np.float32)  # the forward's cache, computed here so this probe needs only the backward
    rstd = (1 / np.sqrt(((x - x_mean[:, None]) ** 2).mean(axis=1) + 1e-5)).astype(np.float32)
    # gradient buffers start nonzero: the kernel must add into them
    dinp, dweight, dbias = dev(normal(seed + 2, N, C)), dev(normal(seed + 3, C)), dev(normal(seed + 4, C))
    nb.layernorm_backward(dinp, dweight, dbias, dev(dout), dev(x), dev(w), dev(mean), dev(rstd))
    return {"dinp": host(dinp), "dweight": host(dweight), "dbias": host(dbias)}


@probe("cuda/layernorm_backward", points=2, **FLOAT32,
       layout={"result['dinp']": ("row", "channel")},
       hint="dinp += rstd (g - mean(g) - n mean(g n)) with g = dout weight, n = (x - mean) rstd; "
            "dweight += sum of dout n, dbias += sum of dout.")
def layernorm_gradients(nb):
    """x (6, 70) seeded normal(20) * 2 + 3, its mean and rstd; dout (6, 70); dinp, dweight, dbias start nonzero"""
    return layernorm_backward_outputs(nb, 20, 6, 70)


@probe("cuda/layernorm_backward", points=1, **FLOAT32,
       layout={"result['dinp']": ("row", "channel")},
       hint=("Several blocks add into dweight and dbias: each block's partial sums go in with "
             "atomicAdd; every thread must reach __syncthreads (no early return).",))
def layernorm_gradients_many_blocks(nb):
    """x (29, 45) seeded normal(21) * 2 + 3, its mean and rstd; dout (29, 45);
    threads in a random order between barriers"""
    with races_exposed(3):
        return layernorm_backward_outputs(nb, 21, 29, 45)


# --- softmax_forward -----------------------------------------------------------------------------

def softmax_input(seed, N, C):
    x = normal(seed, N, C, scale=40.0)  # exp would overflow without subtracting the max
    x[1, C // 2:] = -np.inf  # a masked row, as in causal attention
    return x


@probe("cuda/softmax_forward", points=2, **FLOAT32, layout=COLUMNS,
       hint="Per row: the max, then the sum of expf(x - max), then out = expf(x - max) / sum.")
def softmax_three_pass(nb):
    """x (5, 300) seeded normal(30) * 40, row 1 masked (-inf) from column 150 on"""
    return host(nb.softmax_forward(dev(softmax_input(30, 5, 300))))


# --- softmax_online ------------------------------------------------------------------------------

@probe("cuda/softmax_online", points=2, **FLOAT32, layout=COLUMNS,
       hint="Keep (m, s): for x > m, s = s expf(m - x) + 1 and m = x, else s += expf(x - m); "
            "merge lanes with M = max(m1, m2), s = s1 expf(m1 - M) + s2 expf(m2 - M).")
def softmax_online_values(nb):
    """x (6, 300) seeded normal(31) * 40, row 1 masked (-inf) from column 150 on"""
    return host(nb.softmax_online(dev(softmax_input(31, 6, 300))))


@probe("cuda/softmax_online", points=1, **FLOAT32, layout=COLUMNS,
       hint=("C = 5: lanes 5-31 see no value; starting m at -FLT_MAX (finite) keeps their "
             "merge from producing NaN.",))
def softmax_online_short_rows(nb):
    return host(nb.softmax_online(dev(normal(32, 7, 5, scale=10.0))))


@probe("cuda/softmax_online", points=1,
       hint=("Speed, not correctness: the row is read more often (or less coalesced) than an "
             "online softmax needs.",
             "One pass for the running (max, sum) and one to write: the row is read twice, "
             "not three times, with a warp reading 32 neighbouring floats at a time."))
@measures_speed
def softmax_online_traffic(nb):
    """x (32, 1024), 8 blocks of 4 warps; limits: inp sectors <= 2.1 x N C / 8 (read twice),
    out written once, both >= 90% coalesced"""
    N, C = 32, 1024
    x = normal(33, N, C, scale=4.0)
    prof = counters(nb.softmax_online_source(), "softmax_online", (N // 4,), (128,),
                    (np.empty_like(x), x, np.int32(N), np.int32(C)), ("out", "inp"))
    sectors = N * C * 4 / 32
    return judged(prof, at_most={"arrays.inp.load_sectors": 2.1 * sectors, "arrays.out.store_sectors": 1.05 * sectors},
                  at_least={"arrays.inp.load_efficiency": 0.9, "arrays.out.store_efficiency": 0.9})
