"""Training checkpoints: everything a run needs to continue exactly where it stopped.

One file, `checkpoint.pt` in the run folder, holds the model, the optimizer state (AdamW's
moments), the data loaders' positions, the random number generators, the step and the config.
It is written to a temporary file in the same folder and renamed over the old one, so a crash
or a kill during the write leaves the previous checkpoint whole.
"""
import random
from pathlib import Path

import numpy as np
import torch

from llmc_core.fileio import atomic_open

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state():
    """The states of every generator training could draw from: Python, numpy, torch (CPU, CUDA)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, state):
    """Write the dict `state` to `path` atomically (temporary file, fsync, rename)."""
    with atomic_open(path) as f:
        torch.save(state, f)


def checkpoint_path(run_or_file):
    """The checkpoint file for a run folder, or the file itself."""
    p = Path(run_or_file)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def load_checkpoint(run_or_file, map_location="cpu"):
    """Read a checkpoint written by `save_checkpoint` (from a run folder or the file)."""
    path = checkpoint_path(run_or_file)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}; pass a run folder that holds {CHECKPOINT_NAME} "
                         f"(written by `llmc train`) or the checkpoint file itself")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable llmc training checkpoint ({type(e).__name__}: {e})") from e
    missing = {"model", "config", "step"} - set(state)
    if missing:
        raise ValueError(f"{path} is not an llmc training checkpoint: it lacks {sorted(missing)}")
    return state
