"""Every kernel the course ships compiles for a real GPU: NVRTC (what CuPy uses) and nvcc --ptx."""
import shutil

import pytest

from cuda_kernels.helpers import kernel_files, name_expressions
from llmc_core.cuda import emulator, nvrtc_check

KERNELS = kernel_files()


@pytest.fixture(scope="module")
def nvrtc():
    ok, why = nvrtc_check.nvrtc_available()
    if not ok:
        pytest.skip(f"NVRTC cannot be loaded: {why}")
    return why


@pytest.mark.parametrize("path", KERNELS, ids=[p.stem for p in KERNELS])
def test_kernel_compiles_with_nvrtc(nvrtc, path):
    src = path.read_text()
    why = nvrtc_check.missing_headers(src)
    if why:
        pytest.skip(why)
    exprs = name_expressions(src)
    lowered = nvrtc_check.compile_nvrtc(src, exprs)
    assert sorted(lowered) == sorted(exprs)
    assert all(name.startswith("_Z") for name in lowered.values())  # templates are mangled C++ names


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("path", KERNELS, ids=[p.stem for p in KERNELS])
def test_kernel_compiles_with_nvcc(path):
    src = path.read_text()
    report = nvrtc_check.compile_check(src, name_expressions(src), compilers=("nvcc",))
    assert report["nvcc"].startswith("ok")


@pytest.mark.parametrize("snippet,word", [("x[0] = M_PI;", "M_PI"), ("x[0] = INFINITY;", "INFINITY"),
                                          ("x[0] = std::exp(1.0f);", "std"), ("x[0] = (uint32_t)1;", "uint32_t")],
                         ids=["M_PI", "INFINITY", "std", "uint32_t"])
def test_nvrtc_rejects_host_only_names(nvrtc, snippet, word):
    src = f'extern "C" __global__ void k(float* x) {{ {snippet} }}\n'
    with pytest.raises(emulator.CompileError, match=word):
        nvrtc_check.compile_check(src, compilers=("nvrtc",))


def test_compile_check_reports_each_compiler(nvrtc):
    src = 'extern "C" __global__ void k(float* x) { x[threadIdx.x] = expf(x[threadIdx.x]); }\n'
    report = nvrtc_check.compile_check(src, compilers=("nvrtc",))
    assert report["nvrtc"].startswith("ok (")


def test_nvrtc_knows_size_t_without_includes(nvrtc):
    src = 'extern "C" __global__ void k(float* x, size_t n, ptrdiff_t d) { x[0] = (float)(n + d); }\n'
    assert nvrtc_check.compile_check(src, compilers=("nvrtc",))["nvrtc"].startswith("ok")
