"""The GPU time estimate, on profiles built by hand (plain dicts) and one real profile."""
import shutil

import matplotlib
import numpy as np
import pytest

from cuda_kernels.helpers import kernel_source, name_expressions
from llmc_core.cuda import estimate as est, nvrtc_check, shim as cp

matplotlib.use("Agg")


def profile(bytes_moved=0, blocks=1320, threads=256, shared=0, wavefronts=0, unique_sectors=0):
    return {"kernel": "k", "blocks": blocks, "threads_per_block": threads, "shared_bytes_per_block": shared,
            "global": {"bytes_moved": bytes_moved, "unique_sectors": unique_sectors, "efficiency": 1.0},
            "shared": {"wavefronts": wavefronts, "bank_conflicts": 0}, "barriers": 0}


def test_memory_bound_time_is_bytes_over_bandwidth():
    e = est.estimate(profile(bytes_moved=3.35e9, unique_sectors=3.35e9 / 64), "H100")
    assert e["bound"] == "memory"
    assert e["time_s"] == pytest.approx(1e-3)
    assert e["memory_s_perfect_cache"] == pytest.approx(0.5e-3)


def test_compute_and_shared_memory_bounds():
    e = est.estimate(profile(bytes_moved=1e6), "A100", flops=19.5e12 * 2e-3)
    assert e["bound"] == "compute" and e["time_s"] == pytest.approx(2e-3)
    assert e["arithmetic_intensity"] == pytest.approx(19.5e12 * 2e-3 / 1e6)
    dev = est.DEVICES["RTX 4090"]
    e = est.estimate(profile(bytes_moved=1e3, wavefronts=dev.sms * dev.clock_hz * 1e-3), "RTX 4090")
    assert e["bound"] == "shared memory" and e["time_s"] == pytest.approx(1e-3)


def test_a_small_grid_is_latency_bound_and_stretched():
    e = est.estimate(profile(bytes_moved=3.35e6, blocks=33), "H100")
    assert e["bound"].startswith("latency") and e["time_s"] == pytest.approx(1e-6 * 132 / 33)


def test_occupancy_limits():
    occ = est.occupancy("H100", 256)
    assert (occ["blocks_per_sm"], occ["occupancy"], occ["limited_by"]) == (8, 1.0, "threads")
    occ = est.occupancy("RTX 4090", 1024, shared_bytes_per_block=48 * 1024)
    assert (occ["blocks_per_sm"], occ["warps_per_sm"], occ["max_warps_per_sm"]) == (1, 32, 48)
    occ = est.occupancy("A100", 128, shared_bytes_per_block=40 * 1024)   # 164 KiB / 41 KiB
    assert (occ["blocks_per_sm"], occ["limited_by"]) == (4, "shared memory")
    occ = est.occupancy("A100", 256, registers_per_thread=128)    # 65536 / (128 * 256)
    assert (occ["blocks_per_sm"], occ["limited_by"]) == (2, "registers")
    with pytest.raises(ValueError, match="shared memory per block"):
        est.occupancy("A100", 128, shared_bytes_per_block=200 * 1024)
    with pytest.raises(ValueError, match="unknown GPU 'V100'"):
        est.occupancy("V100", 128)


def test_table_and_roofline_from_a_real_profile():
    src = r'''extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }'''
    n = 4096
    k = cp.RawKernel(src, "axpy")
    prof = k((n // 256,), (256,), (cp.zeros(n, cp.float32), cp.ones(n, cp.float32), np.float32(2), np.int32(n)),
             profile=True)
    assert prof["global"]["bytes_moved"] == 3 * 4 * n
    table = est.render_table([prof], flops=[2 * n])
    assert table.splitlines()[0].startswith("| kernel | global bytes moved") and "| axpy | 49,152 | 100% |" in table
    ax = est.roofline_plot([(prof, 2 * n)], "A100")
    assert len(ax.lines) == 2 and ax.get_xscale() == "log"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH (ptxas reports registers)")
def test_registers_from_ptxas_feed_occupancy():
    src = kernel_source("matmul_tiled.cu")
    regs = nvrtc_check.kernel_registers(src, name_expressions(src))
    assert set(regs) >= set(name_expressions(src))
    assert all(isinstance(r, int) and 1 <= r <= 255 for r in regs.values())
    occ = est.occupancy("H100", 256, 8192, registers_per_thread=regs["matmul_tiled<8>"])
    assert occ["registers"] == "given" and occ["blocks_per_sm"] >= 1
