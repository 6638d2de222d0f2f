"""The `llmc` command."""
import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from llmc_core.course import REPO_DIR

# Subcommands that live with the code they run: each module has register(subparsers).
COMMAND_MODULES = ("llmc_core.grading.cli", "llmc_core.train.cli", "llmc_core.inference.cli")


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
        print(f"{lesson.notebook:<30} {f'{done}/{total}':>10} {f'{format_points(points)}/{format_points(possible)}':>10}  {note}")
    return 0


def make_parser():
    parser = argparse.ArgumentParser(prog="llmc", description="The llmc course: build, check and grade lessons; train GPT-2.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="write lessons/ and probe snapshots from solutions/")
    p.add_argument("notebooks", nargs="*", help="lesson names to build, e.g. 01_micrograd (default: all)")
    p.add_argument("--check", action="store_true", help="change nothing; fail, naming each stale file, if anything is out of date")
    p.add_argument("--root", default=REPO_DIR, type=Path, help="the course checkout holding solutions/ and lessons/ (default: %(default)s)")
    p.set_defaults(run=cmd_build)
    p = sub.add_parser("check", help="check every exercise of one lesson notebook")
    p.add_argument("notebook", help="path to a lesson notebook, e.g. lessons/01_micrograd.ipynb")
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("progress", help="a table of exercises passed in every lesson notebook of a folder")
    p.add_argument("directory", nargs="?", default="lessons", help="folder of lesson notebooks (default: lessons)")
    p.set_defaults(run=cmd_progress)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) and importlib.util.find_spec(name):
            importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"llmc {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
