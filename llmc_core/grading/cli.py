"""The instructor's commands: `llmc grade`, `llmc build-hidden`, `llmc release`, `llmc gradescope`.

`llmc_core/cli.py` calls `register(subparsers)`; each subcommand's `func(args)` returns an exit code.
"""
import os
import re
import sys
from pathlib import Path

from llmc_core.grading.sandbox import Limits

SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)


def parse_size(text):
    """'4G', '512M', '1.5g', '1000000' -> bytes."""
    match = SIZE.match(text.strip())
    if not match:
        raise ValueError(f"size {text!r} is not understood; write e.g. 4G, 512M or a number of bytes")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "kmgt".find(unit.lower()) * 1024) if unit else int(float(number))


def _size(text):
    try:
        return parse_size(text)
    except ValueError as e:
        import argparse
        raise argparse.ArgumentTypeError(str(e)) from None


def _lessons(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def register(subparsers):
    grade = subparsers.add_parser(
        "grade", help="grade a folder of student submissions into a gradebook, feedback and Gradescope results",
        description="Each subfolder or .zip of SUBMISSIONS is one student holding lesson notebooks under their "
                    "lesson file names. Every notebook is graded in a sandboxed child process; the verdicts are "
                    "computed outside it. A killed run continues where it stopped when started again.")
    grade.add_argument("submissions", type=Path, help="folder with one subfolder or .zip per student")
    grade.add_argument("--out", type=Path, required=True,
                       help="folder for gradebook.csv, feedback/, results/ and the resumable state in .state/")
    grade.add_argument("--lessons", type=_lessons, default=None,
                       help="comma-separated lesson notebooks to grade, e.g. 00_setup,01_micrograd "
                            "(default: every lesson with probes and snapshots)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="notebooks graded at once (default: all cores, %(default)s here)")
    grade.add_argument("--timeout", type=float, default=Limits.timeout,
                       help="seconds charged per notebook, loading and probes together: its CPU time, or its wall "
                            "time less what it waited for a busy CPU (default: %(default)s)")
    grade.add_argument("--memory", type=_size, default=Limits.memory,
                       help="memory per notebook (all its processes, where cgroups are available) and address "
                            "space per process, e.g. 4G or 512M (default: 4G)")
    grade.add_argument("--max-notebook-size", type=_size, default=50 << 20,
                       help="larger notebooks are not read at all (default: 50M)")
    grade.add_argument("--hidden", type=Path, default=None,
                       help="folder of private probe files whose snapshots `llmc build-hidden` computed")
    grade.add_argument("--student", default=None,
                       help="grade only this student (a subfolder or zip name), again even if already graded")
    grade.add_argument("--force", action="store_true", help="grade every notebook again, ignoring committed results")
    grade.add_argument("--hide", type=Path, action="append", default=[],
                       help="another folder student code must not read (repeatable; snapshots, solutions, "
                            "submissions and --out are always hidden where the sandbox allows)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.set_defaults(run=run_grade)

    hidden = subparsers.add_parser(
        "build-hidden", help="compute the snapshots of your hidden probes from solutions/",
        description="Runs every probe in DIR/*.py on the solution notebooks and writes DIR/snapshots/NN_name.json. "
                    "Keep DIR private: it holds expected values.")
    hidden.add_argument("directory", type=Path, help="folder holding the hidden probe files")
    hidden.set_defaults(run=run_build_hidden)

    release = subparsers.add_parser(
        "release", help="write what students receive: lessons and the course package, no solutions or hidden probes")
    release.add_argument("--out", type=Path, required=True, help="folder to write (must not exist, or use --replace)")
    release.add_argument("--replace", action="store_true", help="replace --out if it exists")
    release.set_defaults(run=run_release)

    gradescope = subparsers.add_parser(
        "gradescope", help="build a Gradescope autograder zip that grades one submission with this grader")
    gradescope.add_argument("--out", type=Path, required=True, help="the zip file to write, e.g. autograder.zip")
    gradescope.add_argument("--lessons", type=_lessons, default=None,
                            help="comma-separated lesson notebooks this assignment grades (default: all with probes)")
    gradescope.add_argument("--hidden", type=Path, default=None, help="folder of hidden probes to include")
    gradescope.add_argument("--timeout", type=float, default=Limits.timeout, help="seconds per notebook")
    gradescope.add_argument("--memory", type=_size, default=Limits.memory, help="address space per notebook")
    gradescope.set_defaults(run=run_gradescope)


def run_grade(args):
    from llmc_core.grading import cgroups
    from llmc_core.grading.grade import grade
    from llmc_core.grading.sandbox import detect_isolation

    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give at least 1")
    limits = Limits(timeout=args.timeout, memory=args.memory)
    isolation = detect_isolation()
    if not args.quiet:
        print(f"sandbox: {isolation.mode}: {isolation.describe()}", file=sys.stderr)
        hierarchy = cgroups.detect()
        print(f"limits: {hierarchy.describe() if hierarchy else 'per process only (no cgroups available here)'}",
              file=sys.stderr)
    summary = grade(args.submissions, args.out, lessons=args.lessons, jobs=args.jobs, limits=limits,
                    hidden_dir=args.hidden, student=args.student, force=args.force, progress=not args.quiet,
                    max_notebook_bytes=args.max_notebook_size, hide=args.hide, isolation=isolation)
    print(f"{summary['students']} students; {summary['graded']} notebooks graded, {summary['reused']} already "
          f"graded; gradebook: {args.out / 'gradebook.csv'}")
    return 0


def run_build_hidden(args):
    from llmc_core.grading.hidden import build_hidden
    from llmc_core.notebook import load_notebook

    for path in build_hidden(args.directory, load_notebook):
        print(f"wrote {path}")
    return 0


def run_release(args):
    from llmc_core.grading.release import release

    written = release(args.out, replace=args.replace)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def run_gradescope(args):
    from llmc_core.grading.gradescope import build_autograder_zip

    limits = Limits(timeout=args.timeout, memory=args.memory)
    build_autograder_zip(args.out, lessons=args.lessons, hidden_dir=args.hidden, limits=limits)
    print(f"wrote {args.out}: upload it as the assignment's autograder on Gradescope")
    return 0


def main(argv=None):
    """Run the grading commands alone (`python -m llmc_core.grading.cli grade ...`)."""
    import argparse

    parser = argparse.ArgumentParser(prog="llmc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
