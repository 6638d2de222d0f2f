"""Plot runs' validation curves in bits per byte, overlaid, against the baselines a model must beat.

Bits per byte compare runs with different tokenizers. The baselines, on the same validation text:
the unigram model of each run's tokens (the best that ignores context), and general-purpose
compressors (gzip, bzip2 and xz at their strongest settings), computed here.
"""
import bz2
import gzip
import json
import lzma
from pathlib import Path

import numpy as np

COMPRESSORS = {"gzip -9": lambda b: gzip.compress(b, 9), "bzip2 -9": lambda b: bz2.compress(b, 9),
               "xz -9": lambda b: lzma.compress(b, preset=9)}


def compressor_bpb(text_bytes):
    """{compressor: bits per byte of `text_bytes` compressed}: 8 x compressed size / size."""
    return {name: 8 * len(compress(text_bytes)) / len(text_bytes) for name, compress in COMPRESSORS.items()}


def val_text(run_dir):
    """The validation text of a run (its val shards decoded, document markers left out), as bytes."""
    from llmc_core.tokenizer import load_tokenizer
    from llmc_core.train.loader import find_shards
    from llmc_core.train.shards import load_shard
    summary = read_json(Path(run_dir) / "summary.json")
    enc = load_tokenizer(read_json(Path(run_dir) / "config.json").get("tokenizer", "gpt2"))
    tokens = np.concatenate([load_shard(p) for p in find_shards(summary["val_data"])]).astype(np.int64)
    tokens = tokens[tokens != enc.eot_token]
    return enc.decode_bytes(tokens.tolist())


def read_json(path):
    if not path.is_file():
        raise ValueError(f"no {path.name} in {path.parent}; pass run folders written by `llmc train`")
    return json.loads(path.read_text())


def plot_runs(run_dirs, output=None):
    """Validation bits per byte of one or more runs against steps (log scale), with the baselines; a PNG."""
    import matplotlib
    matplotlib.use("Agg")  # write a file, no window
    import matplotlib.pyplot as plt

    from llmc_core.train.rundir import read_log
    run_dirs = [Path(d) for d in run_dirs]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, run_dir in enumerate(run_dirs):
        color, summary = f"C{i}", read_json(run_dir / "summary.json")
        val = [(r["step"], r["val_bpb"]) for r in read_log(run_dir) if r.get("val_bpb") is not None and r["step"] > 0]
        if val:
            ax.plot(*zip(*val), "o-", color=color, label=f"{run_dir.name}: val")
        if summary.get("unigram_bpb"):
            ax.axhline(summary["unigram_bpb"], color=color, ls=":", lw=1, label=f"{run_dir.name}: unigram")
    for j, (name, bpb) in enumerate(compressor_bpb(val_text(run_dirs[0])).items()):
        ax.axhline(bpb, color="gray", ls=("--", "-.", (0, (1, 3)))[j], lw=1, label=f"{name} ({bpb:.2f})")
    ax.set_xscale("log")
    ax.set_xlabel("step (log scale)")
    ax.set_ylabel("validation bits per byte")
    ax.set_title(run_dirs[0].name if len(run_dirs) == 1 else f"{len(run_dirs)} runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    output = Path(output) if output else (run_dirs[0] / "loss.png" if len(run_dirs) == 1 else Path("runs.png"))
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def plot_run(run_dir, output=None):
    """One run's plot (RUN/loss.png by default)."""
    return plot_runs([run_dir], output)
