"""The probes of lessons 06 and 07 catch the mistakes they are written for: each broken kernel (one edit of a
solution kernel) fails at least the named probe, judged against the solution's snapshots."""
import pytest

from llmc_core.course import lesson_by_prefix
from llmc_core.cuda import backend_name
from llmc_core.exercises import judge, load_snapshots, probes_for, run_probe

# (source function, text in the solution, replacement, a probe of the lesson defining the function that must then fail)
MUTATIONS = {
    "gelu_no_bounds_check": ("gelu_forward_source", "if (i < N) {", "{", "gelu_smaller_than_a_block"),
    "float4_no_tail": ("gelu_forward_float4_source", "for (; i < N; i++) out[i] = gelu(inp[i]);", "",
                       "gelu_float4_tail"),
    "layernorm_unbiased_variance": ("layernorm_forward_source", "rsqrtf(var / C + 1e-5f)",
                                    "rsqrtf(var / (C - 1) + 1e-5f)", "layernorm_thread_per_row"),
    "warp_sum_without_zero_padding": ("layernorm_forward_warp_source", "xs[j] = i < C ? x[i] : 0.0f;",
                                      "xs[j] = x[i < C ? i : 0];", "layernorm_warp_narrow_rows"),
    "layernorm_backward_overwrites": ("layernorm_backward_source", "dinp[(size_t)row * C + i] +=",
                                      "dinp[(size_t)row * C + i] =", "layernorm_gradients"),
    "layernorm_backward_no_barrier": ("layernorm_backward_source",
                                      "    __syncthreads();\n"
                                      "    for (int i = threadIdx.x; i < C; i += blockDim.x) {  // one",
                                      "    for (int i = threadIdx.x; i < C; i += blockDim.x) {  // one",
                                      "layernorm_gradients_many_blocks"),
    "softmax_no_max": ("softmax_forward_source",
                       "float maxval = x[0];\n    for (int i = 1; i < C; i++) maxval = fmaxf(maxval, x[i]);  // pass 1",
                       "float maxval = 0.0f;", "softmax_three_pass"),
    "online_softmax_starts_at_minus_inf": ("softmax_online_source", "float m = NEG_FLT_MAX",
                                           "float m = __int_as_float(0xff800000)", "softmax_online_short_rows"),
}
FAST_MUTATIONS = {
    "tiled_matmul_no_barriers": ("matmul_tiled_source", "__syncthreads();", "", "matmul_tiled_barriers"),
    "blocked_matmul_no_barriers": ("matmul_blocked_source", "__syncthreads();", "", "matmul_blocked_several_blocks"),
    "attention_without_mask": ("attention_forward_source", "if (t2 > t) {", "if (false) {", "attention_composed"),
    "fused_attention_without_rescale": ("attention_fused_source", "float correction = expf(m - m_new);",
                                        "float correction = 1.0f;", "attention_fused_values"),
    "classifier_softmax_over_padding": ("classifier_fused_source", "float p = i < V ? expf(x[i] - lse) : 0.0f;",
                                        "float p = expf(x[i] - lse);", "classifier_losses_and_gradients"),
    "classifier_no_barrier": ("classifier_fused_source", "    __syncthreads();\n    m = warp_m[0];",
                              "    m = warp_m[0];", "classifier_many_warps"),
    "adamw_no_bias_correction": ("adamw_update_source", "float m_hat = mi / beta1_correction", "float m_hat = mi",
                                 "adamw_three_steps"),
    "deterministic_encoder_overwrites": ("encoder_backward_deterministic_source", "dwpe[i] += sum;", "dwpe[i] = sum;",
                                         "encoder_fixed_order"),
}
CASES = ([("cuda", name, MUTATIONS[name]) for name in MUTATIONS]
         + [("cuda_fast", name, FAST_MUTATIONS[name]) for name in FAST_MUTATIONS])


@pytest.mark.parametrize("prefix,mutation,case", CASES, ids=[name for _, name, _ in CASES])
def test_probe_fails_on_a_broken_kernel(solutions, prefix, mutation, case):
    source_name, old, new, probe_name = case
    lesson = lesson_by_prefix(prefix)
    nb = solutions(lesson)
    if "barrier" in mutation and backend_name() != "cpu":
        pytest.skip("a missing barrier is exposed by the CPU emulator's race exposure only")
    source = getattr(nb, source_name)()
    assert old in source, f"{source_name} no longer contains {old!r}: update this mutation"
    broken = source.replace(old, new)
    probe = next(p for p in probes_for(lesson) if p.name == probe_name)
    original = nb.__dict__[source_name]
    nb.__dict__[source_name] = lambda: broken
    try:
        result = judge(probe, run_probe(probe, nb), load_snapshots(lesson)[probe.id])
    finally:
        nb.__dict__[source_name] = original
    assert result.status in ("failed", "error"), f"{probe.id} still {result.status} with the broken kernel"
