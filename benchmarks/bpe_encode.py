"""Encoding throughput: lesson 04's GPT2Tokenizer / GPT4Tokenizer (pure Python) vs tiktoken (Rust), one thread.

    .venv/bin/python benchmarks/bpe_encode.py

Both encode tiny Shakespeare as ordinary text; ids are checked equal. Our tokenizer caches each
chunk's ids, so two figures are printed:
- cold: a fresh tokenizer encodes the whole corpus once (the cache fills as it goes);
- steady: the cache is warmed on the first half of the corpus (untimed), then the second half,
  text it has not seen, is timed.
Building the tokenizer (recovering the merges, the vocab) is not timed. tiktoken's encode_ordinary
on one string runs on one thread. Times are the best of --repeats runs.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_time  # noqa: E402 (benchmarks/ is on sys.path when run as a script)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the best time counts")
    parser.add_argument("--tokenizers", nargs="+", default=["gpt2", "gpt4"], choices=["gpt2", "gpt4"],
                        help="which tokenizers to measure")
    return parser.parse_args()


def main():
    args = parse_args()
    import llmc_core
    from llmc_core.course import solution_path
    from llmc_core.datasets import tiny_shakespeare_text
    from llmc_core.encodings import cl100k_encoding, gpt2_encoding

    nb = llmc_core.load_notebook(solution_path("04_bpe_tokenizer"))
    corpus = tiny_shakespeare_text()
    first, second = corpus[:len(corpus) // 2], corpus[len(corpus) // 2:]
    mb, mb2 = len(corpus.encode()) / 1e6, len(second.encode()) / 1e6
    print(f"corpus: tiny Shakespeare, {mb:.2f} MB")
    makers = {"gpt2": (nb.GPT2Tokenizer, gpt2_encoding), "gpt4": (nb.GPT4Tokenizer, cl100k_encoding)}
    for name in args.tokenizers:
        make_ours, make_theirs = makers[name]
        theirs = make_theirs()
        built = [make_ours() for _ in range(args.repeats)]
        for tok in built:
            tok.vocab  # build the vocabulary before timing

        def cold():
            tok = built.pop()
            return tok.encode_ordinary(corpus)

        cold_s, ids = best_time(cold, args.repeats)
        tik_s, expected = best_time(lambda: theirs.encode_ordinary(corpus), args.repeats)
        steady_tok = make_ours()
        steady_tok.encode_ordinary(first)
        steady_s, _ = best_time(lambda: steady_tok.encode_ordinary(second), args.repeats)
        tik2_s, _ = best_time(lambda: theirs.encode_ordinary(second), args.repeats)
        mismatches = sum(a != b for a, b in zip(ids, expected)) + abs(len(ids) - len(expected))
        print(f"\n{name}: {len(ids):,} tokens, mismatches vs tiktoken: {mismatches}")
        print(f"  tiktoken        {mb / tik_s:6.2f} MB/s")
        print(f"  ours, cold      {mb / cold_s:6.2f} MB/s -> {tik_s / cold_s:.2f} of tiktoken (target >= 0.2)")
        print(f"  ours, steady    {mb2 / steady_s:6.2f} MB/s -> {tik2_s / steady_s:.2f} of tiktoken on the second half "
              f"(tiktoken {mb2 / tik2_s:.2f} MB/s there)")


if __name__ == "__main__":
    main()
