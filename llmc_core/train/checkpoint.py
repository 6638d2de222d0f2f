"""Training checkpoints: everything a run needs to continue exactly where it stopped.

One file, `checkpoint.pt` in the run folder, holds the model, the optimizer state (AdamW's
moments), the data loaders' positions, the random number generators, the step, the config and
the tokenizer. It is written to a temporary file in the same folder and renamed over the old
one, so a crash or a kill during the write leaves the previous checkpoint whole; the one it
replaces is kept as `checkpoint.prev.pt`, and the best validation score's as `checkpoint.best.pt`.

The file is a one-line header `llmc-checkpoint sha256=<64 hex digits>` followed by torch.save's
bytes; the digest is of those bytes, so a flipped or missing byte is found on load rather than
resuming from silently corrupted weights. Every reader goes through `load_checkpoint`.
"""
import hashlib
import io
import os
import random
from pathlib import Path

import numpy as np
import torch

from llmc_core.fileio import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"
BEST_NAME = "checkpoint.best.pt"
HEADER_PREFIX = b"llmc-checkpoint sha256="
HEADER_BYTES = len(HEADER_PREFIX) + 64 + 1  # prefix, hex digest, newline


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


def training_state(model, optimizer, loader, step):
    """What continuing after `step` needs: weights, AdamW's moments, the loader's position, RNG states, the step."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "train_loader": loader.state_dict(),
            "rng": rng_state(), "step": step}


def restore_training_state(state, model, optimizer, loader):
    """Put a training_state back into model, optimizer, loader and the RNGs; returns its step."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    loader.load_state_dict(state["train_loader"])
    set_rng_state(state["rng"])
    return state["step"]


def save_checkpoint(path, state, keep_previous=False):
    """Write the dict `state` to `path` atomically, with its checksum in the header.

    keep_previous: first rename the checkpoint already at `path` to checkpoint.prev.pt.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getbuffer()
    header = HEADER_PREFIX + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    if keep_previous and path.is_file():
        os.replace(path, path.with_name(PREVIOUS_NAME))
    atomic_write_bytes(path, header + payload)


def checkpoint_path(run_or_file):
    """The checkpoint file for a run folder, or the file itself."""
    p = Path(run_or_file)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def read_verified(path):
    """The torch.save bytes of the checkpoint at `path`, after checking them against its checksum."""
    with open(path, "rb") as f:
        data = f.read()
    header = data[:HEADER_BYTES]
    if not (header.startswith(HEADER_PREFIX) and header.endswith(b"\n")):
        raise ValueError(f"{path} is not an llmc training checkpoint (no 'llmc-checkpoint sha256=' header); "
                         f"pass a checkpoint.pt written by `llmc train`")
    payload = memoryview(data)[HEADER_BYTES:]
    expected = header[len(HEADER_PREFIX):-1].decode("ascii", errors="replace")
    if hashlib.sha256(payload).hexdigest() != expected:
        raise ValueError(f"{path} is corrupt: its contents do not match the checksum it was written with "
                         f"(a damaged disk or copy){previous_hint(path)}")
    return payload


def previous_hint(path):
    """A sentence pointing to the previous checkpoint beside `path`, when there is one."""
    previous = Path(path).with_name(PREVIOUS_NAME)
    if Path(path).name == PREVIOUS_NAME or not previous.is_file():
        return ""
    return (f"; the previous checkpoint {previous} is kept: resume from it with "
            f"`llmc train --resume {Path(path).parent}` (it is used when {Path(path).name} is unreadable) "
            f"or pass it to `llmc sample`")


def load_checkpoint(run_or_file, map_location="cpu"):
    """Read and verify a checkpoint written by `save_checkpoint` (from a run folder or the file)."""
    path = checkpoint_path(run_or_file)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}; pass a run folder that holds {CHECKPOINT_NAME} "
                         f"(written by `llmc train`) or the checkpoint file itself{previous_hint(path)}")
    payload = read_verified(path)
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable llmc training checkpoint ({type(e).__name__}: {e})") from e
    missing = {"model", "config", "step"} - set(state)
    if missing:
        raise ValueError(f"{path} is not an llmc training checkpoint: it lacks {sorted(missing)}")
    return state


def load_latest_good(run_dir, say=print):
    """The run folder's checkpoint.pt, or checkpoint.prev.pt (saying so) when the latest is unreadable."""
    run_dir = Path(run_dir)
    try:
        return load_checkpoint(run_dir / CHECKPOINT_NAME)
    except ValueError as e:
        if not (run_dir / PREVIOUS_NAME).is_file():
            raise
        state = load_checkpoint(run_dir / PREVIOUS_NAME)
        say(f"warning: {e.args[0].split(';')[0]}; resuming from {run_dir / PREVIOUS_NAME} (step {state['step']})")
        return state
