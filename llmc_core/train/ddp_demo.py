"""A small DistributedDataParallel run on the CPU: W gloo processes vs one process.

`ddp_gradients(world_size=2, micro_steps=1)` starts W processes (torch.multiprocessing, gloo
backend, no GPU), each computing one tiny GPT-2's gradient on its own share of a fixed batch,
and returns the gradients after DDP's all-reduce. `single_process_gradients(world_size *
micro_steps)` computes the same batch's gradient in one process by gradient accumulation.
The two agree to float32 rounding: that equality is what lets `llmc train` run on 1 or 8
processes with the same tokens per step.
"""
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from llmc_core.gpt2 import GPT2, GPT2Config

DEMO_CONFIG = dict(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=16)


def demo_batches(chunks, B=2, T=16, seed=0):
    """`chunks` batches (x, y), each (B, T) int64, cut in order from one seeded token stream."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, DEMO_CONFIG["vocab_size"], (chunks * B * T + 1,), generator=generator)
    out = []
    for c in range(chunks):
        buf = tokens[c * B * T: (c + 1) * B * T + 1]
        out.append((buf[:-1].view(B, T), buf[1:].view(B, T)))
    return out


def demo_model():
    return GPT2(GPT2Config(**DEMO_CONFIG), seed=0)


def single_process_gradients(chunks):
    """{name: grad} of the mean loss over `chunks` micro-batches, accumulated in one process."""
    model = demo_model()
    for x, y in demo_batches(chunks):
        _, loss = model(x, y)
        (loss / chunks).backward()  # each micro-loss scaled so the sum is the mean
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _worker(rank, world_size, micro_steps, port, out_path):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(demo_model())
        batches = demo_batches(world_size * micro_steps)
        for micro in range(micro_steps):
            x, y = batches[micro * world_size + rank]  # rank r reads chunks r, r + W, ... (as ShardLoader)
            last = micro == micro_steps - 1
            # no_sync: keep the gradient local; only the last micro-step all-reduces (averages over ranks)
            context = torch.enable_grad() if last else model.no_sync()
            with context:
                _, loss = model(x, y)
                (loss / micro_steps).backward()
        if rank == 0:
            torch.save({n: p.grad for n, p in model.module.named_parameters()}, out_path)
        # subtle: a rank that tears down gloo while another still uses it can abort both; wait for all first
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_gradients(world_size=2, micro_steps=1):
    """{name: grad} on rank 0 after DDP over `world_size` gloo processes, each doing micro_steps."""
    if world_size < 1 or micro_steps < 1:
        raise ValueError(f"world_size and micro_steps must be >= 1, got {world_size} and {micro_steps}")
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "grads.pt"
        mp.spawn(_worker, args=(world_size, micro_steps, free_port(), str(out_path)), nprocs=world_size, join=True)
        return torch.load(out_path)
