"""The modern recipe against GPT-2's, and the modern recipe without each of its ideas, at equal compute.

Every run trains the same small GPT (by default 2 layers, 4 heads, 32 channels, 32 tokens of
context, 256 tokens per step) for the same number of optimizer steps on the same tokens of tiny
Shakespeare, tokenized with a 512-id BPE trained on its training split (so that the vocabulary
matmul does not swamp a CPU step), and scores the first 16 batches of the validation split
(4,096 tokens at the default size) in bits per byte. Each recipe runs with every seed; the table
gives the mean, the standard deviation over seeds, the ratio to the GPT-2 recipe, and the
two-sided p-value of Welch's t-test against GPT-2's recipe (for "modern") or against the full
modern recipe (for each "- idea" row). The budget is in steps, the same for every recipe; with
--budget SECONDS it is the steps that the GPT-2 recipe takes in that time here (measured by a
short calibration run), and each row's seconds per step shows what each recipe costs.

    python benchmarks/recipe_ablation.py --budget 300 --seeds 3
    python benchmarks/recipe_ablation.py --steps 200 --seeds 3 --out runs/ablation

Finished runs are kept in --out and not run again, so an interrupted ablation continues.
"""
import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np

from llmc_core.modern import RECIPES
from llmc_core.train.config import TrainConfig
from llmc_core.train.trainer import train

VOCAB = 512
ABLATIONS = {"- rope": dict(rope=False), "- rms norm": dict(norm="layer"), "- qk-norm": dict(qk_norm=False),
             "- relu2": dict(mlp="gelu"), "- softcap": dict(softcap=0.0), "- untied head": dict(untie_head=False),
             "- muon": dict(optimizer="adamw")}


def variants():
    """{name: TrainConfig fields}: the two recipes, then the modern one without each idea."""
    out = {"gpt2": RECIPES["gpt2"], "modern": RECIPES["modern"]}
    out.update({name: {**RECIPES["modern"], **change} for name, change in ABLATIONS.items()})
    return out


def student_t_two_sided(t, df, points=20001):
    """P(|T| >= |t|) for Student's t with df degrees of freedom: 1 - 2 * (integral of the density over [0, |t|])."""
    x = np.linspace(0.0, abs(t), points)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    h = x[1] - x[0]
    simpson = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return max(0.0, 1.0 - 2.0 * simpson)


def welch_t_test(a, b):
    """(t, degrees of freedom, two-sided p) of Welch's t-test of mean(a) == mean(b), unequal variances."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.inf, math.nan, 0.0 if a.mean() != b.mean() else 1.0
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return t, df, student_t_two_sided(t, df)


def prepare_data(data_dir):
    """A 512-id tokenizer trained on tiny Shakespeare's training text, and the shards it makes; returns its path."""
    from llmc_core.datasets import tiny_shakespeare_plays
    from llmc_core.tokenizer import save_tokenizer, train_tokenizer
    from llmc_core.train.prepare import prepare
    path = Path(data_dir) / f"shakespeare-bpe{VOCAB}.tiktoken"
    if not path.is_file():
        first, *rest = tiny_shakespeare_plays()  # the first play holds the validation text: leave it out
        save_tokenizer(train_tokenizer("\n".join(rest), VOCAB), path)
        prepare("tinyshakespeare", data_dir, progress=False, tokenizer=str(path))
    return path


def base_config(tokenizer, steps, seed, data_dir, n_layer=2, n_embd=32, seq_len=32, muon_lr=0.02):
    from llmc_core.train.prepare import shard_patterns
    train_data, val_data = shard_patterns("tinyshakespeare", data_dir, tokenizer=str(tokenizer))
    return TrainConfig(train_data=train_data, val_data=val_data, n_layer=n_layer, n_head=4, n_embd=n_embd,
                       seq_len=seq_len, vocab_size=VOCAB, tokenizer=str(tokenizer), batch_size=8,
                       total_batch_tokens=8 * seq_len, max_steps=steps, warmup_steps=max(1, steps // 20),
                       val_every=steps, val_batches=16,
                       sample_every=0, checkpoint_every=0, padded_vocab=False, seed=seed, muon_lr=muon_lr)


def run_dir(out, steps, name, seed):
    return out / f"{steps}steps" / name.replace(" ", "").replace("-", "minus-") / f"seed{seed}"


def finished(out, steps, seeds):
    """{recipe: {"bpb": [...], "wall_s": [...]}} of the recipes whose runs of every seed are done."""
    results = {}
    for name in variants():
        paths = [run_dir(out, steps, name, seed) / "summary.json" for seed in range(seeds)]
        if all(p.is_file() for p in paths):
            summaries = [json.loads(p.read_text()) for p in paths]
            results[name] = {"bpb": [s["val_bpb"] for s in summaries], "wall_s": [s["wall_s"] for s in summaries]}
    return results


def run_one(config, out_dir, data_dir):
    """Train (quietly, its output in out_dir/output.txt) unless out_dir has a summary; returns it."""
    summary_path = out_dir / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "output.txt", "w") as f, contextlib.redirect_stdout(f):
        return train(config, out_dir, data_dir=data_dir, progress=False)


def calibrate(tokenizer, data_dir, out_dir, budget_s, size):
    """The steps that the GPT-2 recipe runs in budget_s seconds here, from a 20-step run."""
    summary = run_one(base_config(tokenizer, 20, 0, data_dir, **size).replace(**RECIPES["gpt2"]),
                      out_dir / "calibration", data_dir)
    return max(20, int(budget_s / (summary["wall_s"] / 20)))


def table(results, steps):
    """The results as a markdown table (mean bpb, sd, ratio to gpt2, Welch p-values)."""
    gpt2, modern = results["gpt2"]["bpb"], results["modern"]["bpb"]
    lines = ["| recipe | seeds | val bpb mean | sd | vs gpt2 | p vs gpt2 | p vs modern | s/step |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        bpb = np.array(r["bpb"])
        p_gpt2 = "" if name == "gpt2" else f"{welch_t_test(bpb, gpt2)[2]:.2g}"
        p_modern = "" if name in ("gpt2", "modern") else f"{welch_t_test(bpb, modern)[2]:.2g}"
        lines.append(f"| {name} | {len(bpb)} | {bpb.mean():.4f} | {bpb.std(ddof=1):.4f} "
                     f"| {bpb.mean() / np.mean(gpt2):.3f} | {p_gpt2} | {p_modern} "
                     f"| {np.mean(r['wall_s']) / steps:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds of the GPT-2 recipe per run, made into steps (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=0, help="optimizer steps per run (overrides --budget)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds per recipe, at least 2 for a t-test (default: %(default)s)")
    parser.add_argument("--only", default="", help="comma-separated recipe names to run (default: all)")
    parser.add_argument("--n-layer", type=int, default=2, help="blocks (default: %(default)s)")
    parser.add_argument("--n-embd", type=int, default=32,
                        help="channels, a multiple of the 4 heads (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=32, help="context; a step is 8 sequences (default: %(default)s)")
    parser.add_argument("--muon-lr", type=float, default=0.02,
                        help="Muon's peak LR (AdamW's stays 3e-3) (default: %(default)s)")
    parser.add_argument("--report", action="store_true", help="train nothing; print the table of the finished runs")
    parser.add_argument("--out", default="runs/recipe_ablation", help="folder of the runs (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        raise SystemExit("--seeds must be at least 2: the spread and the t-test need two runs per recipe")
    out = Path(args.out)
    data_dir = out / "data"
    tokenizer = prepare_data(data_dir)
    size = dict(n_layer=args.n_layer, n_embd=args.n_embd, seq_len=args.seq_len)
    out = out / "L{n_layer}-C{n_embd}-T{seq_len}".format(**size)
    if args.muon_lr != 0.02:
        size["muon_lr"] = args.muon_lr
        out = out.with_name(out.name + f"-muonlr{args.muon_lr:g}")
    steps = args.steps or calibrate(tokenizer, data_dir, out, args.budget, size)
    if args.report:
        chosen = {}
    else:
        chosen = variants() if not args.only else {k: v for k, v in variants().items() if k in args.only.split(",")}
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "n/a"
    print(f"{steps} steps of {8 * args.seq_len} tokens per run, {args.seeds} seeds, {len(chosen)} recipes; "
          f"load average {load}", flush=True)
    for seed in range(args.seeds):  # seeds outermost, so that a short run still covers every recipe
        for name, fields in chosen.items():
            t0 = time.perf_counter()
            config = base_config(tokenizer, steps, 1000 + seed, data_dir, **size).replace(**fields)
            summary = run_one(config, run_dir(out, steps, name, seed), data_dir)
            print(f"{name:>14} seed {seed}: val bpb {summary['val_bpb']:.4f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    results = finished(out, steps, args.seeds)
    if "gpt2" in results and "modern" in results:
        print(table(results, steps))
    (out / f"results_{steps}steps.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
