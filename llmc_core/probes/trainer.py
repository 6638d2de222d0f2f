"""Probes of lesson 08, the fast trainer: the pieces of a fast, scalable trainer.

Schedules are probed at every step of short runs with odd lengths, so an off-by-one in the
warmup or the cosine shows; parameter groups on a model whose 1-D and 2-D tensors are
interleaved; gradient accumulation on a tiny GPT-2 with unequal micro-batch losses, so a
missing 1/k shows as a factor; loader positions over several passes, so wrap-around shows.
Clipping on gradients above and below the cap; the training step on a tiny GPT-2 with AdamW,
clipping active, and a NaN weight that must stop it before AdamW's step; checkpoints through
the trainer's own file format into a fresh model, optimizer and loader, whose next losses and
random draws must be the uninterrupted run's.
"""
import math
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from llmc_core.exercises import FLOAT32_SAME_OPS, FLOAT64, probe, raised
from llmc_core.gpt2 import GPT2, GPT2Config

# Which earlier exercises each exercise runs (the training step calls the learner's accumulation and clipping).
USES = {"trainer/train_step": ("trainer/accumulate", "trainer/clip_grad_norm")}

# The first hint of each exercise: the idea, before the formula or API in the probe's own hint.
NUDGES = {
    "trainer/clip_grad_norm": "One norm over all the gradients together, as if they were one "
                              "long vector; scale only when it is too long.",
    "trainer/train_step": "The order matters: LR, gradients, clip, the finite check, "
                          "then the optimizer step.",
    "trainer/checkpoint": "A resumed run must see the same weights, optimizer moments, "
                          "next batch and random numbers as one that never stopped.",
}
# The LR at each step is a closed formula of Python floats: another correct order differs by rounding only.
SCHEDULE = {"rtol": 1e-9, "atol": 1e-15}
# Gradients and weights after torch float32 forward/backward (and AdamW) steps on a tiny GPT-2,
# with the learner's own order of accumulation: float32 rounding, compounded over a few steps.
TORCH_FLOAT32 = {"rtol": 1e-4, "atol": 1e-6}
# Numbers drawn from restored generator states: the same state draws the same numbers, exactly.
SAME_DRAWS = {"rtol": 1e-12, "atol": 0.0}
# A ratio of a few Python floats: only rounding may differ.
CLOSED_FORM = {"rtol": 1e-9, "atol": 0.0}


# --- lr_schedule ---------------------------------------------------------------------------------

def schedule(nb, max_lr, warmup, max_steps, floor, extra=3):
    return np.array([nb.lr_at(s, max_lr, warmup, max_steps, floor) for s in range(max_steps + extra)])


@probe("trainer/lr_schedule", points=1, **SCHEDULE,
       hint="Warmup: step s (0-based) gets max_lr * (s + 1) / warmup_steps, "
            "so the last warmup step reaches max_lr.")
def warmup_steps_ramp(nb):
    return np.array([nb.lr_at(s, 6e-4, 7, 50, 0.1) for s in range(7)])


@probe("trainer/lr_schedule", points=2, **SCHEDULE,
       hint="After warmup: progress p = (step - warmup) / (max_steps - warmup); "
            "lr = min_lr + 0.5 (1 + cos(pi p)) (max_lr - min_lr).")
def cosine_decay(nb):
    return schedule(nb, 3e-3, 5, 37, 0.1)[5:37]


@probe("trainer/lr_schedule", points=1, **SCHEDULE,
       hint="At max_steps and after, p is clipped to 1: the LR stays at min_lr_frac * max_lr.")
def floor_after_max_steps(nb):
    return schedule(nb, 3e-3, 5, 37, 0.1, extra=5)[37:]


@probe("trainer/lr_schedule", points=1, **SCHEDULE,
       hint="warmup_steps = 0: no warmup, the first step gets max_lr and the cosine starts at "
            "once.")
def no_warmup(nb):
    return schedule(nb, 1.0, 0, 11, 0.0)


@probe("trainer/lr_schedule", points=1, **SCHEDULE,
       hint="max_steps <= warmup_steps: there is no decay phase; after warmup return min_lr_frac "
            "* max_lr (and never divide by zero).")
def all_warmup(nb):
    return schedule(nb, 2.0, 6, 6, 0.25)


# --- param_groups --------------------------------------------------------------------------------

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


@probe("trainer/param_groups", points=2, **FLOAT64,
       hint="Decay the tensors with p.dim() >= 2 (matmul weights, embeddings); "
            "biases and layernorm parameters (dim 1) get weight_decay 0.0.")
def gpt2_groups(nb):
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=8))
    return describe_groups(model, nb.param_groups(model, 0.1))


@probe("trainer/param_groups", points=1, **FLOAT64,
       hint="Keep model.parameters() order inside each group; skip frozen tensors "
            "(requires_grad False); a 3-D tensor decays, a 0-D one does not.")
def interleaved_groups(nb):
    model = Interleaved()
    return describe_groups(model, nb.param_groups(model, 0.05))


# --- grad_accum_steps ----------------------------------------------------------------------------

@probe("trainer/grad_accum_steps", points=1,
       hint="micro-steps = total_batch_tokens // (B * T * world_size).")
def micro_step_counts(nb):
    cases = [(524288, 64, 1024, 1), (524288, 64, 1024, 8), (524288, 16, 1024, 8), (1024, 8, 128, 1), (1024, 4, 128, 2),
             (96, 3, 4, 2)]
    return [nb.grad_accum_steps(*c) for c in cases]


@probe("trainer/grad_accum_steps", points=1,
       hint="Raise ValueError when total_batch_tokens % (B * T * world_size) != 0.")
def not_a_multiple(nb):
    return [raised(nb.grad_accum_steps, 1000, 8, 128, 1), raised(nb.grad_accum_steps, 1024, 8, 128, 3)]


# --- accumulate ----------------------------------------------------------------------------------

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


@probe("trainer/accumulate", points=2, **TORCH_FLOAT32,
       hint="Divide each micro-batch's loss by len(batches) before backward(); "
            "return the sum of the scaled losses.")
def three_micro_batches(nb):
    """a 1-layer GPT-2 (C 16, V 32, seed 0); 6 sequences of 8 seeded ids as 3 micro-batches of 2"""
    return accumulation_case(nb, 0, [0, 2, 4, 6])


@probe("trainer/accumulate", points=1, **TORCH_FLOAT32,
       hint="Clear earlier gradients first (model.zero_grad(set_to_none=True)); "
            "one batch is the plain gradient.")
def stale_gradients_cleared(nb):
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16), seed=1)
    rng = np.random.default_rng(1)
    x, y = (torch.from_numpy(rng.integers(0, 32, size=(2, 8))) for _ in range(2))
    nb.accumulate_gradients(model, [(x, y)])
    loss = nb.accumulate_gradients(model, [(x, y)])  # the second call must not add to the first
    return {"loss": float(loss), "ln_f.weight": model.ln_f.weight.grad.numpy().copy()}


# --- clip_grad_norm ------------------------------------------------------------------------------

def clip_case(nb, scale, max_norm):
    """Seeded gradients on three tensors (one without a gradient); returns the norm and the gradients after."""
    generator = torch.Generator().manual_seed(7)
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((4, 3), (5,), (2, 2, 2))]
    for p in params[:2]:
        p.grad = scale * torch.randn(p.shape, generator=generator)
    norm = nb.clip_grad_norm(params, max_norm)
    return {"norm": float(norm), "grads": [p.grad.numpy().copy() for p in params[:2]],
            "untouched": params[2].grad is None}


@probe("trainer/clip_grad_norm", points=2, **FLOAT32_SAME_OPS,
       hint="norm = sqrt(sum of g**2 over every element of every gradient); "
            "above max_norm multiply each gradient in place by max_norm / (norm + 1e-6).")
def clipped(nb):
    """gradients of norm ~30 on a (4, 3) and a (5,) tensor, a (2, 2, 2) tensor without one; max_norm 1.0"""
    return clip_case(nb, 10.0, 1.0)


@probe("trainer/clip_grad_norm", points=1, **FLOAT32_SAME_OPS,
       hint="Below max_norm (or max_norm = math.inf) leave the gradients as they are, "
            "and still return the norm.")
def not_clipped(nb):
    """the same tensors with gradients of norm ~0.3 and max_norm 1.0, then max_norm inf"""
    return [clip_case(nb, 0.1, 1.0), clip_case(nb, 10.0, math.inf)]


# --- train_step ----------------------------------------------------------------------------------

def tiny_run(seed):
    """A 1-layer GPT-2 (C 16, V 32), AdamW over it, and a next_batch() over 8 seeded (2, 8) micro-batches."""
    from llmc_core.train.optim import param_groups
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16), seed=seed)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1.0, betas=(0.9, 0.95), eps=1e-8)
    rng = np.random.default_rng(seed)
    batches = iter([tuple(torch.from_numpy(rng.integers(0, 32, size=(2, 8))) for _ in range(2)) for _ in range(8)])
    return model, optimizer, lambda: next(batches)


def after_step(model, optimizer):
    return {"ln_f.weight": model.ln_f.weight.detach().numpy().copy(),
            "c_fc.weight": model.h[0].mlp.c_fc.weight.detach().numpy().copy(),
            "lr": [g["lr"] for g in optimizer.param_groups],
            "grads cleared": all(p.grad is None for p in model.parameters())}


@probe("trainer/train_step", points=2, **TORCH_FLOAT32,
       hint="Set group['lr'] = lr in every optimizer.param_groups; loss = "
            "accumulate_gradients(model, [next_batch() for each micro-step]); "
            "norm = clip_grad_norm(model.parameters(), grad_clip); optimizer.step(); "
            "optimizer.zero_grad(set_to_none=True).")
def two_clipped_steps(nb):
    """a 1-layer GPT-2 (C 16, V 32, seed 0) with AdamW;
    2 steps of 3 micro-batches of (2, 8) ids, LR 1e-2 then 5e-3, grad_clip 0.1"""
    model, optimizer, next_batch = tiny_run(0)
    first = nb.train_step(model, optimizer, next_batch, 3, 1e-2, 0.1)
    second = nb.train_step(model, optimizer, next_batch, 3, 5e-3, 0.1)
    return {"loss, norm": [float(v) for v in (*first, *second)], **after_step(model, optimizer)}


@probe("trainer/train_step", points=1, **TORCH_FLOAT32,
       hint="grad_clip = 0 means no clipping: pass math.inf as the cap (`grad_clip or math.inf`).")
def no_clipping(nb):
    """the same model (seed 1); one step of 2 micro-batches, LR 1e-2, grad_clip 0"""
    model, optimizer, next_batch = tiny_run(1)
    loss, norm = nb.train_step(model, optimizer, next_batch, 2, 1e-2, 0.0)
    return {"loss, norm": [float(loss), float(norm)], **after_step(model, optimizer)}


@probe("trainer/train_step", points=1,
       hint="Check math.isfinite(loss) and math.isfinite(norm) after clipping and raise "
            "FloatingPointError before optimizer.step(): a NaN that reaches the weights never "
            "leaves.")
def stops_before_a_nan_step(nb):
    """the same model (seed 2) with one NaN in ln_f.weight; one step of 2 micro-batches"""
    model, optimizer, next_batch = tiny_run(2)
    with torch.no_grad():
        model.ln_f.weight[0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    error = raised(nb.train_step, model, optimizer, next_batch, 2, 1e-2, 1.0)
    changed = sum(not torch.equal(a, p.detach()) and not torch.allclose(a, p.detach(), equal_nan=True)
                  for a, p in zip(before, model.parameters()))
    return {"raised": error, "weights changed": int(changed)}


# --- batch_start ---------------------------------------------------------------------------------

def positions(nb, W, M, B, T, n_tokens, steps):
    return [[[nb.batch_start(s, m, r, W, M, B, T, n_tokens) for r in range(W)] for m in range(M)] for s in range(steps)]


@probe("trainer/batch_start", points=2,
       hint="Within a step, micro-step m of rank r reads chunk m * W + r; "
            "step s starts at chunk s * W * M; a chunk is B * T tokens.")
def two_ranks_two_micro_steps(nb):
    return positions(nb, 2, 2, 3, 5, 10_000, 4)


@probe("trainer/batch_start", points=1,
       hint="The shard holds (n_tokens - 1) // (B*T) chunks "
            "(the last target needs one more token); only whole steps are read, then it wraps: "
            "use step % steps_per_pass.")
def wraps_after_whole_steps(nb):
    return positions(nb, 3, 1, 2, 4, 8 * 10 + 1, 9) + positions(nb, 1, 2, 4, 4, 16 * 7, 6)


@probe("trainer/batch_start", points=1,
       hint="Raise ValueError for rank outside 0..world_size-1, micro outside 0..micro_steps-1, "
            "or a shard too short for one step.")
def bad_arguments(nb):
    return [raised(nb.batch_start, 0, 0, 2, 2, 1, 4, 4, 100),
            raised(nb.batch_start, 0, 1, 0, 2, 1, 4, 4, 100),
            raised(nb.batch_start, 0, 0, 0, 2, 2, 4, 4, 64)]


# --- checkpoint ----------------------------------------------------------------------------------

def read_back(path):
    """The trainer's load_checkpoint, with its error shortened to what a learner can act on."""
    from llmc_core.train.checkpoint import load_checkpoint
    try:
        return load_checkpoint(path)
    except ValueError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:
            raise
        raise ValueError(f"torch.load(weights_only=True) cannot read your training_state back: it holds a "
                         f"{found.group(1)} object; keep only tensors and plain Python values "
                         f"(a numpy array: .tolist())") from None


def checkpoint_round_trip(nb):
    """Train 2 steps, save through the trainer's checkpoint file, restore into fresh objects, go on 2 steps."""
    from llmc_core.train.checkpoint import save_checkpoint
    from llmc_core.train.loader import ShardLoader
    from llmc_core.train.shards import write_shard
    config = GPT2Config(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16)
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "probe_train.bin"
        write_shard(shard, np.random.default_rng(3).integers(0, 32, size=600))

        def fresh(seed):
            model = GPT2(config, seed=seed)
            return model, torch.optim.AdamW(model.parameters(), lr=1e-2), ShardLoader(shard, 2, 8)

        def step(model, optimizer, loader):
            x, y = loader.next_batch()
            _, loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()

        model, optimizer, loader = fresh(3)
        for _ in range(2):
            step(model, optimizer, loader)
        random.seed(5), np.random.seed(5), torch.manual_seed(5)
        state = nb.training_state(model, optimizer, loader, 2)
        save_checkpoint(Path(tmp) / "checkpoint.pt", {**state, "config": {}})  # the trainer adds its config
        random.seed(6), np.random.seed(6), torch.manual_seed(6)  # a new process draws other numbers
        model, optimizer, loader = fresh(4)  # ... and starts from other weights
        step_back = nb.restore_training_state(read_back(Path(tmp) / "checkpoint.pt"), model, optimizer, loader)
        draws = [random.random(), float(np.random.rand()), torch.rand(()).item()]
        losses = [step(model, optimizer, loader) for _ in range(3)]
    return {"step": step_back, "losses": losses, "draws": draws}


@probe("trainer/checkpoint", points=2, **FLOAT32_SAME_OPS,
       hint="Save model.state_dict(), optimizer.state_dict() (AdamW's moments), "
            "loader.state_dict() and the step; restore each with its load_state_dict and return "
            "state['step'].")
def resumed_losses(nb):
    """a 1-layer GPT-2 (C 16, V 32) with AdamW on a 600-token shard (B 2, T 8):
    2 steps, save, restore into a fresh model (seed 4), 3 more steps"""
    result = checkpoint_round_trip(nb)
    return {"step": result["step"], "losses": result["losses"]}


@probe("trainer/checkpoint", points=1, **SAME_DRAWS,
       hint="rng: random.getstate(), np.random.get_state() with its key array as a list "
            "(torch.load(weights_only=True) refuses numpy arrays), torch.get_rng_state() and "
            "torch.cuda.get_rng_state_all() when CUDA is there; restore with random.setstate, "
            "np.random.set_state, torch.set_rng_state.")
def random_generators_restored(nb):
    """the same round trip; the first draw of Python's, numpy's and torch's generators after the restore"""
    return checkpoint_round_trip(nb)["draws"]


# --- flops_per_token -----------------------------------------------------------------------------

@probe("trainer/flops_per_token", points=1,
       hint="6 * num_params for the parameter matmuls (forward + backward), "
            "plus 6 * n_layer * n_embd * seq_len for attention.")
def flop_counts(nb):
    return [nb.flops_per_token(124_475_904, 12, 768, 1024), nb.flops_per_token(3_418_880, 4, 64, 128),
            nb.flops_per_token(1000, 3, 5, 7)]


# --- mfu -----------------------------------------------------------------------------------------

@probe("trainer/mfu", points=1, **CLOSED_FORM,
       hint="MFU = tokens_per_s * flops_per_token / (peak_flops * world_size).")
def utilization(nb):
    return [nb.mfu(400_000, 7.5e8, 989e12), nb.mfu(3_000_000, 7.5e8, 989e12, world_size=8),
            nb.mfu(1234.5, 2e7, 1e12, 1)]


@probe("trainer/mfu", points=1,
       hint="Raise ValueError when peak_flops <= 0: a CPU has no known peak.")
def unknown_peak(nb):
    return [raised(nb.mfu, 1000.0, 1e6, 0.0), raised(nb.mfu, 1000.0, 1e6, -1.0)]
