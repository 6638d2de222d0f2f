"""Probes of lesson 08: the pieces of a fast, scalable trainer.

Schedules are probed at every step of short runs with odd lengths, so an off-by-one in the
warmup or the cosine shows; parameter groups on a model whose 1-D and 2-D tensors are
interleaved; gradient accumulation on a tiny GPT-2 with unequal micro-batch losses, so a
missing 1/k shows as a factor; loader positions over several passes, so wrap-around shows.
"""
import numpy as np
import torch

from llmc_core.exercises import probe, raised
from llmc_core.gpt2 import GPT2, GPT2Config

# Which earlier exercises each exercise runs: none, each function of this lesson is probed on its own
# (mfu takes flops per token as a number; accumulate_gradients needs no micro-step count).
USES = {}


# ---------------------------------------------------------------- LR schedule

def schedule(nb, max_lr, warmup, max_steps, floor, extra=3):
    return np.array([nb.lr_at(s, max_lr, warmup, max_steps, floor) for s in range(max_steps + extra)])


@probe("trainer/lr_schedule", points=1, hint="Warmup: step s (0-based) gets max_lr * (s + 1) / warmup_steps, so the last warmup step reaches max_lr.", rtol=1e-9, atol=1e-15)
def warmup_steps_ramp(nb):
    return np.array([nb.lr_at(s, 6e-4, 7, 50, 0.1) for s in range(7)])


@probe("trainer/lr_schedule", points=2, hint="After warmup: progress p = (step - warmup) / (max_steps - warmup); lr = min_lr + 0.5 (1 + cos(pi p)) (max_lr - min_lr).", rtol=1e-9, atol=1e-15)
def cosine_decay(nb):
    return schedule(nb, 3e-3, 5, 37, 0.1)[5:37]


@probe("trainer/lr_schedule", points=1, hint="At max_steps and after, p is clipped to 1: the LR stays at min_lr_frac * max_lr.", rtol=1e-9, atol=1e-15)
def floor_after_max_steps(nb):
    return schedule(nb, 3e-3, 5, 37, 0.1, extra=5)[37:]


@probe("trainer/lr_schedule", points=1, hint="warmup_steps = 0: no warmup, the first step gets max_lr and the cosine starts at once.", rtol=1e-9, atol=1e-15)
def no_warmup(nb):
    return schedule(nb, 1.0, 0, 11, 0.0)


@probe("trainer/lr_schedule", points=1, hint="max_steps <= warmup_steps: there is no decay phase; after warmup return min_lr_frac * max_lr (and never divide by zero).", rtol=1e-9, atol=1e-15)
def all_warmup(nb):
    return schedule(nb, 2.0, 6, 6, 0.25)


# ---------------------------------------------------------------- parameter groups

class Interleaved(torch.nn.Module):
    """Linear, LayerNorm, Embedding, a frozen matrix and a 3-D tensor, in an order that mixes 1-D and 2-D."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(5, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.lin = torch.nn.Linear(3, 4)
        self.frozen = torch.nn.Parameter(torch.zeros(2, 2), requires_grad=False)
        self.kernel = torch.nn.Parameter(torch.zeros(2, 3, 4))
        self.scale = torch.nn.Parameter(torch.ones(()))


def describe_groups(model, groups):
    names = {id(p): n for n, p in model.named_parameters()}
    return [{"params": [names[id(p)] for p in g["params"]], "weight_decay": float(g["weight_decay"])} for g in groups]


@probe("trainer/param_groups", points=2, hint="Decay the tensors with p.dim() >= 2 (matmul weights, embeddings); biases and layernorm parameters (dim 1) get weight_decay 0.0.")
def gpt2_groups(nb):
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=8))
    return describe_groups(model, nb.param_groups(model, 0.1))


@probe("trainer/param_groups", points=1, hint="Keep model.parameters() order inside each group; skip frozen tensors (requires_grad False); a 3-D tensor decays, a 0-D one does not.")
def interleaved_groups(nb):
    model = Interleaved()
    return describe_groups(model, nb.param_groups(model, 0.05))


# ---------------------------------------------------------------- gradient accumulation

@probe("trainer/grad_accum_steps", points=1, hint="micro-steps = total_batch_tokens // (B * T * world_size).")
def micro_step_counts(nb):
    cases = [(524288, 64, 1024, 1), (524288, 64, 1024, 8), (524288, 16, 1024, 8), (1024, 8, 128, 1), (1024, 4, 128, 2), (96, 3, 4, 2)]
    return [nb.grad_accum_steps(*c) for c in cases]


@probe("trainer/grad_accum_steps", points=1, hint="Raise ValueError when total_batch_tokens % (B * T * world_size) != 0.")
def not_a_multiple(nb):
    return [raised(nb.grad_accum_steps, 1000, 8, 128, 1), raised(nb.grad_accum_steps, 1024, 8, 128, 3)]


def accumulation_case(nb, seed, split):
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16), seed=seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, 32, size=(6, 8)))
    y = torch.from_numpy(rng.integers(0, 32, size=(6, 8)))
    batches = [(x[i:j], y[i:j]) for i, j in zip(split[:-1], split[1:])]
    loss = nb.accumulate_gradients(model, batches)
    return {"loss": float(loss),
            "ln_f.weight": model.ln_f.weight.grad.numpy().copy(),
            "c_attn.bias": model.h[0].attn.c_attn.bias.grad.numpy().copy(),
            "wpe": model.wpe.weight.grad.numpy().copy()}


@probe("trainer/accumulate", points=2, hint="Divide each micro-batch's loss by len(batches) before backward(); return the sum of the scaled losses.", rtol=1e-4, atol=1e-6)
def three_micro_batches(nb):
    """a 1-layer GPT-2 (C 16, V 32, seed 0); 6 sequences of 8 seeded ids as 3 micro-batches of 2"""
    return accumulation_case(nb, 0, [0, 2, 4, 6])


@probe("trainer/accumulate", points=1, hint="Clear earlier gradients first (model.zero_grad(set_to_none=True)); one batch is the plain gradient.", rtol=1e-4, atol=1e-6)
def stale_gradients_cleared(nb):
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16), seed=1)
    rng = np.random.default_rng(1)
    x, y = (torch.from_numpy(rng.integers(0, 32, size=(2, 8))) for _ in range(2))
    nb.accumulate_gradients(model, [(x, y)])
    loss = nb.accumulate_gradients(model, [(x, y)])  # the second call must not add to the first
    return {"loss": float(loss), "ln_f.weight": model.ln_f.weight.grad.numpy().copy()}


# ---------------------------------------------------------------- data loading

def positions(nb, W, M, B, T, n_tokens, steps):
    return [[[nb.batch_start(s, m, r, W, M, B, T, n_tokens) for r in range(W)] for m in range(M)] for s in range(steps)]


@probe("trainer/batch_start", points=2, hint="Within a step, micro-step m of rank r reads chunk m * W + r; step s starts at chunk s * W * M; a chunk is B * T tokens.")
def two_ranks_two_micro_steps(nb):
    return positions(nb, 2, 2, 3, 5, 10_000, 4)


@probe("trainer/batch_start", points=1, hint="The shard holds (n_tokens - 1) // (B*T) chunks (the last target needs one more token); only whole steps are read, then it wraps: use step % steps_per_pass.")
def wraps_after_whole_steps(nb):
    return positions(nb, 3, 1, 2, 4, 8 * 10 + 1, 9) + positions(nb, 1, 2, 4, 4, 16 * 7, 6)


@probe("trainer/batch_start", points=1, hint="Raise ValueError for rank outside 0..world_size-1, micro outside 0..micro_steps-1, or a shard too short for one step.")
def bad_arguments(nb):
    return [raised(nb.batch_start, 0, 0, 2, 2, 1, 4, 4, 100),
            raised(nb.batch_start, 0, 1, 0, 2, 1, 4, 4, 100),
            raised(nb.batch_start, 0, 0, 0, 2, 2, 4, 4, 64)]


# ---------------------------------------------------------------- FLOPs and MFU

@probe("trainer/flops_per_token", points=1, hint="6 * num_params for the parameter matmuls (forward + backward), plus 6 * n_layer * n_embd * seq_len for attention.")
def flop_counts(nb):
    return [nb.flops_per_token(124_475_904, 12, 768, 1024), nb.flops_per_token(3_418_880, 4, 64, 128), nb.flops_per_token(1000, 3, 5, 7)]


@probe("trainer/mfu", points=1, hint="MFU = tokens_per_s * flops_per_token / (peak_flops * world_size).", rtol=1e-9, atol=0.0)
def utilization(nb):
    return [nb.mfu(400_000, 7.5e8, 989e12), nb.mfu(3_000_000, 7.5e8, 989e12, world_size=8), nb.mfu(1234.5, 2e7, 1e12, 1)]


@probe("trainer/mfu", points=1, hint="Raise ValueError when peak_flops <= 0: a CPU has no known peak.")
def unknown_peak(nb):
    return [raised(nb.mfu, 1000.0, 1e6, 0.0), raised(nb.mfu, 1000.0, 1e6, -1.0)]
