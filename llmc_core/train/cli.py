"""The trainer's subcommands: `llmc train`, `llmc data`, `llmc sample`, `llmc export`, `llmc plot`.

`register(subparsers)` adds them to the `llmc` command; `python -m llmc_core.train ...` runs
them without it (that is the form torchrun starts: `torchrun --nproc_per_node=2 -m llmc_core.train train`).
"""
import argparse
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

from llmc_core.train.config import PRESETS, TrainConfig, flag, preset


def parse_duration(text):
    """Seconds from '300', '300s', '5m', '1.5h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    scale = units.get(text[-1:], None)
    try:
        value = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 300, 90s, 5m or 1h") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative, got {text!r}")
    return value


def add_config_flags(parser):
    """One flag per TrainConfig field, helped by its metadata; default None so that we know which ones were given."""
    group = parser.add_argument_group("training config (defaults come from --preset)")
    for f in fields(TrainConfig):
        if f.type in (bool, "bool"):
            group.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None,
                               help=f.metadata["help"])
        else:
            kind = parse_duration if f.name == "time_budget" else {"int": int, "float": float}.get(f.type, f.type)
            group.add_argument(flag(f.name), type=kind if callable(kind) else str, default=None,
                               metavar=f.name.upper(), help=f.metadata["help"])


# fields that fix the model's shape: a resumed run takes them from its checkpoint
SHAPE_FIELDS = ("n_layer", "n_head", "n_embd", "seq_len", "vocab_size", "init_from", "tokenizer")


def config_from_args(args, base, resuming=False):
    """The base config (a preset, or a checkpoint's when resuming) with the flags given changed.

    A flag that would be silently ignored is an error instead.
    """
    if getattr(args, "recipe", None):  # the recipe first, so that single flags given with it override it
        from llmc_core.modern import RECIPES
        base = base.replace(**RECIPES[args.recipe])
    changes = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    if args.no_compile:
        changes["compile"] = "off"
    if "max_steps" in changes and "time_budget" not in changes:
        changes["time_budget"] = 0.0  # an explicit step count replaces the preset's time budget
    if resuming:
        fixed = [name for name in SHAPE_FIELDS if name in changes and changes[name] != getattr(base, name)]
        if fixed:
            raise ValueError(f"{', '.join(flag(n) for n in fixed)}: a resumed run keeps the model and tokenizer of "
                             f"its checkpoint; drop the flag, or start a new run with another --out")
    config = base.replace(**changes)
    unused = [n for n in ("hellaswag_path", "hellaswag_examples") if n in changes and not config.hellaswag_every]
    if unused:
        raise ValueError(f"{', '.join(flag(n) for n in unused)} has no effect without --hellaswag-every N")
    return config


def cmd_train(args):
    from llmc_core.train.checkpoint import load_latest_good
    from llmc_core.train.trainer import TrainingDiverged, train
    out = args.out
    if isinstance(args.resume, str):
        out = args.resume
    if out is None:
        if args.resume:
            raise ValueError("--resume needs the run folder: `llmc train --resume runs/DIR` (or --out DIR --resume)")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("with torchrun, pass --out DIR so that every process writes to the same run folder")
        out = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if args.resume:
        # the checkpoint's config, with only the flags given now changed (e.g. a longer --max-steps)
        base = TrainConfig.from_dict(load_latest_good(out, say=lambda *a: None)["config"])
    else:
        base = preset(args.preset)
    config = config_from_args(args, base, resuming=bool(args.resume))
    from llmc_core.modern import Recipe
    if args.resume and Recipe.from_config(config) != Recipe.from_config(base):
        raise ValueError(f"--resume continues the model in {out}, built with the recipe "
                         f"{Recipe.from_config(base).changes() or 'gpt2'}; its architecture flags cannot change: "
                         f"drop them, or start a new run with --out")
    try:
        summary = train(config, out, resume=bool(args.resume), data_dir=args.data_dir,
                        stop_at=args.stop_at, progress=not args.no_progress)
    except TrainingDiverged as e:
        print(f"llmc train: {e}", file=sys.stderr)
        return 3
    except ConnectionError as e:  # --init-from gpt2 or HellaSwag offline: the message says how to go on
        print(f"llmc train: {e}", file=sys.stderr)
        return 2
    if summary["stopped_by"] in ("SIGINT", "SIGTERM"):
        return 130 if summary["stopped_by"] == "SIGINT" else 143
    return 0


def cmd_data_prepare(args):
    from llmc_core.train.prepare import prepare
    if args.name == "tinyshakespeare" and args.source is not None:
        raise ValueError("--source reads a downloaded corpus from a folder; tinyshakespeare ships with llmc, "
                         "so leave --source out")
    paths = prepare(args.name, args.data_dir, args.workers, args.shard_tokens, args.source, progress=True,
                    tokenizer=args.tokenizer)
    for path in paths:
        print(path)
    return 0


def load_trained_model(run, device="cpu", with_tokenizer=False):
    """The GPT2 saved in a run folder's checkpoint (or a checkpoint file), in eval mode.

    with_tokenizer: return (model, the tiktoken Encoding the checkpoint carries; GPT-2's for older ones).
    """
    from llmc_core.tokenizer import load_tokenizer, tokenizer_from_dict
    from llmc_core.train.checkpoint import load_checkpoint
    from llmc_core.train.trainer import build_model
    state = load_checkpoint(run)
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config, device, state["model_config"]).eval()
    model.load_state_dict(state["model"])
    if not with_tokenizer:
        return model
    enc = tokenizer_from_dict(state["tokenizer"], run) if "tokenizer" in state else load_tokenizer("gpt2")
    return model, enc


def cmd_sample(args):
    from llmc_core.train.sample import generate
    model, enc = load_trained_model(args.run_dir, args.device, with_tokenizer=True)
    start = enc.eot_token if enc.eot_token < model.config.vocab_size else 0  # a new document, as in training
    prompt = enc.encode_ordinary(args.prompt)
    for i in range(args.num_samples):
        tokens = generate(model, [start] + prompt, args.tokens, args.temperature, args.top_k, args.seed + i,
                          args.device)
        print(f"--- sample {i + 1} ---\n{enc.decode(tokens[1:])}")  # the text starts with the prompt
    return 0


def cmd_export(args):
    from llmc_core.modern import require_gpt2_architecture
    from llmc_core.weights import write_llmc_checkpoint
    model = load_trained_model(args.run_dir)
    require_gpt2_architecture(model, args.run_dir)
    write_llmc_checkpoint(args.output, model, model.config, dtype=args.dtype)
    print(f"wrote {args.output} (llm.c model checkpoint, version {3 if args.dtype == 'float32' else 5})")
    from llmc_core.train.export import export_llmc_extras
    for line in export_llmc_extras(args.run_dir, model, args.tokenizer_bin, args.debug_state):
        print(line)
    return 0


def cmd_plot(args):
    from llmc_core.train.plot import plot_runs
    path = plot_runs(args.run_dirs, args.output)
    print(f"wrote {path}")
    return 0


def add_train(subparsers):
    """`llmc train`: the preset, run folder and resume flags, then every TrainConfig field."""
    p = subparsers.add_parser("train", help="train a GPT-2 (default: a small one on tiny Shakespeare, on the CPU)",
                              description="Train a GPT-2 on llm.c token shards. With no arguments: the "
                                          "shakespeare-cpu preset, about 5 minutes on a 2-core CPU.")
    p.add_argument("--preset", default="shakespeare-cpu", choices=sorted(PRESETS),
                   help="starting config (default: %(default)s)")
    p.add_argument("--out", default=None,
                   help="run folder for log.jsonl, samples.txt, checkpoint.pt (default: runs/<timestamp>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue from RUN_DIR/checkpoint.pt (or from --out) with its config; "
                        "flags given now override it")
    p.add_argument("--stop-at", type=int, default=0, metavar="STEP",
                   help="save a checkpoint and stop after STEP, keeping the LR schedule of --max-steps")
    p.add_argument("--data-dir", default=None, help="where prepared datasets live (default: ~/.cache/llmc/data)")
    p.add_argument("--no-compile", action="store_true", help="do not torch.compile (same as --compile off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still print)")
    p.add_argument("--recipe", default=None, choices=("gpt2", "modern"),
                   help="set the architecture and optimizer options together: 'gpt2' (every one off) or 'modern' "
                        "(--rope --norm rms --qk-norm --mlp relu2 --softcap 15 --untie-head --optimizer muon)")
    add_config_flags(p)
    p.set_defaults(run=cmd_train)


def add_data(subparsers):
    """`llmc data prepare`: a corpus tokenized into train/val shards."""
    p = subparsers.add_parser("data", help="prepare datasets as llm.c token shards")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("prepare", help="tokenize a corpus into train/val shards")
    q.add_argument("name", choices=("tinyshakespeare", "tinystories", "fineweb-edu"), help="the corpus")
    q.add_argument("--data-dir", default=None,
                   help="output root; shards go to DATA_DIR/NAME (default: ~/.cache/llmc/data)")
    q.add_argument("--workers", type=int, default=None, help="tokenizer processes (default: CPU cores - 1)")
    q.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default: %(default)s)")
    q.add_argument("--source", default=None, help="read local files from this folder instead of downloading")
    q.add_argument("--tokenizer", default="gpt2",
                   help="'gpt2' or a file from `llmc tokenizer train` (default: %(default)s)")
    q.set_defaults(run=cmd_data_prepare)


def add_sample(subparsers):
    """`llmc sample`: text from a trained checkpoint."""
    p = subparsers.add_parser("sample", help="sample text from a trained checkpoint")
    p.add_argument("run_dir", metavar="RUN", help="a run folder (or its checkpoint.pt)")
    p.add_argument("--prompt", default="", help="text to continue (default: start a new document)")
    p.add_argument("--tokens", type=int, default=100, help="tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--num-samples", type=int, default=1, help="how many samples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="device to sample on (default: %(default)s)")
    p.set_defaults(run=cmd_sample)


def add_export(subparsers):
    """`llmc export`: a checkpoint as llm.c's model file, and optionally its tokenizer and debug state."""
    p = subparsers.add_parser("export", help="write a trained checkpoint as an llm.c model file (gpt2_124M.bin format)")
    p.add_argument("run_dir", metavar="RUN", help="a run folder (or its checkpoint.pt)")
    p.add_argument("output", help="the .bin file to write")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="float32 = llm.c version 3 (train_gpt2.c reads it), bfloat16 = version 5")
    p.add_argument("--tokenizer-bin", default=None, metavar="FILE",
                   help="also write the run's tokenizer for llm.c (gpt2_tokenizer.bin format)")
    p.add_argument("--debug-state", default=None, metavar="FILE",
                   help="also write llm.c's debug state (one step's logits, loss, gradients) for test_gpt2.c")
    p.set_defaults(run=cmd_export)


def add_plot(subparsers):
    """`llmc plot`: runs' validation bits per byte, overlaid."""
    p = subparsers.add_parser("plot", help="plot runs' validation bits per byte, overlaid, with baselines")
    p.add_argument("run_dirs", metavar="RUN", nargs="+", help="run folders written by `llmc train`")
    p.add_argument("--output", default=None,
                   help="image path (default: RUN/loss.png for one run, runs.png for several)")
    p.set_defaults(run=cmd_plot)


def register(subparsers):
    """Add train, data, sample, export and plot to the `llmc` command's subparsers."""
    for add in (add_train, add_data, add_sample, add_export, add_plot):
        add(subparsers)


def main(argv=None):
    """Run the trainer's commands alone (`python -m llmc_core.train train ...`, the form torchrun starts)."""
    from llmc_core.cli import run_command
    parser = argparse.ArgumentParser(prog="python -m llmc_core.train", description="llmc's trainer commands")
    register(parser.add_subparsers(dest="command", required=True))
    return run_command(parser, argv)
