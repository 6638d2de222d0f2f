"""Peak memory and step time of a GPT-2 training step: lesson 05's explicit-backward model vs autograd.

The peer is the reference autograd GPT-2 (llmc_core.gpt2.GPT2, attention written out), measured in
the same run on the same weights and batch. Also shown: the reference with PyTorch's fused
attention (sdpa), and the explicit model with GELU or attention recomputed in the backward.

- saved MB: tensors kept for the backward after the forward (parameters and logits left out),
  from walking the autograd graph (lesson 05's `saved_tensor_table`).
- peak MB: the highest running total of tensor bytes allocated during one forward+backward,
  from torch.profiler's allocation events (lesson 05's `peak_memory`; CPU allocator only).
- step ms: median wall time of a forward+backward over --steps steps, models taking turns.

    python benchmarks/explicit_backward_memory.py --preset shakespeare-gpt2vocab --batch 4 --seq-len 128
"""
import argparse
import time

import numpy as np
import torch

from llmc_core import load_notebook
from llmc_core.course import solution_path
from llmc_core.gpt2 import GPT2, GPT2Config

PEER = "autograd (manual attention)"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="shakespeare-gpt2vocab",
                        help="GPT2Config preset name (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="sequences per step, B (default: 4)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence, T <= block_size (default: 128)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model, after one warm-up (default: 5)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps PyTorch's default")
    return parser.parse_args()


def build_models(nb, config):
    """The five models, all with the reference's weights for seed 0."""
    reference = GPT2(config, seed=0)
    models = {PEER: reference, "autograd (sdpa attention)": GPT2(config, attention="sdpa", seed=0),
              "explicit": nb.ExplicitGPT2(config),
              "explicit + recompute GELU": nb.ExplicitGPT2(config, recompute_gelu=True),
              "explicit + recompute attention": nb.ExplicitGPT2(config, recompute_attention=True)}
    for model in models.values():
        model.load_state_dict(reference.state_dict())
    return models


def saved_mb(nb, model, idx, targets):
    logits, loss = model(idx, targets)
    table = nb.saved_tensor_table(loss, alive=[logits, *model.parameters()])
    return sum(row["bytes"] for row in table.values()) / 2**20


def step_times(nb, models, idx, targets, steps):
    """{name: median seconds}: models take turns, so a slow moment of the machine hits all of them."""
    times = {name: [] for name in models}
    for model in models.values():
        nb.training_step(model, idx, targets)  # warm-up
    for _ in range(steps):
        for name, model in models.items():
            start = time.perf_counter()
            nb.training_step(model, idx, targets)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = GPT2Config.preset(args.preset)
    if not 0 < args.seq_len <= config.block_size:
        raise ValueError(f"--seq-len {args.seq_len} must be in 1..{config.block_size} (block_size of {args.preset})")
    nb = load_notebook(solution_path("05_torch_explicit_backward"))
    if nb.cell_errors:
        raise RuntimeError(f"the lesson 05 solution did not load: {nb.cell_errors}")
    tokens = torch.randint(0, config.vocab_size, (2, args.batch, args.seq_len),
                           generator=torch.Generator().manual_seed(0))
    idx, targets = tokens[0].clone(), tokens[1].clone()
    models = build_models(nb, config)
    print(f"{args.preset}: {config}, B={args.batch}, T={args.seq_len}, float32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    saved = {name: saved_mb(nb, m, idx, targets) for name, m in models.items()}
    peaks = {name: nb.peak_memory(lambda m=m: nb.training_step(m, idx, targets)) / 2**20 for name, m in models.items()}
    times = step_times(nb, models, idx, targets, args.steps)
    print(f"{'model':31} {'saved MB':>9} {'peak MB':>9} {'step ms':>9} {'peak / peer':>12} {'time / peer':>12}")
    for name in models:
        print(f"{name:31} {saved[name]:9.1f} {peaks[name]:9.1f} {times[name] * 1e3:9.1f} "
              f"{peaks[name] / peaks[PEER]:12.3f} {times[name] / times[PEER]:12.3f}")
    print(f"peer: {PEER}")


if __name__ == "__main__":
    main()
