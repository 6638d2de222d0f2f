"""The `llmc` command.

A user's mistake ends in one line that says what is wrong and what to do (never a traceback), and
`llmc --help` imports no torch: modules that do are imported only when one of their commands runs.
"""
import argparse
import errno
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from llmc_core.course import REPO_DIR

# Subcommands that live with the code they run: each module has register(subparsers).
COMMAND_MODULES = ("llmc_core.grading.cli", "llmc_core.train.cli", "llmc_core.tokenizer_cli",
                   "llmc_core.inference.cli", "llmc_core.speedrun")
# The commands of modules that import torch, with their help line, so that `llmc --help` lists them without
# importing the module (tests/test_cli.py checks these against what register() adds).
LAZY_COMMANDS = {
    "llmc_core.train.cli": {
        "train": "train a GPT-2 (default: a small one on tiny Shakespeare, on the CPU)",
        "data": "prepare datasets as llm.c token shards",
        "sample": "sample text from a trained checkpoint",
        "export": "write a trained checkpoint as an llm.c model file (gpt2_124M.bin format)",
        "plot": "plot runs' validation bits per byte, overlaid, with baselines",
    },
    "llmc_core.inference.cli": {"generate": "generate text with the KV-cache inference engine, streamed"},
    "llmc_core.speedrun": {
        "speedrun": "train for a fixed compute budget, calibrated to this machine, and write a result card"},
}


def cmd_build(args):
    from llmc_core.build import build
    stale = build(args.notebooks or None, check_only=args.check, root=args.root)
    if args.check and stale:
        for path, reason in stale:
            print(f"stale: {path} {reason}", file=sys.stderr)
        print("Run `llmc build` to regenerate lessons/ and the snapshots from solutions/.", file=sys.stderr)
        return 1
    for path, reason in stale:
        print(f"wrote {path}")
    return 0


def cmd_check(args):
    from llmc_core.checking import notebook_report
    from llmc_core.course import lesson_by_notebook
    from llmc_core.notebook import load_notebook
    lesson = lesson_by_notebook(args.notebook)
    text, all_passed = notebook_report(lesson, load_notebook(args.notebook))
    print(text, end="")
    return 0 if all_passed else 1


def cmd_progress(args):
    from llmc_core.checking import format_points, progress_rows
    from llmc_core.notebook import load_notebook
    directory = Path(args.directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a folder; give the folder that holds your lesson notebooks")
    rows = progress_rows(directory, load_notebook)
    if not rows:
        print(f"no lesson notebooks with exercises in {directory}")
        return 1
    print(f"{'lesson':<30} {'exercises':>10} {'points':>10}  note")
    for lesson, done, total, points, possible, note in rows:
        print(f"{lesson.notebook:<30} {f'{done}/{total}':>10} "
              f"{f'{format_points(points)}/{format_points(possible)}':>10}  {note}")
    return 0


def version():
    try:
        return importlib.metadata.version("llmc")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        from llmc_core.build import project_settings
        return project_settings().version


class VersionAction(argparse.Action):
    """`llmc --version`: looks the version up only when asked."""
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print llmc's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"llmc {version()}")
        parser.exit()


def make_parser(command=None):
    """The `llmc` parser. Modules in LAZY_COMMANDS are imported only when `command` is one of theirs."""
    parser = argparse.ArgumentParser(prog="llmc",
                                     description="The llmc course: build, check and grade lessons; train GPT-2.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="write lessons/ and probe snapshots from solutions/")
    p.add_argument("notebooks", nargs="*", help="lesson names to build, e.g. 01_micrograd (default: all)")
    p.add_argument("--check", action="store_true",
                   help="change nothing; fail, naming each stale file, if anything is out of date")
    p.add_argument("--root", default=REPO_DIR, type=Path,
                   help="the course checkout holding solutions/ and lessons/ (default: %(default)s)")
    p.set_defaults(run=cmd_build)
    p = sub.add_parser("check", help="check every exercise of one lesson notebook")
    p.add_argument("notebook", help="path to a lesson notebook, e.g. lessons/01_micrograd.ipynb")
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("progress", help="a table of exercises passed in every lesson notebook of a folder")
    p.add_argument("directory", nargs="?", default="lessons", help="folder of lesson notebooks (default: lessons)")
    p.set_defaults(run=cmd_progress)
    for name in COMMAND_MODULES:
        lazy = LAZY_COMMANDS.get(name, {})
        if lazy and command not in lazy:
            for lazy_command, help_line in lazy.items():  # listed in --help; running it takes the branch below
                sub.add_parser(lazy_command, help=help_line, add_help=False)
        elif importlib.util.find_spec(name.rsplit(".", 1)[0]) and importlib.util.find_spec(name):
            importlib.import_module(name).register(sub)
    return parser


def os_error_message(e):
    """One line for a failed file operation: what failed, where, and what to do."""
    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list):  # copytree's list of failed copies
        source, target, why = e.args[0][0]
        return (f"could not copy {len(e.args[0])} file(s), the first to {target}: {why}; "
                "free some space or choose a folder you can write to")
    where = f" {e.filename}" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write{where}: the disk is full ({e.strerror}); free some space or write to another folder"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write{where}: {e.strerror}; choose a folder you can write to"
    return f"{e.strerror or e}{':' + where if where else ''}"


def first_command(argv):
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command(make_parser(first_command(argv)), argv)


def run_command(parser, argv=None):
    """Parse `argv` and run the command it names: every llmc command line ends here (`llmc`, `python -m ...`).

    The parser's subparsers are `dest="command"` and set `run`. A user's mistake prints one line and
    returns 2; anything else one line too, unless LLMC_TRACEBACK is set.
    """
    args = parser.parse_args(argv)
    name = f"llmc {args.command}"
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:  # the course's convention for a user's mistake
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or forbidden folder
        print(f"{name}: {os_error_message(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get("LLMC_TRACEBACK"):
            raise
        print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
        print("  (LLMC_TRACEBACK=1 shows where it happened; "
              "if it looks like a bug in llmc, please report it with that)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
