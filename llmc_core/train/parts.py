"""The replaceable parts of the training loop, so that a lesson can plug its own in.

`train(config, out_dir, parts=TrainerParts(lr_at=my_lr_at))` runs the same loop with the
learner's learning-rate schedule (or parameter groups, micro-step count, FLOP count, training
step, or checkpoint contents) in place of the trainer's own. Each field takes the signature of
the function it replaces, named in its comment.
"""
import math
import time
from dataclasses import dataclass, fields
from typing import Callable

from llmc_core.modern import Pieces
from llmc_core.train import checkpoint, optim


@dataclass(frozen=True)
class TrainerParts:
    # lr_at(step, lr, warmup_steps, max_steps, min_lr_frac) -> the learning rate of step (0-based)
    lr_at: Callable = optim.lr_at
    # param_groups(model, weight_decay) -> AdamW parameter groups (a list of dicts)
    param_groups: Callable = optim.param_groups
    # grad_accum_steps(total_batch_tokens, batch_size, seq_len, world_size) -> micro-steps per step
    grad_accum_steps: Callable = optim.grad_accum_steps
    # flops_per_token(num_params, n_layer, n_embd, seq_len) -> training FLOPs per token, for MFU
    flops_per_token: Callable = optim.flops_per_token
    # the modern recipe's functions (RMSNorm, RoPE, Newton-Schulz, ...), used when the config turns them on
    pieces: Pieces = Pieces()
    # train_step(model, optimizer, next_batch, grad_accum, lr, grad_clip) -> (loss, grad_norm), floats;
    # raises FloatingPointError before changing a weight when either is not finite. None: the
    # trainer's own step (which also runs under DDP); a plugged-in one runs in one process.
    train_step: Callable | None = None
    # training_state(model, optimizer, loader, step) -> the dict a checkpoint holds to continue
    # (keys "model" and "step" at least; the trainer adds its config and bookkeeping beside them)
    training_state: Callable = checkpoint.training_state
    # restore_training_state(state, model, optimizer, loader) -> the step to continue after
    restore_training_state: Callable = checkpoint.restore_training_state

    def __post_init__(self):
        if not isinstance(self.pieces, Pieces):
            raise TypeError(f"TrainerParts.pieces must be a llmc_core.modern.Pieces, got {self.pieces!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "pieces" and not (callable(value) or (value is None and f.name == "train_step")):
                raise TypeError(f"TrainerParts.{f.name} must be a function, got {value!r}")


def plugged_step(run):
    """One optimizer step of `run` by its parts.train_step; returns the trainer's log record."""
    from llmc_core.train.trainer import TrainingDiverged, learning_rate
    config = run.config
    if run.runtime.ddp:
        raise ValueError("a plugged-in train_step runs in one process; start the run without torchrun, "
                         "or leave TrainerParts.train_step as None")
    t0 = time.perf_counter()
    lr = learning_rate(run)  # the trainer's schedule, fitted to the time budget when there is one
    device = run.runtime.device

    def next_batch():
        x, y = run.train_loader.next_batch()
        return x.to(device), y.to(device)

    try:
        with run.autocast():
            loss, norm = run.parts.train_step(run.model, run.optimizer, next_batch, run.grad_accum, lr,
                                              config.grad_clip)
    except FloatingPointError as e:
        raise TrainingDiverged(f"step {run.step + 1} (LR {lr:.3g}): {e}") from e
    loss, norm = float(loss), float(norm)
    if not (math.isfinite(loss) and math.isfinite(norm)):  # the step should have refused: it did not
        raise TrainingDiverged(f"step {run.step + 1}: train_step returned loss {loss} and gradient norm {norm} "
                               f"instead of raising FloatingPointError before the optimizer step")
    dt = time.perf_counter() - t0
    tokens_per_s = config.total_batch_tokens / dt
    mfu = run.flops_token * tokens_per_s / run.peak if run.peak else None
    run.step += 1
    return {"step": run.step, "loss": loss, "lr": lr, "grad_norm": norm,
            "tokens_per_s": tokens_per_s, "mfu": mfu, "dt_ms": dt * 1000}


def losses(run_dir):
    """{step: training loss} from a run folder's log."""
    from llmc_core.train.rundir import read_log
    return {r["step"]: r["loss"] for r in read_log(run_dir) if "loss" in r}


def resume_and_straight(config, folder, stop_at, parts=None):
    """The determinism property's two runs: ({step: loss} uninterrupted, {step: loss} stopped at stop_at and resumed).

    Both run in subfolders of `folder`; on the CPU, with the same thread count, a correct
    checkpoint makes them equal bit for bit.
    """
    from llmc_core.train.trainer import train
    train(config, folder / "straight", progress=False, parts=parts)
    train(config, folder / "resumed", stop_at=stop_at, progress=False, parts=parts)
    train(config, folder / "resumed", resume=True, progress=False, parts=parts)
    return losses(folder / "straight"), losses(folder / "resumed")
