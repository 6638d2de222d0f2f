// The cooperative-groups subset that llm.c-style kernels use, for the CPU emulator:
// this_thread_block(), tiled_partition<N>() and the tile's shuffles, votes and sync.
#pragma once

namespace cooperative_groups {

class thread_block {
public:
    void sync(int line = __builtin_LINE()) const { __syncthreads(line); }
    unsigned int thread_rank() const {
        return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    }
    unsigned int size() const { return blockDim.x * blockDim.y * blockDim.z; }
    unsigned int num_threads() const { return size(); }
    dim3 group_index() const { return dim3(blockIdx.x, blockIdx.y, blockIdx.z); }
    dim3 thread_index() const { return dim3(threadIdx.x, threadIdx.y, threadIdx.z); }
    dim3 dim_threads() const { return blockDim; }
};

inline thread_block this_thread_block() { return thread_block(); }

// N consecutive threads of a warp (N a power of two, at most 32).
template <unsigned int N>
class thread_block_tile {
    static_assert(N >= 1 && N <= 32 && (N & (N - 1)) == 0, "tile size must be a power of two <= 32");
    unsigned int lane() const { return thread_block().thread_rank() % 32; }

public:
    unsigned int mask() const {
        unsigned int bits = N == 32 ? 0xffffffffu : ((1u << N) - 1);
        return bits << (lane() / N * N);
    }
    void sync(int line = __builtin_LINE()) const { __syncwarp(mask(), line); }
    unsigned int thread_rank() const { return lane() % N; }
    unsigned int size() const { return N; }
    unsigned int num_threads() const { return N; }
    unsigned int meta_group_rank() const { return thread_block().thread_rank() / N; }
    unsigned int meta_group_size() const { return (thread_block().size() + N - 1) / N; }
    template <class T> T shfl(T v, int src, int line = __builtin_LINE()) const { return __shfl_sync(mask(), v, src, N, line); }
    template <class T> T shfl_up(T v, unsigned d, int line = __builtin_LINE()) const { return __shfl_up_sync(mask(), v, d, N, line); }
    template <class T> T shfl_down(T v, unsigned d, int line = __builtin_LINE()) const { return __shfl_down_sync(mask(), v, d, N, line); }
    template <class T> T shfl_xor(T v, int m, int line = __builtin_LINE()) const { return __shfl_xor_sync(mask(), v, m, N, line); }
    int any(int p, int line = __builtin_LINE()) const { return __any_sync(mask(), p, line); }
    int all(int p, int line = __builtin_LINE()) const { return __all_sync(mask(), p, line); }
    unsigned int ballot(int p, int line = __builtin_LINE()) const {
        return __ballot_sync(mask(), p, line) >> (lane() / N * N);
    }
};

template <unsigned int N> thread_block_tile<N> tiled_partition(const thread_block&) { return thread_block_tile<N>(); }

}  // namespace cooperative_groups
