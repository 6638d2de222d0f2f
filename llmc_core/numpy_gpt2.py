"""GPT-2's forward layers in numpy, for lesson 03, which builds on lesson 02.

The code has one home: lesson 02's solution notebook (`solutions/02_gpt2_numpy_forward.ipynb`).
`llmc build` copies it into the package (`llmc_core/references/`), and this module loads it once,
on first use of one of its names, and hands out its functions:

    from llmc_core.numpy_gpt2 import layernorm_forward, attention_forward

So lesson 03 builds on a working forward pass even when a learner's lesson 02 is unfinished, and
the layers are never written twice. Only what a later lesson needs ships this way: lesson 03's own
solution stays in solutions/, out of a student release.
"""
import functools

from llmc_core.course import REFERENCE_DIR
from llmc_core.notebook import load_notebook

# The names each solution notebook provides, in the order the lessons define them.
NAMES = {
    "02_gpt2_numpy_forward": (
        "encoder_forward", "layernorm_forward", "matmul_forward", "GELU_SCALE", "gelu_forward",
        "residual_forward", "softmax_forward", "attention_forward_loop", "attention_forward",
        "crossentropy_forward", "block_forward", "model_forward", "gpt2_forward",
        "sampling_probs", "sample", "generate",
    ),
}
__all__ = [name for names in NAMES.values() for name in names]


@functools.cache
def solution(notebook):
    """The solution notebook `notebook` ("02_gpt2_numpy_forward"), loaded once, demo cells skipped."""
    path = REFERENCE_DIR / f"{notebook}.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the package was installed without the reference notebooks "
                                "that `llmc build` puts there; reinstall llmc, or run `llmc build` in a checkout")
    nb = load_notebook(path)
    if nb.cell_errors:
        failures = "; ".join(str(e) for e in nb.cell_errors)
        raise RuntimeError(f"the solution notebook {path.name} does not load cleanly: {failures}")
    return nb


def served_from_references(module_name, names):
    """A module `__getattr__` that hands out `names` ({solution notebook: names}) from the reference copies."""
    def __getattr__(name):
        for notebook, provided in names.items():
            if name in provided:
                return getattr(solution(notebook), name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    return __getattr__


__getattr__ = served_from_references(__name__, NAMES)
