// Kernels whose performance counters can be worked out by hand (tests/test_cuda_profile.py).
// name_expressions: transpose<32>, transpose<33>
extern "C" __global__ void copy_strided(float* out, const float* in, int n, int stride) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[(i * stride) % n];
}

extern "C" __global__ void copy_float4(float4* out, const float4* in, int n4) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n4) out[i] = in[i];
}

// out = in^T for an n x n matrix, n a multiple of 32, through a 32 x PAD shared tile.
template <int PAD>
__global__ void transpose(float* out, const float* in, int n) {
    __shared__ float tile[32][PAD];
    int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
    tile[threadIdx.y][threadIdx.x] = in[y * n + x];
    __syncthreads();
    x = blockIdx.y * 32 + threadIdx.x;
    y = blockIdx.x * 32 + threadIdx.y;
    out[y * n + x] = tile[threadIdx.x][threadIdx.y];
}

extern "C" __global__ void count_same(int* counter) { atomicAdd(counter, 1); }

extern "C" __global__ void count_own(int* counters) { atomicAdd(&counters[blockIdx.x * blockDim.x + threadIdx.x], 1); }

// Each warp sums its 32 values with five shuffles; lane 0 writes the sum.
extern "C" __global__ void warp_sum(float* out, const float* in) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = in[i];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) out[i / 32] = v;
}

// Lanes below `split` loop `work` times, the others not at all: the warp diverges.
extern "C" __global__ void diverge(float* out, int split, int work) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float acc = 0.0f;
    int n = (threadIdx.x % 32) < split ? work : 0;
    for (int k = 0; k < n; k++) acc = acc * 0.5f + k;
    out[i] = acc;
}

// out (M, N) = a (M, K) @ b (K, N), one thread per output, no reuse through shared memory.
extern "C" __global__ void matmul_naive(float* out, const float* a, const float* b, int M, int N, int K) {
    int col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= M || col >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += a[row * K + k] * b[k * N + col];
    out[row * N + col] = acc;
}
