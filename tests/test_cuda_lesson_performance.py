"""The performance probes of lessons 06 and 07 fail a correct but slow kernel: each slow kernel below passes a
correctness probe of its exercise and fails the exercise's performance probe, whose message names the counter
that missed. (The solutions pass every probe: tests/test_probes.py.) A kernel that fails only its performance
probe is not blamed for the failures of the exercises that use it."""
import pytest

from llmc_core.checking import mark_blocked
from llmc_core.course import lesson_by_prefix
from llmc_core.exercises import ProbeResult, judge, load_snapshots, probes_for, run_probe

GELU_ONE_FLOAT_AT_A_TIME = r"""
extern "C" __global__ void gelu_forward_float4(float* out, const float* inp, int N) {
    int i = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    for (int j = i; j < i + 4 && j < N; j++) {
        float x = inp[j];
        out[j] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    }
}
"""
LAYERNORM_LANE_ZERO_ONLY = r"""
extern "C" __global__ void layernorm_forward_warp(float* out, float* mean, float* rstd, const float* inp,
                                                  const float* weight, const float* bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N || threadIdx.x % 32 != 0) return;  // lane 0 does the row alone, in three passes
    const float* x = inp + (size_t)row * C;
    float m = 0.0f, var = 0.0f;
    for (int i = 0; i < C; i++) m += x[i];
    m /= C;
    for (int i = 0; i < C; i++) var += (x[i] - m) * (x[i] - m);
    float s = rsqrtf(var / C + 1e-5f);
    for (int i = 0; i < C; i++) out[(size_t)row * C + i] = (x[i] - m) * s * weight[i] + bias[i];
    mean[row] = m;
    rstd[row] = s;
}
"""
SOFTMAX_WARP_THREE_PASSES = r"""
extern "C" __global__ void softmax_online(float* out, const float* inp, int N, int C) {
    int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float* x = inp + (size_t)row * C;
    float m = -3.402823466e+38f, s = 0.0f;
    for (int i = lane; i < C; i += 32) m = fmaxf(m, x[i]);  // coalesced, but the row is read three times
    for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
    for (int i = lane; i < C; i += 32) s += expf(x[i] - m);
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffff, s, o);
    for (int i = lane; i < C; i += 32) out[(size_t)row * C + i] = expf(x[i] - m) / s;
}
"""
MATMUL_NAIVE_AS_TILED = r"""
extern "C" __global__ void matmul_tiled(float* out, const float* inp, const float* weight, const float* bias,
                                        int N, int C, int OC) {
    int col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= N || col >= OC) return;
    float sum = bias[col];
    for (int k = 0; k < C; k++) sum += inp[(size_t)row * C + k] * weight[(size_t)k * OC + col];
    out[(size_t)row * OC + col] = sum;
}
"""
MATMUL_BLOCKED_FROM_GLOBAL = r"""
extern "C" __global__ void matmul_blocked(float* out, const float* inp, const float* weight, const float* bias,
                                          int N, int C, int OC) {
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < 8; j++) {  // the right 8 x 8 outputs, each a dot product read from global memory
            int r = blockIdx.y * 128 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
            int c = blockIdx.x * 128 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
            if (r >= N || c >= OC) continue;
            float sum = bias[c];
            for (int k = 0; k < C; k++) sum += inp[(size_t)r * C + k] * weight[(size_t)k * OC + c];
            out[(size_t)r * OC + c] = sum;
        }
    }
}
"""
ATTENTION_LANE_ZERO_ONLY = r"""
extern "C" __global__ void attention_fused(float* out, const float* qkv, int B, int T, int C, int NH) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (w >= B * T * NH || threadIdx.x % 32 != 0) return;  // lane 0 does the whole row and head
    int h = w % NH, t = (w / NH) % T, b = w / (T * NH), HS = C / NH;
    const float* q = qkv + (size_t)(b * T + t) * 3 * C + h * HS;
    float acc[128], m = -3.402823466e+38f, s = 0.0f;
    for (int o = 0; o < HS; o++) acc[o] = 0.0f;
    for (int t2 = 0; t2 <= t; t2++) {
        const float* k = qkv + (size_t)(b * T + t2) * 3 * C + C + h * HS;
        float dot = 0.0f;
        for (int o = 0; o < HS; o++) dot += q[o] * k[o];
        float score = dot / sqrtf((float)HS), m_new = fmaxf(m, score);
        float correction = expf(m - m_new), p = expf(score - m_new);
        s = s * correction + p;
        for (int o = 0; o < HS; o++) acc[o] = acc[o] * correction + p * k[C + o];
        m = m_new;
    }
    for (int o = 0; o < HS; o++) out[(size_t)(b * T + t) * C + h * HS + o] = acc[o] / s;
}
"""
CLASSIFIER_ONLINE_PASS = """    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = x[i];
        float m_new = fmaxf(m, v);
        s = s * expf(m - m_new) + expf(v - m_new);
        m = m_new;
    }"""
CLASSIFIER_TWO_PASSES = """    for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, x[i]);
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(x[i] - m);"""

# prefix, source function, slow source (or a function of the solution's source), a correctness probe it passes,
# the performance probe it fails
CASES = {
    "gelu_one_float_at_a_time": ("cuda", "gelu_forward_float4_source", GELU_ONE_FLOAT_AT_A_TIME,
                                 "gelu_float4_tail", "gelu_float4_traffic"),
    "layernorm_lane_zero_only": ("cuda", "layernorm_forward_warp_source", LAYERNORM_LANE_ZERO_ONLY,
                                 "layernorm_warp_per_row", "layernorm_warp_traffic"),
    "softmax_three_passes": ("cuda", "softmax_online_source", SOFTMAX_WARP_THREE_PASSES,
                             "softmax_online_values", "softmax_online_traffic"),
    "matmul_naive_as_tiled": ("cuda_fast", "matmul_tiled_source", MATMUL_NAIVE_AS_TILED,
                              "matmul_tiled_values", "matmul_tiled_traffic"),
    "matmul_blocked_from_global": ("cuda_fast", "matmul_blocked_source", MATMUL_BLOCKED_FROM_GLOBAL,
                                   "matmul_blocked_values", "matmul_blocked_traffic"),
    "attention_lane_zero_only": ("cuda_fast", "attention_fused_source", ATTENTION_LANE_ZERO_ONLY,
                                 "attention_fused_values", "attention_fused_traffic"),
    "classifier_three_passes": ("cuda_fast", "classifier_fused_source",
                                lambda source: source.replace(CLASSIFIER_ONLINE_PASS, CLASSIFIER_TWO_PASSES),
                                "classifier_losses_and_gradients", "classifier_fused_traffic"),
}


def judged(lesson, nb, name):
    probe = next(p for p in probes_for(lesson) if p.name == name)
    return judge(probe, run_probe(probe, nb), load_snapshots(lesson)[probe.id])


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_correct_but_slow_kernel_fails_the_performance_probe(solutions, case):
    prefix, source_name, slow, correctness, performance = CASES[case]
    lesson = lesson_by_prefix(prefix)
    nb = solutions(lesson)
    original = nb.__dict__[source_name]
    slow_source = slow(original()) if callable(slow) else slow
    assert slow_source != original(), "the slow kernel must differ from the solution's"
    nb.__dict__[source_name] = lambda: slow_source
    try:
        correct, fast = judged(lesson, nb, correctness), judged(lesson, nb, performance)
    finally:
        nb.__dict__[source_name] = original
    assert correct.status == "passed", f"the slow kernel should be correct: {correct.message}"
    assert fast.status == "failed", f"{fast.probe_id} {fast.status} on a slow kernel: {fast.message}"
    assert "above the limit" in fast.message or "below the minimum" in fast.message, fast.message


def test_only_a_wrong_kernel_is_blamed_for_the_exercises_that_use_it():
    """gpt2 runs matmul_blocked: its failing check says to fix matmul_blocked first when a correctness probe of that
    fails, and shows its own message when only matmul_blocked's performance probe fails (its results are still
    right)."""
    probes = [p for p in probes_for(lesson_by_prefix("cuda_fast"))
              if p.exercise in ("cuda_fast/matmul_blocked", "cuda_fast/gpt2")]
    gpt2 = next(i for i, p in enumerate(probes) if p.name == "gpt2_loss_and_gradients")

    def marked(failing):
        results = [ProbeResult(p.id, p.exercise, p.name, "failed" if p.name in failing else "passed", 0, p.points)
                   for p in probes]
        return mark_blocked(probes, results)[gpt2]

    assert marked({"matmul_blocked_traffic", "gpt2_loss_and_gradients"}).blocked_by == []
    assert marked({"matmul_blocked_values", "gpt2_loss_and_gradients"}).blocked_by == ["cuda_fast/matmul_blocked"]
