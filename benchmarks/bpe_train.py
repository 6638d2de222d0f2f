"""BPE training speed: lesson 04's fast trainer vs its naive trainer and vs Hugging Face `tokenizers`.

    .venv/bin/python benchmarks/bpe_train.py

All trainers see tiny Shakespeare and the GPT-4 split pattern. The naive trainer re-counts the
whole corpus per merge, so it is timed to completion on a slice (--naive-chars) together with the
fast trainer on the same slice; its time on the whole corpus is also *extrapolated* from its first
--naive-merges merges there, and printed as such. Hugging Face's BPE trainer (Rust) gets the same
corpus, the same pre-tokenization (same regex, bytes as in GPT-2) and the same vocabulary size, on
--hf-threads threads. Times are the best of --repeats runs.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_time  # noqa: E402 (benchmarks/ is on sys.path when run as a script)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 32768], help="vocabulary sizes to train")
    parser.add_argument("--naive-chars", type=int, default=40_000,
                        help="characters of the slice on which the naive trainer runs to completion")
    parser.add_argument("--naive-merges", type=int, default=8,
                        help="merges timed for the naive trainer on the whole corpus (for the extrapolation)")
    parser.add_argument("--workers", type=int, default=1, help="processes for our pre-tokenization")
    parser.add_argument("--hf-threads", type=int, default=1,
                        help="threads for Hugging Face tokenizers (RAYON_NUM_THREADS)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each fast trainer; the best time counts")
    return parser.parse_args()


def main():
    args = parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.hf_threads)  # read when tokenizers starts its thread pool
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    import llmc_core
    from llmc_core.course import solution_path
    from llmc_core.datasets import tiny_shakespeare_text

    nb = llmc_core.load_notebook(solution_path("04_bpe_tokenizer"))
    corpus = tiny_shakespeare_text()
    pattern = nb.GPT4_SPLIT_PATTERN
    print(f"corpus: tiny Shakespeare, {len(corpus):,} characters; pattern GPT-4; "
          f"our pre-tokenization workers={args.workers}; HF threads={args.hf_threads}")

    def ours(text, vocab_size):
        tok = nb.FastTokenizer(pattern, workers=args.workers)
        tok.train(text, vocab_size)
        return tok

    def hugging_face(text, vocab_size):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # bytes -> GPT-2's visible chars
        ])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, min_frequency=0,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([text], trainer=trainer)
        return tok

    # 1. naive vs fast, both to completion on a slice
    size = args.sizes[0]
    piece = corpus[:args.naive_chars]
    naive = nb.RegexTokenizer(pattern)
    t0 = time.perf_counter()
    naive.train(piece, size)
    naive_s = time.perf_counter() - t0
    fast_s, fast = best_time(lambda: ours(piece, size), args.repeats)
    same = list(naive.merges.items()) == list(fast.merges.items())
    print(f"\n[slice of {len(piece):,} chars, vocab {size}, both run to the end] naive {naive_s:.2f} s, "
          f"fast {fast_s:.3f} s -> fast is {naive_s / fast_s:.0f}x faster")
    print(f"  {256 + len(fast.merges):,} tokens reached"
          + (" (the slice runs out of pairs)" if 256 + len(fast.merges) < size else "")
          + f"; identical merges: {same}")

    # 2. naive on the whole corpus: first merges timed, the rest extrapolated linearly
    t0 = time.perf_counter()
    nb.RegexTokenizer(pattern).train(corpus, 256 + args.naive_merges)
    per_merge = (time.perf_counter() - t0) / args.naive_merges

    # 3. fast vs Hugging Face on the whole corpus
    for size in args.sizes:
        fast_s, fast = best_time(lambda: ours(corpus, size), args.repeats)
        hf_s, hf = best_time(lambda: hugging_face(corpus, size), args.repeats)
        reached = 256 + len(fast.merges)
        naive_estimate = per_merge * len(fast.merges)
        print(f"\n[whole corpus, vocab {size}] ours reaches {reached:,} tokens, HF {hf.get_vocab_size():,}"
              + (" (the corpus runs out of pairs)" if reached < size else ""))
        print(f"  fast (ours)         {fast_s:8.2f} s")
        print(f"  Hugging Face BPE    {hf_s:8.2f} s   -> ours / HF = {fast_s / hf_s:.2f}x (target <= 3x)")
        print(f"  naive, EXTRAPOLATED {naive_estimate:8.0f} s   ({per_merge:.2f} s/merge over the first "
              f"{args.naive_merges} merges x {len(fast.merges):,} merges) "
              f"-> fast is ~{naive_estimate / fast_s:.0f}x faster")
        print("    (an overestimate: later naive merges are cheaper, as merging shortens the corpus)")


if __name__ == "__main__":
    main()
