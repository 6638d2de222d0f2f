"""Benchmark `llmc grade`: 40 synthetic students x lessons 00-01, graded in sandboxed children on 2 jobs.

Peer, measured in the same run: loading each notebook and judging its probes in-process, one after
another, with no sandbox (what `llmc check` does). The ratio says what the sandbox costs per
notebook and what the parallel batch gains back.

    python benchmarks/grading.py [--students 40] [--jobs 2]
"""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llmc_core.checking import run_checks  # noqa: E402
from llmc_core.course import lesson_by_notebook  # noqa: E402
from llmc_core.grading.grade import grade  # noqa: E402
from llmc_core.grading.sandbox import Limits, detect_isolation  # noqa: E402
from llmc_core.notebook import load_notebook  # noqa: E402
from redteam.harness import base_notebook, edit_cell, write_submission  # noqa: E402

LESSONS = ["00_setup", "01_micrograd"]


def synthetic_students(folder, count):
    """Complete, untouched and half-broken submissions in turn (a broken cell loses one exercise)."""
    variants = {
        "complete": {n: base_notebook(n, "solution") for n in LESSONS},
        "starter": {n: base_notebook(n, "lesson") for n in LESSONS},
        "broken": {"00_setup": base_notebook("00_setup", "solution"),
                   "01_micrograd": edit_cell(base_notebook("01_micrograd", "solution"),
                                             "def zero_grad(values):", "def zero_grad(values)")},
    }
    names = list(variants)
    for i in range(count):
        for lesson, notebook in variants[names[i % len(names)]].items():
            write_submission(folder / f"student{i:03d}", lesson, notebook)


def in_process(folder, count):
    """Seconds to load and check `count` submissions one by one in this process (the peer)."""
    start = time.perf_counter()
    for i in range(count):
        for lesson in LESSONS:
            run_checks(lesson_by_notebook(lesson).prefix, load_notebook(folder / f"student{i:03d}" / f"{lesson}.ipynb"))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40, help="synthetic students (default: 40)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default: 2)")
    parser.add_argument("--peer-students", type=int, default=6,
                        help="students the in-process peer checks, to estimate its per-notebook time (default: 6)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="llmc-bench-"))
    try:
        synthetic_students(root / "submissions", args.students)
        notebooks = args.students * len(LESSONS)
        print(f"sandbox: {detect_isolation().mode}; {args.students} students x {len(LESSONS)} lessons "
              f"= {notebooks} notebooks; {args.jobs} jobs")

        start = time.perf_counter()
        grade(root / "submissions", root / "out", lessons=LESSONS, jobs=args.jobs, limits=Limits(timeout=120),
              progress=False)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        summary = grade(root / "submissions", root / "out", lessons=LESSONS, jobs=args.jobs, progress=False)
        resume = time.perf_counter() - start
        assert summary["graded"] == 0

        peer = in_process(root / "submissions", args.peer_students) / (args.peer_students * len(LESSONS))
        per_notebook = wall / notebooks
        print(f"llmc grade:   {wall:7.1f} s wall, {per_notebook:.3f} s per notebook "
              f"({per_notebook * args.jobs:.3f} s of a job each)")
        print(f"in-process:   {peer * notebooks:7.1f} s estimated for the batch, {peer:.3f} s per notebook "
              f"(measured on {args.peer_students * len(LESSONS)} notebooks, no sandbox, one after another)")
        print(f"ratio:        sandboxed batch / in-process batch = {wall / (peer * notebooks):.2f}; "
              f"sandbox cost per notebook = {per_notebook * args.jobs / peer:.2f}x in-process")
        print(f"rerun:        {resume:.1f} s to find every result committed and rewrite the reports")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
