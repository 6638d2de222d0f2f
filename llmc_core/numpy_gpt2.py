"""GPT-2's forward layers in numpy, for lesson 03 and the lessons after it, which build on lesson 02.

The code has one home: lesson 02's solution notebook (`solutions/02_gpt2_numpy_forward.ipynb`).
`llmc build` writes its code cells as the module `llmc_core.references.gpt2_numpy_forward`
(generated: never edited by hand), and this module hands out its layers:

    from llmc_core.numpy_gpt2 import layernorm_forward, attention_forward

So lesson 03 builds on a working forward pass even when a learner's lesson 02 is unfinished, and
the layers are never written twice. Only what a later lesson needs ships this way: lesson 03's own
solution stays in solutions/, out of a student release.
"""
from llmc_core.references.gpt2_numpy_forward import (
    GELU_SCALE,
    attention_forward,
    attention_forward_loop,
    block_forward,
    crossentropy_forward,
    encoder_forward,
    gelu_forward,
    generate,
    gpt2_forward,
    layernorm_forward,
    matmul_forward,
    model_forward,
    residual_forward,
    sample,
    sampling_probs,
    softmax_forward,
)

# In the order the lesson defines them.
__all__ = [
    "encoder_forward", "layernorm_forward", "matmul_forward", "GELU_SCALE", "gelu_forward",
    "residual_forward", "softmax_forward", "attention_forward_loop", "attention_forward",
    "crossentropy_forward", "block_forward", "model_forward", "gpt2_forward",
    "sampling_probs", "sample", "generate",
]
