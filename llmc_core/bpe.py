"""Lesson 04's fast BPE trainer, for `llmc tokenizer train` and the trainer (llmc_core.tokenizer).

The code has one home: lesson 04's solution notebook (`solutions/04_bpe_tokenizer.ipynb`,
section 12, "A fast trainer"). `llmc build` copies it into the package (`llmc_core/references/`),
and this module loads it on first use of one of its names, as llmc_core.numpy_gpt2 does for
lesson 02:

    from llmc_core import bpe
    merges = bpe.train_merges_fast(bpe.count_chunks(text, pattern), vocab_size)

The grader hides the copy from a child grading lesson 04 itself, so it cannot hand out answers.
"""
from llmc_core.numpy_gpt2 import served_from_references

# The names the solution notebook provides, in the order the lesson defines them.
NAMES = {
    "04_bpe_tokenizer": ("merge", "count_chunks", "count_chunks_parallel", "train_merges_fast"),
}
__all__ = [name for names in NAMES.values() for name in names]


__getattr__ = served_from_references(__name__, NAMES)
