"""Lesson 06's CUDA kernels and launch helpers, for lesson 07, which builds on them.

The code has one home: lesson 06's solution notebook (`solutions/06_cuda_kernels.ipynb`).
`llmc build` writes its code cells, CUDA C source strings included, as the module
`llmc_core.references.cuda_kernels` (generated, as for lesson 02: see llmc_core.numpy_gpt2), and
this module hands out its helpers and kernels:

    from llmc_core.kernels import compiled, ceil_div, softmax_online

So lesson 07 runs on working elementwise, LayerNorm and softmax kernels even when a learner's
lesson 06 is unfinished, and no kernel is written twice.
"""
from llmc_core.references.cuda_kernels import (
    ceil_div,
    compiled,
    device_array,
    device_attribute,
    device_peaks,
    gelu_backward,
    gelu_forward,
    gelu_forward_float4,
    keep_gpu_busy,
    l2_flush_bytes,
    layernorm_backward,
    layernorm_forward,
    layernorm_forward_warp,
    report,
    show_profiles,
    softmax_forward,
    softmax_online,
    softmax_online_source,
    time_kernel,
)

# In the order the lesson defines them.
__all__ = [
    "time_kernel", "keep_gpu_busy", "l2_flush_bytes", "device_attribute", "device_peaks", "report",
    "compiled", "ceil_div", "device_array", "show_profiles",
    "gelu_forward", "gelu_forward_float4", "gelu_backward",
    "layernorm_forward", "layernorm_forward_warp", "layernorm_backward",
    "softmax_forward", "softmax_online_source", "softmax_online",
]
