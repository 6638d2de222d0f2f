"""The training loop: GPT-2 on llm.c token shards, from one CPU core to many GPUs.

One optimizer step, in order:
1. set the learning rate of this step (warmup, then cosine decay);
2. run grad_accum micro-batches forward and backward, each loss divided by grad_accum so
   the summed gradients are the gradient of the mean loss over the whole batch
   (under DistributedDataParallel the gradients are averaged across processes on the last
   micro-batch only: `no_sync` skips the all-reduce on the others);
3. clip the global gradient norm, stop if the loss or the norm is not finite;
4. AdamW step; log loss, LR, tokens/s and MFU; now and then evaluate, sample, checkpoint.

Run it with `llmc train` (see docs/trainer.md), or call `train(config, out_dir)`.
"""
import json
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from llmc_core.fileio import atomic_write_json, atomic_write_text
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from llmc_core.train.config import TrainConfig
from llmc_core.train.evaluate import hellaswag_accuracy, hellaswag_examples, val_loss
from llmc_core.train.loader import ShardLoader, find_shards
from llmc_core.train.optim import fused_adamw_available, peak_flops
from llmc_core.train.parts import TrainerParts
from llmc_core.train.sample import sample_text
from llmc_core.train.shards import load_shard

LOG_NAME = "log.jsonl"


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient norm became NaN or Inf; the run stopped before applying that step."""


# ---------------------------------------------------------------------------------------------
# setup


class Runtime:
    """Where this process runs: its rank among world_size processes, and its device."""

    def __init__(self, config):
        # torchrun sets RANK, LOCAL_RANK and WORLD_SIZE for each process it starts
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.ddp = self.world_size > 1
        if config.device == "auto":
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        else:
            device = config.device
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.ddp and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
        self.master = self.rank == 0

    def __repr__(self):
        return f"Runtime(rank {self.rank}/{self.world_size}, device {self.device})"


def resolve_dtype(config, device):
    """The autocast dtype: bfloat16 on GPUs unless asked otherwise, float32 (no autocast) on CPUs."""
    if config.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, config.dtype)


def data_patterns(config, data_dir, runtime):
    """Glob patterns of the train and val shards, preparing tiny Shakespeare when it is missing."""
    from llmc_core.train.prepare import prepare, shard_patterns
    train, val = shard_patterns(config.data, data_dir)
    train, val = config.train_data or train, config.val_data or val
    if config.data == "tinyshakespeare" and not (config.train_data or config.val_data):
        if runtime.master and not (list(Path(train).parent.glob("*.bin"))):
            prepare("tinyshakespeare", data_dir)  # one second of tokenizing, no download
        if runtime.ddp:
            dist.barrier()
    return train, val


def unigram_entropy(pattern, max_tokens=100_000_000):
    """Entropy in nats of the token frequencies in the shards (the first max_tokens tokens).

    The loss of the best model that ignores context: a trained model must get below it.
    """
    counts, seen = np.zeros(2**16, dtype=np.int64), 0
    for path in find_shards(pattern):
        tokens = load_shard(path)[: max_tokens - seen]
        counts += np.bincount(tokens, minlength=2**16)
        seen += len(tokens)
        if seen >= max_tokens:
            break
    p = counts[counts > 0] / seen
    return float(-(p * np.log(p)).sum())


def build_model(config, device, model_config=None):
    """The GPT-2 to train: from scratch, from real GPT-2 weights, or (model_config) shaped for a checkpoint."""
    kwargs = dict(attention=config.attention, padded_vocab=config.padded_vocab)
    if model_config is not None:
        model = GPT2(GPT2Config(**model_config), **kwargs)
    elif config.init_from == "scratch":
        model = GPT2(config.model_config(), seed=config.seed, **kwargs)
    else:
        from llmc_core import weights
        if config.init_from in weights.HF_REPOS:
            model = weights.from_pretrained(config.init_from, **kwargs)
        else:
            model = weights.load_gpt2(config.init_from, n_head=config.n_head, **kwargs)
    if config.seq_len > model.config.block_size:
        raise ValueError(f"seq_len={config.seq_len} is longer than the model's {model.config.block_size} "
                         f"positions; pass --seq-len {model.config.block_size} or less")
    return model.to(device)


def make_optimizer(model, config, runtime, parts=TrainerParts()):
    """AdamW over the decay / no-decay groups; fused when available; ZeRO-1 sharded if asked."""
    groups = parts.param_groups(model, config.weight_decay)
    fused = config.fused_adamw and fused_adamw_available(runtime.device.type)
    kwargs = dict(lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if fused:
        kwargs["fused"] = True
    if config.zero1:
        if not runtime.ddp:
            raise ValueError("--zero1 shards the optimizer state across processes; it needs torchrun with 2+ processes")
        from torch.distributed.optim import ZeroRedundancyOptimizer
        # each rank keeps AdamW's moments for its own share of the parameters only
        opt = ZeroRedundancyOptimizer(groups[0]["params"], optimizer_class=torch.optim.AdamW,
                                      weight_decay=config.weight_decay, **kwargs)
        opt.add_param_group({"params": groups[1]["params"], "weight_decay": 0.0})
        return opt, fused
    return torch.optim.AdamW(groups, **kwargs), fused


# ---------------------------------------------------------------------------------------------
# logging and stopping


class RunLog:
    """The JSON-lines log: one record per step ({"step", "loss", "lr", ...}), appended as it goes."""

    def __init__(self, path, keep_up_to_step=None):
        self.path = Path(path)
        if keep_up_to_step is not None and self.path.exists():
            # resuming: drop the records of steps after the checkpoint, they will be redone
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= keep_up_to_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        elif keep_up_to_step is None:
            atomic_write_text(self.path, "")

    def write(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_log(run_dir):
    """The records of a run's log.jsonl, in order."""
    path = Path(run_dir) / LOG_NAME
    if not path.is_file():
        raise ValueError(f"no training log at {path}; pass a run folder written by `llmc train`")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class StopSignals:
    """Turns Ctrl-C (SIGINT) and SIGTERM into a request to stop after the current step.

    The loop then saves a checkpoint and returns. A second Ctrl-C stops at once.
    """

    def __init__(self):
        self.received = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# the loop


def train(config: TrainConfig, out_dir, *, resume=False, data_dir=None, stop_at=0, progress=True, parts=None):
    """Train per `config`, writing log.jsonl, samples.txt and checkpoint.pt into out_dir.

    resume: continue from out_dir/checkpoint.pt (the config must describe the same model).
    stop_at: save a checkpoint and stop after this step, as an interruption would, without
    changing the LR schedule (which still runs to config.max_steps).
    parts: a TrainerParts whose functions replace the trainer's own (LR schedule, parameter
    groups, micro-step count, FLOPs per token); None = the trainer's.
    Returns a summary dict; raises TrainingDiverged on a NaN/Inf loss.
    """
    parts = TrainerParts() if parts is None else parts
    if not isinstance(parts, TrainerParts):
        raise TypeError(f"parts must be a TrainerParts (llmc_core.train.parts), got {type(parts).__name__}")
    runtime = Runtime(config)
    try:
        return _train(config, Path(out_dir), runtime, resume, data_dir, stop_at, progress, parts)
    finally:
        if runtime.ddp and dist.is_initialized():
            dist.destroy_process_group()


def _train(config, out_dir, runtime, resume, data_dir, stop_at, progress, parts):
    wall_start = time.perf_counter()
    device, master, W = runtime.device, runtime.master, runtime.world_size
    say = tqdm.write if master else (lambda *a, **k: None)
    B, T = config.batch_size, config.seq_len
    grad_accum = parts.grad_accum_steps(config.total_batch_tokens, B, T, W)

    # speed settings for GPUs: TF32 for float32 matmuls, bfloat16 autocast for the rest
    if device.type == "cuda" and config.tf32:
        torch.set_float32_matmul_precision("high")  # float32 matmuls may use TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    dtype = resolve_dtype(config, device)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype != torch.float32 else nullcontext

    train_pattern, val_pattern = data_patterns(config, data_dir, runtime)
    train_loader = ShardLoader(train_pattern, B, T, runtime.rank, W, grad_accum)
    val_loader = ShardLoader(val_pattern, B, T, runtime.rank, W)

    state = load_checkpoint(out_dir) if resume else None
    torch.manual_seed(config.seed)
    raw_model = build_model(config, device, state["model_config"] if state else None)
    optimizer, fused = make_optimizer(raw_model, config, runtime, parts)
    start_step = 0
    if state:
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        train_loader.load_state_dict(state["train_loader"])
        set_rng_state(state["rng"])
        start_step = state["step"]
        del state
    use_compile = config.compile == "on" or (config.compile == "auto" and device.type == "cuda")
    model = torch.compile(raw_model) if use_compile else raw_model
    if runtime.ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    n_params = raw_model.num_parameters()
    flops_token = parts.flops_per_token(n_params, raw_model.config.n_layer, raw_model.config.n_embd, T)
    peak = peak_flops(device, dtype, config.peak_tflops)
    baseline = unigram_entropy(train_pattern) if master else None
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", config.to_dict())
        say(f"model: GPT-2 L={raw_model.config.n_layer} NH={raw_model.config.n_head} C={raw_model.config.n_embd} "
            f"T={T}, {n_params:,} parameters ({'padded' if config.padded_vocab else 'unpadded'} vocab)")
        say(f"device: {device} x {W} process(es), {str(dtype).replace('torch.', '')}, compile "
            f"{'on' if use_compile else 'off'}, attention {config.attention}, AdamW {'fused' if fused else 'foreach'}"
            f"{', ZeRO-1' if config.zero1 else ''}")
        say(f"batch: {config.total_batch_tokens:,} tokens/step = {B} x {T} x {W} process(es) x {grad_accum} "
            f"micro-steps; {config.max_steps} steps; peak LR {config.lr:g}")
        say(f"data: {train_pattern} ({len(train_loader.paths)} shard(s)); val {val_pattern}")
        say(f"unigram baseline: the entropy of the training tokens is {baseline:.4f} nats; "
            f"the loss must go below it to show the model uses context")
        say(f"MFU: {'n/a on ' + device.type if peak is None else f'against a peak of {peak / 1e12:.1f} TFLOPS per device'}")
    log = RunLog(out_dir / LOG_NAME, keep_up_to_step=start_step if resume else None) if master else None

    # val_batches counts batches over all processes (rounded up to a multiple of W), so the
    # validation loss of a 2-process run averages the same chunks as a 1-process run
    val_batches_per_rank = -(-config.val_batches // W)

    def evaluate_val():
        loss = val_loss(model, val_loader, val_batches_per_rank, device, autocast)
        if runtime.ddp:
            dist.all_reduce(loss)
            loss /= W
        return loss.item()

    hellaswag = None
    if config.hellaswag_every:
        if raw_model.config.vocab_size < 50257:
            raise ValueError(f"HellaSwag is tokenized with GPT-2's 50,257 tokens; this model has vocab_size="
                             f"{raw_model.config.vocab_size}: use --hellaswag-every 0 or a GPT-2-vocabulary model")
        if not runtime.master and runtime.ddp:
            dist.barrier()  # rank 0 downloads the file (once) before the others read it
        hellaswag = hellaswag_examples(config.hellaswag_path, config.hellaswag_examples, data_dir)
        if runtime.master and runtime.ddp:
            dist.barrier()

    def evaluate_hellaswag():
        correct, total = hellaswag_accuracy(raw_model, hellaswag, device, autocast, runtime.rank, W)
        counts = torch.tensor([correct, total], dtype=torch.float64, device=device)
        if runtime.ddp:
            dist.all_reduce(counts)
        return (counts[0] / counts[1]).item()

    def write_sample(step):
        text = sample_text(raw_model, "", config.sample_tokens, seed=config.seed, device=device)
        say(f"--- sample at step {step} ---\n{text}\n---")
        with open(out_dir / "samples.txt", "a") as f:
            f.write(f"--- step {step} ---\n{text}\n")

    saved_step = [start_step if resume else None]  # the step of the checkpoint on disk

    def write_checkpoint(step):
        saved_step[0] = step
        if config.zero1:
            optimizer.consolidate_state_dict(to=0)  # gather every rank's share of the AdamW state
        if master:
            save_checkpoint(out_dir / CHECKPOINT_NAME, {
                "model": raw_model.state_dict(), "model_config": asdict(raw_model.config),
                "optimizer": optimizer.state_dict(), "train_loader": train_loader.state_dict(),
                "rng": rng_state(), "step": step, "config": config.to_dict()})
        if runtime.ddp:
            dist.barrier()

    if start_step == 0 and config.val_every:
        first = evaluate_val()
        if master:
            log.write({"step": 0, "val_loss": first})
            say(f"step 0: val loss {first:.4f} (a uniform guess over {config.vocab_size} tokens "
                f"would score {math.log(config.vocab_size):.4f})")

    bar = tqdm(total=config.max_steps, initial=start_step, unit="step", disable=not (master and progress),
               dynamic_ncols=True)
    last = {"step": start_step}
    stopped_by = None
    with StopSignals() as signals:
        for step in range(start_step, config.max_steps):
            t0 = time.perf_counter()
            lr = parts.lr_at(step, config.lr, config.warmup_steps, config.max_steps, config.min_lr_frac)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(grad_accum):
                x, y = train_loader.next_batch()
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                # subtle: only the last micro-batch all-reduces gradients across processes
                sync = not runtime.ddp or micro == grad_accum - 1
                with (nullcontext() if sync else model.no_sync()):
                    with autocast():
                        _, loss = model(x, y)
                    loss = loss / grad_accum  # the mean over micro-batches, not the sum
                    loss_sum += loss.detach()
                    loss.backward()
            if runtime.ddp:
                dist.all_reduce(loss_sum)
                loss_sum /= W
            norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip or float("inf"))
            loss_value, norm_value = loss_sum.item(), norm.item()
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                bar.close()
                kept = (f"the last good checkpoint, {out_dir / CHECKPOINT_NAME} (step {saved_step[0]}), is untouched"
                        if saved_step[0] is not None else "no checkpoint had been written yet")
                raise TrainingDiverged(
                    f"step {step + 1}: the loss is {loss_value} and the gradient norm {norm_value} (LR {lr:.3g}); "
                    f"training stopped before applying this step and {kept}. Lower --lr, lengthen "
                    f"--warmup-steps or keep --grad-clip on, then resume or start again.")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            tokens_per_s = config.total_batch_tokens / dt
            mfu = flops_token * tokens_per_s / (peak * W) if peak else None
            done = step + 1
            record = {"step": done, "loss": loss_value, "lr": lr, "grad_norm": norm_value,
                      "tokens_per_s": tokens_per_s, "mfu": mfu, "dt_ms": dt * 1000}
            final = done == config.max_steps
            if config.val_every and (done % config.val_every == 0 or final):
                record["val_loss"] = evaluate_val()
            if hellaswag is not None and (done % config.hellaswag_every == 0 or final):
                record["hellaswag"] = evaluate_hellaswag()
            if master:
                log.write(record)
                if config.sample_every and (done % config.sample_every == 0 or final):
                    write_sample(done)
                postfix = {"loss": f"{loss_value:.3f}", "tok/s": f"{tokens_per_s:,.0f}",
                           "mfu": "n/a" if mfu is None else f"{100 * mfu:.1f}%"}
                if "val_loss" in record:
                    postfix["val"] = f"{record['val_loss']:.3f}"
                    say(f"step {done}: loss {loss_value:.4f}, val loss {record['val_loss']:.4f}")
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            last = record
            stop = signals.received is not None
            if runtime.ddp:  # every process must agree, or the others would wait forever
                flag = torch.tensor([float(stop)], device=device)
                dist.all_reduce(flag)
                stop = bool(flag.item())
            stop = stop or done == stop_at
            if final or stop or (config.checkpoint_every and done % config.checkpoint_every == 0):
                write_checkpoint(done)
            if stop:
                stopped_by = signals.received or f"stop_at={stop_at}"
                break
    bar.close()
    summary = {"step": last["step"], "loss": last.get("loss"), "val_loss": last.get("val_loss"),
               "unigram_entropy": baseline, "wall_s": time.perf_counter() - wall_start,
               "stopped_by": stopped_by, "out_dir": str(out_dir)}
    if master:
        atomic_write_json(out_dir / "summary.json", summary)
        if stopped_by:
            say(f"stopped at step {last['step']} ({stopped_by}); checkpoint saved in {out_dir}; "
                f"continue with: llmc train --resume --out {out_dir}")
        else:
            say(f"done: {last['step']} steps in {summary['wall_s']:.0f} s; final loss {last.get('loss'):.4f}"
                + (f", val loss {summary['val_loss']:.4f}" if summary["val_loss"] is not None else "")
                + f" (unigram baseline {baseline:.4f}); checkpoint and log in {out_dir}")
    return summary
