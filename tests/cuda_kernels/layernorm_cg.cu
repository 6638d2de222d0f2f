#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
namespace cg = cooperative_groups;
// LayerNorm forward as llm.c writes it: one 32-thread tile per row, cg::reduce for the sums.
extern "C" __global__ void layernorm_forward_cg(float* out, float* mean, float* rstd, const float* inp,
                                                const float* weight, const float* bias, int N, int C) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    int idx = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    if (idx >= N) return;
    const float* x = inp + idx * C;
    float sum = 0.0f;
    for (int i = warp.thread_rank(); i < C; i += warp.size()) sum += x[i];
    sum = cg::reduce(warp, sum, cg::plus<float>{});
    float m = sum / C;
    float var = 0.0f;
    for (int i = warp.thread_rank(); i < C; i += warp.size()) { float d = x[i] - m; var += d * d; }
    var = cg::reduce(warp, var, cg::plus<float>{});
    float s = rsqrtf(var / C + 1e-5f);
    for (int i = warp.thread_rank(); i < C; i += warp.size()) out[idx * C + i] = s * (x[i] - m) * weight[i] + bias[i];
    if (warp.thread_rank() == 0) { mean[idx] = m; rstd[idx] = s; }
}

// Max over 8-thread tiles, and a block-wide sync through the group object.
extern "C" __global__ void tile8_max(float* out, const float* inp) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<8> tile = cg::tiled_partition<8>(block);
    float v = cg::reduce(tile, inp[block.thread_rank()], cg::greater<float>{});
    block.sync();
    out[block.thread_rank()] = v + tile.thread_rank() * 1000.0f;
}
