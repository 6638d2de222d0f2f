// Static and dynamic shared memory: reverse within a block; block sums into one total.
extern "C" __global__ void reverse_block(float* out, const float* inp, int n) {
    __shared__ float tile[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    tile[threadIdx.x] = i < n ? inp[i] : 0.0f;
    __syncthreads();
    int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - threadIdx.x);
    if (j < n) out[j] = tile[threadIdx.x];
}

extern "C" __global__ void block_sum(float* sums, float* total, const float* inp, int n) {
    extern __shared__ float partial[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? inp[i] : 0.0f;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        sums[blockIdx.x] = partial[0];
        atomicAdd(total, partial[0]);
    }
}

// Reads a shared slot before any thread of this block wrote it: what the previous block left.
extern "C" __global__ void first_read(unsigned int* seen) {
    __shared__ unsigned int slot[32];
    seen[blockIdx.x * blockDim.x + threadIdx.x] = slot[threadIdx.x];
    __syncthreads();
    slot[threadIdx.x] = blockIdx.x + 1;
}

extern "C" __global__ void count_and_or(int* out, const int* flags) {
    int f = flags[blockIdx.x * blockDim.x + threadIdx.x];
    int c = __syncthreads_count(f);
    int a = __syncthreads_and(f);
    int o = __syncthreads_or(f);
    if (threadIdx.x == 0) {
        out[3 * blockIdx.x] = c;
        out[3 * blockIdx.x + 1] = a;
        out[3 * blockIdx.x + 2] = o;
    }
}
