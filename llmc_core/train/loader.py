"""A deterministic data loader over llm.c token shards, split across data-parallel ranks.

A shard is cut into chunks of B*T tokens (plus one more token for the last target), read in
order; shards are read in order and wrap around at the end (one pass = one epoch). An optimizer
step takes world_size x micro_steps chunks: rank r reads chunks r, r + W, r + 2W, ... of the
step. A shard is only read in whole steps (its last few chunks are skipped if they cannot make
one), so 2 ranks with 1 micro-step read exactly the chunks that 1 rank with 2 micro-steps reads,
which is what makes a 2-process run reproduce a 1-process run with gradient accumulation.
"""
import glob
from pathlib import Path

import numpy as np
import torch

from llmc_core.train.shards import load_shard


def find_shards(pattern):
    """The sorted shard paths matching a glob `pattern` (or a single file path)."""
    paths = sorted(glob.glob(str(pattern)))
    if not paths:
        raise ValueError(f"no token shards match {str(pattern)!r}; run `llmc data prepare NAME` first "
                         f"or pass the right --train-data / --val-data pattern")
    return [Path(p) for p in paths]


class ShardLoader:
    """Batches x, y of token ids, each (B, T) int64, with y the next token after x."""

    def __init__(self, pattern, B, T, rank=0, world_size=1, micro_steps=1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}")
        self.paths = find_shards(pattern)
        self.B, self.T, self.rank, self.world_size = B, T, rank, world_size
        self.chunks_per_step = world_size * micro_steps
        for path in self.paths:
            count = len(load_shard(path))
            if self.usable_chunks(count) <= 0:  # an empty shard gives -1
                need = B * T * self.chunks_per_step + 1
                raise ValueError(f"shard {path} holds {count} tokens, fewer than the {need} that one step "
                                 f"needs (B={B} x T={T} x {world_size} ranks x {micro_steps} micro-steps + 1); "
                                 f"use a smaller batch")
        self.reset()

    def usable_chunks(self, count):
        """Chunks of a shard of `count` tokens that whole steps can use."""
        chunks = max(0, count - 1) // (self.B * self.T)  # -1: the last chunk needs one token past its end
        return chunks - chunks % self.chunks_per_step

    def batches_per_pass(self):
        """Batches this rank reads in one pass over all shards (each chunk read once by one rank)."""
        chunks = sum(self.usable_chunks(len(load_shard(path))) for path in self.paths)
        return chunks // self.world_size

    def reset(self):
        """Go back to the first chunk of the first shard."""
        self.shard, self.chunk, self.epoch = 0, 0, 0
        self.tokens = load_shard(self.paths[0])

    def next_batch(self):
        B, T = self.B, self.T
        start = (self.chunk + self.rank) * B * T
        buf = torch.from_numpy(self.tokens[start:start + B * T + 1].astype(np.int64))
        x = buf[:-1].view(B, T)  # (B, T) inputs
        y = buf[1:].view(B, T)  # (B, T) targets: each input's next token
        self.chunk += self.world_size  # the other ranks read the chunks in between
        if self.chunk >= self.usable_chunks(len(self.tokens)):
            # this shard is used up: move on to the next one (wrapping around)
            self.shard = (self.shard + 1) % len(self.paths)
            self.epoch += self.shard == 0
            self.chunk = 0
            self.tokens = load_shard(self.paths[self.shard])
        return x, y

    def state_dict(self):
        """Where the next batch comes from: enough to continue exactly after a restart."""
        return {"shard": self.shard, "chunk": self.chunk, "epoch": self.epoch,
                "B": self.B, "T": self.T, "chunks_per_step": self.chunks_per_step,
                "paths": [p.name for p in self.paths]}

    def load_state_dict(self, state):
        # the chunk index is shared by all ranks, so the number of processes may change as
        # long as processes x micro-steps (the chunks of one step) stays the same
        mine = (self.B, self.T, self.chunks_per_step, [p.name for p in self.paths])
        saved = (state["B"], state["T"], state["chunks_per_step"], state["paths"])
        if mine != saved:
            raise ValueError(f"the checkpoint's data loader read B, T, chunks per step, shards = {saved[:3]}, "
                             f"{saved[3][:3]}...; this run has {mine[:3]}, {mine[3][:3]}...: resume with "
                             f"the same batch shape, tokens per step and data")
        self.shard, self.chunk, self.epoch = state["shard"], state["chunk"], state["epoch"]
        self.tokens = load_shard(self.paths[self.shard])

    def __repr__(self):
        return (f"ShardLoader({len(self.paths)} shards, B={self.B}, T={self.T}, "
                f"rank {self.rank}/{self.world_size}, shard {self.shard}, chunk {self.chunk})")
