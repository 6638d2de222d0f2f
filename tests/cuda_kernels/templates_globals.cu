// name_expressions: scale_tile<32>, scale_tile<64>
// A template kernel (instantiated through name_expressions) and a __constant__ table.
__constant__ float coeffs[4];

template <int TILE>
__global__ void scale_tile(float* out, const float* inp, float s) {
    __shared__ float tile[TILE];
    int i = blockIdx.x * TILE + threadIdx.x;
    tile[threadIdx.x] = inp[i];
    __syncthreads();
    out[i] = s * tile[TILE - 1 - threadIdx.x] + TILE;
}

extern "C" __global__ void polynomial(float* out, const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    out[i] = coeffs[0] + v * (coeffs[1] + v * (coeffs[2] + v * coeffs[3]));
}

extern "C" __global__ void hello(int n) {
    if (threadIdx.x < n) printf("block %d thread %d says %.2f\n", blockIdx.x, threadIdx.x, 0.5f * threadIdx.x);
}
