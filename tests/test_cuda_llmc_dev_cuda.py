"""benchmarks/llmc_dev_cuda.py on kernel files of its own (llm.c's files are not shipped): it takes a
kernel and the device code it needs from a file written for nvcc, text unchanged, leaves the host code
out, runs the kernel on the CPU backend and checks it against numpy."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from llmc_core.course import REPO_DIR
from llmc_core.cuda import shim as cp

SCRIPT = REPO_DIR / "benchmarks" / "llmc_dev_cuda.py"
_spec = importlib.util.spec_from_file_location("llmc_dev_cuda", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

COMMON = r"""
#include <stdio.h>
#include <cublas_v2.h>
cublasHandle_t handle;
extern int host_only;
__device__ float twice(float x) { return 2.0f * x; }
__device__ float unused_helper(float x) { return no_such_function(x); }   // compiles only if left out
typedef float real;   // the kernel file defines its own
#define WARPS 2U      // and this one too, as a constant
template<class T> struct Pair { T a, b; };
typedef Pair<real> real_pair;   // written for common.h's `real`: left out with it
void host_helper(float** p) { cudaMalloc(p, 4); }
"""

KERNEL1 = r"""__global__ void residual_forward_kernel1(float* out, const float* inp1, const float* inp2, int N) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += blockDim.x * gridDim.x) {
        Pair<float> p = {twice(0.5f * inp1[i]), (float)plus_one(inp2[i])};
        out[i] = p.a + p.b - ONE * WARPS;
    }
}"""

KERNELS = r"""/* a standalone kernel file in nvcc style */
#include <stdio.h>
#include "common.h"
typedef double real;
#define ONE 1.0f
constexpr int WARPS = 1;
int host_counter = 0;

__device__ real plus_one(real x) { return x + 1; }

""" + KERNEL1 + r"""

__global__ void residual_forward_kernel2(float* out, const float* inp1, const float* inp2, int N) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) { out[i] = inp1[i] - inp2[i]; }   // wrong on purpose
}

void residual_forward1(float* out, const float* a, const float* b, int N) {
    residual_forward_kernel1<<<N / 128, 128>>>(out, a, b, N);
}

int main(int argc, char** argv) { printf("%d\n", host_counter); return 0; }
"""


@pytest.fixture
def src(tmp_path):
    (tmp_path / "common.h").write_text(COMMON)
    (tmp_path / "residual_forward.cu").write_text(KERNELS)
    return tmp_path


def test_the_kernel_is_taken_verbatim_with_what_it_needs_and_no_host_code(src):
    text = bench.kernel_source(src / "residual_forward.cu", "residual_forward_kernel1")
    assert KERNEL1 in text
    for needed in ("__device__ float twice", "struct Pair", "typedef double real", "#define ONE 1.0f", "plus_one",
                   "constexpr int WARPS = 1;"):
        assert needed in text
    for host in ("main(", "cublas", "host_counter", "host_helper", "host_only", "residual_forward1(",
                 "unused_helper", "typedef float real", "real_pair", "#define WARPS", "residual_forward_kernel2",
                 "<stdio.h>"):
        assert host not in text


def test_an_extracted_kernel_runs_and_matches_numpy(src):
    text = bench.kernel_source(src / "residual_forward.cu", "residual_forward_kernel1")
    k = cp.RawModule(code=text, name_expressions=["residual_forward_kernel1"]).get_function("residual_forward_kernel1")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    out = cp.zeros(1000, cp.float32)
    k((4,), (128,), (out, cp.asarray(a), cp.asarray(b), np.int32(1000)))
    np.testing.assert_allclose(cp.asnumpy(out), a.astype(np.float64) + b, atol=1e-6, rtol=1e-6)


def test_the_script_prints_the_table_and_fails_on_a_kernel_that_differs(src):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--src", str(src), "--only", "residual"],
                          capture_output=True, text=True, cwd=REPO_DIR, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "| kernel | file | runs unmodified? | max error |"
    assert any(line.startswith("| `residual_forward_kernel1` | residual_forward.cu | yes |") for line in lines)
    assert any(line.startswith("| `residual_forward_kernel2` | residual_forward.cu | no: differs from numpy |")
               for line in lines)
    assert "1 of 2 kernels run unmodified and match numpy (50%)" in proc.stdout


def test_a_missing_kernel_or_header_is_named(src):
    with pytest.raises(ValueError, match="has no __global__ function 'gelu_forward_kernel1'"):
        bench.kernel_source(src / "residual_forward.cu", "gelu_forward_kernel1")
    (src / "common.h").unlink()
    with pytest.raises(FileNotFoundError, match=r'includes "common.h", which is not in'):
        bench.kernel_source(src / "residual_forward.cu", "residual_forward_kernel1")


def test_bfloat16_bits_round_like_torch():
    torch = pytest.importorskip("torch")
    x = np.concatenate([[1.0, 1.00390625, 1.01171875, -2.5, 3.0e38],   # two ties: they go to the even neighbour
                        np.random.default_rng(4).standard_normal(1000) * 10.0 ** np.arange(-20, 20, 0.04)])
    x = x.astype(np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(bench.unbf16(bench.bf16(x)), want)
