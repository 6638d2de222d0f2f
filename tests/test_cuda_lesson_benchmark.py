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
