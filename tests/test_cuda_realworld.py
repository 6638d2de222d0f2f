"""Constructs of real-world CUDA (llm.c's dev/cuda style, compiled there by nvcc) on the CPU backend:
128-bit packed loads through device memcpy, assert(), NULL, int64_t/uintptr_t, bf16 intrinsics."""
import sys

import numpy as np
import pytest

from llmc_core.cuda import emulator, shim as cp

PACKED = r"""
// 16 bytes moved as one int4, reinterpreted through memcpy (no aliasing games)
template <class T> struct alignas(16) Packed16 {
    static constexpr int size = 16 / sizeof(T);
    T v[size];
    Packed16() = default;
    __device__ explicit Packed16(int4 bits) { memcpy(v, &bits, sizeof(bits)); }
    __device__ int4 bits() const { int4 b; memcpy(&b, v, sizeof(b)); return b; }
};
template <class T> __device__ Packed16<T> load16(const T* p) { return Packed16<T>(*reinterpret_cast<const int4*>(p)); }
template <class T> __device__ void store16(T* p, Packed16<T> x) { *reinterpret_cast<int4*>(p) = x.bits(); }

extern "C" __global__ void residual_packed(float* out, const float* a, const float* b, int n) {
    int i = (blockIdx.x * blockDim.x + threadIdx.x) * Packed16<float>::size;
    if (i >= n) return;
    Packed16<float> x = load16(a + i), y = load16(b + i), r;
    for (int k = 0; k < Packed16<float>::size; k++) r.v[k] = x.v[k] + y.v[k];
    store16(out + i, r);
}
"""


def test_packed_128_bit_loads_through_memcpy():
    n = 4096
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    out = cp.zeros(n, cp.float32)
    k = cp.RawModule(code=PACKED).get_function("residual_packed")
    prof = k((n // 4 // 128,), (128,), (out, cp.asarray(a), cp.asarray(b), np.int32(n)), profile=True)
    np.testing.assert_array_equal(cp.asnumpy(out), a + b)
    # one 16-byte access per lane: 512 bytes, 16 sectors per warp request, fully used
    for name in ("a", "b"):
        arr = prof["arrays"][name]
        assert (arr["load_requests"], arr["load_sectors_per_request"], arr["efficiency"]) == (n // 128, 16, 1.0)


BF16 = r"""
#include <cuda_bf16.h>
extern "C" __global__ void accumulate_pairs(__nv_bfloat162* acc, __nv_bfloat16* total, const unsigned short* bits) {
    __nv_bfloat16 lo = __ushort_as_bfloat16(bits[0]), hi = __ushort_as_bfloat16(bits[1]);
    atomicAdd(acc + threadIdx.x % 2, __halves2bfloat162(lo, hi));
    atomicAdd(total, __low2bfloat16(__halves2bfloat162(lo, hi)));
}
"""


def bf16_bits(x):
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def test_bf16_bits_pairs_and_atomic_add():
    acc, total = cp.zeros(4, cp.uint16), cp.zeros(1, cp.uint16)
    k = cp.RawModule(code=BF16).get_function("accumulate_pairs")
    k((2,), (64,), (acc, total, cp.asarray(bf16_bits([1.0, 2.0]))))
    got = (cp.asnumpy(acc).astype(np.uint32) << 16).view(np.float32)
    # 128 threads, half on each pair; sums stay exact in bf16 (integers up to 256)
    np.testing.assert_array_equal(got, [64.0, 128.0, 64.0, 128.0])
    assert (cp.asnumpy(total).astype(np.uint32) << 16).view(np.float32)[0] == 128.0


ASSERTS = r"""
#include <assert.h>
extern "C" __global__ void checked(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    assert(i < n);
    x[i] = 2.0f * x[i];
}
"""


def test_device_assert_names_the_thread_and_ndebug_turns_it_off():
    x = cp.ones(64, cp.float32)
    k = cp.RawModule(code=ASSERTS).get_function("checked")
    k((1,), (64,), (x, np.int32(64)))
    assert cp.asnumpy(x).tolist() == [2.0] * 64
    with pytest.raises(emulator.CudaEmulatorError, match=r"assert\(i < n\) failed at line 5 in block \(0,0,0\), "
                                                          r"thread \(60,0,0\)"):
        k((1,), (64,), (x, np.int32(60)))
    off = cp.RawModule(code=ASSERTS.replace("#include <assert.h>", ""), options=("-DNDEBUG",)).get_function("checked")
    off((1,), (32,), (x, np.int32(0)))   # the condition fails everywhere, but is not checked


NULL_AND_INT64 = r"""
#include <cuda_runtime.h>
extern "C" __global__ void add_bias(float* out, const float* bias, int rows, int cols) {
    assert(((uintptr_t)out) % 16 == 0);
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)rows * cols) return;
    out[i] = bias != NULL ? out[i] + bias[i % cols] : out[i];
}
"""


def test_null_pointers_and_fixed_width_integers():
    k = cp.RawModule(code=NULL_AND_INT64).get_function("add_bias")
    out = cp.ones((4, 8), cp.float32)
    k((1,), (64,), (out, None, np.int32(4), np.int32(8)))
    assert (cp.asnumpy(out) == 1).all()
    k((1,), (64,), (out, cp.arange(8, dtype=cp.float32), np.int32(4), np.int32(8)))
    np.testing.assert_array_equal(cp.asnumpy(out), 1 + np.tile(np.arange(8, dtype=np.float32), (4, 1)))


def test_fixed_width_integers_need_an_nvcc_header_as_under_nvrtc():
    with pytest.raises(emulator.CompileError, match="int64_t"):
        cp.RawModule(code=NULL_AND_INT64.replace("#include <cuda_runtime.h>", ""))


MEMSET = r"""
extern "C" __global__ void clear_rows(float* x, int cols, int keep) {
    float local[8];
    memset(local, 0, sizeof(local));
    memset(x + blockIdx.x * cols + keep, 0, (cols - keep) * sizeof(float));
    x[blockIdx.x * cols] += local[threadIdx.x % 8];
}
"""


@pytest.mark.parametrize("profiled", [False, True], ids=["plain", "profiled"])
def test_device_memset_with_a_runtime_size(profiled):
    if profiled and not sys.platform.startswith("linux"):
        pytest.skip("memset calls are counted through GNU ld's --wrap")
    x = cp.ones((3, 16), cp.float32)
    prof = cp.RawModule(code=MEMSET).get_function("clear_rows")((3,), (1,), (x, np.int32(16), np.int32(5)),
                                                                 profile=profiled)
    want = np.ones((3, 16), np.float32)
    want[:, 5:] = 0
    np.testing.assert_array_equal(cp.asnumpy(x), want)
    if profiled:
        # per row: 44 bytes cleared as 16 + 16 + 12 (one request each), then one 4-byte `+=` store
        x_counts = prof["arrays"]["x"]
        assert (x_counts["store_requests"], x_counts["store_bytes"]) == (3 * 4, 3 * (44 + 4))


OFF_BY_ONE = r"""
extern "C" __global__ void scale(float* out, const float* inp, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i > n) return;   // should be >=
    out[i] = 2.0f * inp[i % n];
}
"""


@pytest.mark.parametrize("n", [1000, 1024])   # the array ends inside its last page, or exactly at its end
def test_an_off_by_one_guard_is_reported_with_the_argument(n):
    k = cp.RawModule(code=OFF_BY_ONE).get_function("scale")
    with pytest.raises(emulator.IllegalAddressError, match=r"past the end of argument `out`"):
        k((n // 8 + 1,), (8,), (cp.zeros(n, cp.float32), cp.ones(n, cp.float32), np.int32(n)))


@pytest.mark.parametrize("src, hint", [
    (('extern "C" __global__ void k(unsigned* x) {\n'
      '    unsigned l; asm volatile("mov.u32 %0, %%laneid;" : "=r"(l)); x[0] = l; }'), "inline PTX"),
    ('#include <cuda_fp16.h>\nextern "C" __global__ void k(float* x) { x[0] = 1; }', "no __half")])
def test_what_cannot_run_here_is_named(src, hint):
    with pytest.raises(emulator.CompileError, match=hint):
        cp.RawModule(code=src)


def test_grid_constant_parameters():
    src = 'extern "C" __global__ void k(const __grid_constant__ int n, float* x) { x[threadIdx.x] = n; }'
    x = cp.zeros(4, cp.float32)
    cp.RawModule(code=src).get_function("k")((1,), (4,), (np.int32(3), x))
    assert cp.asnumpy(x).tolist() == [3.0] * 4


NVCC_STYLE = r"""
#include <cuda_runtime.h>
#define GELU_SCALING_FACTOR sqrtf(2.0f / M_PI)
extern "C" __global__ void nvcc_style(float* out, float a, float b, float c) {
    static_assert(sizeof(fma(a, b, c)) == 4 && sizeof(fma(a, 2.0, c)) == 8, "float and mixed fma overloads");
    out[0] = GELU_SCALING_FACTOR;
    out[1] = -INFINITY;
    out[2] = fma(a, b, c);
    out[3] = isnan(NAN) ? 1.0f : 0.0f;
}
"""


def test_cuda_runtime_h_brings_what_nvcc_code_uses():
    """nvcc includes <cuda_runtime.h>, and with it the host's math constants, in every .cu file."""
    out = cp.zeros(4, cp.float32)
    e = np.float32(2.0 ** -13)
    k = cp.RawModule(code=NVCC_STYLE).get_function("nvcc_style")
    k((1,), (1,), (out, np.float32(1) + e, np.float32(1) - e, np.float32(-1)))
    got = cp.asnumpy(out)
    assert got[0] == np.sqrt(np.float32(2 / np.pi)) and got[1] == -np.inf and got[3] == 1.0
    assert got[2] == -(2.0 ** -26)   # fused: (1 + e)(1 - e) - 1 without rounding the product (it would give 0)


PAIR_CAS = r"""
#include <cuda_runtime.h>
#include <cuda_bf16.h>
// each thread adds its pair to acc[0] with a compare-and-swap loop on the 32 bits, then writes x*x - x
extern "C" __global__ void pair_cas_add(__nv_bfloat162* acc, const __nv_bfloat162* add) {
    __nv_bfloat162 mine = add[threadIdx.x];
    uint seen = *reinterpret_cast<volatile uint*>(acc), old, next;
    do {
        __nv_bfloat162 cur;
        memcpy(&cur, &seen, sizeof(cur));
        __nv_bfloat162 sum = cur + mine;
        memcpy(&next, &sum, sizeof(next));
        old = seen;
        seen = atomicCAS(reinterpret_cast<uint*>(acc), old, next);
    } while (seen != old);
    acc[1 + threadIdx.x] = mine * mine - mine;
}
"""


def test_bf16_pair_operators_and_uint_as_nvcc_code_uses_them():
    n = 64
    add = np.stack([np.arange(n) % 4, np.full(n, 2.0)], 1).astype(np.float32)   # (n, 2): small integers, exact in bf16
    acc = cp.zeros(2 * (1 + n), cp.uint16)
    cp.RawModule(code=PAIR_CAS).get_function("pair_cas_add")((1,), (n,), (acc, cp.asarray(bf16_bits(add))))
    got = (cp.asnumpy(acc).astype(np.uint32) << 16).view(np.float32).reshape(1 + n, 2)
    np.testing.assert_array_equal(got[0], add.sum(0))
    np.testing.assert_array_equal(got[1:], add * add - add)
