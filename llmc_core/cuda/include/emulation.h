// CUDA C device API for the CPU emulator: included ahead of a kernel source compiled by g++.
//
// Only what a CUDA kernel sees without any #include under NVRTC is defined here, so code that
// compiles here should compile there (compile_check() confirms it with NVRTC itself).  Host
// headers are not included: M_PI, INFINITY or std:: are no more available than on a GPU.
#pragma once
#define LLMC_CUDA_EMULATOR 1
#define __CUDACC__ 1
#define __CUDACC_RTC__ 1
#define __CUDA_ARCH__ 800

#include "llmc_cuemu_abi.h"

// NVRTC knows these two without any #include (but not uint32_t and friends, nor here).
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
// NVRTC also knows NULL, memcpy, memset and assert() without any #include.  memcpy and memset
// are declared as the C library declares them, so a later #include <string.h> agrees.
#ifndef NULL
#define NULL __null
#endif
#if defined(__GLIBC__) || defined(__linux__)
#define LLMC_LIBC_NOEXCEPT noexcept
#else
#define LLMC_LIBC_NOEXCEPT
#endif
extern "C" void* memcpy(void* dst, const void* src, size_t n) LLMC_LIBC_NOEXCEPT;
extern "C" void* memset(void* dst, int value, size_t n) LLMC_LIBC_NOEXCEPT;
#include "assert.h"

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __restrict__ __restrict
#define __grid_constant__
// Code the emulator adds that a profiled build must not count as the kernel's branches.
#ifdef LLMC_CUEMU_PROFILE
#define LLMC_NO_COVERAGE __attribute__((no_sanitize_coverage))
#else
#define LLMC_NO_COVERAGE
#endif
// Function-scope __shared__ declarations are rewritten by the emulator before compiling; one
// that is left (e.g. at file scope) is not supported and fails with this name in the error.
#define __shared__ __llmc_emulator_supports___shared___only_inside_functions

// ---------------------------------------------------------------- built-in variables
#define threadIdx (cuemu_cur->threadIdx)
#define blockIdx (cuemu_cur->blockIdx)
#define blockDim (cuemu_cur->blockDim)
#define gridDim (cuemu_cur->gridDim)
constexpr int warpSize = 32;

// ---------------------------------------------------------------- vector types
#define LLMC_VEC2(T, N, A) struct alignas(A) N##2 { T x, y; }; \
    inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define LLMC_VEC3(T, N) struct N##3 { T x, y, z; }; \
    inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define LLMC_VEC4(T, N, A) struct alignas(A) N##4 { T x, y, z, w; }; \
    inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
LLMC_VEC2(float, float, 8) LLMC_VEC3(float, float) LLMC_VEC4(float, float, 16)
LLMC_VEC2(double, double, 16) LLMC_VEC3(double, double) LLMC_VEC4(double, double, 16)
LLMC_VEC2(int, int, 8) LLMC_VEC3(int, int) LLMC_VEC4(int, int, 16)
LLMC_VEC2(unsigned int, uint, 8) LLMC_VEC4(unsigned int, uint, 16)
LLMC_VEC2(char, char, 2) LLMC_VEC4(char, char, 4)
LLMC_VEC2(unsigned char, uchar, 2) LLMC_VEC4(unsigned char, uchar, 4)
LLMC_VEC2(short, short, 4) LLMC_VEC4(short, short, 8)
LLMC_VEC2(long long, longlong, 16)
inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return uint3{x, y, z}; }
#undef LLMC_VEC2
#undef LLMC_VEC3
#undef LLMC_VEC4

// ---------------------------------------------------------------- math
// Float and double versions, as CUDA's math library has them (and its float overloads of the
// double names).  __builtin_* keeps host <cmath> (and its macros) out of kernel code.
#define LLMC_MATH1(name) \
    __forceinline__ float name##f(float x) { return __builtin_##name##f(x); } \
    __forceinline__ double name(double x) { return __builtin_##name(x); } \
    __forceinline__ float name(float x) { return __builtin_##name##f(x); }
#define LLMC_MATH2(name) \
    __forceinline__ float name##f(float x, float y) { return __builtin_##name##f(x, y); } \
    __forceinline__ double name(double x, double y) { return __builtin_##name(x, y); } \
    __forceinline__ float name(float x, float y) { return __builtin_##name##f(x, y); }
LLMC_MATH1(exp) LLMC_MATH1(exp2) LLMC_MATH1(expm1) LLMC_MATH1(log) LLMC_MATH1(log2) LLMC_MATH1(log10)
LLMC_MATH1(log1p) LLMC_MATH1(sqrt) LLMC_MATH1(cbrt) LLMC_MATH1(sin) LLMC_MATH1(cos) LLMC_MATH1(tan)
LLMC_MATH1(asin) LLMC_MATH1(acos) LLMC_MATH1(atan) LLMC_MATH1(sinh) LLMC_MATH1(cosh) LLMC_MATH1(tanh)
LLMC_MATH1(erf) LLMC_MATH1(erfc) LLMC_MATH1(fabs) LLMC_MATH1(floor) LLMC_MATH1(ceil) LLMC_MATH1(round)
LLMC_MATH1(trunc) LLMC_MATH1(rint) LLMC_MATH1(lgamma) LLMC_MATH1(tgamma)
LLMC_MATH2(pow) LLMC_MATH2(fmax) LLMC_MATH2(fmin) LLMC_MATH2(fmod) LLMC_MATH2(atan2) LLMC_MATH2(hypot)
LLMC_MATH2(copysign) LLMC_MATH2(fdim)
#undef LLMC_MATH1
#undef LLMC_MATH2
__forceinline__ float fmaf(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
__forceinline__ double fma(double a, double b, double c) { return __builtin_fma(a, b, c); }
__forceinline__ float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
// Mixed argument types promote to double, as with <cmath>'s overloads (and keep such calls unambiguous).
template <class A, class B, class C> __forceinline__ double fma(A a, B b, C c) { return __builtin_fma(a, b, c); }
__forceinline__ float rsqrtf(float x) { return 1.0f / __builtin_sqrtf(x); }
__forceinline__ double rsqrt(double x) { return 1.0 / __builtin_sqrt(x); }
__forceinline__ void sincosf(float x, float* s, float* c) { *s = __builtin_sinf(x); *c = __builtin_cosf(x); }
__forceinline__ float normcdff(float x) { return 0.5f * __builtin_erfcf(-x * 0.70710678118654752f); }
__forceinline__ bool isnan(float x) { return __builtin_isnan(x); }
__forceinline__ bool isnan(double x) { return __builtin_isnan(x); }
__forceinline__ bool isinf(float x) { return __builtin_isinf(x); }
__forceinline__ bool isinf(double x) { return __builtin_isinf(x); }
__forceinline__ bool isfinite(float x) { return __builtin_isfinite(x); }
__forceinline__ bool isfinite(double x) { return __builtin_isfinite(x); }
__forceinline__ int abs(int x) { return x < 0 ? -x : x; }
__forceinline__ long long llabs(long long x) { return x < 0 ? -x : x; }
__forceinline__ float abs(float x) { return __builtin_fabsf(x); }
__forceinline__ double abs(double x) { return __builtin_fabs(x); }
// Fast intrinsics: a GPU computes these with reduced precision; here they are the exact versions.
__forceinline__ float __expf(float x) { return __builtin_expf(x); }
__forceinline__ float __logf(float x) { return __builtin_logf(x); }
__forceinline__ float __log2f(float x) { return __builtin_log2f(x); }
__forceinline__ float __powf(float x, float y) { return __builtin_powf(x, y); }
__forceinline__ float __sinf(float x) { return __builtin_sinf(x); }
__forceinline__ float __cosf(float x) { return __builtin_cosf(x); }
__forceinline__ float __tanf(float x) { return __builtin_tanf(x); }
__forceinline__ float __tanhf(float x) { return __builtin_tanhf(x); }
__forceinline__ float __fdividef(float x, float y) { return x / y; }
__forceinline__ float __frcp_rn(float x) { return 1.0f / x; }
__forceinline__ float __fsqrt_rn(float x) { return __builtin_sqrtf(x); }
__forceinline__ float __frsqrt_rn(float x) { return 1.0f / __builtin_sqrtf(x); }
__forceinline__ float __fadd_rn(float a, float b) { return a + b; }
__forceinline__ float __fsub_rn(float a, float b) { return a - b; }
__forceinline__ float __fmul_rn(float a, float b) { return a * b; }
__forceinline__ float __fdiv_rn(float a, float b) { return a / b; }
__forceinline__ float __fmaf_rn(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
__forceinline__ float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }
__forceinline__ int __float_as_int(float x) { int i; __builtin_memcpy(&i, &x, 4); return i; }
__forceinline__ unsigned int __float_as_uint(float x) { unsigned int i; __builtin_memcpy(&i, &x, 4); return i; }
__forceinline__ float __int_as_float(int i) { float x; __builtin_memcpy(&x, &i, 4); return x; }
__forceinline__ float __uint_as_float(unsigned int i) { float x; __builtin_memcpy(&x, &i, 4); return x; }
__forceinline__ long long __double_as_longlong(double x) { long long i; __builtin_memcpy(&i, &x, 8); return i; }
__forceinline__ double __longlong_as_double(long long i) { double x; __builtin_memcpy(&x, &i, 8); return x; }
__forceinline__ int __float2int_rn(float x) { return (int)__builtin_rintf(x); }
__forceinline__ int __float2int_rz(float x) { return (int)x; }
__forceinline__ int __popc(unsigned int x) { return __builtin_popcount(x); }
__forceinline__ int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
__forceinline__ int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
__forceinline__ int __ffs(int x) { return __builtin_ffs(x); }
__forceinline__ unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}

// min/max: CUDA overloads them for every arithmetic pair; the wider type wins.
template <class A, class B> __forceinline__ auto max(A a, B b) -> decltype(a + b) { return a > b ? a : b; }
template <class A, class B> __forceinline__ auto min(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
__forceinline__ float max(float a, float b) { return __builtin_fmaxf(a, b); }
__forceinline__ float min(float a, float b) { return __builtin_fminf(a, b); }
__forceinline__ unsigned int umin(unsigned int a, unsigned int b) { return a < b ? a : b; }
__forceinline__ unsigned int umax(unsigned int a, unsigned int b) { return a > b ? a : b; }

// ---------------------------------------------------------------- memory access hints
template <class T> __forceinline__ T __ldg(const T* p) { return *p; }
template <class T> __forceinline__ T __ldcg(const T* p) { return *p; }
template <class T> __forceinline__ T __ldca(const T* p) { return *p; }
template <class T> __forceinline__ T __ldcs(const T* p) { return *p; }
template <class T> __forceinline__ T __ldlu(const T* p) { return *p; }
template <class T> __forceinline__ void __stcg(T* p, T v) { *p = v; }
template <class T> __forceinline__ void __stcs(T* p, T v) { *p = v; }
template <class T> __forceinline__ void __stwb(T* p, T v) { *p = v; }
template <class T> __forceinline__ void __stwt(T* p, T v) { *p = v; }
__forceinline__ void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
__forceinline__ void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
__forceinline__ void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---------------------------------------------------------------- atomics
// Blocks run in parallel on several OS threads, so these are real atomic instructions.
// A build for profiling (LLMC_CUEMU_PROFILE) reports each call once as an atomic request.
#ifdef LLMC_CUEMU_PROFILE
#define LLMC_COUNT_ATOMIC(p) cuemu_prof_atomic((void*)(p), sizeof(*(p)))
#else
#define LLMC_COUNT_ATOMIC(p) ((void)0)
#endif
#define LLMC_ATOMIC_INT(T) \
    __forceinline__ T atomicAdd(T* p, T v) { LLMC_COUNT_ATOMIC(p); return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); } \
    __forceinline__ T atomicSub(T* p, T v) { LLMC_COUNT_ATOMIC(p); return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); } \
    __forceinline__ T atomicExch(T* p, T v) { LLMC_COUNT_ATOMIC(p); return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); } \
    __forceinline__ T atomicAnd(T* p, T v) { LLMC_COUNT_ATOMIC(p); return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); } \
    __forceinline__ T atomicOr(T* p, T v) { LLMC_COUNT_ATOMIC(p); return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); } \
    __forceinline__ T atomicXor(T* p, T v) { LLMC_COUNT_ATOMIC(p); return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); } \
    __forceinline__ T atomicCAS(T* p, T expected, T desired) { LLMC_COUNT_ATOMIC(p); \
        __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED); \
        return expected; } \
    __forceinline__ T atomicMax(T* p, T v) { LLMC_COUNT_ATOMIC(p); T old = __atomic_load_n(p, __ATOMIC_RELAXED); \
        while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {} \
        return old; } \
    __forceinline__ T atomicMin(T* p, T v) { LLMC_COUNT_ATOMIC(p); T old = __atomic_load_n(p, __ATOMIC_RELAXED); \
        while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {} \
        return old; }
LLMC_ATOMIC_INT(int)
LLMC_ATOMIC_INT(unsigned int)
LLMC_ATOMIC_INT(unsigned long long)
LLMC_ATOMIC_INT(long long)
#undef LLMC_ATOMIC_INT
#define LLMC_ATOMIC_FLOAT(T, I) \
    __forceinline__ T atomicAdd(T* p, T v) { LLMC_COUNT_ATOMIC(p); \
        I* q = reinterpret_cast<I*>(p); \
        I old = __atomic_load_n(q, __ATOMIC_RELAXED), next; \
        do { T f; __builtin_memcpy(&f, &old, sizeof f); f += v; __builtin_memcpy(&next, &f, sizeof f); } \
        while (!__atomic_compare_exchange_n(q, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)); \
        T result; __builtin_memcpy(&result, &old, sizeof result); return result; } \
    __forceinline__ T atomicExch(T* p, T v) { LLMC_COUNT_ATOMIC(p); \
        I in, out; __builtin_memcpy(&in, &v, sizeof v); \
        out = __atomic_exchange_n(reinterpret_cast<I*>(p), in, __ATOMIC_RELAXED); \
        T result; __builtin_memcpy(&result, &out, sizeof result); return result; }
LLMC_ATOMIC_FLOAT(float, unsigned int)
LLMC_ATOMIC_FLOAT(double, unsigned long long)
#undef LLMC_ATOMIC_FLOAT
__forceinline__ unsigned int atomicInc(unsigned int* p, unsigned int limit) {
    LLMC_COUNT_ATOMIC(p);
    unsigned int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, old >= limit ? 0u : old + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
__forceinline__ unsigned int atomicDec(unsigned int* p, unsigned int limit) {
    LLMC_COUNT_ATOMIC(p);
    unsigned int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, (old == 0 || old > limit) ? limit : old - 1, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}

// ---------------------------------------------------------------- block and warp synchronisation
// __builtin_LINE() as a default argument is the caller's line, so errors can name it.
__forceinline__ void __syncthreads(int line = __builtin_LINE()) { cuemu_syncthreads(line, cuemu::BAR_PLAIN, 0); }
__forceinline__ int __syncthreads_count(int p, int line = __builtin_LINE()) { return cuemu_syncthreads(line, cuemu::BAR_COUNT, p); }
__forceinline__ int __syncthreads_and(int p, int line = __builtin_LINE()) { return cuemu_syncthreads(line, cuemu::BAR_AND, p); }
__forceinline__ int __syncthreads_or(int p, int line = __builtin_LINE()) { return cuemu_syncthreads(line, cuemu::BAR_OR, p); }
__forceinline__ void __syncwarp(unsigned mask = 0xffffffffu, int line = __builtin_LINE()) {
    cuemu_warp_op(cuemu::SYNCWARP, mask, 0, 0, 32, line);
}
__forceinline__ unsigned __ballot_sync(unsigned mask, int p, int line = __builtin_LINE()) {
    return (unsigned)cuemu_warp_op(cuemu::BALLOT, mask, 0, p != 0, 32, line);
}
__forceinline__ int __any_sync(unsigned mask, int p, int line = __builtin_LINE()) {
    return (int)cuemu_warp_op(cuemu::ANY, mask, 0, p != 0, 32, line);
}
__forceinline__ int __all_sync(unsigned mask, int p, int line = __builtin_LINE()) {
    return (int)cuemu_warp_op(cuemu::ALL, mask, 0, p != 0, 32, line);
}

namespace cuemu {
template <class T> __forceinline__ T shuffle(int op, unsigned mask, T var, int arg, int width, int line) {
    static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes per lane");
    unsigned long long bits = 0;
    __builtin_memcpy(&bits, &var, sizeof(T));
    bits = cuemu_warp_op(op, mask, bits, arg, width, line);
    T out;
    __builtin_memcpy(&out, &bits, sizeof(T));
    return out;
}
}  // namespace cuemu
template <class T> __forceinline__ T __shfl_sync(unsigned mask, T var, int src, int width = warpSize, int line = __builtin_LINE()) {
    return cuemu::shuffle(cuemu::SHFL_IDX, mask, var, src, width, line);
}
template <class T> __forceinline__ T __shfl_up_sync(unsigned mask, T var, unsigned d, int width = warpSize, int line = __builtin_LINE()) {
    return cuemu::shuffle(cuemu::SHFL_UP, mask, var, (int)d, width, line);
}
template <class T> __forceinline__ T __shfl_down_sync(unsigned mask, T var, unsigned d, int width = warpSize, int line = __builtin_LINE()) {
    return cuemu::shuffle(cuemu::SHFL_DOWN, mask, var, (int)d, width, line);
}
template <class T> __forceinline__ T __shfl_xor_sync(unsigned mask, T var, int m, int width = warpSize, int line = __builtin_LINE()) {
    return cuemu::shuffle(cuemu::SHFL_XOR, mask, var, m, width, line);
}

// ---------------------------------------------------------------- printf, traps
__attribute__((format(printf, 1, 2))) inline int printf(const char* fmt, ...) {
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    int n = cuemu_vprintf(fmt, ap);
    __builtin_va_end(ap);
    return n;
}
__forceinline__ void __trap(int line = __builtin_LINE()) { cuemu_trap("__trap()", line); }
__forceinline__ void __brkpt(int line = __builtin_LINE()) { cuemu_trap("__brkpt()", line); }

// ---------------------------------------------------------------- launcher support
namespace cuemu {
template <class T> struct remove_ref { typedef T type; };
template <class T> struct remove_ref<T&> { typedef T type; };
template <class T> struct remove_cv { typedef T type; };
template <class T> struct remove_cv<const T> { typedef T type; };
template <class T> struct remove_cv<volatile T> { typedef T type; };
template <class T> struct remove_cv<const volatile T> { typedef T type; };

// Parameter descriptors for Python's argument checks: kind, size, pointee kind, pointee size.
enum Kind { K_OTHER = 0, K_POINTER = 1, K_FLOAT = 2, K_SIGNED = 3, K_UNSIGNED = 4, K_BOOL = 5, K_VOID = 6 };
template <class T> struct kind_of { static constexpr int value = __is_enum(T) ? K_SIGNED : K_OTHER; };
template <> struct kind_of<void> { static constexpr int value = K_VOID; };
template <> struct kind_of<bool> { static constexpr int value = K_BOOL; };
template <> struct kind_of<float> { static constexpr int value = K_FLOAT; };
template <> struct kind_of<double> { static constexpr int value = K_FLOAT; };
template <> struct kind_of<char> { static constexpr int value = K_SIGNED; };
template <> struct kind_of<signed char> { static constexpr int value = K_SIGNED; };
template <> struct kind_of<short> { static constexpr int value = K_SIGNED; };
template <> struct kind_of<int> { static constexpr int value = K_SIGNED; };
template <> struct kind_of<long> { static constexpr int value = K_SIGNED; };
template <> struct kind_of<long long> { static constexpr int value = K_SIGNED; };
template <> struct kind_of<unsigned char> { static constexpr int value = K_UNSIGNED; };
template <> struct kind_of<unsigned short> { static constexpr int value = K_UNSIGNED; };
template <> struct kind_of<unsigned int> { static constexpr int value = K_UNSIGNED; };
template <> struct kind_of<unsigned long> { static constexpr int value = K_UNSIGNED; };
template <> struct kind_of<unsigned long long> { static constexpr int value = K_UNSIGNED; };
template <class T> struct kind_of<T*> { static constexpr int value = K_POINTER; };
template <class T> struct size_of { static constexpr int value = sizeof(T); };
template <> struct size_of<void> { static constexpr int value = 0; };
template <class T> struct pointee { typedef void type; };
template <class T> struct pointee<T*> { typedef typename remove_cv<T>::type type; };

template <class P> __forceinline__ void describe_one(int* out) {
    typedef typename remove_cv<P>::type T;
    typedef typename pointee<T>::type E;
    out[0] = kind_of<T>::value;
    out[1] = sizeof(T);
    out[2] = kind_of<T>::value == K_POINTER ? kind_of<E>::value : 0;
    out[3] = kind_of<T>::value == K_POINTER ? size_of<E>::value : 0;
}
template <class... P> int describe(void (*)(P...), int* out) {
    int i = 0;
    ((describe_one<P>(out + 4 * i++)), ...);
    return (int)sizeof...(P);
}
template <unsigned long... I> struct seq {};
template <unsigned long N, unsigned long... I> struct make_seq : make_seq<N - 1, N - 1, I...> {};
template <unsigned long... I> struct make_seq<0, I...> { typedef seq<I...> type; };
// Unpacks cuLaunchKernel-style arguments (an array of pointers to each value) into a call.
template <class... P, unsigned long... I> __forceinline__ void call(void (*f)(P...), void** a, seq<I...>) {
    f(*static_cast<typename remove_ref<P>::type*>(a[I])...);
}
template <class... P> __forceinline__ void invoke(void (*f)(P...), void** a) {
    call(f, a, typename make_seq<sizeof...(P)>::type());
}
}  // namespace cuemu
