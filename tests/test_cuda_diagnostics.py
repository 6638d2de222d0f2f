"""The emulator's diagnostics: errors a GPU would hide (or hang on) become Python exceptions."""
import subprocess
import sys

import numpy as np
import pytest

from llmc_core.cuda import emulator, shim as cp


def kernel(src, name, **kw):
    return cp.RawModule(code=src, **kw).get_function(name)


SCALE = r"""
extern "C" __global__ void scale(float* out, const float* inp, float s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = s * inp[i];
}
extern "C" __global__ void scale_double(double* out, double s, long long n) {
    long long i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] *= s;
}
"""


# ---------------------------------------------------------------- arguments
def scale_args(**change):
    args = dict(out=cp.zeros(8, cp.float32), inp=cp.ones(8, cp.float32), s=np.float32(2), n=np.int32(8))
    args.update(change)
    return tuple(args.values())


@pytest.mark.parametrize("change,error,words", [
    (dict(s=2.0), TypeError, ["Python float", "8-byte double", "shifted", "numpy.float32"]),
    (dict(s=np.float64(2)), TypeError, ["float64", "numpy.float32"]),
    (dict(n=8), TypeError, ["Python int", "long long", "numpy.int32"]),
    (dict(n=np.int64(8)), TypeError, ["int64", "numpy.int32"]),
    (dict(inp=cp.ones(8, cp.float64)), TypeError, ["float64 array", "reinterpret", "float32"]),
    (dict(inp=cp.ones(8, cp.int32)), TypeError, ["int32 array", "float32"]),
    (dict(inp=cp.ones((8, 2), cp.float32)[:, 0]), ValueError, ["non-contiguous", "ascontiguousarray"]),
    (dict(n=cp.ones(1, cp.int32)), TypeError, ["scalar parameter", "array"]),
    (dict(inp=np.float32(1)), TypeError, ["pointer parameter"]),
], ids=["py-float", "f64-scalar", "py-int", "i64-scalar", "f64-array", "i32-array", "strided", "array-for-int",
        "scalar-for-ptr"])
def test_bad_argument_raises_with_what_the_gpu_would_do(change, error, words):
    k = kernel(SCALE, "scale")
    with pytest.raises(error) as e:
        k((1,), (8,), scale_args(**change))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


@pytest.mark.parametrize("args", [1, 3, 5], ids=["too-few-1", "too-few-3", "too-many"])
def test_wrong_argument_count(args):
    k = kernel(SCALE, "scale")
    full = scale_args() + (np.int32(0),)
    with pytest.raises(TypeError, match=r"takes 4 arguments \(out, inp, s, n\)"):
        k((1,), (8,), full[:args])


def test_python_float_and_int_are_right_for_double_and_long_long():
    k = kernel(SCALE, "scale_double")
    out = cp.asarray(np.arange(5, dtype=np.float64))
    k((1,), (8,), (out, 1.5, 5))
    np.testing.assert_array_equal(cp.asnumpy(out), 1.5 * np.arange(5))


@pytest.mark.parametrize("grid,block,shared,error", [
    ((1,), (1025,), 0, "at most 1024"), ((0,), (32,), 0, "at least 1"), ((1,), (1, 1, 65), 0, "at most 1024"),
    ((1,), (32,), 64 * 1024, "max_dynamic_shared_size_bytes")], ids=["block", "grid0", "blockz", "smem"])
def test_bad_launch_configuration(grid, block, shared, error):
    k = kernel(SCALE, "scale")
    with pytest.raises(ValueError, match=error):
        k(grid, block, scale_args(), shared_mem=shared)


def test_missing_extern_c_and_template_without_name_expression():
    src = ("__global__ void plain(float* x) { x[0] = 1.0f; }\n"
           "template <int N> __global__ void tmpl(float* x) { x[0] = N; }\n")
    mod = cp.RawModule(code=src)
    with pytest.raises(ValueError, match='extern "C"'):
        mod.get_function("plain")
    with pytest.raises(ValueError, match="name_expressions"):
        mod.get_function("tmpl")
    with pytest.raises(ValueError, match="no kernel named 'nope'"):
        mod.get_function("nope")
    ok = cp.RawModule(code=src, name_expressions=["plain", "tmpl<3>"])
    x = cp.zeros(1, cp.float32)
    ok.get_function("tmpl<3>")((1,), (1,), (x,))
    assert x[0] == 3.0


# ---------------------------------------------------------------- compile errors
def test_compile_error_points_at_the_learners_line():
    src = "extern \"C\" __global__ void k(float* x) {\n    int i = threadIdx.x;\n    x[i] = undefined_name;\n}\n"
    with pytest.raises(emulator.CompileError, match=r"kernel\.cu:3:\d+: error: .undefined_name"):
        cp.RawModule(code=src)


@pytest.mark.parametrize("name", ["M_PI", "INFINITY", "FLT_MAX", "(uint32_t)1"])
def test_host_only_names_are_not_available(name):
    """As under NVRTC, which has no host headers (tests/test_cuda_nvrtc.py checks NVRTC itself)."""
    src = f'extern "C" __global__ void k(float* x) {{ x[0] = {name}; }}\n'
    with pytest.raises(emulator.CompileError, match=name.strip("(1)").replace("(", "")):
        cp.RawModule(code=src)


def test_size_t_is_available_as_under_nvrtc():
    src = 'extern "C" __global__ void k(float* x, size_t n, ptrdiff_t d) { x[0] = (float)(n + d); }\n'
    x = cp.zeros(1, cp.float32)
    cp.RawModule(code=src).get_function("k")((1,), (1,), (x, np.uint64(5), np.int64(-2)))
    assert x[0] == 3.0


# ---------------------------------------------------------------- barriers
def test_deadlock_names_blocks_threads_and_lines():
    src = r"""extern "C" __global__ void k(float* x) {
    float v = x[threadIdx.x];
    if (threadIdx.x % 32 < 16) v += __shfl_down_sync(0xffffffff, v, 1);
    __syncthreads();
    x[threadIdx.x] = v;
}"""
    k = kernel(src, "k")
    with pytest.raises(emulator.KernelDeadlockError) as e:
        k((2,), (64,), (cp.zeros(64, cp.float32),))
    msg = str(e.value)
    assert "block (0,0,0)" in msg or "block (1,0,0)" in msg
    assert "wait in __shfl_down_sync (mask 0xffffffff) at line 3" in msg
    assert "wait in __syncthreads at line 4" in msg
    assert "16 threads (16,0,0)..(31,0,0) wait in __syncthreads at line 4" in msg


def test_divergent_syncthreads_raises():
    src = r"""extern "C" __global__ void k(float* x) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
}"""
    with pytest.raises(emulator.DivergentBarrierError, match=r"line 3 .*line 5|line 5 .*line 3"):
        kernel(src, "k")((1,), (32,), (cp.zeros(1, cp.float32),))


def test_threads_that_return_early_count_as_arrived():
    src = r"""extern "C" __global__ void k(float* out, int n) {
    __shared__ float s[64];
    if (threadIdx.x >= n) return;
    s[threadIdx.x] = threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[n - 1 - threadIdx.x];
}"""
    out = cp.zeros(64, cp.float32)
    kernel(src, "k")((1,), (64,), (out, np.int32(40)))
    np.testing.assert_array_equal(cp.asnumpy(out)[:40], np.arange(40)[::-1])


RACY = r"""extern "C" __global__ void shift(float* out, const float* inp) {
    __shared__ float s[128];
    int t = threadIdx.x;
    s[t] = inp[t];
    // a __syncthreads() is missing here: thread t reads what thread t-1 wrote
    out[t] = t > 0 ? s[t - 1] : 0.0f;
}"""


def test_race_exposure_reveals_a_missing_syncthreads():
    k = kernel(RACY, "shift")
    x = np.arange(1, 129, dtype=np.float32)
    want = np.r_[0, x[:-1]]
    out = cp.zeros(128, cp.float32)
    k((1,), (128,), (out, cp.asarray(x)))
    # in thread order, t-1 always ran first: the bug hides, as it may on a GPU
    np.testing.assert_array_equal(cp.asnumpy(out), want)
    with emulator.race_exposure(seed=3):
        k((1,), (128,), (out, cp.asarray(x)))
    assert not np.array_equal(cp.asnumpy(out), want)


def test_race_exposure_keeps_correct_kernels_correct():
    fixed = RACY.replace("// a __syncthreads() is missing here: thread t reads what thread t-1 wrote",
                         "__syncthreads();")
    k = kernel(fixed, "shift")
    x = np.arange(1, 129, dtype=np.float32)
    out = cp.zeros(128, cp.float32)
    for seed in (1, 2, 3):
        with emulator.race_exposure(seed=seed):
            k((1,), (128,), (out, cp.asarray(x)))
        np.testing.assert_array_equal(cp.asnumpy(out), np.r_[0, x[:-1]])


# ---------------------------------------------------------------- memory errors
OOB = r"""extern "C" __global__ void fill(float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 1.0f;
}"""


@pytest.mark.parametrize("size,written", [(1000, 1024), (1000, 5000), (4096, 70000)],
                         ids=["padding", "guard-page", "far"])
def test_out_of_bounds_write_raises_and_python_survives(size, written):
    k = kernel(OOB, "fill")
    out = cp.zeros(size, cp.float32)
    with pytest.raises(emulator.IllegalAddressError, match="out-of-bounds|illegal memory access"):
        k((-(-written // 256),), (256,), (out, np.int32(written)))
    # the process and the emulator still work
    ok = cp.zeros(size, cp.float32)
    k((-(-size // 256),), (256,), (ok, np.int32(size)))
    assert cp.asnumpy(ok).sum() == size


def test_static_shared_memory_over_48k_is_refused():
    src = r"""extern "C" __global__ void k(float* x) {
    __shared__ float big[13000];
    big[threadIdx.x] = 1.0f;
    x[0] = big[0];
}"""
    with pytest.raises(emulator.CudaEmulatorError, match="too much shared data"):
        kernel(src, "k")((1,), (32,), (cp.zeros(1, cp.float32),))


def test_trap_and_stack_overflow_become_errors():
    # a GPU allows up to 512 KiB of local memory per thread; a fiber's stack holds 64 KiB
    src = r"""extern "C" __global__ void trap(float* x) { if (threadIdx.x == 5) __trap(); }
extern "C" __global__ void deep(float* x, int n) {
    volatile float local[40000];
    for (int i = 0; i < n; i++) local[i] = i;
    __syncthreads();
    x[0] = local[n - 1];
}"""
    mod = cp.RawModule(code=src)
    with pytest.raises(emulator.CudaEmulatorError, match=r"__trap\(\) at line 1 .*thread \(5,0,0\)"):
        mod.get_function("trap")((1,), (8,), (cp.zeros(1, cp.float32),))
    with pytest.raises(emulator.CudaEmulatorError, match="stack overflow in block"):
        mod.get_function("deep")((1,), (1,), (cp.zeros(1, cp.float32), np.int32(40000)))


def test_a_frame_bigger_than_the_stack_faults_before_writing_below_it():
    """local[0] sits at the bottom of a 128 KiB frame, below a fiber's 64 KiB stack and its guard page, in the
    next fiber's stack. The frame is probed from the top, so the first thread faults; without probes threads
    0-4 wrote into their neighbours' stacks unnoticed and thread 5 was the first to fault."""
    src = r"""extern "C" __global__ void huge(float* x) {
    volatile float local[32768];
    local[0] = 1.0f;
    __syncthreads();  // a barrier: the threads run on fibers, with 64 KiB stacks
    x[threadIdx.x] = local[0];
}"""
    x = cp.zeros(64, cp.float32)
    with pytest.raises(emulator.CudaEmulatorError, match=r"stack overflow in block \(0,0,0\), thread \(0,0,0\)"):
        cp.RawModule(code=src).get_function("huge")((1,), (64,), (x,))


# ---------------------------------------------------------------- backend choice
def run_python(code, **env):
    import os
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full)


def test_backend_env_override():
    r = run_python("from llmc_core.cuda import backend_name, backend_reason; print(backend_name()); "
                   "print(backend_reason())", LLMC_CUDA_BACKEND="cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["cpu", "LLMC_CUDA_BACKEND=cpu asks for the CPU emulator"]
    r = run_python("import llmc_core.cuda", LLMC_CUDA_BACKEND="metal")
    assert r.returncode != 0 and "LLMC_CUDA_BACKEND='metal'" in r.stderr


def test_forced_cupy_without_gpu_fails_loudly():
    import importlib.util
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here; this checks the message when it is not")
    r = run_python("import llmc_core.cuda", LLMC_CUDA_BACKEND="cupy")
    assert r.returncode != 0 and "LLMC_CUDA_BACKEND=cupy but CuPy is not importable" in r.stderr


# ---------------------------------------------------------------- emulator internals
def test_only_kernels_that_can_reach_a_barrier_get_fibers():
    from llmc_core.cuda import source
    src = r"""
__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}
__device__ float twice(float v) { return 2.0f * v; }
__device__ float via_helper(float v) { return warp_sum(v); }
extern "C" __global__ void plain(float* x) { x[threadIdx.x] = twice(x[threadIdx.x]); }
extern "C" __global__ void indirect(float* x) { x[threadIdx.x] = via_helper(x[threadIdx.x]); }
extern "C" __global__ void direct(float* x) { __syncthreads(); }
// __global__ void commented_out(float* x) { __syncthreads(); }
"""
    kernels = source.parse(src).kernels
    assert {k: v.needs_fibers for k, v in kernels.items()} == {"plain": False, "indirect": True, "direct": True}


def test_race_exposure_on_the_feature_kernels():
    """Correct kernels give the same answer in any thread order (the feature suite's kernels)."""
    from cuda_kernels.helpers import kernel_source
    k = cp.RawModule(code=kernel_source("shared_memory.cu")).get_function("block_sum")
    x = np.random.default_rng(20).standard_normal(3000).astype(np.float32)
    for seed in (5, 6):
        sums, total = cp.zeros(12, cp.float32), cp.zeros(1, cp.float32)
        with emulator.race_exposure(seed=seed):
            k((12,), (256,), (sums, total, cp.asarray(x), np.int32(3000)), shared_mem=1024)
        np.testing.assert_allclose(cp.asnumpy(total)[0], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)


def test_portable_ucontext_fibers_give_the_same_results():
    """The fallback context switch (used where there is no hand-written one) on barriers and shuffles."""
    code = (
        "import numpy as np\n"
        "from cuda_kernels.helpers import kernel_source\n"
        "from llmc_core.cuda import shim as cp\n"
        "k = cp.RawModule(code=kernel_source('warp.cu')).get_function('warp_sum_double')\n"
        "v = np.random.default_rng(21).standard_normal(64)\n"
        "out = cp.zeros(64, cp.float64)\n"
        "k((1,), (64,), (out, cp.asarray(v)))\n"
        "assert np.allclose(cp.asnumpy(out), np.repeat(v.reshape(2, 32).sum(1), 32), rtol=1e-12, atol=1e-12)\n"
        "print('ok')\n")
    import os
    from pathlib import Path
    env = {"LLMC_CUDA_FIBERS": "ucontext", "PYTHONPATH": str(Path(__file__).parent) + os.pathsep +
           os.environ.get("PYTHONPATH", "")}
    r = run_python(code, **env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_aarch64_context_switch_under_qemu(tmp_path):
    """The hand-written aarch64 switch, cross-compiled and run under qemu where both are installed."""
    import shutil
    from pathlib import Path

    from llmc_core.cuda import source
    cxx = shutil.which("aarch64-linux-gnu-g++")
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not (cxx and qemu):
        pytest.skip("needs aarch64-linux-gnu-g++ and qemu-aarch64 "
                    "(apt-get install g++-aarch64-linux-gnu qemu-user-static)")
    here = Path(__file__).parent / "cuda_kernels"
    parsed = source.parse((here / "shared_memory.cu").read_text() + (here / "warp.cu").read_text())
    (tmp_path / "kernels.cpp").write_text(
        parsed.text + '\nextern "C" void t_block_sum(void** a) { cuemu::invoke(&block_sum, a); }\n'
        'extern "C" void t_warp(void** a) { cuemu::invoke(&warp_sum_double, a); }\n')
    inc = str(emulator.INCLUDE_DIR)
    steps = [[cxx, "-std=c++17", "-O2", "-c", f"-I{inc}", str(emulator.RUNTIME_SRC), "-o", "rt.o"],
             [cxx, "-std=c++17", "-O2", "-c", f"-I{inc}", "-include", "emulation.h", "kernels.cpp", "-o", "k.o"],
             [cxx, "-std=c++17", "-O2", "-c", str(here / "fiber_driver.cpp"), "-o", "m.o"],
             [cxx, "-static", "rt.o", "k.o", "m.o", "-o", "t_arm", "-pthread"],
             [qemu, "./t_arm"]]
    for cmd in steps:
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    assert r.stdout.strip().endswith("ALL OK"), r.stdout


def test_shared_declaration_forms():
    """Scalars, 2-D arrays, several declarators, volatile, __align__, extern char reinterpreted as float4."""
    src = r"""
__device__ float helper_sum(const float* v, int n) {
    __shared__ float scratch[64];
    scratch[threadIdx.x] = v[threadIdx.x];
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += scratch[i];
    __syncthreads();
    return s;
}
extern "C" __global__ void forms(float* out, const float* inp) {
    __shared__ float total;
    __shared__ float grid2d[8][8], flat[64];
    volatile __shared__ int counter;
    extern __shared__ __align__(16) char raw[];
    int t = threadIdx.x;
    if (t == 0) { total = 0.0f; counter = 0; }
    grid2d[t / 8][t % 8] = inp[t];
    flat[t] = 2.0f * inp[t];
    reinterpret_cast<float*>(raw)[t] = 3.0f * inp[t];
    __syncthreads();
    atomicAdd(&total, inp[t]);
    atomicAdd((int*)&counter, 1);
    __syncthreads();
    float4 q = reinterpret_cast<float4*>(raw)[t / 4];
    out[5 * t + 0] = grid2d[t % 8][t / 8];
    out[5 * t + 1] = flat[63 - t];
    out[5 * t + 2] = (&q.x)[t % 4];
    out[5 * t + 3] = total - (float)counter;
    out[5 * t + 4] = helper_sum(inp, 64);
}
"""
    x = np.random.default_rng(22).standard_normal(64).astype(np.float32)
    out = cp.zeros(5 * 64, cp.float32)
    cp.RawModule(code=src).get_function("forms")((1,), (64,), (out, cp.asarray(x)), shared_mem=64 * 4)
    got = cp.asnumpy(out).reshape(64, 5)
    t = np.arange(64)
    np.testing.assert_array_equal(got[:, 0], x.reshape(8, 8)[t % 8, t // 8])
    np.testing.assert_array_equal(got[:, 1], 2 * x[63 - t])
    np.testing.assert_array_equal(got[:, 2], 3 * x)
    np.testing.assert_allclose(got[:, 3], x.astype(np.float64).sum() - 64, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[:, 4], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-4)


def test_launch_in_a_forked_child():
    """A grader forks after the parent has launched (so its thread pool exists)."""
    import os
    k = kernel(OOB, "fill")
    out = cp.zeros(4096, cp.float32)
    k((16,), (256,), (out, np.int32(4096)))
    pid = os.fork()
    if pid == 0:
        try:
            child = cp.zeros(4096, cp.float32)
            k((16,), (256,), (child, np.int32(4096)))
            os._exit(0 if cp.asnumpy(child).sum() == 4096 else 1)
        except BaseException:
            os._exit(2)
    import signal
    import time
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the launch in the forked child hung (waiting for the parent's pool threads?)")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_fiber_stacks_under_a_memory_limit():
    """A sandbox's address-space limit gives an error for a big block, not a crash."""
    code = (
        "import resource, re\n"
        "import numpy as np\n"
        "from llmc_core.cuda import shim as cp, emulator\n"
        "k = cp.RawModule(code='extern \"C\" __global__ void k(float* x) { __syncthreads(); x[threadIdx.x] = 1; }')"
        ".get_function('k')\n"
        "x = cp.zeros(1024, cp.float32)\n"
        "k((1,), (32,), (x,))\n"
        "vm = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 40 * 2**20, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    k((1,), (1024,), (x,))\n"
        "    print('no error')\n"
        "except emulator.CudaEmulatorError as e:\n"
        "    print('memory limit' if 'cannot map stacks for 1024 fibers' in str(e) else str(e))\n"
        "k((1,), (32,), (x,))\n"
        "print(int(x.sum()))\n")
    r = run_python(code, LLMC_CUDA_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["memory", "limit", "32"]


POKE = r"""extern "C" __global__ void poke(float* out, int k) { out[k] = 1.0f; }"""


@pytest.mark.parametrize("past_end", [4096, 1_000_000], ids=["next_page", "1MB"])
def test_a_write_up_to_a_mebibyte_past_the_end_is_caught_and_named(past_end):
    """Blocks on other OS threads run on until they see a fault, writing further past the end than the first
    faulting block: the guard must cover that far, or those writes corrupt the memory that follows."""
    out = cp.zeros(1000, cp.float32)
    with pytest.raises(emulator.IllegalAddressError, match=r"past the end of argument `out` \(4000 bytes\)"):
        kernel(POKE, "poke")((1,), (1,), (out, np.int32(1000 + past_end // 4)))


def test_cache_is_reused_across_processes_and_read_only(tmp_path):
    """Built once, loaded by later processes; a grader's sandboxed children can load it read-only."""
    code = f"from llmc_core.cuda import emulator; m = emulator.load_module({OOB!r}); print(m.from_cache)"
    runs = [run_python(code, LLMC_CACHE_DIR=str(tmp_path / "shared")) for _ in range(2)]
    runs.append(run_python(code, LLMC_CACHE_DIR=str(tmp_path / "child"),
                           LLMC_CUDA_READONLY_CACHE=str(tmp_path / "shared" / "cuda")))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert [r.stdout.strip() for r in runs] == ["False", "True", "True"]
    assert not list((tmp_path / "child" / "cuda").glob("*.so"))   # nothing was built for the child


def test_null_pointer_write_names_block_and_thread():
    k = kernel(OOB, "fill")
    with pytest.raises(emulator.IllegalAddressError, match=r"illegal memory access at address 0x0 in block \(0,0,0\), "
                                                           r"thread \(0,0,0\)"):
        k((1,), (32,), (None, np.int32(32)))


def test_unbalanced_braces_give_the_compilers_error():
    src = 'extern "C" __global__ void k(float* x) {\n    if (threadIdx.x < 4) {\n        x[threadIdx.x] = 1.0f;\n}\n'
    with pytest.raises(emulator.CompileError, match=r"kernel\.cu:4:\d+: error: expected .}. at end of input"):
        cp.RawModule(code=src)


def test_lanes_in_different_warp_functions_raise():
    src = r"""extern "C" __global__ void k(unsigned* x) {
    unsigned v = threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_down_sync(0xffffffff, v, 1);
    else v = __ballot_sync(0xffffffff, 1);
    x[threadIdx.x] = v;
}
extern "C" __global__ void ok(unsigned* x) {
    if (threadIdx.x < 16) __syncwarp();
    else __syncwarp();
    x[threadIdx.x] = threadIdx.x;
}"""
    mod = cp.RawModule(code=src)
    with pytest.raises(emulator.DivergentBarrierError,
                       match=r"__shfl_down_sync \(mask 0xffffffff\) at line 3 while thread \(16,0,0\) is in "
                             r"__ballot_sync \(mask 0xffffffff\) at line 4"):
        mod.get_function("k")((1,), (32,), (cp.zeros(32, cp.uint32),))
    x = cp.zeros(32, cp.uint32)
    mod.get_function("ok")((1,), (32,), (x,))   # __syncwarp may be called from different places
    np.testing.assert_array_equal(cp.asnumpy(x), np.arange(32))


def test_each_template_instance_has_its_own_shared_array():
    src = r"""
template <class T> __device__ T* stash(T v) {
    __shared__ T slots[64];   // one array per instance, alive for the whole block
    slots[threadIdx.x] = v;
    return slots;
}
extern "C" __global__ void two_types(double* d, int* i) {
    double* a = stash<double>(0.5 * threadIdx.x);
    int* b = stash<int>((int)threadIdx.x + 1000);
    __syncthreads();
    d[threadIdx.x] = a[63 - threadIdx.x];
    i[threadIdx.x] = b[63 - threadIdx.x];
}"""
    d, i = cp.zeros(64, cp.float64), cp.zeros(64, cp.int32)
    cp.RawModule(code=src).get_function("two_types")((1,), (64,), (d, i))
    np.testing.assert_array_equal(cp.asnumpy(d), 0.5 * np.arange(64)[::-1])
    np.testing.assert_array_equal(cp.asnumpy(i), np.arange(64)[::-1] + 1000)


NO_STATIC_TLS = r'''
import ctypes
real, refused = ctypes.CDLL, []
def cdll(name, *args, **kw):   # glibc's answer when libraries loaded earlier used up its static TLS
    if "libllmc_cuemu" in str(name) and not refused:
        refused.append(name)
        raise OSError(f"{name}: cannot allocate memory in static TLS block")
    return real(name, *args, **kw)
ctypes.CDLL = cdll
from llmc_core.cuda import emulator, shim as cp
src = 'extern "C" __global__ void k(float* x) { __syncthreads(); x[threadIdx.x] = 2 * threadIdx.x; }'
x = cp.zeros(64, cp.float32)
cp.RawModule(code=src).get_function("k")((1,), (64,), (x,))
print(len(refused), emulator._tls_defines, cp.asnumpy(x)[63])
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the initial-exec TLS model is used on Linux only")
def test_without_static_tls_left_the_runtime_uses_the_general_tls_model():
    r = run_python(NO_STATIC_TLS)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "['-DLLMC_CUEMU_DYNAMIC_TLS']", "126.0"]
