// Performance counters for the CPU emulator, compiled into the runtime library.
//
// A kernel module built for profiling (emulator.py: g++ -fsanitize=thread
// -fsanitize-coverage=trace-pc, linked without the sanitizer's library) calls __tsan_readN /
// __tsan_writeN before every memory access the compiled code makes and
// __sanitizer_cov_trace_pc at every basic block.  The functions below are those hooks: instead
// of checking races they record the access.  Normal builds make no such calls, so counting
// costs nothing when it is off.
//
// A GPU serves the 32 lanes of a warp with one request per instruction.  Here the lanes run one
// after another, so a request is rebuilt: the k-th time lane L executes the access at code
// address `pc` since its last synchronisation point is grouped with the k-th time every other
// lane of its warp executes it.  Groups are complete when the block reaches a barrier or ends,
// and are then reduced to counts (sectors, lines, bank wavefronts, same-address atomics).
#include "llmc_cuemu_abi.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace cuemu_prof {

// Counters per memory space (each array argument, then shared memory); names exported below.
#define LLMC_SPACE_FIELDS(X) X(load_requests) X(load_bytes) X(load_useful_bytes) X(load_sectors) X(load_lines) \
    X(store_requests) X(store_bytes) X(store_useful_bytes) X(store_sectors) X(store_lines) \
    X(atomic_requests) X(atomic_ops) X(atomic_same_address) X(wavefronts) X(bank_conflicts) X(unique_sectors)
#define LLMC_SCALAR_FIELDS(X) X(barriers) X(warp_ops) X(warp_blocks) X(divergent_blocks) X(divergent_branches) \
    X(active_lanes) \
    X(blocks) X(max_static_shared_bytes)
#define LLMC_ENUM(name) F_##name,
enum SpaceField { LLMC_SPACE_FIELDS(LLMC_ENUM) kSpaceFields };
enum ScalarField { LLMC_SCALAR_FIELDS(LLMC_ENUM) kScalarFields };
static_assert(kSpaceFields <= 64 && kScalarFields <= 64, "cuemu_profile_fields hands out at most 64 names of each");
#undef LLMC_ENUM
#define LLMC_NAME(name) #name,
const char* space_names[] = {LLMC_SPACE_FIELDS(LLMC_NAME)};
const char* scalar_names[] = {LLMC_SCALAR_FIELDS(LLMC_NAME)};
#undef LLMC_NAME

constexpr int kMaxSpaces = 64;  // array arguments (and module globals) that are counted separately
enum Kind { LOAD = 0, STORE = 1, ATOMIC = 2, BRANCH = 3 };

struct Totals {
    unsigned long long space[kMaxSpaces + 1][kSpaceFields] = {};
    unsigned long long scalar[kScalarFields] = {};
    std::unordered_set<unsigned long long> sectors[kMaxSpaces];  // distinct 32-byte sectors per space
    void clear() {
        std::memset(space, 0, sizeof space);
        std::memset(scalar, 0, sizeof scalar);
        for (auto& s : sectors) s.clear();
    }
};

struct Group {              // one warp-wide request
    uint64_t addr[32];
    uint16_t size[32];
    int8_t space[32];
    uint32_t mask = 0;
    uint8_t kind = 0;
};

struct Key {
    uint64_t pc;
    uint32_t epoch;
    uint16_t warp;
    uint8_t kind;
    bool operator==(const Key& o) const { return pc == o.pc && epoch == o.epoch && warp == o.warp && kind == o.kind; }
};
struct KeyHash {
    size_t operator()(const Key& k) const {
        return size_t(k.pc * 0x9E3779B97F4A7C15ull ^ (uint64_t(k.epoch) << 20) ^ (uint64_t(k.warp) << 4) ^ k.kind);
    }
};
struct Site {
    std::vector<uint32_t> groups;  // indices into State::groups (or State::branches), in occurrence order
    uint32_t cursor[32] = {};      // how often each lane has executed this site
};

struct State {
    int nranges = 0;
    uintptr_t lo[kMaxSpaces], hi[kMaxSpaces];
    uintptr_t shared_lo = 0, shared_hi = 0;
    int nthreads = 0;
    uint32_t epoch[1024] = {};
    std::unordered_map<Key, Site, KeyHash> sites;
    std::vector<Group> groups;
    // Warp-level basic-block executions: which lanes took part, and where they went next; a
    // block whose lanes continue to different blocks ends in a divergent branch.
    struct BlockRun { uint32_t mask = 0, next = kNone; bool split = false; };
    static constexpr uint32_t kNone = 0xffffffffu;
    std::vector<BlockRun> branches;
    uint32_t last_run[1024];  // each lane's latest BlockRun
    Totals totals;

    int space_of(uintptr_t a) const {
        if (a >= shared_lo && a < shared_hi) return kMaxSpaces;
        for (int i = 0; i < nranges; i++)
            if (a >= lo[i] && a < hi[i]) return i;
        return -1;
    }
    uint32_t live_mask(int warp) const {
        int lanes = nthreads - warp * 32;
        return lanes >= 32 ? 0xffffffffu : (1u << lanes) - 1;
    }
    void flush();
    void reduce(const Group& g);
};

thread_local State* tls_state = nullptr;

inline int current_linear() {
    const cuemu::ThreadState* t = cuemu_cur;
    return int(t->threadIdx.x + t->blockDim.x * (t->threadIdx.y + t->blockDim.y * t->threadIdx.z));
}

// The group for the calling lane's next execution of the access (or block) at `pc`; a new
// group gets index `fresh`.
inline uint32_t group_for(State* s, uint64_t pc, int kind, int linear, uint32_t fresh, bool* created) {
    Site& site = s->sites[Key{pc, s->epoch[linear], uint16_t(linear >> 5), uint8_t(kind)}];
    uint32_t k = site.cursor[linear & 31]++;
    *created = k == site.groups.size();
    if (*created) site.groups.push_back(fresh);
    return site.groups[k];
}

inline void record(void* p, unsigned size, int kind, void* pc) {
    State* s = tls_state;
    if (!s || !cuemu_cur) return;
    int space = s->space_of(reinterpret_cast<uintptr_t>(p));
    if (space < 0) return;  // the thread's own stack, the runtime's data: not device memory
    int linear = current_linear();
    bool created;
    uint32_t index = group_for(s, reinterpret_cast<uint64_t>(pc), kind, linear, uint32_t(s->groups.size()), &created);
    if (created) {
        s->groups.emplace_back();
        s->groups.back().kind = uint8_t(kind);
    }
    Group& g = s->groups[index];
    int lane = linear & 31;
    g.mask |= 1u << lane;
    g.addr[lane] = reinterpret_cast<uint64_t>(p);
    g.size[lane] = uint16_t(size);
    g.space[lane] = int8_t(space == kMaxSpaces ? -2 : space);
}

// A range of more than 16 bytes (a memcpy, memset) as the GPU would move it: 16 bytes per lane and
// request, the k-th chunk of every lane forming the k-th request.
inline void record_range(const void* p, unsigned long n, int kind, void* pc) {
    const char* c = static_cast<const char*>(p);
    for (unsigned long off = 0; off < n; off += 16)
        record(const_cast<char*>(c + off), unsigned(n - off < 16 ? n - off : 16), kind, pc);
}

// Distinct values among the first n of v (sorted in place).
inline int distinct(uint64_t* v, int n) {
    std::sort(v, v + n);
    return int(std::unique(v, v + n) - v);
}

// Bytes in the union of the ranges [starts[i], ends[i]).
unsigned long long union_bytes(const uint64_t* starts, const uint64_t* ends, int n) {
    std::pair<uint64_t, uint64_t> r[32];
    for (int i = 0; i < n; i++) r[i] = {starts[i], ends[i]};
    std::sort(r, r + n);
    unsigned long long total = 0;
    uint64_t lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].first > hi) { total += hi - lo; lo = r[i].first; hi = r[i].second; }
        else if (r[i].second > hi) hi = r[i].second;
    }
    return total + (hi - lo);
}

void State::reduce(const Group& g) {
    // Lanes of one request may touch several arrays: count each space separately.
    int spaces[33], nspaces = 0;
    for (int l = 0; l < 32; l++) {
        if (!(g.mask >> l & 1)) continue;
        int sp = g.space[l] == -2 ? kMaxSpaces : g.space[l];
        if (std::find(spaces, spaces + nspaces, sp) == spaces + nspaces) spaces[nspaces++] = sp;
    }
    for (int k = 0; k < nspaces; k++) {
        int sp = spaces[k];
        unsigned long long* c = totals.space[sp];
        uint64_t sectors[64], lines[64], words[32 * 4], starts[32], ends[32];
        int ns = 0, nl = 0, nw = 0, lanes = 0;
        unsigned long long bytes = 0;
        uint64_t base = sp == kMaxSpaces ? shared_lo : 0;
        for (int l = 0; l < 32; l++) {
            if (!(g.mask >> l & 1) || (g.space[l] == -2 ? kMaxSpaces : g.space[l]) != sp) continue;
            uint64_t a = g.addr[l], e = a + (g.size[l] ? g.size[l] : 1);
            starts[lanes] = a;
            ends[lanes] = e;
            lanes++;
            bytes += g.size[l];
            for (uint64_t s = a >> 5; s <= (e - 1) >> 5 && ns < 64; s++) sectors[ns++] = s;
            for (uint64_t s = a >> 7; s <= (e - 1) >> 7 && nl < 64; s++) lines[nl++] = s;
            for (uint64_t w = (a - base) >> 2; w <= (e - 1 - base) >> 2 && nw < 128; w++) words[nw++] = w;
        }
        if (g.kind == ATOMIC) {
            c[F_atomic_requests]++;
            c[F_atomic_ops] += lanes;
            c[F_atomic_same_address] += lanes - distinct(starts, lanes);
        }
        if (sp == kMaxSpaces) {
            // 32 banks of 4-byte words: a request takes as many wavefronts as the busiest bank has
            // distinct words (the same word is broadcast); more than the bytes need is a conflict.
            int nd = distinct(words, nw), per_bank[32] = {}, busiest = 0;
            for (int i = 0; i < nd; i++) busiest = std::max(busiest, ++per_bank[words[i] & 31]);
            c[F_wavefronts] += busiest;
            c[F_bank_conflicts] += busiest - (nd + 31) / 32;
        } else {
            int nd = distinct(sectors, ns);
            for (int i = 0; i < nd; i++) totals.sectors[sp].insert(sectors[i]);
        }
        if (g.kind == ATOMIC) continue;
        // useful bytes: the union of the lanes' byte ranges
        unsigned long long useful = union_bytes(starts, ends, lanes);
        bool store = g.kind == STORE;
        c[store ? F_store_requests : F_load_requests]++;
        c[store ? F_store_bytes : F_load_bytes] += bytes;
        c[store ? F_store_useful_bytes : F_load_useful_bytes] += useful;
        if (sp != kMaxSpaces) {
            c[store ? F_store_sectors : F_load_sectors] += distinct(sectors, ns);
            c[store ? F_store_lines : F_load_lines] += distinct(lines, nl);
        }
    }
}

// Reduce every request recorded so far; called where all lanes have finished them.
void State::flush() {
    for (const Group& g : groups) reduce(g);
    for (auto& kv : sites) {
        if (kv.first.kind != BRANCH) continue;
        uint32_t live = live_mask(kv.first.warp);
        for (uint32_t gi : kv.second.groups) {
            const BlockRun& r = branches[gi];
            totals.scalar[F_warp_blocks]++;
            totals.scalar[F_active_lanes] += __builtin_popcount(r.mask);
            totals.scalar[F_divergent_blocks] += r.mask != live;
            totals.scalar[F_divergent_branches] += r.split;
        }
    }
    std::memset(last_run, 0xff, sizeof last_run);   // runs do not continue across a flush (a barrier)
    groups.clear();
    branches.clear();
    sites.clear();
}

inline void record_block(void* pc) {
    State* s = tls_state;
    if (!s || !cuemu_cur) return;
    int linear = current_linear();
    bool created;
    uint32_t index = group_for(s, reinterpret_cast<uint64_t>(pc), BRANCH, linear, uint32_t(s->branches.size()), &created);
    if (created) s->branches.emplace_back();
    s->branches[index].mask |= 1u << (linear & 31);
    uint32_t prev = s->last_run[linear];
    if (prev != State::kNone) {
        State::BlockRun& p = s->branches[prev];
        if (p.next == State::kNone) p.next = index;
        else if (p.next != index) p.split = true;
    }
    s->last_run[linear] = index;
}

}  // namespace cuemu_prof

// ---------------------------------------------------------------- calls from the runtime
namespace cuemu_prof {

State* launch_begin(State* s, const unsigned long long* ranges, int n, uintptr_t shared_lo, uintptr_t shared_hi) {
    if (!s) s = new State();
    s->nranges = n < kMaxSpaces ? n : kMaxSpaces;
    for (int i = 0; i < s->nranges; i++) { s->lo[i] = ranges[2 * i]; s->hi[i] = ranges[2 * i] + ranges[2 * i + 1]; }
    s->shared_lo = shared_lo;
    s->shared_hi = shared_hi;
    s->totals.clear();
    s->sites.clear();     // a launch that failed mid-block leaves its requests behind
    s->groups.clear();
    s->branches.clear();
    tls_state = s;
    return s;
}

void block_begin(State* s, int nthreads) {
    s->nthreads = nthreads;
    std::memset(s->epoch, 0, sizeof s->epoch);
    std::memset(s->last_run, 0xff, sizeof s->last_run);
    s->totals.scalar[F_blocks]++;
}

void lane_sync(State* s, int linear) { s->epoch[linear]++; }

void barrier_done(State* s) {
    s->totals.scalar[F_barriers]++;
    s->flush();
}

void warp_op_done(State* s) { s->totals.scalar[F_warp_ops]++; }

void block_end(State* s, unsigned long static_shared) {
    s->flush();
    unsigned long long& m = s->totals.scalar[F_max_static_shared_bytes];
    if (static_shared > m) m = static_shared;
}

Totals last;  // the profiled launch in progress (launches run one at a time)
std::mutex last_mutex;

void launch_reset() { last.clear(); }

// out: (kMaxSpaces + 1) * kSpaceFields space counters (the last row is shared memory), then the scalars.
void copy_last(unsigned long long* out) {
    for (int i = 0; i < kMaxSpaces; i++) last.space[i][F_unique_sectors] = last.sectors[i].size();
    std::memcpy(out, last.space, sizeof last.space);
    std::memcpy(out + (kMaxSpaces + 1) * kSpaceFields, last.scalar, sizeof last.scalar);
}

// Adds a worker's counts to `last`.
void launch_end(State* s) {
    tls_state = nullptr;
    if (!s) return;
    std::lock_guard<std::mutex> g(last_mutex);
    Totals* out = &last;
    for (int i = 0; i <= kMaxSpaces; i++)
        for (int f = 0; f < kSpaceFields; f++) out->space[i][f] += s->totals.space[i][f];
    for (int f = 0; f < kScalarFields; f++)
        out->scalar[f] = f == F_max_static_shared_bytes ? std::max(out->scalar[f], s->totals.scalar[f])
                                                        : out->scalar[f] + s->totals.scalar[f];
    for (int i = 0; i < kMaxSpaces; i++) out->sectors[i].insert(s->totals.sectors[i].begin(), s->totals.sectors[i].end());
}

}  // namespace cuemu_prof

// ---------------------------------------------------------------- hooks called by profiled modules
extern "C" {
#define LLMC_TSAN_RW(n) \
    void __tsan_read##n(void* p) { cuemu_prof::record(p, n, cuemu_prof::LOAD, __builtin_return_address(0)); } \
    void __tsan_write##n(void* p) { cuemu_prof::record(p, n, cuemu_prof::STORE, __builtin_return_address(0)); } \
    void __tsan_unaligned_read##n(void* p) { cuemu_prof::record(p, n, cuemu_prof::LOAD, __builtin_return_address(0)); } \
    void __tsan_unaligned_write##n(void* p) { cuemu_prof::record(p, n, cuemu_prof::STORE, __builtin_return_address(0)); }
LLMC_TSAN_RW(1) LLMC_TSAN_RW(2) LLMC_TSAN_RW(4) LLMC_TSAN_RW(8) LLMC_TSAN_RW(16)
#undef LLMC_TSAN_RW
void __tsan_read_range(void* p, unsigned long n) { cuemu_prof::record_range(p, n, cuemu_prof::LOAD, __builtin_return_address(0)); }
void __tsan_write_range(void* p, unsigned long n) { cuemu_prof::record_range(p, n, cuemu_prof::STORE, __builtin_return_address(0)); }
void __tsan_func_entry(void*) {}
void __tsan_func_exit(void) {}
void __tsan_init(void) {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
void __sanitizer_cov_trace_pc(void) { cuemu_prof::record_block(__builtin_return_address(0)); }
// An atomic function of emulation.h reports itself once (its compare-and-swap retries are not
// requests); the sanitizer's atomic hooks below only do the operation.
void cuemu_prof_atomic(void* p, unsigned size) { cuemu_prof::record(p, size, cuemu_prof::ATOMIC, __builtin_return_address(0)); }
// A profiled module's own memcpy/memset calls (linked with --wrap).
void* __wrap_memcpy(void* dst, const void* src, unsigned long n) {
    cuemu_prof::record_range(src, n, cuemu_prof::LOAD, __builtin_return_address(0));
    cuemu_prof::record_range(dst, n, cuemu_prof::STORE, __builtin_return_address(0));
    return std::memcpy(dst, src, n);
}
void* __wrap_memset(void* dst, int value, unsigned long n) {
    cuemu_prof::record_range(dst, n, cuemu_prof::STORE, __builtin_return_address(0));
    return std::memset(dst, value, n);
}

#define LLMC_TSAN_ATOMIC(n, T) \
    T __tsan_atomic##n##_load(const volatile T* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); } \
    void __tsan_atomic##n##_store(volatile T* a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_exchange(volatile T* a, T v, int) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_fetch_add(volatile T* a, T v, int) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_fetch_sub(volatile T* a, T v, int) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_fetch_and(volatile T* a, T v, int) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_fetch_or(volatile T* a, T v, int) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_fetch_xor(volatile T* a, T v, int) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_fetch_nand(volatile T* a, T v, int) { return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST); } \
    int __tsan_atomic##n##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) { \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); } \
    int __tsan_atomic##n##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) { \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); } \
    T __tsan_atomic##n##_compare_exchange_val(volatile T* a, T c, T v, int, int) { \
        __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return c; }
LLMC_TSAN_ATOMIC(8, unsigned char) LLMC_TSAN_ATOMIC(16, unsigned short) LLMC_TSAN_ATOMIC(32, unsigned int)
LLMC_TSAN_ATOMIC(64, unsigned long long)
#undef LLMC_TSAN_ATOMIC
void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

// The names of the counters, in the order copy_last writes them, so that Python needs no copy of the list.
// sizes: the number of space fields, of scalar fields, and kMaxSpaces; the name arrays hold 64 each.
void cuemu_profile_fields(const char** space_names, const char** scalar_names, int* sizes) {
    for (int i = 0; i < cuemu_prof::kSpaceFields; i++) space_names[i] = cuemu_prof::space_names[i];
    for (int i = 0; i < cuemu_prof::kScalarFields; i++) scalar_names[i] = cuemu_prof::scalar_names[i];
    sizes[0] = cuemu_prof::kSpaceFields;
    sizes[1] = cuemu_prof::kScalarFields;
    sizes[2] = cuemu_prof::kMaxSpaces;
}

}  // extern "C"
