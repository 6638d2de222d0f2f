// Every warp shuffle and vote, one output column each.
extern "C" __global__ void shuffles(float* out, const float* inp, int src, int delta, int mask, int width) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = inp[i];
    out[6 * i + 0] = __shfl_sync(0xffffffff, v, src);
    out[6 * i + 1] = __shfl_sync(0xffffffff, v, src, width);
    out[6 * i + 2] = __shfl_up_sync(0xffffffff, v, delta, width);
    out[6 * i + 3] = __shfl_down_sync(0xffffffff, v, delta);
    out[6 * i + 4] = __shfl_down_sync(0xffffffff, v, delta, width);
    out[6 * i + 5] = __shfl_xor_sync(0xffffffff, v, mask, width);
}

extern "C" __global__ void votes(unsigned int* out, const int* pred) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int p = pred[i];
    out[3 * i + 0] = __ballot_sync(0xffffffff, p);
    out[3 * i + 1] = __any_sync(0xffffffff, p);
    out[3 * i + 2] = __all_sync(0xffffffff, p);
}

// Lanes of the lower half-warp reduce among themselves only (a partial mask), then __syncwarp.
extern "C" __global__ void half_warp_sum(float* out, const float* inp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x % 32;
    float v = inp[i];
    if (lane < 16) {
        for (int offset = 8; offset > 0; offset /= 2) v += __shfl_down_sync(0x0000ffff, v, offset, 16);
    }
    __syncwarp();
    out[i] = v;
}

// A warp-sized reduction of doubles (8-byte shuffles).
extern "C" __global__ void warp_sum_double(double* out, const double* inp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    double v = inp[i];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
    out[i] = v;
}
