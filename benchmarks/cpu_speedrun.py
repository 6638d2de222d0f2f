"""CPU speedrun: `llmc train` defaults against a character-level baby GPT, same text, same wall budget.

    python benchmarks/cpu_speedrun.py [--budget 300] [--seeds 3] [--threads 2] [--clock wall|cpu] [--parallel N]

(a) `llmc train` with its defaults and `--time-budget BUDGET --seed S`, one process per run;
(b) a character-level "baby GPT" written below in the style of nanoGPT's Shakespeare-char CPU
    recipe: L=4, NH=4, C=128, T=64, batch 12, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1),
    100 warmup steps, cosine to 1e-4, grad clip 1.0, dropout 0, random windows of the text. So
    that the baby also ends its decay, its cosine follows the fraction of the budget used.

Both learn from tiny Shakespeare's training text and are scored on the same validation text
(the part `llmc data prepare tinyshakespeare` holds out), in bits per UTF-8 byte: the baby's
nats per character x characters / bytes / ln 2, over the whole validation text. Each run is its
own process; they run one at a time, alternating (a, b) per seed so that load from other
processes falls on both, or --parallel N at a time, which is only fair with --clock cpu (each
run then counts its own CPU seconds, whatever else the machine does). The baby's final evaluation
is not charged to its budget (llmc's is), which favours the baby. Prints each run, then the mean
and spread of each contender and the ratio llmc / baby (target: <= 0.95).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def texts():
    """(train text, validation text) of tiny Shakespeare, cut where `llmc data prepare` cuts it."""
    from llmc_core.datasets import tiny_shakespeare_plays, tiny_shakespeare_tokens
    from llmc_core.encodings import gpt2_encoding
    from llmc_core.train.prepare import SHAKESPEARE_VAL_TOKENS
    first, *rest = tiny_shakespeare_plays()
    cut = len(gpt2_encoding().decode(tiny_shakespeare_tokens()[1:SHAKESPEARE_VAL_TOKENS].tolist()))
    return "\n".join([first[cut:], *rest]), first[:cut]


# ------------------------------------------------------------------------------- (b) the baby GPT


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.ln1, self.ln2, self.NH = nn.LayerNorm(C), nn.LayerNorm(C), NH
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))  # (B, NH, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class BabyGPT(nn.Module):
    def __init__(self, V, T=64, L=4, NH=4, C=128):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.Sequential(*[Block(C, NH) for _ in range(L)])
        self.ln_f, self.head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)
        self.head.weight = self.wte.weight  # tied, as in nanoGPT
        for name, p in self.named_parameters():  # nanoGPT's init: N(0, 0.02), residual projections / sqrt(2L)
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        logits = self.head(self.ln_f(self.blocks(x)))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def baby_run(train_text, val_text, budget, seed, clock):
    """Train the baby GPT for `budget` seconds of `clock`; returns (val bits per byte, steps)."""
    start = clock()
    torch.manual_seed(seed)
    chars = sorted(set(train_text + val_text))  # nanoGPT's char vocabulary covers the whole corpus
    stoi = {c: i for i, c in enumerate(chars)}
    train = torch.tensor([stoi[c] for c in train_text])
    val = torch.tensor([stoi[c] for c in val_text])
    T, B = 64, 12
    model = BabyGPT(len(chars), T)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    step = 0
    while clock() - start < budget:
        progress = (clock() - start) / budget
        lr = 1e-3 * (step + 1) / 100 if step < 100 else 1e-4 + 0.5 * (1 + math.cos(math.pi * progress)) * 9e-4
        for group in opt.param_groups:
            group["lr"] = lr
        ix = torch.randint(len(train) - T - 1, (B,))
        x = torch.stack([train[i:i + T] for i in ix])
        y = torch.stack([train[i + 1:i + T + 1] for i in ix])
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
    return bits_per_byte_chars(model, val, val_text, T), step


@torch.no_grad()
def bits_per_byte_chars(model, val, val_text, T):
    """Mean loss over every character of the validation text after the first, in bits per byte."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(val) - 1, T):
        x, y = val[i:i + T][None], val[i + 1:i + T + 1][None]
        x = x[:, :y.shape[1]]
        total += model(x, y).item() * y.numel()
        count += y.numel()
    return total / count * len(val_text) / len(val_text.encode("utf-8")) / math.log(2)


# ------------------------------------------------------------------------------- (a) llmc train


def llmc_run(budget, seed, threads, clock_name, work):
    """`llmc train` defaults under the budget; returns (val bits per byte, steps)."""
    out = Path(work) / f"llmc-s{seed}"
    cmd = [sys.executable, "-m", "llmc_core.train", "train", "--out", str(out), "--no-progress",
           "--data-dir", str(Path(work) / "data"), "--time-budget", f"{budget}s", "--budget-clock", clock_name,
           "--threads", str(threads), "--seed", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"llmc train failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return summary["val_bpb"], summary["step"]


def one_run(contender, seed, args):
    """Run one contender in a fresh process (nice 10); returns {"bpb", "steps", "load"}."""
    cmd = ["nice", "-n", "10", sys.executable, __file__, "--one", contender, "--seed", str(seed),
           "--budget", str(args.budget), "--threads", str(args.threads), "--clock", args.clock, "--work", args.work]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"{contender} seed {seed} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    return result


def describe(name, values):
    spread = f"min {min(values):.3f}, max {max(values):.3f}"
    if len(values) > 1:
        spread += f", stdev {statistics.stdev(values):.3f}"
    return f"{name}: mean {statistics.mean(values):.3f} bits per byte over {len(values)} seeds ({spread})"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=300.0, help="seconds per run (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="runs per contender (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of both (default: %(default)s)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="what the budget counts: wall time, or each process's CPU time (fair on a shared machine)")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (default: %(default)s)")
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--one", choices=("llmc", "baby"), help=argparse.SUPPRESS)  # one run, in this process
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.work = args.work or tempfile.mkdtemp(prefix="llmc_speedrun_")
    if args.one:
        torch.set_num_threads(args.threads)
        if args.one == "llmc":
            bpb, steps = llmc_run(args.budget, args.seed, args.threads, args.clock, args.work)
        else:
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            bpb, steps = baby_run(*texts(), args.budget, args.seed, clock)
        print(json.dumps({"bpb": bpb, "steps": steps}))
        return
    _, val_text = texts()
    print(f"budget {args.budget:g} s of {args.clock} time, {args.threads} thread(s), {args.parallel} run(s) at a "
          f"time, nice 10; validation text {len(val_text.encode('utf-8')):,} bytes; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    jobs = [(contender, seed) for seed in range(1, args.seeds + 1) for contender in ("llmc", "baby")]
    names = {"llmc": "(a) llmc train", "baby": "(b) baby GPT  "}
    results = {"llmc": [], "baby": []}
    with ThreadPoolExecutor(args.parallel) as pool:
        for (contender, seed), r in zip(jobs, pool.map(lambda job: one_run(*job, args), jobs)):
            results[contender].append(r["bpb"])
            print(f"seed {seed}: {names[contender]} {r['bpb']:.3f} bits per byte, {r['steps']} steps; "
                  f"load average at its end {r['load']:.1f}", flush=True)
    ours, baby = results["llmc"], results["baby"]
    print(describe("(a) llmc train", ours))
    print(describe("(b) baby GPT  ", baby))
    ratio = statistics.mean(ours) / statistics.mean(baby)
    print(f"ratio llmc / baby: {ratio:.3f} (target <= 0.95: {'met' if ratio <= 0.95 else 'not met'})")


if __name__ == "__main__":
    main()
