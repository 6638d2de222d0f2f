"""Choosing the CPU default by measurement: tokenizer vocabulary, then model shape, in one wall budget.

    python benchmarks/train_cpu_sweep.py vocab --budget 60            # 256, 1k, 2k, 4k, GPT-2's 50,257
    python benchmarks/train_cpu_sweep.py shape --budget 60 --vocab 2048
    python benchmarks/train_cpu_sweep.py shape --budget 300 --vocab 2048 --only A,C   # confirm finalists

Each configuration is one `llmc train` process (nice 10, --threads 2, the time budget, one final
validation over the whole split) on tiny Shakespeare tokenized by a BPE tokenizer of that size
trained on the training text only (the validation text is the same for every tokenizer). Prints
a markdown table row per configuration: validation bits per byte, steps, median tokens/s and the
1-minute load average before and after, which says how much of the 2 cores the run really had.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmc_core.tokenizer import save_tokenizer, train_tokenizer  # noqa: E402

# the shakespeare-cpu preset's shape and recipe (its tokenizer is the sweep's --vocab)
DEFAULT = ("--n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 --batch-size 16 --total-batch-tokens 2048 --lr 2e-3 "
           "--recipe modern --dropout 0.1")
# name: flags; every shape trains 2,048 tokens per step unless it says otherwise, with the recipe and dropout it names
SHAPES = {
    "A": "--recipe gpt2 --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3",
    "B": "--recipe gpt2 --dropout 0 --n-layer 4 --n-head 4 --n-embd 192 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3",
    "C": "--recipe gpt2 --dropout 0 --n-layer 6 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3",
    "D": "--recipe gpt2 --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 256 "
         "--batch-size 8 --total-batch-tokens 2048 --lr 2e-3",
    "E": "--recipe gpt2 --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 32 --total-batch-tokens 4096 --lr 3e-3",
    "F": "--recipe gpt2 --dropout 0 --n-layer 3 --n-head 4 --n-embd 96 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 3e-3",
    "G": "--recipe gpt2 --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 4e-3",
    "H": "--recipe gpt2 --dropout 0 --n-layer 6 --n-head 6 --n-embd 192 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3",
    "J": "--recipe gpt2 --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 3e-3",
    # A and H with dropout against memorising the 300k training tokens over several epochs
    "AD": "--recipe gpt2 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
          "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3 --dropout 0.1",
    "HD": "--recipe gpt2 --n-layer 6 --n-head 6 --n-embd 192 --seq-len 128 "
          "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3 --dropout 0.1",
    # A with the modern recipe (lesson 09), with AdamW and with Muon for the blocks' matrices
    "M": "--recipe modern --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3 --optimizer adamw",
    "N": "--recipe modern --dropout 0 --n-layer 4 --n-head 4 --n-embd 128 --seq-len 128 "
         "--batch-size 16 --total-batch-tokens 2048 --lr 2e-3",
    "ND": DEFAULT,
    # the default with another dropout rate, LR, decay floor or context (a flag given twice: the last one counts)
    "ND05": DEFAULT + " --dropout 0.05",
    "ND15": DEFAULT + " --dropout 0.15",
    "ND2": DEFAULT + " --dropout 0.2",
    "ND3": DEFAULT + " --dropout 0.3",
    "NDL": DEFAULT + " --lr 3e-3",  # AdamW's parameters: embeddings and head
    "NDM": DEFAULT + " --muon-lr 0.03",  # Muon's: the blocks' matrices
    "NDZ": DEFAULT + " --min-lr-frac 0",
    "NDT": DEFAULT + " --seq-len 256 --batch-size 8",  # the same tokens per step
}


def shakespeare_train_text():
    """The training part of tiny Shakespeare: everything after the validation text (as `llmc data prepare` cuts it)."""
    from llmc_core.datasets import tiny_shakespeare_plays, tiny_shakespeare_tokens
    from llmc_core.encodings import gpt2_encoding
    from llmc_core.train.prepare import SHAKESPEARE_VAL_TOKENS
    first, *rest = tiny_shakespeare_plays()
    cut = len(gpt2_encoding().decode(tiny_shakespeare_tokens()[1:SHAKESPEARE_VAL_TOKENS].tolist()))
    return "\n".join([first[cut:], *rest])


def tokenizer_file(vocab, folder):
    """'gpt2', or a tokenizer of `vocab` ids trained on the training text, saved in folder."""
    if vocab == 50257:
        return "gpt2"
    path = Path(folder) / f"shakespeare-{vocab}.tiktoken"
    if not path.is_file():
        save_tokenizer(train_tokenizer(shakespeare_train_text(), vocab, name=f"shakespeare-{vocab}"), path)
    return str(path)


def loadavg():
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(label, flags, tokenizer, vocab, budget, work, seed=1337, clock="wall", threads=2):
    """One `llmc train` process; returns its row of figures."""
    out = Path(work) / f"run-{label}-v{vocab}-b{budget:g}{clock}-t{threads}-s{seed}"
    cmd = ["nice", "-n", "10", sys.executable, "-m", "llmc_core.train", "train", "--out", str(out),
           "--data-dir", str(Path(work) / "data"), "--tokenizer", tokenizer, "--vocab-size", str(vocab),
           "--time-budget", f"{budget}s", "--budget-clock", clock, "--threads", str(threads),
           "--val-every", "1000000", "--sample-every", "1000000", "--sample-tokens", "120", "--checkpoint-every", "0",
           "--no-progress", "--seed", str(seed), *flags.split()]
    before = loadavg()
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    after, wall = loadavg(), time.perf_counter() - started
    if done.returncode:
        return {"label": label, "vocab": vocab, "error": done.stderr.strip().splitlines()[-1]}
    summary = json.loads((out / "summary.json").read_text())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    tps = statistics.median(r["tokens_per_s"] for r in log if "tokens_per_s" in r)
    return {"label": label, "vocab": vocab, "bpb": summary["val_bpb"], "steps": summary["step"],
            "tokens_per_s": tps, "budget_s": summary["wall_s"], "wall_s": wall, "load": (before, after),
            "out": str(out), "seed": seed}


def row(r):
    if "error" in r:
        return f"| {r['label']} | {r['vocab']} | error: {r['error']} |"
    return (f"| {r['label']} | {r['vocab']:,} | {r['seed']} | {r['bpb']:.3f} | {r['steps']} | "
            f"{r['tokens_per_s']:,.0f} | {r['budget_s']:.0f} | {r['wall_s']:.0f} | "
            f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=("vocab", "shape"))
    p.add_argument("--budget", type=float, default=60.0, help="seconds of wall time per run (default: %(default)s)")
    p.add_argument("--vocab", type=int, default=2048, help="tokenizer size for the shape stage")
    p.add_argument("--shape", default="A", help="model shape for the vocab stage (default: %(default)s)")
    p.add_argument("--only", default="", help="comma-separated shapes (shape stage) or vocab sizes (vocab stage)")
    p.add_argument("--seeds", default="1337", help="comma-separated seeds")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"), help="--budget-clock of the runs")
    p.add_argument("--threads", type=int, default=2, help="--threads of the runs (default: %(default)s)")
    p.add_argument("--parallel", type=int, default=1,
                   help="runs at a time; only fair with --clock cpu --threads 1 (default: %(default)s)")
    p.add_argument("--work", default="/tmp/llmc_cpu_sweep", help="folder for tokenizers, shards and runs")
    args = p.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.stage == "vocab":
        vocabs = [int(v) for v in args.only.split(",")] if args.only else [257, 1024, 2048, 4096, 50257]
        plan = [(args.shape, SHAPES[args.shape], v) for v in vocabs]
    else:
        names = args.only.split(",") if args.only else list(SHAPES)
        plan = [(n, SHAPES[n], args.vocab) for n in names]
    print(f"budget {args.budget:g} s of {args.clock} time per run, --threads {args.threads}, nice 10, "
          f"{args.parallel} run(s) at a time")
    print("| shape | vocab | seed | val bpb | steps | tokens/s (median) | budget s used | wall s "
          "| load avg before / after |")
    print("|---|---|---|---|---|---|---|---|---|")
    jobs = [(label, flags, tokenizer_file(vocab, args.work), vocab, args.budget, args.work, int(seed), args.clock,
             args.threads) for label, flags, vocab in plan for seed in args.seeds.split(",")]
    results = []
    with ThreadPoolExecutor(args.parallel) as pool:
        for r in pool.map(lambda job: run(*job), jobs):
            print(row(r), flush=True)
            results.append(r)
    if len(args.seeds.split(",")) > 1:
        print(seed_summary(results))


def seed_summary(results):
    """Mean and spread over seeds per configuration, with Welch's t-test against the first configuration."""
    from recipe_ablation import welch_t_test  # a sibling script: python puts benchmarks/ on the path
    by_label = {}
    for r in results:
        if "bpb" in r:
            by_label.setdefault(r["label"], []).append(r["bpb"])
    first = next(iter(by_label.values()))
    lines = ["| shape | seeds | val bpb mean | sd | min / max | vs first | p (Welch) |",
             "|---|---|---|---|---|---|---|"]
    for label, values in by_label.items():
        p = "" if values is first or len(values) < 2 else f"{welch_t_test(values, first)[2]:.2g}"
        lines.append(f"| {label} | {len(values)} | {statistics.mean(values):.3f} | "
                     f"{statistics.stdev(values) if len(values) > 1 else 0:.3f} | "
                     f"{min(values):.3f} / {max(values):.3f} | "
                     f"{statistics.mean(values) / statistics.mean(first):.3f} | {p} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
