"""benchmarks/cuda_kernels.py: without a GPU it skips (never passes); its --smoke run exercises the script on the
emulator."""
import subprocess
import sys

import pytest

from llmc_core.course import REPO_DIR
from llmc_core.cuda import backend_name

SCRIPT = REPO_DIR / "benchmarks" / "cuda_kernels.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO_DIR,
                          timeout=600)


@pytest.mark.skipif(backend_name() == "cupy", reason="a GPU is here: the benchmark measures instead of skipping")
def test_without_a_gpu_it_says_skipped_and_exits_0():
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert "no GPU: skipped" in proc.stdout
    assert "met" not in proc.stdout and "passed" not in proc.stdout.replace("nothing passed", "")


@pytest.mark.skipif(backend_name() == "cupy", reason="--smoke is for machines without a GPU")
def test_smoke_run_checks_every_kernel_against_pytorch_and_judges_no_target():
    proc = run("--smoke", "--reps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smoke run: every kernel matches PyTorch; no target was judged" in proc.stdout, proc.stdout[-3000:]
    assert "WRONG" not in proc.stdout and ": met" not in proc.stdout


ESTIMATES = REPO_DIR / "benchmarks" / "estimate_vs_gpu.py"


def test_estimate_comparison_profiles_every_version_and_measures_nothing_without_a_gpu():
    proc = subprocess.run([sys.executable, str(ESTIMATES), "--smoke"], capture_output=True, text=True, cwd=REPO_DIR,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kernels = [line.split()[0] for line in proc.stdout.splitlines()[2:]]
    assert kernels == ["gelu_forward", "gelu_forward_float4", "layernorm_forward", "layernorm_forward_warp",
                       "softmax_forward", "softmax_online", "matmul_naive", "matmul_tiled", "matmul_blocked"]
    assert "GPU / est" in proc.stdout and "faster" not in proc.stdout  # estimates only: no GPU figure


def test_estimate_device_is_the_gpu_found_or_the_h100():
    sys.path.insert(0, str(ESTIMATES.parent))
    from estimate_vs_gpu import estimate_device
    assert estimate_device("NVIDIA H200") == "H200"
    assert estimate_device("NVIDIA H100 80GB HBM3") == "H100"
    assert estimate_device("NVIDIA GeForce RTX 4090") == "RTX 4090"
    assert estimate_device("NVIDIA L4") == "H100"
