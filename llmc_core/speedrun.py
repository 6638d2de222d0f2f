"""`llmc speedrun`: the best validation bits per byte in a fixed amount of compute, fair across machines.

A budget in seconds would favour fast machines, so the budget is counted in *reference steps*:
1. calibration: time a few training steps of a fixed reference model (`REFERENCE`: the GPT-2
   recipe at the size of the default run, on a fixed random batch, with the threads the run will
   use, one by default) and take the fastest step's time. That is the machine's exchange rate;
2. the run trains under a time budget of `budget` x that many seconds, so a machine twice as fast
   gets half the seconds and both do the same work. What a recipe does with the work (a larger
   model, Muon's extra matmuls, more tokens per step) is the contest;
3. the trainer scores the final model on the whole fixed validation text of tiny Shakespeare, and
   `speedrun.json` (the result card) and a printed card record the result and how to repeat it.

Why this reference: it is the same kind of work as the run, at the same sizes and thread count
(a large matmul benchmark would overrate machines whose wide vector units small models cannot
keep busy). Why stable: on a CPU the clock is this process's CPU time (`time.process_time`),
which other programs do not advance, so a busy laptop gets about the budget of an idle one; and
the fastest of several steps is taken, because other programs can only slow a step (through the
caches and memory they share), never speed it up: on a 2-core machine at load 13 the fastest of
8 steps varied by 2% between calibrations, their median by 8% (benchmarks/RESULTS.md). On a
GPU the clock is wall time.
"""
import argparse
import getpass
import json
import platform
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from llmc_core.fileio import atomic_write_json
from llmc_core.grading.leaderboard import (
    CARD_FORMAT,
    CARD_NAME,
    append_to_leaderboard,
    check_card,
    read_leaderboard,
    table_text,
)
from llmc_core.modern import RECIPES, recipe_name
from llmc_core.train.config import TrainConfig, flag, preset

BASE = "shakespeare-cpu"  # the preset a speedrun starts from; options change it
REFERENCE = preset(BASE).replace(**RECIPES["gpt2"], batch_size=4)  # 512 tokens a step: a calibration takes ~1 CPU s
REFERENCE_NAME = "gpt2 L4 NH4 C128 T128 B4 V4096"  # on a card: which workload the reference steps count
DEFAULT_BUDGET = 3600  # reference steps: about 5 minutes of one core here (benchmarks/RESULTS.md)
CALIBRATION_STEPS, CALIBRATION_WARMUP = 8, 2
# The rules: the same data, the whole validation text scored once at the end, no pretrained weights,
# and the run's length set by the budget alone.
RULES = dict(data="tinyshakespeare", train_data="", val_data="", val_batches=0, val_every=10**9, init_from="scratch",
             hellaswag_every=0, max_steps=10**9)
SET_BY_SPEEDRUN = ("time_budget", "budget_clock")
# No checkpoints mid-run, no samples (time the budget would pay for), and one thread: with more, a thread that
# waits for another spins and its waiting counts as CPU time, which on a busy machine inflates the budget 10-fold
# (RESULTS.md).
DEFAULTS = dict(checkpoint_every=0, sample_every=0, threads=1)


# ---------------------------------------------------------------------------------------------
# 1. calibration


@dataclass(frozen=True)
class Calibration:
    """The machine's exchange rate: seconds of `clock` per reference step (the fastest timed),
    with `threads` threads."""
    seconds_per_step: float
    clock: str  # "cpu" (this process's CPU time) or "wall"
    threads: int
    device: str
    timed_steps: int
    reference: str = REFERENCE_NAME

    def to_card(self):
        return {"seconds_per_reference_step": self.seconds_per_step, "reference": self.reference,
                "threads": self.threads, "device": self.device, "timed_steps": self.timed_steps}


def reference_step(device):
    """One training step of the reference model (forward, backward, AdamW) on a fixed random batch, as a function."""
    from llmc_core.gpt2 import GPT2
    c = REFERENCE
    model = GPT2(c.model_config(), attention=c.attention, padded_vocab=c.padded_vocab, seed=0).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=c.weight_decay)
    tokens = torch.randint(c.vocab_size, (c.batch_size, c.seq_len + 1), generator=torch.Generator().manual_seed(0))
    x, y = tokens[:, :-1].to(device), tokens[:, 1:].to(device)  # (B, T) each

    def step():
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()  # the GPU's work is done when the clock stops
    return step


def calibrate(device="cpu", threads=1, steps=CALIBRATION_STEPS, warmup=CALIBRATION_WARMUP, workload=reference_step,
              clock=None):
    """Time `steps` reference steps after `warmup` untimed ones; the fastest, on this machine's clock.

    threads: PyTorch threads during the timing (1, as a speedrun runs; 0: PyTorch's default);
    workload(device) -> a step function;
    clock: "cpu" or "wall" (default: CPU time on a CPU, wall time on a GPU).
    """
    device = torch.device(device)
    clock = clock or ("wall" if device.type == "cuda" else "cpu")
    tick = time.perf_counter if clock == "wall" else time.process_time
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        step, times = workload(device), []
        for _ in range(warmup + steps):
            t0 = tick()
            step()
            times.append(tick() - t0)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return Calibration(min(times[warmup:]), clock, used, str(device), steps)


# ---------------------------------------------------------------------------------------------
# 2. the run


def contest_config(options=None):
    """The TrainConfig of a speedrun: the shakespeare-cpu preset, DEFAULTS, the learner's options, then RULES."""
    options = dict(options or {})
    known = {f.name for f in fields(TrainConfig)}
    for name in options:
        if name not in known:
            raise ValueError(f"{name!r} is not a training option; the options are TrainConfig's fields "
                             f"(`llmc speedrun --help` lists them as flags)")
        if name in SET_BY_SPEEDRUN or (name in RULES and options[name] != RULES[name]):
            raise ValueError(f"{flag(name)} is fixed by the speedrun's rules (same data, the whole validation text "
                             f"scored at the end, no pretrained weights, the length set by --budget); drop it")
    return preset(BASE).replace(**{**DEFAULTS, **options, **RULES})


def changed_options(config):
    """{field: value} where `config` differs from the preset it started from, rules left out: how to run it again."""
    base = {**preset(BASE).to_dict(), **DEFAULTS}
    return {k: v for k, v in config.to_dict().items() if v != base[k] and k not in RULES and k not in SET_BY_SPEEDRUN}


def speedrun(options=None, *, budget=DEFAULT_BUDGET, out_dir=None, name=None, data_dir=None, calibration=None,
             parts=None, progress=True):
    """Calibrate, train for `budget` reference steps' worth of compute, write out_dir/speedrun.json; returns the card.

    options: TrainConfig fields that change the shakespeare-cpu preset (a recipe is a set of them, e.g.
    llmc_core.modern.RECIPES["modern"]); calibration: a Calibration to reuse (e.g. for several recipes in a row);
    parts: a TrainerParts carrying the learner's own pieces.
    """
    from llmc_core.train.trainer import train
    if not (isinstance(budget, int) and not isinstance(budget, bool) and budget >= 1):
        raise ValueError(f"the budget is a whole number of reference steps, at least 1; got {budget!r}")
    config = contest_config(options)
    out_dir = Path(out_dir or Path("runs") / time.strftime("speedrun-%Y%m%d-%H%M%S"))
    if calibration is None:
        device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        calibration = calibrate(device, config.threads)
    prepare_data(config, data_dir)  # tokenizing the corpus is not part of anyone's budget
    seconds = budget * calibration.seconds_per_step
    started, threads = time.perf_counter(), torch.get_num_threads()
    try:
        # the run gets the calibration's clock, threads and device: the budget is in its units
        summary = train(config.replace(time_budget=seconds, budget_clock=calibration.clock,
                                       threads=calibration.threads, device=calibration.device),
                        out_dir, data_dir=data_dir, progress=progress, parts=parts)
    finally:
        torch.set_num_threads(threads)  # --threads is the run's, not the caller's from now on
    if summary["stopped_by"]:
        raise KeyboardInterrupt(f"the speedrun was stopped ({summary['stopped_by']}) before its budget was spent; "
                                f"no card was written")
    card = make_card(config, summary, calibration, budget, seconds, time.perf_counter() - started, out_dir, name)
    atomic_write_json(out_dir / CARD_NAME, card)
    return card


def prepare_data(config, data_dir):
    """Tokenize tiny Shakespeare with the run's tokenizer unless its shards are there already."""
    from llmc_core.train.prepare import prepare, shard_patterns
    train_pattern, _ = shard_patterns(config.data, data_dir, config.tokenizer)
    if not list(Path(train_pattern).parent.glob("*.bin")):
        prepare(config.data, data_dir, progress=False, tokenizer=config.tokenizer)


def make_card(config, summary, calibration, budget, seconds, wall_s, out_dir, name=None):
    """The result card of a finished run (the fields leaderboard.CARD_SPEC checks)."""
    from llmc_core.cli import version
    from llmc_core.train.cli import load_trained_model
    steps = int(summary["step"])
    card = {"format": CARD_FORMAT, "version": 1, "name": display_name(name),
            "val_bpb": summary["val_bpb"],
            "budget": {"reference_steps": budget, "seconds": seconds, "clock": calibration.clock},
            "calibration": calibration.to_card(),
            "recipe": recipe_name(config), "options": changed_options(config),
            "steps": steps, "tokens": steps * config.total_batch_tokens,
            "parameters": load_trained_model(out_dir).num_parameters(),
            "seed": config.seed, "used_s": summary["wall_s"], "wall_s": wall_s,
            "unigram_bpb": summary["unigram_bpb"],
            "software": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                         "llmc": version()},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    check_card(card)  # what we write must be what a grader accepts
    return card


def display_name(name):
    """The name on the leaderboard: `name`, else the user's login; printable, at most 64 characters."""
    try:
        name = name or getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        name = "anonymous"
    return "".join(ch for ch in str(name) if ch.isprintable())[:64] or "anonymous"


def format_card(card):
    """The card as a few lines of text, to print."""
    b, c = card["budget"], card["calibration"]
    options = ", ".join(f"{k}={v}" for k, v in card["options"].items()) or "none"
    unit = "CPU s" if b["clock"] == "cpu" else "s"
    return "\n".join([
        f"speedrun card: {card['name']}",
        f"  validation  {card['val_bpb']:.4f} bits per byte (unigram baseline {card['unigram_bpb']:.3f})",
        f"  recipe      {card['recipe']}; options: {options}",
        f"  model       {card['parameters']:,} parameters; {card['steps']:,} steps, {card['tokens']:,} tokens",
        f"  budget      {b['reference_steps']:,} reference steps = {b['seconds']:.1f} {unit} here "
        f"({c['seconds_per_reference_step']:.4f} {unit} per reference step, {c['threads']} thread(s), {c['device']})",
        f"  time        {card['wall_s']:.1f} s wall, {card['used_s']:.1f} {unit} of the budget used",
        f"  seed        {card['seed']}",
        "  software    " + ", ".join(f"{k} {v}" for k, v in card["software"].items())])


# ---------------------------------------------------------------------------------------------
# 3. a plot of several speedruns


def plot_speedruns(run_dirs, ax=None):
    """Bits per byte against compute (reference steps) for speedrun folders {label: folder}; returns the axes.

    Lines: the training loss in bits per byte (smoothed, using the validation text's bytes per token),
    each run's steps spread evenly over the compute it used; dots: the validation score at the start and end.
    """
    import matplotlib.pyplot as plt

    from llmc_core.train.rundir import read_log
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, (label, folder) in enumerate(run_dirs.items()):
        card = json.loads((Path(folder) / CARD_NAME).read_text())
        summary = json.loads((Path(folder) / "summary.json").read_text())
        to_bpb = summary["val_tokens"] / summary["val_bytes"] / np.log(2)  # nats per token -> bits per byte
        used = card["used_s"] / card["calibration"]["seconds_per_reference_step"]  # reference steps
        losses = np.array([r["loss"] for r in read_log(folder) if "loss" in r])
        smooth = np.convolve(losses, np.ones(5) / 5, mode="valid") if len(losses) >= 5 else losses
        ax.plot(np.linspace(0, used, len(smooth) + 1)[1:], smooth * to_bpb, color=f"C{i}", lw=1,
                label=f"{label}: {card['val_bpb']:.3f} bpb")
        start = next(r["val_bpb"] for r in read_log(folder) if r.get("val_bpb") is not None)
        ax.plot([0, used], [start, card["val_bpb"]], "o", color=f"C{i}")
        ax.axvline(card["budget"]["reference_steps"], color="gray", ls="--", lw=1)  # the budget (runs end near it)
    ax.set(xlabel="compute (reference steps)", ylabel="bits per byte",
           title="speedruns: training loss (lines), validation (dots)")
    ax.legend()
    return ax


# ---------------------------------------------------------------------------------------------
# the command


def cmd_speedrun(args):
    from llmc_core.train.trainer import TrainingDiverged
    path = args.leaderboard
    if args.show:
        if path is None:
            raise ValueError("--show prints a leaderboard: give it with --leaderboard FILE")
        print_leaderboard(path)
        return 0
    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    if args.recipe:
        options = {**RECIPES[args.recipe], **options}  # single flags given with --recipe override it
    if path is not None:
        read_leaderboard(path)  # a file that is not a leaderboard is refused now, not after the run
    try:
        card = speedrun(options, budget=args.budget, out_dir=args.out, name=args.name, data_dir=args.data_dir,
                        progress=not args.no_progress)
    except TrainingDiverged as e:
        print(f"llmc speedrun: {e}", file=sys.stderr)
        return 3
    print(format_card(card))
    if path is not None:
        append_to_leaderboard(path, card)
        print_leaderboard(path)
    return 0


def print_leaderboard(path):
    entries, bad = read_leaderboard(path)
    print(f"leaderboard {path}: {len(entries)} card(s)")
    if entries:
        print(table_text(entries))
    for index, why in bad:
        print(f"  (card {index} left out: {why})")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of reference steps >= 1")
    return value


def register(subparsers):
    from llmc_core.train.cli import add_config_flags
    p = subparsers.add_parser(
        "speedrun", help="train for a fixed compute budget, calibrated to this machine, and write a result card",
        description="Measure this machine with a short calibration, train the shakespeare-cpu preset (changed by "
                    "--recipe and the config flags) for --budget reference steps' worth of compute, score the "
                    "validation text, write speedrun.json and print the card.")
    p.add_argument("--budget", type=positive_int, default=DEFAULT_BUDGET,
                   help="compute budget in reference steps (one training step of the reference GPT-2 model; "
                        "default %(default)s, about 5 minutes of one core of a laptop)")
    p.add_argument("--recipe", default=None, choices=sorted(RECIPES), help="'gpt2' or 'modern' (flags override it)")
    p.add_argument("--name", default=None, help="your name on the card and leaderboard (default: your login)")
    p.add_argument("--out", default=None, help="run folder (default: runs/speedrun-<timestamp>)")
    p.add_argument("--data-dir", default=None, help="where prepared datasets live (default: ~/.cache/llmc/data)")
    p.add_argument("--leaderboard", type=Path, default=None, metavar="FILE",
                   help="add the card to this leaderboard file (created if missing) and print the ranked table")
    p.add_argument("--show", action="store_true", help="only print the --leaderboard FILE; train nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(run=cmd_speedrun)
