// LayerNorm forward, one warp per row of C channels (llm.c's layout).
// out, mean, rstd: outputs; inp (N, C); weight, bias (C).
extern "C" __global__ void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                             const float* weight, const float* bias, int N, int C) {
    int warps_per_block = blockDim.x / 32;
    int row = blockIdx.x * warps_per_block + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;
    const float* x = inp + row * C;
    float sum = 0.0f;
    for (int i = lane; i < C; i += 32) sum += x[i];
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffff, sum, offset);
    float m = sum / C;
    float var = 0.0f;
    for (int i = lane; i < C; i += 32) { float d = x[i] - m; var += d * d; }
    for (int offset = 16; offset > 0; offset /= 2) var += __shfl_xor_sync(0xffffffff, var, offset);
    float s = rsqrtf(var / C + 1e-5f);
    for (int i = lane; i < C; i += 32) out[row * C + i] = s * (x[i] - m) * weight[i] + bias[i];
    if (lane == 0) { mean[row] = m; rstd[row] = s; }
}
