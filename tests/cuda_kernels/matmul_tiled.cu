// out (M, N) = a (M, K) @ b (K, N), 32x32 tiles in shared memory; each thread computes
// ROWS outputs of one column, so a block of 32 x (32 / ROWS) threads covers one tile.
// name_expressions: matmul_tiled<1>, matmul_tiled<4>, matmul_tiled<8>
template <int ROWS>
__global__ void matmul_tiled(float* out, const float* a, const float* b, int M, int N, int K) {
    __shared__ float ta[32][32];
    __shared__ float tb[32][32];
    int col = blockIdx.x * 32 + threadIdx.x;
    int row0 = blockIdx.y * 32 + threadIdx.y * ROWS;
    float acc[ROWS];
    for (int r = 0; r < ROWS; r++) acc[r] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 32) {
        for (int r = 0; r < ROWS; r++) {
            int ty = threadIdx.y * ROWS + r;
            ta[ty][threadIdx.x] = (blockIdx.y * 32 + ty < M && k0 + threadIdx.x < K) ? a[(blockIdx.y * 32 + ty) * K + k0 + threadIdx.x] : 0.0f;
            tb[ty][threadIdx.x] = (k0 + ty < K && col < N) ? b[(k0 + ty) * N + col] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int k = 0; k < 32; k++) {
            float bk = tb[k][threadIdx.x];
#pragma unroll
            for (int r = 0; r < ROWS; r++) acc[r] += ta[threadIdx.y * ROWS + r][k] * bk;
        }
        __syncthreads();
    }
    for (int r = 0; r < ROWS; r++)
        if (row0 + r < M && col < N) out[(row0 + r) * N + col] = acc[r];
}
