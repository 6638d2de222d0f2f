// The CPU emulator's runtime: runs a CUDA grid on the host.
//
// Blocks are spread over a small pool of OS threads.  Inside a block every CUDA thread is a
// fiber (a small stack plus saved registers); fibers switch cooperatively, only at
// __syncthreads and warp operations, so barriers and shuffles behave as on a GPU.  Kernels
// without any synchronisation run in "direct" mode: a plain loop over the block's threads.
//
// Built once per machine into a shared library that Python loads with RTLD_GLOBAL; kernel
// modules compiled against include/emulation.h call into it.
#include "llmc_cuemu_abi.h"

#include <atomic>
#include <condition_variable>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(LLMC_CUEMU_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define LLMC_CUEMU_UCONTEXT 1
#endif
#ifdef LLMC_CUEMU_UCONTEXT
#include <ucontext.h>
#endif

__thread cuemu::ThreadState* cuemu_cur LLMC_TLS_MODEL = nullptr;

namespace {

// ---------------------------------------------------------------- context switch
#ifndef LLMC_CUEMU_UCONTEXT
extern "C" void cuemu_switch(void** save_sp, void* new_sp);
// Symbol spelling and directives differ between ELF (Linux) and Mach-O (macOS).
#if defined(__APPLE__)
#define LLMC_ASM_HEAD(type) ".text\n.globl _cuemu_switch\n.private_extern _cuemu_switch\n.p2align 4\n_cuemu_switch:\n"
#define LLMC_ASM_TAIL ""
#else
#define LLMC_ASM_HEAD(type) ".text\n.globl cuemu_switch\n.hidden cuemu_switch\n.type cuemu_switch," type "\n.p2align 4\ncuemu_switch:\n"
#define LLMC_ASM_TAIL ".size cuemu_switch,.-cuemu_switch\n"
#endif
#if defined(__x86_64__)
// Saves the System V callee-saved registers on the old stack, swaps stack pointers,
// restores them from the new stack.  MXCSR and the x87 control word are deliberately not
// saved: kernels do not change them, and saving them costs about 40% of a switch.
asm(LLMC_ASM_HEAD("@function")
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    LLMC_ASM_TAIL);
#elif defined(__aarch64__)
// AAPCS64 callee-saved: x19-x29, the link register x30, and the low halves d8-d15.
asm(LLMC_ASM_HEAD("%function")
    "    sub sp, sp, #160\n"
    "    stp x19, x20, [sp, #0]\n"
    "    stp x21, x22, [sp, #16]\n"
    "    stp x23, x24, [sp, #32]\n"
    "    stp x25, x26, [sp, #48]\n"
    "    stp x27, x28, [sp, #64]\n"
    "    stp x29, x30, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    mov x9, sp\n"
    "    str x9, [x0]\n"
    "    mov sp, x1\n"
    "    ldp x19, x20, [sp, #0]\n"
    "    ldp x21, x22, [sp, #16]\n"
    "    ldp x23, x24, [sp, #32]\n"
    "    ldp x25, x26, [sp, #48]\n"
    "    ldp x27, x28, [sp, #64]\n"
    "    ldp x29, x30, [sp, #80]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    add sp, sp, #160\n"
    "    ret\n"
    LLMC_ASM_TAIL);
#endif
#endif

constexpr size_t kStackSize = 64 * 1024;
// Stack tops are staggered ("coloured") so that the hot frames of 1024 fibers do not all land
// in the same cache sets (one measurement: 138 -> 102 ns per thread-barrier at 1024 threads).
constexpr size_t kColorSpan = 32 * 1024;
inline size_t stack_color(int i) { return size_t(i % 64) * 64 + size_t(i / 64 % 8) * 4096; }
constexpr int kMaxThreads = 1024;

enum FiberState { READY, WAIT_BAR, WAIT_WARP, DONE };

struct Block;

struct Fiber {
    cuemu::ThreadState ts;   // first member: cuemu_cur points here
    int linear = 0;          // threadIdx.x + threadIdx.y * bx + threadIdx.z * bx * by
    int state = READY;
    unsigned wait_gen = 0;
    int wait_line = 0;
    // the pending warp operation
    int warp_op = 0;
    unsigned warp_mask = 0;
    unsigned long long warp_value = 0;
    int warp_src = 0;          // source lane (shuffles) or predicate (votes)
    bool warp_done = false;
    unsigned long long warp_result = 0;
    char* stack_lo = nullptr;  // usable stack [stack_lo, stack_lo + kStackSize); guard page below
    void* sp = nullptr;
#ifdef LLMC_CUEMU_UCONTEXT
    ucontext_t uc;
#endif
};

struct Warp {
    unsigned live = 0;     // lanes that exist and have not exited
    unsigned arrived = 0;  // lanes waiting in a warp operation
};

struct Launch {
    void (*fn)(void**);
    void** args;
    unsigned grid[3], block[3];
    unsigned long shmem, static_limit;
    int fibers;
    unsigned long long race_seed;
    int profile;
    const unsigned long long* ranges;  // (start, bytes) of each array argument, for the profiler
    int nranges;
    unsigned long long* profile_out;   // where the counts go (cuemu_profile_fields says the layout)
    unsigned long long nblocks;
    std::atomic<unsigned long long> next_block{0};
    std::atomic<bool> abort{false};
    std::mutex err_mutex;
    int err_code = 0;
    std::string err;
    void fail(int code, const std::string& msg) {
        std::lock_guard<std::mutex> g(err_mutex);
        if (err_code == 0) { err_code = code; err = msg; }
        abort.store(true);
    }
};

struct SharedSlot { unsigned long long epoch = 0; unsigned long offset = 0; };

struct Worker;

struct Block {
    Launch* L = nullptr;
    Worker* w = nullptr;
    uint3 idx{};
    int n = 0, live = 0, arrived = 0, done = 0;
    unsigned gen = 0;
    int bar_line = -1, bar_first = -1;
    int bar_op = 0, bar_acc = 0;
    int bar_result[2] = {0, 0};
    Warp warps[kMaxThreads / 32];
    unsigned long long rng = 0;
    bool race = false;
    bool failed = false;
};

struct Worker {
    std::vector<Fiber*> fibers;
    void* sched_sp = nullptr;
#ifdef LLMC_CUEMU_UCONTEXT
    ucontext_t sched_uc;
#endif
    Block block;
    cuemu::ThreadState direct;
    std::vector<char> arena;         // [dynamic shared | static shared]
    unsigned long dyn_size = 0, static_used = 0;
    std::vector<SharedSlot> slots;
    unsigned long long epoch = 0;
    sigjmp_buf jb;
    volatile sig_atomic_t in_launch = 0;
    char* altstack = nullptr;
    cuemu_prof::State* prof = nullptr;   // counters, in a profiled launch
    Fiber* fiber(int i);
};

thread_local Worker* tls_worker = nullptr;

// ---------------------------------------------------------------- error text
std::string coords(uint3 v) {
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::string where(Block& b) { return "block " + coords(b.idx); }

const char* warp_op_name(int op) {
    static const char* names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                  "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp"};
    return op >= 0 && op < 8 ? names[op] : "warp operation";
}

std::string hex(unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

// Describes where every unfinished thread of a block waits: runs of consecutive threads
// that wait at the same place, at most 12 runs.
std::string describe_waiters(Block& b) {
    std::string out;
    int runs = 0, exited = 0;
    auto same = [](Fiber* f, Fiber* g) {
        return g->state == f->state && g->wait_line == f->wait_line && (f->state != WAIT_WARP || g->warp_op == f->warp_op);
    };
    for (int i = 0; i < b.n;) {
        Fiber* f = b.w->fiber(i);
        int j = i + 1;
        while (j < b.n && same(f, b.w->fiber(j))) j++;
        int count = j - i;
        if (f->state == DONE) {
            exited += count;
        } else if (runs++ < 12) {
            Fiber* last = b.w->fiber(j - 1);
            out += "\n  " + std::to_string(count) + (count == 1 ? " thread " : " threads ") + coords(f->ts.threadIdx);
            if (count > 1) out += ".." + coords(last->ts.threadIdx);
            if (f->state == WAIT_BAR) out += " wait in __syncthreads at line " + std::to_string(f->wait_line);
            else if (f->state == WAIT_WARP)
                out += std::string(" wait in ") + warp_op_name(f->warp_op) + " (mask " + hex(f->warp_mask) +
                       ") at line " + std::to_string(f->wait_line);
            else out += " are ready but were never resumed";
        }
        i = j;
    }
    if (runs > 12) out += "\n  ... and " + std::to_string(runs - 12) + " more groups";
    if (exited) out += "\n  " + std::to_string(exited) + " threads have already returned";
    return out;
}

// ---------------------------------------------------------------- fibers
char* map_stack() {
    long page = sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, kStackSize + kColorSpan + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    mprotect(p, page, PROT_NONE);  // guard page: an overflow faults instead of corrupting memory
    return static_cast<char*>(p) + page;
}

// Makes sure fibers 0..n-1 exist; false if their stacks cannot be mapped (a memory limit).
bool ensure_fibers(Worker* w, int n) {
    while ((int)w->fibers.size() < n) {
        char* stack = map_stack();
        if (!stack) return false;
        Fiber* f = new Fiber();
        f->stack_lo = stack;
        w->fibers.push_back(f);
    }
    return true;
}

Fiber* Worker::fiber(int i) { return fibers[i]; }

void fiber_entry();

#ifdef LLMC_CUEMU_UCONTEXT
void fiber_entry_uc() { fiber_entry(); }
#endif

void prepare(Fiber* f) {
#ifdef LLMC_CUEMU_UCONTEXT
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack_lo;
    f->uc.uc_stack.ss_size = kStackSize + stack_color(f->linear);
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, fiber_entry_uc, 0);
#elif defined(__x86_64__)
    // Stack top: [fake return address 0][fiber_entry][six zeroed callee-saved registers]
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack_lo) + kStackSize + stack_color(f->linear)) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void*>(&fiber_entry);
    for (int i = 0; i < 6; i++) *--sp = nullptr;
    f->sp = sp;
#elif defined(__aarch64__)
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack_lo) + kStackSize + stack_color(f->linear)) & ~uintptr_t(15);
    void** frame = reinterpret_cast<void**>(top - 160);
    std::memset(frame, 0, 160);
    frame[11] = reinterpret_cast<void*>(&fiber_entry);  // x30, restored then used by ret
    f->sp = frame;
#endif
}

inline void switch_fiber(Fiber* from, Fiber* to) {
    cuemu_cur = &to->ts;
#ifdef LLMC_CUEMU_UCONTEXT
    swapcontext(&from->uc, &to->uc);
#else
    cuemu_switch(&from->sp, to->sp);
#endif
}

inline void switch_to_scheduler(Fiber* from, Worker* w) {
#ifdef LLMC_CUEMU_UCONTEXT
    swapcontext(&from->uc, &w->sched_uc);
#else
    cuemu_switch(&from->sp, w->sched_sp);
#endif
}

inline bool runnable(Block& b, Fiber* f) {
    switch (f->state) {
        case READY: return true;
        case WAIT_BAR: return f->wait_gen != b.gen;
        case WAIT_WARP: return f->warp_done;
        default: return false;
    }
}

inline unsigned long long next_random(Block& b) {
    b.rng ^= b.rng << 13; b.rng ^= b.rng >> 7; b.rng ^= b.rng << 17;
    return b.rng;
}

// Picks the fiber to run after `self` stops: the next runnable one in thread order (direct
// hand-off, no scheduler hop), or a random runnable one in race-exposure mode.
Fiber* pick_next(Block& b, Fiber* self) {
    Worker* w = b.w;
    if (b.race) {
        Fiber* chosen = nullptr;
        unsigned long long seen = 0;
        for (int i = 0; i < b.n; i++) {
            Fiber* f = w->fibers[i];
            if (runnable(b, f) && next_random(b) % ++seen == 0) chosen = f;
        }
        return chosen;
    }
    for (int k = 1; k <= b.n; k++) {
        int i = self->linear + k;
        if (i >= b.n) i -= b.n;
        Fiber* f = w->fibers[i];
        if (runnable(b, f)) return f;
    }
    return nullptr;
}

// Called by a fiber that cannot go on (waiting, or done): run another one or report a deadlock.
void block_and_switch(Block& b, Fiber* self) {
    Fiber* next = pick_next(b, self);
    if (next == self) { cuemu_cur = &self->ts; return; }
    if (next) {
        // The fiber after `next` is most likely the one to run after it: start loading its
        // saved registers, stack frames and state now, while `next` runs (1024 fibers do not fit in L2).
        int after = next->linear + 1 < b.n ? next->linear + 1 : 0;
        Fiber* f = b.w->fibers[after];
        const char* sp = static_cast<const char*>(f->sp);
        __builtin_prefetch(f);
        __builtin_prefetch(reinterpret_cast<const char*>(f) + 64);
        for (int k = 0; k < 4; k++) __builtin_prefetch(sp + 64 * k);
        switch_fiber(self, next);
        return;
    }
    if (b.done == b.n) { switch_to_scheduler(self, b.w); return; }
    b.failed = true;
    b.L->fail(cuemu::ERR_DEADLOCK, "deadlock in " + where(b) + ": no thread of the block can continue." + describe_waiters(b) +
                     "\nOn a GPU this kernel would hang. Every thread of the block must reach the same "
                     "__syncthreads(), and every lane named in a warp mask must reach the same warp operation.");
    switch_to_scheduler(self, b.w);
    __builtin_unreachable();
}

void abort_block(Block& b, Fiber* self, int code, const std::string& msg) {
    b.failed = true;
    b.L->fail(code, msg);
    if (self) switch_to_scheduler(self, b.w);
    throw code;  // direct mode: unwind to the block loop
}

// ---------------------------------------------------------------- warp rendezvous
int lane_of(Fiber* f) { return f->linear & 31; }

// All lanes named in a mask must be in the same warp function with the same mask; returns a
// description of the first lane that is not, or "" when they agree.
std::string warp_mismatch(Block& b, int warp, unsigned need) {
    Fiber* first = nullptr;
    for (int l = 0; l < 32; l++) {
        if (!(need >> l & 1)) continue;
        Fiber* f = b.w->fibers[warp * 32 + l];
        if (!first) { first = f; continue; }
        if (f->warp_op != first->warp_op || f->warp_mask != first->warp_mask)
            return "warp " + std::to_string(warp) + " of " + where(b) + ": thread " + coords(first->ts.threadIdx) +
                   " is in " + warp_op_name(first->warp_op) + " (mask " + hex(first->warp_mask) + ") at line " +
                   std::to_string(first->wait_line) + " while thread " + coords(f->ts.threadIdx) + " is in " +
                   warp_op_name(f->warp_op) + " (mask " + hex(f->warp_mask) + ") at line " +
                   std::to_string(f->wait_line) + ". Every lane named in a mask must call the same warp function "
                   "with the same mask (undefined behaviour on a GPU).";
    }
    return "";
}

void complete_warp(Block& b, int warp, unsigned need) {
    Worker* w = b.w;
    Warp& wp = b.warps[warp];
    unsigned long long ballot = 0;
    int all = 1, any = 0;
    for (int l = 0; l < 32; l++) {
        if (!(need >> l & 1)) continue;
        Fiber* f = w->fibers[warp * 32 + l];
        int pred = f->warp_src != 0;
        ballot |= (unsigned long long)pred << l;
        all &= pred;
        any |= pred;
    }
    for (int l = 0; l < 32; l++) {
        if (!(need >> l & 1)) continue;
        Fiber* f = w->fibers[warp * 32 + l];
        switch (f->warp_op) {
            case cuemu::BALLOT: f->warp_result = ballot; break;
            case cuemu::ANY: f->warp_result = any; break;
            case cuemu::ALL: f->warp_result = all; break;
            case cuemu::SYNCWARP: f->warp_result = 0; break;
            default: {
                // A source lane outside the group (or past the block) returns the caller's own value.
                int src = f->warp_src;
                bool ok = src >= 0 && src < 32 && (need >> src & 1);
                f->warp_result = ok ? w->fibers[warp * 32 + src]->warp_value : f->warp_value;
            }
        }
        f->warp_done = true;
    }
    wp.arrived &= ~need;
    if (b.L->profile) cuemu_prof::warp_op_done(w->prof);
}

// After a lane exits, a warp operation that waited only for it may now be complete.
void recheck_warp(Block& b, int warp) {
    Warp& wp = b.warps[warp];
    if (!wp.arrived) return;
    for (int l = 0; l < 32; l++) {
        if (!(wp.arrived >> l & 1)) continue;
        Fiber* f = b.w->fibers[warp * 32 + l];
        if (f->warp_done) continue;
        unsigned need = f->warp_mask & wp.live;
        if ((wp.arrived & need) == need) {
            std::string bad = warp_mismatch(b, warp, need);
            if (!bad.empty()) abort_block(b, static_cast<Fiber*>(cuemu_cur->fiber), cuemu::ERR_DIVERGENT_BARRIER, bad);
            complete_warp(b, warp, need);
        }
    }
}

void recheck_barrier(Block& b) {
    if (b.arrived > 0 && b.arrived >= b.live) {
        b.bar_result[b.gen & 1] = b.bar_acc;
        b.arrived = 0;
        b.bar_acc = 0;
        b.bar_line = -1;
        b.gen++;
        if (b.L->profile) cuemu_prof::barrier_done(b.w->prof);
    }
}

// ---------------------------------------------------------------- fiber body
void fiber_entry() {
    Fiber* f = static_cast<Fiber*>(cuemu_cur->fiber);
    Block& b = *static_cast<Block*>(f->ts.block);
    try {
        b.L->fn(b.L->args);
    } catch (int) {
        // abort_block already switched away in fiber mode; this is only reached in direct mode
    }
    f->state = DONE;
    b.done++;
    b.live--;
    int warp = f->linear >> 5;
    b.warps[warp].live &= ~(1u << lane_of(f));
    recheck_warp(b, warp);
    recheck_barrier(b);
    block_and_switch(b, f);
    __builtin_unreachable();
}

}  // namespace

// ---------------------------------------------------------------- calls from kernel code
extern "C" int cuemu_syncthreads(int line, int op, int pred) {
    Fiber* f = static_cast<Fiber*>(cuemu_cur->fiber);
    Block& b = *static_cast<Block*>(cuemu_cur->block);
    if (!f) {
        abort_block(b, nullptr, cuemu::ERR_TRAP, "__syncthreads() at line " + std::to_string(line) +
                                       " reached in a kernel the emulator ran without fibers; "
                                       "this is an emulator bug, please report the kernel");
    }
    if (b.L->profile) cuemu_prof::lane_sync(b.w->prof, f->linear);
    if (b.arrived == 0) {
        b.bar_line = line;
        b.bar_first = f->linear;
        b.bar_op = op;
    } else if (line != b.bar_line) {
        Fiber* first = b.w->fibers[b.bar_first];
        abort_block(b, f, cuemu::ERR_DIVERGENT_BARRIER,
                    "divergent __syncthreads in " + where(b) + ": thread " + coords(first->ts.threadIdx) +
                        " waits at the barrier on line " + std::to_string(b.bar_line) + " while thread " +
                        coords(f->ts.threadIdx) + " reached the barrier on line " + std::to_string(line) +
                        ". On a GPU this is undefined behaviour (a hang or wrong results): every thread of a "
                        "block must reach the same __syncthreads(), so keep it out of branches that differ "
                        "between threads.");
    }
    switch (op) {
        case cuemu::BAR_COUNT: b.bar_acc += pred != 0; break;
        case cuemu::BAR_AND: b.bar_acc = (b.arrived == 0 ? 1 : b.bar_acc) & (pred != 0); break;
        case cuemu::BAR_OR: b.bar_acc |= pred != 0; break;
        default: break;
    }
    b.arrived++;
    unsigned my_gen = b.gen;
    if (b.arrived >= b.live) {
        recheck_barrier(b);
        if (b.race) {  // let any thread run first after the barrier, not always the last arrival
            f->state = READY;
            block_and_switch(b, f);
        }
    } else {
        f->state = WAIT_BAR;
        f->wait_gen = my_gen;
        f->wait_line = line;
        block_and_switch(b, f);
    }
    f->state = READY;
    return b.bar_result[my_gen & 1];
}

extern "C" unsigned long long cuemu_warp_op(int op, unsigned mask, unsigned long long value, int arg, int width,
                                            int line) {
    Fiber* f = static_cast<Fiber*>(cuemu_cur->fiber);
    Block& b = *static_cast<Block*>(cuemu_cur->block);
    if (!f) {
        abort_block(b, nullptr, cuemu::ERR_TRAP, std::string(warp_op_name(op)) + " at line " + std::to_string(line) +
                                       " reached in a kernel the emulator ran without fibers; "
                                       "this is an emulator bug, please report the kernel");
    }
    int lane = lane_of(f);
    if (op <= cuemu::SHFL_XOR && (width < 1 || width > 32 || (width & (width - 1)))) {
        abort_block(b, f, cuemu::ERR_TRAP, std::string(warp_op_name(op)) + " at line " + std::to_string(line) + " in " +
                                 where(b) + ": width " + std::to_string(width) +
                                 " is not a power of two between 1 and 32 (undefined on a GPU)");
    }
    if (!(mask >> lane & 1)) {
        abort_block(b, f, cuemu::ERR_TRAP, std::string(warp_op_name(op)) + " at line " + std::to_string(line) + " in " +
                                 where(b) + ": thread " + coords(f->ts.threadIdx) + " (lane " +
                                 std::to_string(lane) + ") calls it with mask " + hex(mask) +
                                 " that does not include its own lane (undefined on a GPU)");
    }
    int src = 0;
    int seg = lane & ~(width - 1);
    switch (op) {
        case cuemu::SHFL_IDX: src = seg + (arg & (width - 1)); break;
        case cuemu::SHFL_UP: src = (lane - seg) >= arg ? lane - arg : lane; break;
        case cuemu::SHFL_DOWN: src = (lane - seg) + arg < width ? lane + arg : lane; break;
        case cuemu::SHFL_XOR: src = lane ^ arg; if (src >= seg + width) src = lane; break;
        default: src = arg; break;  // votes: the predicate
    }
    if (b.L->profile) cuemu_prof::lane_sync(b.w->prof, f->linear);
    f->warp_op = op;
    f->warp_mask = mask;
    f->warp_value = value;
    f->warp_src = src;
    f->warp_done = false;
    f->wait_line = line;
    int warp = f->linear >> 5;
    Warp& wp = b.warps[warp];
    wp.arrived |= 1u << lane;
    unsigned need = mask & wp.live;
    if ((wp.arrived & need) == need) {
        std::string bad = warp_mismatch(b, warp, need);
        if (!bad.empty()) abort_block(b, f, cuemu::ERR_DIVERGENT_BARRIER, bad);
        complete_warp(b, warp, need);
        if (b.race) { f->state = READY; block_and_switch(b, f); }
    } else {
        f->state = WAIT_WARP;
        block_and_switch(b, f);
    }
    f->state = READY;
    return f->warp_result;
}

// A fresh id for one __shared__ declaration (of one template instance: the id is a function-local
// static, so two instances of a template get two arrays, as on a GPU).
extern "C" int cuemu_shared_slot(void) {
    static std::atomic<int> next{0};
    return next.fetch_add(1);
}

extern "C" void* cuemu_shared_static(int id, unsigned long size, unsigned long align, int line) {
    Block& b = *static_cast<Block*>(cuemu_cur->block);
    Worker* w = b.w;
    if ((int)w->slots.size() <= id) w->slots.resize(id + 1);
    SharedSlot& s = w->slots[id];
    if (s.epoch != w->epoch) {
        unsigned long off = (w->static_used + align - 1) & ~(align - 1);
        if (off + size > b.L->static_limit) {
            Fiber* f = static_cast<Fiber*>(cuemu_cur->fiber);
            abort_block(b, f, cuemu::ERR_RESOURCE, "the __shared__ array declared on line " + std::to_string(line) +
                                     " brings the block's static shared memory to " + std::to_string(off + size) +
                                     " bytes, more than the " + std::to_string(b.L->static_limit) +
                                     " bytes a GPU allows (ptxas: \"uses too much shared data\")");
        }
        s.epoch = w->epoch;
        s.offset = off;
        w->static_used = off + size;
        // fresh shared memory is garbage on a GPU; 0xff bytes are NaN as float and -1 as int
        std::memset(w->arena.data() + w->dyn_size + off, 0xff, size);
    }
    return w->arena.data() + w->dyn_size + s.offset;
}

extern "C" void* cuemu_shared_dynamic(void) {
    Block& b = *static_cast<Block*>(cuemu_cur->block);
    return b.w->arena.data();
}

namespace {
std::mutex out_mutex;
std::string out_text;
constexpr size_t kOutCap = 1 << 20;  // a GPU's printf FIFO is 1 MiB by default
bool out_truncated = false;
}  // namespace

extern "C" int cuemu_vprintf(const char* fmt, __builtin_va_list ap) {
    char small[512];
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(small, sizeof small, fmt, ap);
    std::string text;
    if (n >= (int)sizeof small) {
        text.resize(n + 1);
        std::vsnprintf(&text[0], n + 1, fmt, copy);
        text.resize(n);
    } else if (n > 0) {
        text.assign(small, n);
    }
    va_end(copy);
    std::lock_guard<std::mutex> g(out_mutex);
    if (out_text.size() + text.size() <= kOutCap) out_text += text;
    else out_truncated = true;
    return n;
}

extern "C" void cuemu_trap(const char* what, int line) {
    Block& b = *static_cast<Block*>(cuemu_cur->block);
    Fiber* f = static_cast<Fiber*>(cuemu_cur->fiber);
    abort_block(b, f, cuemu::ERR_TRAP, std::string(what) + " at line " + std::to_string(line) + " in " + where(b) + ", thread " +
                             coords(cuemu_cur->threadIdx));
}

// ---------------------------------------------------------------- crashes become errors
namespace {
struct sigaction old_segv, old_bus;

thread_local uintptr_t last_fault_addr = 0;
thread_local uintptr_t last_fault_sp = 0;  // the stack pointer when it faulted; 0 where unknown

uintptr_t stack_pointer_of(void* context) {
#if defined(__linux__) && defined(__x86_64__)
    return context ? static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RSP]) : 0;
#elif defined(__linux__) && defined(__aarch64__)
    return context ? static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.sp) : 0;
#else
    (void)context;
    return 0;
#endif
}

// A fault inside a launch jumps back to the block loop of the thread that faulted; any other
// fault goes to the handler that was there before (Python's faulthandler, or the default).
void on_fault(int sig, siginfo_t* info, void* context) {
    Worker* w = tls_worker;
    if (!w || !w->in_launch) {
        sigaction(SIGSEGV, &old_segv, nullptr);
        sigaction(SIGBUS, &old_bus, nullptr);
        return;  // the instruction faults again, now under the previous handler
    }
    last_fault_addr = reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr);
    last_fault_sp = stack_pointer_of(context);
    w->in_launch = 0;
    siglongjmp(w->jb, sig == SIGBUS ? 2 : 1);
}

void install_handlers() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

void restore_handlers() {
    sigaction(SIGSEGV, &old_segv, nullptr);
    sigaction(SIGBUS, &old_bus, nullptr);
}

constexpr size_t kAltStack = 64 * 1024;

void ensure_altstack(Worker* w, stack_t* previous) {
    if (!w->altstack) w->altstack = static_cast<char*>(std::malloc(kAltStack));
    stack_t ss;
    ss.ss_sp = w->altstack;
    ss.ss_size = kAltStack;
    ss.ss_flags = 0;
    sigaltstack(&ss, previous);
}

// ---------------------------------------------------------------- running blocks
uint3 unflatten(unsigned long long i, const unsigned* d) {
    return uint3{unsigned(i % d[0]), unsigned(i / d[0] % d[1]), unsigned(i / d[0] / d[1])};
}

void setup_block(Worker* w, Launch* L, unsigned long long bid) {
    Block& b = w->block;
    b.L = L;
    b.w = w;
    b.idx = unflatten(bid, L->grid);
    b.n = int(L->block[0] * L->block[1] * L->block[2]);
    b.live = b.n;
    b.arrived = b.done = 0;
    b.gen = 0;
    b.bar_line = -1;
    b.bar_acc = 0;
    b.failed = false;
    b.race = L->race_seed != 0;
    b.rng = (L->race_seed ^ (bid * 0x9E3779B97F4A7C15ull)) | 1;
    w->epoch++;
    w->static_used = 0;
    std::memset(w->arena.data(), 0xff, L->shmem);
}

bool run_block_direct(Worker* w, Launch* L, unsigned long long bid) {
    setup_block(w, L, bid);
    Block& b = w->block;
    cuemu::ThreadState& ts = w->direct;
    ts.blockIdx = b.idx;
    ts.blockDim = dim3(L->block[0], L->block[1], L->block[2]);
    ts.gridDim = dim3(L->grid[0], L->grid[1], L->grid[2]);
    ts.block = &b;
    ts.fiber = nullptr;
    cuemu_cur = &ts;
    try {
        for (unsigned z = 0; z < L->block[2]; z++)
            for (unsigned y = 0; y < L->block[1]; y++)
                for (unsigned x = 0; x < L->block[0]; x++) {
                    ts.threadIdx = uint3{x, y, z};
                    L->fn(L->args);
                }
    } catch (int) {
        return false;
    }
    return true;
}

bool run_block_fibers(Worker* w, Launch* L, unsigned long long bid) {
    setup_block(w, L, bid);
    Block& b = w->block;
    if (!ensure_fibers(w, b.n)) {
        L->fail(cuemu::ERR_RESOURCE, "cannot map stacks for " + std::to_string(b.n) + " fibers (" +
                       std::to_string((kStackSize + kColorSpan) / 1024) + " KiB each): is the process "
                       "under a memory limit? Smaller blocks need fewer.");
        return false;
    }
    unsigned bx = L->block[0], by = L->block[1];
    for (int i = 0; i < b.n; i++) {
        Fiber* f = w->fibers[i];
        f->ts.threadIdx = uint3{unsigned(i % bx), unsigned(i / bx % by), unsigned(i / bx / by)};
        f->ts.blockIdx = b.idx;
        f->ts.blockDim = dim3(L->block[0], L->block[1], L->block[2]);
        f->ts.gridDim = dim3(L->grid[0], L->grid[1], L->grid[2]);
        f->ts.block = &b;
        f->ts.fiber = f;
        f->linear = i;
        f->state = READY;
        f->warp_done = false;
        prepare(f);
    }
    int nwarps = (b.n + 31) / 32;
    for (int k = 0; k < nwarps; k++) {
        int lanes = b.n - k * 32 < 32 ? b.n - k * 32 : 32;
        b.warps[k].live = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
        b.warps[k].arrived = 0;
    }
    Fiber* first = w->fibers[0];
    if (b.race) first = pick_next(b, first);
    cuemu_cur = &first->ts;
#ifdef LLMC_CUEMU_UCONTEXT
    swapcontext(&w->sched_uc, &first->uc);
#else
    cuemu_switch(&w->sched_sp, first->sp);
#endif
    return !b.failed;
}

void run_blocks(Worker* w, Launch* L) {
    if (w->arena.size() < L->shmem + L->static_limit) w->arena.resize(L->shmem + L->static_limit);
    w->dyn_size = (L->shmem + 15) & ~15ul;
    if (w->arena.size() < w->dyn_size + L->static_limit) w->arena.resize(w->dyn_size + L->static_limit);
    last_fault_addr = 0;
    int sig = sigsetjmp(w->jb, 1);
    if (sig) {
        Block& b = w->block;
        char addr[32];
        std::snprintf(addr, sizeof addr, "0x%llx", (unsigned long long)last_fault_addr);
        std::string who = cuemu_cur ? "thread " + coords(cuemu_cur->threadIdx) : std::string("a thread");
        // A stack overflow leaves the stack pointer below the running fiber's stack: a big local array
        // moves it there at once, so the fault itself may land past the fiber's own guard page. A
        // fault with the stack pointer inside the stack is a wild pointer, wherever it landed.
        // Where the stack pointer is unknown, a fault just below a fiber's stack counts as overflow.
        bool stack = false;
        for (Fiber* f : w->fibers) {
            uintptr_t lo = reinterpret_cast<uintptr_t>(f->stack_lo);
            if (last_fault_sp)
                stack = stack || (&f->ts == cuemu_cur && last_fault_sp < lo);
            else
                stack = stack || (last_fault_addr + 65536 >= lo && last_fault_addr < lo);
        }
        if (stack)
            L->fail(cuemu::ERR_STACK_OVERFLOW, "stack overflow in " + where(b) + ", " + who + ": a CUDA thread's local variables "
                       "exceed the emulator's 64 KiB stack; keep big arrays in global or shared memory");
        else
            L->fail(cuemu::ERR_ILLEGAL_ADDRESS, std::string(sig == 2 ? "bus error" : "illegal memory access") + " at address " + addr + " in " +
                       where(b) + ", " + who + " (CUDA would report cudaErrorIllegalAddress). Check the "
                       "index bounds of every pointer the kernel reads or writes. Memory the kernel wrote "
                       "before the fault may be corrupted.");
        if (L->profile) cuemu_prof::launch_end(w->prof);
        return;
    }
    if (L->profile) {
        uintptr_t lo = reinterpret_cast<uintptr_t>(w->arena.data());
        w->prof = cuemu_prof::launch_begin(w->prof, L->ranges, L->nranges, lo, lo + w->arena.size());
    }
    w->in_launch = 1;
    while (!L->abort.load(std::memory_order_relaxed)) {
        unsigned long long bid = L->next_block.fetch_add(1);
        if (bid >= L->nblocks) break;
        if (L->profile) cuemu_prof::block_begin(w->prof, int(L->block[0] * L->block[1] * L->block[2]));
        bool ok = L->fibers ? run_block_fibers(w, L, bid) : run_block_direct(w, L, bid);
        if (L->profile) cuemu_prof::block_end(w->prof, w->static_used);
        if (!ok) break;
    }
    w->in_launch = 0;
    if (L->profile) cuemu_prof::launch_end(w->prof);
}

// ---------------------------------------------------------------- the pool
struct Pool {
    std::mutex m;
    std::condition_variable cv, done_cv;
    int threads = 0;   // detached: they live as long as the process
    Launch* job = nullptr;
    unsigned long long job_id = 0;
    int busy = 0;
    int wanted = 0;
};
// Never destroyed: pool threads may still wait on it while the process exits.
Pool* the_pool = new Pool;
std::mutex* the_launch_mutex = new std::mutex;

// A forked child (a grader's sandbox, multiprocessing) has none of the parent's pool threads
// and may inherit a locked mutex: start it with a fresh, empty pool.
void reset_pool_in_child() {
    int wanted = the_pool->wanted;
    the_pool = new Pool;
    the_pool->wanted = wanted;
    the_launch_mutex = new std::mutex;
}
struct ForkGuard {
    ForkGuard() { pthread_atfork(nullptr, nullptr, reset_pool_in_child); }
} fork_guard;

void pool_main() {
    Worker* w = new Worker();
    tls_worker = w;
    ensure_altstack(w, nullptr);
    unsigned long long seen = 0;
    for (;;) {
        Launch* L;
        {
            std::unique_lock<std::mutex> lk(the_pool->m);
            the_pool->cv.wait(lk, [&] { return the_pool->job_id != seen; });
            seen = the_pool->job_id;
            L = the_pool->job;
        }
        if (L) run_blocks(w, L);
        {
            std::lock_guard<std::mutex> lk(the_pool->m);
            if (--the_pool->busy == 0) the_pool->done_cv.notify_all();
        }
    }
}

}  // namespace

extern "C" {

struct cuemu_launch_config {
    unsigned grid[3];
    unsigned block[3];
    unsigned long shmem;
    unsigned long static_limit;
    int fibers;
    unsigned long long race_seed;
    int profile;                       // count memory requests etc. (a module built for profiling)
    const unsigned long long* ranges;  // (start, bytes) of each array argument
    int nranges;
    unsigned long long* profile_out;   // filled with the counts when the launch ends
};

int cuemu_runtime_abi(void) { return 1; }

void cuemu_set_workers(int n) {
    std::lock_guard<std::mutex> g(*the_launch_mutex);
    the_pool->wanted = n < 1 ? 1 : n;
}

int cuemu_get_workers(void) { return the_pool->wanted; }

static std::string last_error;

int cuemu_launch(void (*fn)(void**), void** args, const cuemu_launch_config* cfg) {
    std::lock_guard<std::mutex> g(*the_launch_mutex);
    if (the_pool->wanted == 0) {
        unsigned hc = std::thread::hardware_concurrency();
        the_pool->wanted = hc ? int(hc) : 1;
    }
    Launch L;
    L.fn = fn;
    L.args = args;
    for (int i = 0; i < 3; i++) { L.grid[i] = cfg->grid[i]; L.block[i] = cfg->block[i]; }
    L.shmem = cfg->shmem;
    L.static_limit = cfg->static_limit;
    L.fibers = cfg->fibers;
    L.race_seed = cfg->race_seed;
    L.profile = cfg->profile;
    L.ranges = cfg->ranges;
    L.nranges = cfg->nranges;
    L.profile_out = cfg->profile_out;
    if (L.profile) cuemu_prof::launch_reset();
    L.nblocks = (unsigned long long)L.grid[0] * L.grid[1] * L.grid[2];

    Worker*& self = tls_worker;
    if (!self) self = new Worker();
    stack_t previous;
    ensure_altstack(self, &previous);
    install_handlers();

    int helpers = the_pool->wanted - 1;
    if ((unsigned long long)helpers > L.nblocks - 1) helpers = int(L.nblocks - 1);
    while (the_pool->threads < helpers) {
        try {
            std::thread(pool_main).detach();
        } catch (const std::system_error&) {  // e.g. a process limit in a sandbox: use fewer threads
            break;
        }
        the_pool->threads++;
    }
    if (helpers > the_pool->threads) helpers = the_pool->threads;
    // Every pool thread wakes for a job; those beyond `helpers` see a null job and go back to sleep.
    {
        std::lock_guard<std::mutex> lk(the_pool->m);
        the_pool->job = helpers > 0 ? &L : nullptr;
        the_pool->busy = the_pool->threads;
        the_pool->job_id++;
    }
    the_pool->cv.notify_all();
    run_blocks(self, &L);
    {
        std::unique_lock<std::mutex> lk(the_pool->m);
        the_pool->done_cv.wait(lk, [] { return the_pool->busy == 0; });
        the_pool->job = nullptr;
    }
    restore_handlers();
    if (previous.ss_flags & SS_DISABLE) {
        stack_t off;
        std::memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, nullptr);
    } else {
        sigaltstack(&previous, nullptr);
    }
    if (L.profile) cuemu_prof::copy_last(L.profile_out);  // still under the launch mutex
    last_error = L.err;
    return L.err_code;
}

const char* cuemu_error_message(void) { return last_error.c_str(); }

unsigned long cuemu_take_output(char* buf, unsigned long cap) {
    std::lock_guard<std::mutex> g(out_mutex);
    if (out_truncated) {
        out_text += "\n[device printf output truncated at 1 MiB, as a GPU's printf buffer would be]\n";
        out_truncated = false;
    }
    unsigned long n = out_text.size();
    if (buf && cap >= n) {
        std::memcpy(buf, out_text.data(), n);
        out_text.clear();
    }
    return n;
}

}  // extern "C"
