"""Trainer throughput: `llmc train` against a plain nanoGPT-style loop, same model and data.

    python benchmarks/train_cpu.py [--steps 10] [--rounds 3]

CPU section: the shakespeare-cpu preset's size, batch and 4,096-token tokenizer with GPT-2's recipe,
trained by llmc_core.train.trainer.train, and by a plain loop written below the way
nanoGPT's train.py does it on a CPU: random windows from a memmap, forward, backward, grad
clip, AdamW (foreach, as nanoGPT uses off CUDA). Both use the same GPT2 module (sdpa
attention, the preset's vocabulary padding) and the same tiny Shakespeare tokens. Rounds alternate
the two, so load from other processes hits both alike; the figure is the median step time over all rounds
(the first step of each round, a warm-up, is left out). The ratio is plain-loop time / trainer
time: >= 1.0 means the trainer costs nothing extra.

GPU section: the same comparison for GPT-2 (124M), B=16, T=1024, where the trainer uses bf16
autocast, torch.compile, fused AdamW and TF32, and the plain loop float32 eager; skipped, with
its reason printed, when no GPU is present.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmc_core.gpt2 import GPT2  # noqa: E402
from llmc_core.modern import RECIPES  # noqa: E402
from llmc_core.train.config import preset  # noqa: E402
from llmc_core.train.prepare import prepare  # noqa: E402
from llmc_core.train.shards import load_shard  # noqa: E402
from llmc_core.train.trainer import read_log, train  # noqa: E402


def trainer_step_times(config, steps, out_dir):
    """Step times (s) of `llmc train` for `steps` steps, first step dropped."""
    config = config.replace(max_steps=steps, val_every=0, sample_every=0, checkpoint_every=0, warmup_steps=1)
    train(config, out_dir, progress=False)
    return [r["dt_ms"] / 1000 for r in read_log(out_dir) if "dt_ms" in r][1:]


def plain_loop_step_times(config, tokens, steps, device, dtype=torch.float32, seed=0):
    """Step times (s) of a plain nanoGPT-style loop on the same model config and tokens."""
    torch.manual_seed(seed)
    model = GPT2(config.model_config(), attention="sdpa", padded_vocab=config.padded_vocab, seed=config.seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                  weight_decay=config.weight_decay)
    rng = np.random.default_rng(seed)
    B, T = config.batch_size, config.seq_len
    accum = config.total_batch_tokens // (B * T)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        for _ in range(accum):
            starts = rng.integers(0, len(tokens) - T - 1, size=B)
            x = torch.from_numpy(np.stack([tokens[s:s + T] for s in starts]).astype(np.int64)).to(device)
            y = torch.from_numpy(np.stack([tokens[s + 1:s + T + 1] for s in starts]).astype(np.int64)).to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                _, loss = model(x, y)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[1:]


def compare(name, config, tokens, steps, rounds, work, device, plain_dtype=torch.float32):
    ours, plain = [], []
    for r in range(rounds):
        ours += trainer_step_times(config, steps, work / f"{name}_{r}")
        plain += plain_loop_step_times(config, tokens, steps, device, plain_dtype)
    t_ours, t_plain = statistics.median(ours), statistics.median(plain)
    tokens_step = config.total_batch_tokens
    print(f"{name}: llmc train     {t_ours * 1000:8.1f} ms/step  {tokens_step / t_ours:10,.0f} tokens/s")
    print(f"{name}: nanoGPT-style  {t_plain * 1000:8.1f} ms/step  {tokens_step / t_plain:10,.0f} tokens/s")
    print(f"{name}: ratio (plain-loop time / trainer time) = {t_plain / t_ours:.2f}x  "
          f"({len(ours)} + {len(plain)} timed steps, torch {torch.__version__}, {torch.get_num_threads()} threads)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per round and method (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cpu = preset("shakespeare-cpu").replace(**RECIPES["gpt2"])  # the plain loop trains GPT-2's recipe
        val_path, train_path = prepare("tinyshakespeare", work / "data", progress=False, tokenizer=cpu.tokenizer)
        config = cpu.replace(train_data=str(train_path), val_data=str(val_path), device="cpu", time_budget=0.0)
        compare("cpu", config, load_shard(train_path), args.steps, args.rounds, work, torch.device("cpu"))
        if not torch.cuda.is_available():
            print("gpu: skipped (no GPU: torch.cuda.is_available() is False)")
            return
        val_path, train_path = prepare("tinyshakespeare", work / "data", progress=False)  # GPT-2's tokens
        gpu = preset("gpt2-124m").replace(batch_size=16, total_batch_tokens=16 * 1024, train_data=str(train_path),
                                          val_data=str(val_path), device="cuda")
        compare("gpu", gpu, load_shard(train_path), args.steps, args.rounds, work, torch.device("cuda"))


if __name__ == "__main__":
    main()
