"""The training loop: GPT-2 on llm.c token shards, from one CPU core to many GPUs.

A run, in order (each numbered part is a section below, its functions named here):
1. `setup`: the model, the optimizer and the data loaders, restored from the run folder's
   checkpoint when resuming; the unigram baseline and a description of the run;
2. `train_step`, one optimizer step: set the learning rate (warmup, then cosine decay); run
   grad_accum micro-batches forward and backward, each loss divided by grad_accum so the
   summed gradients are the gradient of the mean loss over the whole batch (under
   DistributedDataParallel the gradients are averaged across processes on the last
   micro-batch only: `no_sync` skips the all-reduce on the others); clip the global gradient
   norm; stop if the loss or the norm is not finite; AdamW step;
3. `evaluate_and_log`: now and then the validation loss, HellaSwag and a sample; the log record
   (loss, LR, tokens/s, MFU) and the progress bar;
4. `write_checkpoint` every so many steps, at the end, and when `stop_requested` (a signal);
5. `finish`: summary.json, and where the run's files are.
`run_loop` repeats 2-4; `train` is the whole run. The run's state is one `Run` object.

Run it with `llmc train` (see docs/trainer.md), or call `train(config, out_dir)`.
"""
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from llmc_core import modern
from llmc_core.fileio import atomic_write_json
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.tokenizer import load_tokenizer, tokenizer_to_dict
from llmc_core.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_latest_good, save_checkpoint
from llmc_core.train.config import TrainConfig
from llmc_core.train.evaluate import (
    bits_per_byte,
    hellaswag_accuracy,
    hellaswag_examples,
    token_byte_lengths,
    val_loss,
    val_text_size,
)
from llmc_core.train.loader import ShardLoader, find_shards
from llmc_core.train.optim import fused_adamw_available, peak_flops
from llmc_core.train.parts import TrainerParts
from llmc_core.train.rundir import LOG_NAME, RunLock, RunLog, read_log, remove_stale_temporaries  # noqa: F401 (read_log: the public reader)
from llmc_core.train.sample import generate
from llmc_core.train.shards import check_shards_tokenizer, load_shard


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
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise ValueError(f"--device {device} is not a device; use auto, cpu, cuda or cuda:N") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this PyTorch sees no CUDA GPU; use --device cpu (or auto)")
        if self.device.type == "cuda" and self.device.index is None:  # plain 'cuda': this process's GPU, as auto
            self.device = torch.device("cuda", self.local_rank)
        if self.device.type == "cuda" and self.device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: there are only {torch.cuda.device_count()} GPU(s), cuda:0.."
                             f"cuda:{torch.cuda.device_count() - 1}")
        if config.threads:
            torch.set_num_threads(config.threads)
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
    train, val = shard_patterns(config.data, data_dir, config.tokenizer)
    train, val = config.train_data or train, config.val_data or val
    if config.data == "tinyshakespeare" and not (config.train_data or config.val_data):
        if runtime.master and not (list(Path(train).parent.glob("*.bin"))):
            # a few seconds of tokenizing, no download
            prepare("tinyshakespeare", data_dir, progress=False, tokenizer=config.tokenizer)
        if runtime.ddp:
            dist.barrier()
    return train, val


def token_counts(pattern, max_tokens=100_000_000):
    """(2**16,) int64: how often each token id occurs in the shards (the first max_tokens tokens)."""
    counts, seen = np.zeros(2**16, dtype=np.int64), 0
    for path in find_shards(pattern):
        tokens = load_shard(path)[: max_tokens - seen]
        counts += np.bincount(tokens, minlength=2**16)
        seen += len(tokens)
        if seen >= max_tokens:
            break
    return counts


def unigram_entropy(pattern, max_tokens=100_000_000):
    """Entropy in nats of the token frequencies in the shards (the first max_tokens tokens).

    The loss of the best model that ignores context: a trained model must get below it.
    """
    counts = token_counts(pattern, max_tokens)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def unigram_baseline(pattern, lengths):
    """The unigram entropy of the shards' tokens in nats per token and in bits per byte of their text."""
    counts = token_counts(pattern)
    p = counts[counts > 0] / counts.sum()
    nats = float(-(p * np.log(p)).sum())
    n_bytes = int((counts[:len(lengths)] * lengths[:len(counts)]).sum())
    return nats, bits_per_byte(nats, int(counts.sum()), n_bytes)


def run_encoding(config):
    """The tokenizer of the run: "gpt2", or a tokenizer file (`llmc tokenizer train`), checked against the model."""
    enc = load_tokenizer(config.tokenizer)
    # (toy runs pair GPT-2's tokenizer with a smaller model over the first ids, so only files are checked)
    if config.tokenizer != "gpt2" and enc.n_vocab > config.vocab_size:
        raise ValueError(f"the tokenizer {config.tokenizer} has {enc.n_vocab} tokens but the model only "
                         f"--vocab-size {config.vocab_size}; pass --vocab-size {enc.n_vocab}")
    return enc


def build_model(config, device, model_config=None, pieces=None):
    """The GPT-2 to train: from scratch, from real GPT-2 weights, or (model_config) shaped for a checkpoint.

    A config with modern-recipe options builds llmc_core.modern.GPT (with `pieces`, a Pieces, if given).
    """
    kwargs = dict(attention=config.attention, padded_vocab=config.padded_vocab, dropout=config.dropout)
    if modern.Recipe.from_config(config).changes():
        model = modern.build_model(config, model_config, pieces)
    elif model_config is not None:
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
    if config.optimizer == "muon":
        return modern.make_muon(model, config, parts.pieces), False
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
# stopping


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
# the run's state


@dataclass
class Run:
    """One run's state: what `setup` builds, `train_step` advances and `finish` summarizes."""
    config: TrainConfig
    out_dir: Path
    runtime: Runtime
    parts: TrainerParts
    raw_model: GPT2  # the parameters; `model` may wrap it in torch.compile and DDP
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: ShardLoader
    val_loader: ShardLoader
    enc: object  # the tiktoken Encoding that made the shards
    autocast: Callable  # a context manager factory: bfloat16 autocast or nothing
    grad_accum: int  # micro-steps per optimizer step
    flops_token: float  # training FLOPs per token, for MFU
    peak: float | None  # peak FLOP/s of one device, None when unknown
    lengths: np.ndarray | None = None  # UTF-8 bytes of each token id, for bits per byte
    val_batches: int = 0  # validation batches per process
    val_size: tuple = (0, 0)  # (tokens, bytes) of the validation targets, over all processes
    val_pattern: str = ""
    baseline: float | None = None  # unigram entropy of the training tokens, nats (rank 0 only)
    baseline_bpb: float | None = None  # the same in bits per byte
    log: RunLog | None = None  # rank 0 only
    hellaswag: list | None = None
    step: int = 0  # optimizer steps done
    saved_step: int | None = None  # the step of the checkpoint on disk
    last: dict = field(default_factory=dict)  # the latest log record
    stopped_by: str | None = None
    best_bpb: float = math.inf  # the best validation bits per byte so far (checkpoint.best.pt)
    # the clock of the time budget: wall time, or (budget_clock="cpu") this process's CPU time
    clock: Callable = time.perf_counter
    wall_start: float = 0.0  # when this part of the run started, on that clock
    wall_before: float = 0.0  # seconds spent by the parts before a resume
    planned: int = 0  # the step the run will end on: config.max_steps, or what fits the time budget
    loop_start: float = 0.0  # when this part's first step began, and its steps since, for the time left
    loop_steps: int = 0
    reserve_s: float = 0.0  # what the last evaluation took, and the last checkpoint: kept free at the end
    checkpoint_s: float = 0.0  # of a time budget for the final ones
    loss_ema: float | None = None  # smoothed train loss and tokens/s for the progress bar
    val_bpb: float = math.nan  # the latest validation bits per byte, for the progress bar
    tps_ema: float | None = None

    def wall_s(self):
        """Wall time of the whole run so far, every resumed part included."""
        return self.wall_before + self.clock() - self.wall_start

    def say(self, *args, **kwargs):
        if self.runtime.master:
            tqdm.write(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# 1. setup


def speed_settings(config, device):
    """TF32 for float32 matmuls on GPUs; returns the autocast context factory (bfloat16 or none)."""
    if device.type == "cuda" and config.tf32:
        torch.set_float32_matmul_precision("high")  # float32 matmuls may use TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    dtype = resolve_dtype(config, device)
    if dtype == torch.float32:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def setup(config, out_dir, runtime, resume, data_dir, parts):
    """Build the model, optimizer and loaders (restored from out_dir's checkpoint when resuming)."""
    device, W = runtime.device, runtime.world_size
    B, T = config.batch_size, config.seq_len
    grad_accum = parts.grad_accum_steps(config.total_batch_tokens, B, T, W)
    autocast = speed_settings(config, device)
    train_pattern, val_pattern = data_patterns(config, data_dir, runtime)
    train_loader = ShardLoader(train_pattern, B, T, runtime.rank, W, grad_accum)
    val_loader = ShardLoader(val_pattern, B, T, runtime.rank, W)
    enc = run_encoding(config)
    check_shards_tokenizer(train_loader.paths + val_loader.paths, enc)

    state = load_latest_good(out_dir, say=tqdm.write if runtime.master else print) if resume else None
    torch.manual_seed(config.seed)
    raw_model = build_model(config, device, state["model_config"] if state else None, parts.pieces)
    optimizer, fused = make_optimizer(raw_model, config, runtime, parts)
    use_compile = config.compile == "on" or (config.compile == "auto" and device.type == "cuda")
    model = torch.compile(raw_model) if use_compile else raw_model
    if runtime.ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    mc = raw_model.config
    run = Run(config, Path(out_dir), runtime, parts, raw_model, model, optimizer, train_loader, val_loader, enc,
              autocast, grad_accum,
              flops_token=parts.flops_per_token(raw_model.num_parameters(), mc.n_layer, mc.n_embd, T),
              peak=peak_flops(device, resolve_dtype(config, device), config.peak_tflops))
    run.val_pattern = val_pattern
    if state:
        restore(run, state)
    measure_val(run)
    if runtime.master:
        run.baseline, run.baseline_bpb = unigram_baseline(train_pattern, run.lengths)
        run.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.out_dir / "config.json", config.to_dict())
        describe(run, use_compile, fused, train_pattern, val_pattern)
        run.log = RunLog(run.out_dir / LOG_NAME, keep_up_to_step=run.step if resume else None)
    run.hellaswag = load_hellaswag(run, data_dir)
    run.planned = config.max_steps
    return run


def measure_val(run):
    """How many validation batches each evaluation reads, and their size in tokens and bytes."""
    config, W = run.config, run.runtime.world_size
    if config.val_batches:
        # val_batches counts batches over all processes (rounded up to a multiple of W), so the
        # validation loss of a 2-process run averages the same chunks as a 1-process run
        run.val_batches = -(-config.val_batches // W)
    else:  # 0: the whole validation split, every chunk once
        run.val_batches = run.val_loader.batches_per_pass()
    run.lengths = token_byte_lengths(run.enc)
    size = torch.tensor(val_text_size(run.val_loader, run.val_batches, run.lengths), dtype=torch.float64)
    if run.runtime.ddp:
        size = size.to(run.runtime.device)
        dist.all_reduce(size)
    run.val_size = tuple(int(v) for v in size.tolist())


def restore(run, state):
    """Continue from a checkpoint: weights, AdamW moments, loader position, RNG states, step."""
    run.step = run.saved_step = run.parts.restore_training_state(state, run.raw_model, run.optimizer,
                                                                 run.train_loader)
    run.last = {"step": run.step}
    run.wall_before = state.get("wall_s", 0.0)
    run.best_bpb = state.get("best_val_bpb", math.inf)


def describe(run, use_compile, fused, train_pattern, val_pattern):
    """Print the model, device, batch, data, unigram baseline and MFU peak of the run."""
    config, mc, W = run.config, run.raw_model.config, run.runtime.world_size
    dtype = resolve_dtype(config, run.runtime.device)
    run.say(f"model: GPT-2 ({modern.recipe_name(config)} recipe) "
            f"L={mc.n_layer} NH={mc.n_head} C={mc.n_embd} T={config.seq_len}, "
            f"{run.raw_model.num_parameters():,} parameters ({'padded' if config.padded_vocab else 'unpadded'} vocab)")
    run.say(f"device: {run.runtime.device} x {W} process(es), {str(dtype).replace('torch.', '')}, compile "
            f"{'on' if use_compile else 'off'}, attention {config.attention}, "
            f"{'Muon + AdamW' if config.optimizer == 'muon' else 'AdamW ' + ('fused' if fused else 'foreach')}"
            f"{', ZeRO-1' if config.zero1 else ''}")
    run.say(f"batch: {config.total_batch_tokens:,} tokens/step = {config.batch_size} x {config.seq_len} x {W} "
            f"process(es) x {run.grad_accum} micro-steps; {config.max_steps} steps; peak LR {config.lr:g}")
    run.say(f"data: {train_pattern} ({len(run.train_loader.paths)} shard(s)); val {val_pattern}")
    tokens, n_bytes = run.val_size
    run.say(f"validation: {run.val_batches * W} batches, {tokens:,} tokens = {n_bytes:,} bytes of text "
            f"({n_bytes / tokens:.2f} bytes per token)")
    run.say(f"unigram baseline: the entropy of the training tokens is {run.baseline:.4f} nats per token = "
            f"{run.baseline_bpb:.3f} bits per byte; the loss must go below it to show the model uses context")
    peak = run.peak
    if peak is None:
        run.say(f"MFU: n/a on {run.runtime.device.type}")
    else:
        run.say(f"MFU: against a peak of {peak / 1e12:.1f} TFLOPS per device")


def load_hellaswag(run, data_dir):
    """The HellaSwag examples when the run evaluates them, else None."""
    config, runtime = run.config, run.runtime
    if not config.hellaswag_every:
        return None
    if run.raw_model.config.vocab_size < 50257:
        raise ValueError(f"HellaSwag is tokenized with GPT-2's 50,257 tokens; this model has vocab_size="
                         f"{run.raw_model.config.vocab_size}: use --hellaswag-every 0 or a GPT-2-vocabulary model")
    if not runtime.master and runtime.ddp:
        dist.barrier()  # rank 0 downloads the file (once) before the others read it
    examples = hellaswag_examples(config.hellaswag_path, config.hellaswag_examples, data_dir)
    if runtime.master and runtime.ddp:
        dist.barrier()
    return examples


# ---------------------------------------------------------------------------------------------
# 2. one optimizer step


def train_step(run):
    """One optimizer step; returns its log record and advances run.step.

    Raises TrainingDiverged, before changing any weight, when the loss or the norm is not finite.
    """
    if run.parts.train_step is not None:  # a lesson's own step in place of this one
        from llmc_core.train.parts import plugged_step
        return plugged_step(run)
    config, runtime, device = run.config, run.runtime, run.runtime.device
    t0 = time.perf_counter()
    lr = learning_rate(run)
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # Muon's group runs at muon_lr / lr times the LR
    loss_sum = torch.zeros((), device=device)
    for micro in range(run.grad_accum):
        x, y = run.train_loader.next_batch()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # subtle: only the last micro-batch all-reduces gradients across processes
        sync = not runtime.ddp or micro == run.grad_accum - 1
        with (nullcontext() if sync else run.model.no_sync()):
            with run.autocast():
                _, loss = run.model(x, y)
            loss = loss / run.grad_accum  # the mean over micro-batches, not the sum
            loss_sum += loss.detach()
            loss.backward()
    if runtime.ddp:
        dist.all_reduce(loss_sum)
        loss_sum /= runtime.world_size
    norm = torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), config.grad_clip or float("inf"))
    loss_value, norm_value = loss_sum.item(), norm.item()
    if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
        raise diverged(run, loss_value, norm_value, lr)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tokens_per_s = config.total_batch_tokens / dt
    mfu = run.flops_token * tokens_per_s / (run.peak * runtime.world_size) if run.peak else None
    run.step += 1
    return {"step": run.step, "loss": loss_value, "lr": lr, "grad_norm": norm_value,
            "tokens_per_s": tokens_per_s, "mfu": mfu, "dt_ms": dt * 1000}


def learning_rate(run):
    """The LR of the coming step: warmup then cosine decay over config.max_steps, or over the steps
    that fit the time budget, so that a budgeted run always ends its decay on its last step."""
    c, step = run.config, run.step
    if not c.time_budget:
        return run.parts.lr_at(step, c.lr, c.warmup_steps, c.max_steps, c.min_lr_frac)
    if step + 1 >= run.planned:  # the last step that fits gets the final LR, even within the warmup
        last = max(step, c.warmup_steps)
        return run.parts.lr_at(last, c.lr, c.warmup_steps, last, c.min_lr_frac)
    lr = run.parts.lr_at(step, c.lr, c.warmup_steps, max(run.planned - 1, c.warmup_steps), c.min_lr_frac)
    if step > c.warmup_steps and run.last.get("lr") is not None:
        lr = min(lr, run.last["lr"])  # steps that speed up lengthen the plan; the decay still never turns back up
    return lr


def plan_steps(run):
    """Where the run will end: config.max_steps, or the steps that fit what is left of the time budget.

    The time per step is the mean over this part's steps, evaluations included, which changes slowly.
    """
    config = run.config
    if not config.time_budget:
        return config.max_steps
    left = config.time_budget - run.wall_s() - run.reserve_s - run.checkpoint_s
    if run.loop_steps == 0:
        return config.max_steps if left > 0 else run.step + 1
    per_step = (run.clock() - run.loop_start) / run.loop_steps
    planned = min(config.max_steps, run.step + max(1, int(left // per_step)))
    if run.runtime.ddp:  # clocks differ between processes: all stop with the earliest
        planned_t = torch.tensor([planned], device=run.runtime.device)
        dist.all_reduce(planned_t, op=dist.ReduceOp.MIN)
        planned = int(planned_t.item())
    return planned


def diverged(run, loss_value, norm_value, lr):
    """The TrainingDiverged error for a non-finite loss or gradient norm at the coming step."""
    kept = (f"the last good checkpoint, {run.out_dir / CHECKPOINT_NAME} (step {run.saved_step}), is untouched"
            if run.saved_step is not None else "no checkpoint had been written yet")
    return TrainingDiverged(
        f"step {run.step + 1}: the loss is {loss_value} and the gradient norm {norm_value} (LR {lr:.3g}); "
        f"training stopped before applying this step and {kept}. Lower --lr, lengthen "
        f"--warmup-steps or keep --grad-clip on, then resume or start again.")


# ---------------------------------------------------------------------------------------------
# 3. evaluation and logging


def evaluate_val(run):
    """The validation loss in nats per token averaged over processes, and in bits per byte."""
    W = run.runtime.world_size
    loss = val_loss(run.model, run.val_loader, run.val_batches, run.runtime.device, run.autocast)
    if run.runtime.ddp:
        dist.all_reduce(loss)
        loss /= W
    loss = loss.item()
    return loss, bits_per_byte(loss, *run.val_size)


def evaluate_hellaswag(run):
    """HellaSwag accuracy (acc_norm) over the examples, summed over processes."""
    runtime = run.runtime
    correct, total = hellaswag_accuracy(run.raw_model, run.hellaswag, runtime.device, run.autocast,
                                        runtime.rank, runtime.world_size)
    counts = torch.tensor([correct, total], dtype=torch.float64, device=runtime.device)
    if runtime.ddp:
        dist.all_reduce(counts)
    return (counts[0] / counts[1]).item()


def write_sample(run):
    """Sample from the model, print it and append it to samples.txt."""
    config, enc = run.config, run.enc
    start = enc.eot_token if enc.eot_token < run.raw_model.config.vocab_size else 0  # toy models: token 0
    tokens = generate(run.raw_model, [start], config.sample_tokens, seed=config.seed, device=run.runtime.device)
    text = enc.decode(tokens[1:])
    run.say(f"--- sample at step {run.step} ---\n{text}\n---")
    with open(run.out_dir / "samples.txt", "a") as f:
        f.write(f"--- step {run.step} ---\n{text}\n")


def first_evaluation(run):
    """The validation loss of the untrained model, logged as step 0."""
    t0 = run.clock()
    first, bpb = evaluate_val(run)
    run.reserve_s = run.clock() - t0
    if run.runtime.master:
        run.log.write({"step": 0, "val_loss": first, "val_bpb": bpb})
        run.val_bpb = bpb
        run.say(f"step 0: val loss {first:.4f} = {bpb:.3f} bits per byte (a uniform guess over "
                f"{run.config.vocab_size} tokens would score {math.log(run.config.vocab_size):.4f})")


def due(every, step, final):
    return bool(every) and (step % every == 0 or final)


def evaluate_and_log(run, record, bar):
    """Add the evaluations due at this step to `record`, log it, sample, and move the progress bar."""
    config, done = run.config, run.step
    final = done == run.planned
    t0 = run.clock()
    if due(config.val_every, done, final):
        record["val_loss"], record["val_bpb"] = evaluate_val(run)
    if run.hellaswag is not None and due(config.hellaswag_every, done, final):
        record["hellaswag"] = evaluate_hellaswag(run)
    run.last = record
    if run.runtime.master:
        run.log.write(record)
        if due(config.sample_every, done, final):
            write_sample(run)
        if "val_loss" in record:
            run.say(f"step {done}: loss {record['loss']:.4f}, val loss {record['val_loss']:.4f} = "
                    f"{record['val_bpb']:.3f} bits per byte")
        show_progress(run, record, bar)
    if "val_loss" in record:
        run.reserve_s = run.clock() - t0


def smooth(average, value, weight=0.9):
    return value if average is None else weight * average + (1 - weight) * value


def show_progress(run, record, bar):
    """The progress bar: validation bits per byte, smoothed loss and tokens/s, MFU, time left."""
    run.loss_ema = smooth(run.loss_ema, record["loss"])
    run.tps_ema = smooth(run.tps_ema, record["tokens_per_s"])
    if "val_bpb" in record:
        run.val_bpb = record["val_bpb"]
    mfu = record["mfu"]
    postfix = {"val_bpb": f"{run.val_bpb:.3f}", "loss": f"{run.loss_ema:.3f}",
               "tok/s": f"{run.tps_ema:,.0f}", "mfu": "n/a" if mfu is None else f"{100 * mfu:.1f}%",
               "left": time_left(run)}
    bar.total = run.planned
    bar.set_postfix(postfix, refresh=False)
    bar.update(1)


def time_left(run):
    """m:ss to go: what is left of the time budget, else the steps left at this part's mean step time."""
    if run.config.time_budget:
        seconds = run.config.time_budget - run.wall_s()
    else:
        per_step = (run.clock() - run.loop_start) / max(run.loop_steps, 1)
        seconds = (run.planned - run.step) * per_step
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------------------------
# 4. checkpoints and stopping


def write_checkpoint(run, name=CHECKPOINT_NAME):
    """Save everything needed to continue after run.step (rank 0 writes; the others wait).

    checkpoint.pt moves to checkpoint.prev.pt first; name=BEST_NAME writes the best-validation copy.
    """
    if name == CHECKPOINT_NAME:
        run.saved_step = run.step
    if run.config.zero1:
        run.optimizer.consolidate_state_dict(to=0)  # gather every rank's share of the AdamW state
    if run.runtime.master:
        save_checkpoint(run.out_dir / name, {
            **run.parts.training_state(run.raw_model, run.optimizer, run.train_loader, run.step),
            "model_config": asdict(run.raw_model.config), "config": run.config.to_dict(), "wall_s": run.wall_s(),
            "tokenizer": tokenizer_to_dict(run.enc),
            "best_val_bpb": run.best_bpb}, keep_previous=name == CHECKPOINT_NAME)
    if run.runtime.ddp:
        dist.barrier()


def keep_best(run, record):
    """Write checkpoint.best.pt when this step's validation bits per byte is the best so far."""
    if record.get("val_bpb", math.inf) < run.best_bpb:
        run.best_bpb = record["val_bpb"]
        t0 = run.clock()
        write_checkpoint(run, BEST_NAME)
        run.reserve_s += run.clock() - t0  # the final step may write it too


def stop_requested(run, signals, stop_at):
    """Whether to stop after this step: a signal on any process, or stop_at reached."""
    stop = signals.received is not None
    if run.runtime.ddp:  # every process must agree, or the others would wait forever
        flag = torch.tensor([float(stop)], device=run.runtime.device)
        dist.all_reduce(flag)
        stop = bool(flag.item())
    if stop or run.step == stop_at:
        run.stopped_by = signals.received or f"stop_at={stop_at}"
        return True
    return False


# ---------------------------------------------------------------------------------------------
# 5. finishing


def finish(run):
    """Write summary.json, say where the run's files are; returns the summary."""
    last = run.last or {"step": run.step}
    this_part = run.clock() - run.wall_start
    summary = {"step": last["step"], "loss": last.get("loss"), "val_loss": last.get("val_loss"),
               "val_bpb": last.get("val_bpb"), "best_val_bpb": None if math.isinf(run.best_bpb) else run.best_bpb,
               "unigram_entropy": run.baseline, "unigram_bpb": run.baseline_bpb,
               "wall_s": run.wall_before + this_part, "wall_s_this_part": this_part,
               "budget_clock": run.config.budget_clock, "stopped_by": run.stopped_by,
               "val_tokens": run.val_size[0], "val_bytes": run.val_size[1], "val_data": run.val_pattern,
               "out_dir": str(run.out_dir)}
    if not run.runtime.master:
        return summary
    atomic_write_json(run.out_dir / "summary.json", summary)
    if run.stopped_by:
        run.say(f"stopped at step {last['step']} ({run.stopped_by}); checkpoint saved in {run.out_dir}; "
                f"continue with: llmc train --resume --out {run.out_dir}")
    else:
        run.say(f"done: {last['step']} steps in {summary['wall_s']:.0f} s; final loss {last.get('loss'):.4f}"
                + (f", val loss {summary['val_loss']:.4f} = {summary['val_bpb']:.3f} bits per byte"
                   if summary["val_loss"] is not None else "")
                + f" (unigram baseline {run.baseline:.4f} = {run.baseline_bpb:.3f} bits per byte)")
        say_where(run)
    return summary


def say_where(run):
    """Where the run's files are, and the commands that use them."""
    out = run.out_dir
    run.say(f"checkpoint: {out / CHECKPOINT_NAME}\nlog:        {out / LOG_NAME}\n"
            f"samples:    {out / 'samples.txt'}\nsample:     llmc sample {out} --prompt \"ROMEO.\"\n"
            f"plot:       llmc plot {out}   (writes {out / 'loss.png'})")


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
    clock = time.process_time if config.budget_clock == "cpu" else time.perf_counter
    started = clock()
    runtime = Runtime(config)
    lock = claim_run_dir(Path(out_dir)) if runtime.master else None
    try:
        run = setup(config, Path(out_dir), runtime, resume, data_dir, parts)
        run.clock, run.wall_start = clock, started  # the time budget counts the setup too
        run_loop(run, stop_at, progress)
        return finish(run)
    finally:
        if lock is not None:
            lock.release()
        if runtime.ddp and dist.is_initialized():
            dist.destroy_process_group()


def claim_run_dir(out_dir):
    """Lock the run folder for this run and clear what killed runs left in it."""
    lock = RunLock(out_dir)
    if lock.stale_pid is not None:
        tqdm.write(f"{out_dir}: took over the lock left by process {lock.stale_pid}, which is no longer running")
    removed = remove_stale_temporaries(out_dir)
    if removed:
        tqdm.write(f"{out_dir}: removed {len(removed)} temporary file(s) of interrupted writes: {', '.join(removed)}")
    return lock


def run_loop(run, stop_at, progress):
    """Steps 2-4 until config.max_steps, a signal or stop_at."""
    config = run.config
    if run.step == 0 and config.val_every:  # under a time budget it also measures what an evaluation costs
        first_evaluation(run)
    run.planned = plan_steps(run)
    # tqdm's own time left follows the latest rate and jumps; the postfix shows a steadier one
    bar = tqdm(total=run.planned, initial=run.step, unit="step", dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
               disable=not (run.runtime.master and progress))
    run.loop_start, run.loop_steps = run.clock(), 0
    with StopSignals() as signals, bar:
        while run.step < run.planned:
            record = train_step(run)
            run.loop_steps += 1
            evaluate_and_log(run, record, bar)
            keep_best(run, record)
            stop = stop_requested(run, signals, stop_at)
            final = run.step == run.planned
            if stop or final or due(config.checkpoint_every, run.step, False):
                t0 = run.clock()
                write_checkpoint(run)
                run.checkpoint_s = run.clock() - t0
            if stop or final:
                break
            run.planned = plan_steps(run)  # the next step is the last when it is the last that fits
