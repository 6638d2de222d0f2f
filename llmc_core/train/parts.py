"""The replaceable parts of the training loop, so that a lesson can plug its own in.

`train(config, out_dir, parts=TrainerParts(lr_at=my_lr_at))` runs the same loop with the
learner's learning-rate schedule (or parameter groups, or micro-step count, or FLOP count)
in place of the trainer's own. Each field takes the signature of the function it replaces
in `llmc_core.train.optim`.
"""
from dataclasses import dataclass, fields
from typing import Callable

from llmc_core.modern import Pieces
from llmc_core.train import optim


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

    def __post_init__(self):
        if not isinstance(self.pieces, Pieces):
            raise TypeError(f"TrainerParts.pieces must be a llmc_core.modern.Pieces, got {self.pieces!r}")
        for f in fields(self):
            if f.name != "pieces" and not callable(getattr(self, f.name)):
                raise TypeError(f"TrainerParts.{f.name} must be a function, got {getattr(self, f.name)!r}")
