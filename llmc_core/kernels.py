"""Lesson 06's CUDA kernels and launch helpers, for lesson 07, which builds on them.

The code has one home: lesson 06's solution notebook (`solutions/06_cuda_kernels.ipynb`).
`llmc build` copies it into the package (`llmc_core/references/`), and this module hands out its
names, loading it once on first use (as `llmc_core.numpy_gpt2` does for lesson 02):

    from llmc_core.kernels import compiled, ceil_div, softmax_online

So lesson 07 runs on working elementwise, LayerNorm and softmax kernels even when a learner's
lesson 06 is unfinished, and no kernel is written twice.
"""
from llmc_core.numpy_gpt2 import served_from_references

# The names lesson 06's solution provides, in the order it defines them.
NAMES = {
    "06_cuda_kernels": (
        "time_kernel", "keep_gpu_busy", "l2_flush_bytes", "device_attribute", "device_peaks", "report",
        "compiled", "ceil_div", "device_array", "show_profiles",
        "gelu_forward", "gelu_forward_float4", "gelu_backward",
        "layernorm_forward", "layernorm_forward_warp", "layernorm_backward",
        "softmax_forward", "softmax_online_source", "softmax_online",
    ),
}
__all__ = [name for names in NAMES.values() for name in names]


__getattr__ = served_from_references(__name__, NAMES)
