// The contract between emulated kernel modules and the emulator runtime (runtime.cpp).
// Both sides include this file; it holds only plain structs and extern "C" declarations.
#pragma once

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

namespace cuemu {
// What a CUDA thread can see of itself; one per fiber (or one per OS thread in direct mode).
struct ThreadState {
    uint3 threadIdx;
    uint3 blockIdx;
    dim3 blockDim;
    dim3 gridDim;
    void* block;   // runtime-private
    void* fiber;   // runtime-private; null in direct mode
};

// What cuemu_launch returns; mirrored by ErrorCode in errors.py (a test checks that they agree).
enum Error {
    ERR_OK = 0,
    ERR_DEADLOCK = 1,           // no thread of a block can continue
    ERR_DIVERGENT_BARRIER = 2,  // threads at different __syncthreads(), or lanes at different warp operations
    ERR_ILLEGAL_ADDRESS = 3,    // a fault on memory the kernel does not own
    ERR_TRAP = 4,               // __trap(), a failed assert(), a warp operation used wrongly
    ERR_RESOURCE = 5,           // too much shared memory, no address space for fiber stacks
    ERR_STACK_OVERFLOW = 6,     // a thread's local variables outgrew its stack
};
enum WarpOp { SHFL_IDX = 0, SHFL_UP = 1, SHFL_DOWN = 2, SHFL_XOR = 3, BALLOT = 4, ANY = 5, ALL = 6, SYNCWARP = 7 };
enum BarrierOp { BAR_PLAIN = 0, BAR_COUNT = 1, BAR_AND = 2, BAR_OR = 3 };
}  // namespace cuemu

// The current CUDA thread; __thread (not thread_local) so that access needs no TLS wrapper call.
// On Linux the initial-exec model makes an access two instructions instead of a call to
// __tls_get_addr, which kernel code otherwise makes after every barrier and warp operation.  The
// runtime library is loaded before any kernel module and its few bytes of TLS fit in the static
// TLS that glibc keeps for libraries loaded later (if that is used up, the emulator rebuilds both
// with LLMC_CUEMU_DYNAMIC_TLS).
#if defined(__linux__) && !defined(LLMC_CUEMU_DYNAMIC_TLS)
#define LLMC_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define LLMC_TLS_MODEL
#endif
extern __thread cuemu::ThreadState* cuemu_cur LLMC_TLS_MODEL;

extern "C" {
int cuemu_syncthreads(int line, int op, int pred);
unsigned long long cuemu_warp_op(int op, unsigned mask, unsigned long long value, int arg, int width, int line);
int cuemu_shared_slot(void);
void* cuemu_shared_static(int id, unsigned long size, unsigned long align, int line);
void* cuemu_shared_dynamic(void);
int cuemu_vprintf(const char* fmt, __builtin_va_list ap);
void cuemu_trap(const char* what, int line);
void cuemu_prof_atomic(void* p, unsigned size);  // profiled builds: an atomic request at p
}
