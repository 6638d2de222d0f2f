"""Plot a run's loss curves from its log.jsonl."""
import json
from pathlib import Path


def plot_run(run_dir, output=None):
    """Training loss (per step), validation loss and the unigram baseline of a run, saved as a PNG."""
    import matplotlib
    matplotlib.use("Agg")  # write a file, no window
    import matplotlib.pyplot as plt

    from llmc_core.train.trainer import read_log
    run_dir = Path(run_dir)
    records = read_log(run_dir)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), lw=1, alpha=0.8, label="train loss")
    if val:
        ax.plot(*zip(*val), "o-", label="val loss")
    summary = run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("unigram_entropy"):
        ax.axhline(json.loads(summary.read_text())["unigram_entropy"], color="gray", ls="--",
                   label="unigram baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(run_dir.name)
    ax.legend()
    fig.tight_layout()
    output = Path(output) if output else run_dir / "loss.png"
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
