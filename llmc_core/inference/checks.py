"""Checks that stay on under `python -O`: user errors raise ValueError, broken invariants InvariantError.

`assert` statements vanish when Python runs with -O, so the engine never uses them; these two
functions are plain code and always run. They guard module boundaries (loading, the start of a
generation), never the inner per-token loop, where they would cost time on every token.
"""
import torch


class InvariantError(RuntimeError):
    """An internal invariant was broken: a bug in the engine, not a user mistake."""


def require(condition: bool, message: str):
    """Raise ValueError(message) unless condition: for anything a user passes in."""
    if not condition:
        raise ValueError(message)


def invariant(condition: bool, message: str):
    """Raise InvariantError(message) unless condition: for what the engine itself guarantees."""
    if not condition:
        raise InvariantError(message)


def check_tensor(t, name: str, shape: tuple, dtype: torch.dtype, device=None):
    """Raise InvariantError unless t is a tensor of exactly this shape, dtype (and device)."""
    invariant(isinstance(t, torch.Tensor), f"{name} should be a tensor, got {type(t).__name__}")
    invariant(tuple(t.shape) == tuple(shape), f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    invariant(t.dtype == dtype, f"{name} has dtype {t.dtype}, expected {dtype}")
    if device is not None:
        invariant(t.device == torch.device(device), f"{name} is on {t.device}, expected {device}")


def require_int(value, name: str, low: int, high: int):
    """Raise ValueError unless value is an int with low <= value <= high."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    require(ok and low <= value <= high, f"{name} must be an int in [{low}, {high}], got {value!r}")
