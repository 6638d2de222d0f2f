"""Lesson 04's fast BPE trainer, for `llmc tokenizer train` and the trainer (llmc_core.tokenizer).

The code has one home: lesson 04's solution notebook (`solutions/04_bpe_tokenizer.ipynb`,
section 12, "A fast trainer"). `llmc build` writes its code cells as the module
`llmc_core.references.bpe_tokenizer` (generated, as for lesson 02: see llmc_core.numpy_gpt2),
and this module hands out the trainer:

    from llmc_core import bpe
    merges = bpe.train_merges_fast(bpe.count_chunks(text, pattern), vocab_size)

The grader hides the generated module from a child grading lesson 04 itself, so it cannot hand out answers.
"""
from llmc_core.references.bpe_tokenizer import count_chunks, count_chunks_parallel, merge, train_merges_fast

# In the order the lesson defines them.
__all__ = ["merge", "count_chunks", "count_chunks_parallel", "train_merges_fast"]
