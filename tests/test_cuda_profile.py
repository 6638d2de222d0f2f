"""Performance counters of the CPU emulator, checked against counts worked out by hand."""
import subprocess

import numpy as np
import pytest

from cuda_kernels.helpers import kernel_source, name_expressions
from llmc_core.cuda import emulator, probing, profile, shim as cp

N = 1024   # floats in the copies: 32 warps of 32 lanes


@pytest.fixture(scope="module")
def mod():
    src = kernel_source("profile_kernels.cu")
    return cp.RawModule(code=src, name_expressions=name_expressions(src))


def copy(mod, stride):
    x, y = cp.asarray(np.arange(N, dtype=np.float32)), cp.zeros(N, cp.float32)
    prof = mod.get_function("copy_strided")((N // 256,), (256,), (y, x, np.int32(N), np.int32(stride)), profile=True)
    np.testing.assert_array_equal(cp.asnumpy(y), (np.arange(N) * stride) % N)
    return prof


def test_coalesced_copy_moves_four_sectors_per_warp(mod):
    prof = copy(mod, 1)
    src, dst = prof["arrays"]["in"], prof["arrays"]["out"]
    assert (src["load_requests"], src["load_bytes"], src["load_sectors"], src["load_lines"]) == (32, 4096, 128, 32)
    assert (dst["store_requests"], dst["store_sectors"], dst["store_lines"]) == (32, 128, 32)
    assert src["store_requests"] == dst["load_requests"] == 0
    assert src["efficiency"] == dst["efficiency"] == prof["global"]["efficiency"] == 1.0
    assert prof["global"]["bytes_moved"] == 2 * 4 * N
    assert src["unique_sectors"] == 128
    assert prof["divergent_blocks"] == prof["divergent_branches"] == prof["barriers"] == 0


def test_a_partial_last_warp_is_one_divergent_branch(mod):
    x, y = cp.asarray(np.arange(N, dtype=np.float32)), cp.zeros(N, cp.float32)
    prof = mod.get_function("copy_strided")((N // 256,), (256,), (y, x, np.int32(N - 24), np.int32(1)), profile=True)
    assert prof["divergent_branches"] == 1   # warp 31: 8 lanes copy, 24 do not
    assert prof["arrays"]["in"]["load_requests"] == 32 and prof["arrays"]["in"]["load_bytes"] == 4 * (N - 24)


def test_stride_32_copy_touches_a_sector_per_lane(mod):
    src = copy(mod, 32)["arrays"]["in"]
    # lane l of a warp reads element 32 * l (mod N): 32 different 128-byte lines per request
    assert (src["load_requests"], src["load_sectors"], src["load_lines"]) == (32, 32 * 32, 32 * 32)
    assert src["load_efficiency"] == (32 * 4) / (32 * 32) == 0.125   # per request: 128 useful of 1024 bytes
    assert src["load_sectors_per_request"] == 32
    assert src["unique_sectors"] == 32   # every warp reads the same 32 elements: a cache would catch the rest


def test_float4_copy_is_one_request_of_16_sectors_per_warp(mod):
    x, y = cp.asarray(np.arange(N, dtype=np.float32)), cp.zeros(N, cp.float32)
    prof = mod.get_function("copy_float4")((1,), (256,), (y, x, np.int32(N // 4)), profile=True)
    np.testing.assert_array_equal(cp.asnumpy(y), cp.asnumpy(x))
    src = prof["arrays"]["in"]
    assert (src["load_requests"], src["load_sectors"], src["load_lines"], src["efficiency"]) == (8, 128, 32, 1.0)


@pytest.mark.parametrize("pad, wavefronts, conflicts", [(32, 128 * 1 + 128 * 32, 128 * 31), (33, 256, 0)])
def test_transpose_bank_conflicts_vanish_with_padding(mod, pad, wavefronts, conflicts):
    n = 64   # 2 x 2 blocks of 32 x 32 threads: 128 warps, each stores a tile row and loads a tile column
    a = cp.asarray(np.arange(n * n, dtype=np.float32).reshape(n, n))
    out = cp.zeros((n, n), cp.float32)
    prof = mod.get_function(f"transpose<{pad}>")((2, 2), (32, 32), (out, a, np.int32(n)), profile=True)
    np.testing.assert_array_equal(cp.asnumpy(out), cp.asnumpy(a).T)
    sh = prof["shared"]
    assert (sh["load_requests"], sh["store_requests"], sh["load_bytes"]) == (128, 128, 4 * n * n)
    assert (sh["wavefronts"], sh["bank_conflicts"]) == (wavefronts, conflicts)
    assert prof["barriers"] == 4
    assert prof["divergent_branches"] == prof["divergent_blocks"] == 0
    assert prof["global"]["efficiency"] == 1.0
    assert prof["static_shared_bytes"] == 32 * pad * 4 == prof["shared_bytes_per_block"]


def test_counts_do_not_depend_on_thread_order(mod):
    n = 64
    a, out = cp.asarray(np.ones((n, n), np.float32)), cp.zeros((n, n), cp.float32)
    k = mod.get_function("transpose<32>")
    plain = k((2, 2), (32, 32), (out, a, np.int32(n)), profile=True)
    with emulator.race_exposure(seed=5):
        shuffled = k((2, 2), (32, 32), (out, a, np.int32(n)), profile=True)
    assert shuffled["shared"] == plain["shared"] and shuffled["arrays"] == plain["arrays"]


def test_atomics_on_one_address_serialise(mod):
    counter = cp.zeros(1, cp.int32)
    prof = mod.get_function("count_same")((2,), (64,), (counter,), profile=True)
    assert int(cp.asnumpy(counter)[0]) == 128
    g = prof["arrays"]["counter"]
    assert (g["atomic_requests"], g["atomic_ops"], g["atomic_same_address"]) == (4, 128, 4 * 31)
    assert g["load_requests"] == g["store_requests"] == 0   # the atomic's own read-modify-write is not a load
    counters = cp.zeros(128, cp.int32)
    g = mod.get_function("count_own")((2,), (64,), (counters,), profile=True)["arrays"]["counters"]
    assert (g["atomic_requests"], g["atomic_ops"], g["atomic_same_address"]) == (4, 128, 0)


def test_warp_operations_and_divergence(mod):
    x, y = cp.asarray(np.arange(128, dtype=np.float32)), cp.zeros(4, cp.float32)
    prof = mod.get_function("warp_sum")((2,), (64,), (y, x), profile=True)
    np.testing.assert_array_equal(cp.asnumpy(y), np.arange(128).reshape(4, 32).sum(1))
    assert prof["warp_ops"] == 4 * 5
    assert prof["arrays"]["out"]["store_requests"] == 4
    assert prof["divergent_branches"] == 4   # per warp, only lane 0 stores
    k = mod.get_function("diverge")
    out = cp.zeros(64, cp.float32)
    uniform = k((1,), (64,), (out, np.int32(32), np.int32(10)), profile=True)
    split = k((1,), (64,), (out, np.int32(16), np.int32(10)), profile=True)
    assert uniform["divergent_blocks"] == uniform["divergent_branches"] == 0 and uniform["lane_efficiency"] == 1.0
    # each warp splits once, where half its lanes enter the loop; inside it only those run
    assert split["divergent_branches"] == 2 and split["divergent_blocks"] > 0 and split["lane_efficiency"] < 0.75


def test_a_failed_profiled_launch_leaves_nothing_behind(mod):
    k = mod.get_function("copy_strided")
    n = 64 * N   # enough blocks that every OS thread of the pool runs some
    big_x, big_y = cp.asarray(np.ones(n, dtype=np.float32)), cp.zeros(n, cp.float32)
    for _ in range(3):
        x, y = cp.asarray(np.arange(2 * N, dtype=np.float32)), cp.zeros(N, cp.float32)   # y: exactly one page
        with pytest.raises(emulator.IllegalAddressError):   # thread N loads x[N], then faults storing y[N]
            k((2 * N // 256,), (256,), (y, x, np.int32(2 * N), np.int32(1)), profile=True)
        prof = k((n // 256,), (256,), (big_y, big_x, np.int32(n), np.int32(1)), profile=True)
        assert prof["arrays"]["in"]["load_requests"] == n // 32


def test_counter_paths_name_what_is_missing(mod):
    prof = copy(mod, 1)
    assert profile.counter(prof, "arrays.in.load_sectors") == 128
    with pytest.raises(ValueError, match=r"no counter 'arrays.inp.load_sectors'.*the keys are out, in"):
        profile.counter(prof, "arrays.inp.load_sectors")


def test_profiling_collects_every_launch_and_plain_launches_return_nothing(mod):
    x, y = cp.asarray(np.arange(N, dtype=np.float32)), cp.zeros(N, cp.float32)
    k = mod.get_function("copy_strided")
    assert k((N // 256,), (256,), (y, x, np.int32(N), np.int32(1))) is None
    with profile.profiling() as launches:
        k((N // 256,), (256,), (y, x, np.int32(N), np.int32(1)))
        k((N // 256,), (256,), (y, x, np.int32(N), np.int32(32)))
    assert [p["arrays"]["in"]["load_sectors"] for p in launches] == [128, 1024]
    assert launches[0]["kernel"] == "copy_strided" and launches[0]["block"] == [256, 1, 1]


def test_normal_builds_have_no_counting_code(mod):
    m = emulator.load_module(kernel_source("profile_kernels.cu"), (), ["transpose<32>", "transpose<33>"])
    m.profile_library()
    symbols = subprocess.run(["nm", "-D", str(m.cache_path)], capture_output=True, text=True).stdout
    assert "cuemu_thread_0" in symbols and "__tsan" not in symbols and "__sanitizer" not in symbols


def matmul_profile(kernel, block, grid, n=64):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    out = cp.zeros((n, n), cp.float32)
    prof = kernel(grid, block, (out, cp.asarray(a), cp.asarray(b), np.int32(n), np.int32(n), np.int32(n)), profile=True)
    np.testing.assert_allclose(cp.asnumpy(out), a @ b, rtol=1e-4, atol=1e-4)
    return prof


def operand_limits(n=64, tile=32, slack=1.05):
    """A probe's limits: a tile x tile matmul reads each of A and B n / tile times, so each moves
    at most n^3 * 4 / tile bytes (n^3 / tile / 8 sectors); a padded layout has no bank conflicts."""
    sectors = slack * n ** 3 / tile / 8
    return {"arrays.a.load_sectors": sectors, "arrays.b.load_sectors": sectors, "shared.bank_conflicts": 0}


def test_naive_matmul_fails_a_traffic_threshold_the_tiled_one_passes(mod):
    tiled_src = kernel_source("matmul_tiled.cu")
    tiled = cp.RawModule(code=tiled_src, name_expressions=["matmul_tiled<4>"]).get_function("matmul_tiled<4>")
    naive = matmul_profile(mod.get_function("matmul_naive"), (32, 8), (2, 8))
    good = matmul_profile(tiled, (32, 8), (2, 2))
    assert profile.missed(good, operand_limits()) == []
    feedback = profile.missed(naive, operand_limits())
    assert len(feedback) == 2   # which counters missed, and by how much
    assert feedback[0] == "matmul_naive: arrays.a.load_sectors is 8,192, above the limit 1,075.2 (7.62x)"
    assert feedback[1].startswith("matmul_naive: arrays.b.load_sectors is 32,768") and "(30.48x)" in feedback[1]
    # by hand: naive A is a broadcast (1 sector per request), B coalesced (4 per request)
    assert naive["arrays"]["a"]["load_sectors"] == 64 * 64 * 64 // 32
    assert naive["arrays"]["b"]["load_sectors"] == 4 * 64 * 64 * 64 // 32
    assert good["arrays"]["a"]["load_sectors"] == good["arrays"]["b"]["load_sectors"] == 64 * 64 * 2 // 8
    assert good["shared"]["bank_conflicts"] == 0


GLOBALS_AND_DYNAMIC = r"""
__constant__ float scale[4];
__device__ int finished;
extern "C" __global__ void block_sum(float* out, const float* in) {
    extern __shared__ float buf[];
    buf[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x] * scale[threadIdx.x % 4];
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) { out[blockIdx.x] = buf[0]; atomicAdd(&finished, 1); }
}
"""


def test_module_globals_and_dynamic_shared_memory_are_counted():
    mod = cp.RawModule(code=GLOBALS_AND_DYNAMIC)
    cp.ndarray((4,), cp.float32, mod.get_global("scale"))[...] = np.float32([1, 2, 3, 4])
    x, out = cp.ones(64 * 2, cp.float32), cp.zeros(2, cp.float32)
    prof = mod.get_function("block_sum")((2,), (64,), (out, x), shared_mem=64 * 4, profile=True)
    assert cp.asnumpy(out).tolist() == [160.0, 160.0]
    assert cp.ndarray((1,), cp.int32, mod.get_global("finished"))[0] == 2   # the profiled build wrote it back
    assert prof["arrays"]["finished"]["atomic_ops"] == 2
    # each warp reads the 4 constants once: one sector per request
    assert (prof["arrays"]["scale"]["load_requests"], prof["arrays"]["scale"]["load_sectors"]) == (4, 4)
    # per block: 2 warps store, then 6 halving steps (32, 16, ..., 1 active lanes, all in warp 0: one request each)
    sh = prof["shared"]
    assert sh["store_requests"] == 2 * (2 + 6) and sh["bank_conflicts"] == 0
    assert prof["barriers"] == 2 * 7 and prof["shared_bytes_per_block"] == 256 and prof["static_shared_bytes"] == 0


def test_profile_launch_takes_host_arrays():
    src = kernel_source("profile_kernels.cu")
    x = np.arange(N, dtype=np.float32)
    prof = probing.profile_launch(src, "copy_strided", (N // 256,), (256,),
                                  (np.zeros(N, np.float32), x, np.int32(N), np.int32(32)),
                                  name_expressions=name_expressions(src))
    assert prof["arrays"]["in"]["load_sectors"] == 1024


def test_warp_per_row_layernorm_counts_and_results_match_a_plain_launch():
    k = cp.RawModule(code=kernel_source("layernorm_warp.cu")).get_function("layernorm_forward")
    rows, C = 8, 128   # 4 blocks of 2 warps, one warp per row
    rng = np.random.default_rng(0)
    x, w, b = (cp.asarray(rng.standard_normal(shape).astype(np.float32)) for shape in ((rows, C), C, C))
    outs = []
    for profiled in (False, True):
        out, mean, rstd = cp.zeros((rows, C), cp.float32), cp.zeros(rows, cp.float32), cp.zeros(rows, cp.float32)
        prof = k((4,), (64,), (out, mean, rstd, x, w, b, np.int32(rows), np.int32(C)), profile=profiled)
        outs.append(cp.asnumpy(out))
    np.testing.assert_array_equal(outs[1], outs[0])   # counting changes nothing (rtol=0)
    # by hand, per warp: 2 reductions of 5 shuffles; x read in 3 passes of C/32 coalesced requests;
    # weight, bias and out once; lane 0 alone stores mean and rstd (the one divergent branch)
    assert prof["warp_ops"] == 8 * 10 and prof["divergent_branches"] == 8
    counts = {n: (a["load_requests"], a["load_sectors"], a["store_requests"], a["store_sectors"])
              for n, a in prof["arrays"].items()}
    assert counts == {"out": (0, 0, 32, 128), "mean": (0, 0, 8, 8), "rstd": (0, 0, 8, 8), "inp": (96, 384, 0, 0),
                      "weight": (32, 128, 0, 0), "bias": (32, 128, 0, 0)}
