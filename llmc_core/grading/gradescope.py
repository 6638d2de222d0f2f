"""Gradescope: build an autograder zip, and the entry point that runs inside Gradescope's container.

Gradescope's contract: the zip holds `setup.sh` and `run_autograder` at its root; everything is
unpacked into `/autograder/source`; the submission is in `/autograder/submission`; the grade must
end up in `/autograder/results/results.json`. `run_autograder` calls `main()` below, which grades
the one submission with the same sandbox and judge as `llmc grade` and always writes a results
file, even when grading itself fails.
"""
import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from llmc_core.course import LESSONS, REFERENCE_DIR, REPO_DIR, SNAPSHOT_DIR
from llmc_core.fileio import atomic_write_bytes, atomic_write_json
from llmc_core.grading.grade import grade, plan_lessons
from llmc_core.grading.sandbox import Limits

PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder image is built.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip util-linux
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
# The CPU build of torch: the default wheel would pull gigabytes of CUDA libraries.
/autograder/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.1"
/autograder/venv/bin/pip install /autograder/source/llmc
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it writes /autograder/results/results.json.
exec /autograder/venv/bin/python -m llmc_core.grading.gradescope --root /autograder --protect
"""


def _add_tree(archive, source, prefix):
    for path in sorted(Path(source).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            archive.write(path, f"{prefix}/{path.relative_to(source)}")


def _add_text(archive, name, text, executable=False):
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = (0o755 if executable else 0o644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, text)


def build_autograder_zip(out, lessons=None, hidden_dir=None, limits=Limits(), repo=REPO_DIR):
    """Write the autograder zip: setup.sh, run_autograder, grading.json, the package, hidden probes."""
    plans = plan_lessons(lessons, hidden_dir)  # fails now, not on Gradescope, when snapshots are missing
    config = {"lessons": [p.lesson.notebook for p in plans], "limits": limits.to_json(),
              "hidden": "hidden" if hidden_dir else None}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _add_text(archive, "setup.sh", SETUP_SH, executable=True)
        _add_text(archive, "run_autograder", RUN_AUTOGRADER, executable=True)
        _add_text(archive, "grading.json", json.dumps(config, indent=1) + "\n")
        for name in PACKAGE_FILES:
            if (Path(repo) / name).is_file():
                archive.write(Path(repo) / name, f"llmc/{name}")
        _add_tree(archive, Path(repo) / "llmc_core", "llmc/llmc_core")
        if hidden_dir:
            _add_tree(archive, hidden_dir, "hidden")
    atomic_write_bytes(out, buffer.getvalue())


def protect(root, hidden_dir, lessons=()):
    """Inside Gradescope's container: make answers and other files unreadable to the grading uids.

    Used where mount namespaces may be missing; the private uid then meets ordinary permissions.
    The modules generated from solutions stay readable only for lessons before the first one graded
    (lesson 03 imports lesson 02's); their bytecode (pip compiles it on install) never does.
    """
    for path in (SNAPSHOT_DIR, root / "source", root / "results", root / "submission", hidden_dir):
        if path is not None and path.exists():
            os.chmod(path, 0o700)
    order = [lesson.notebook for lesson in LESSONS]
    first = min((order.index(name) for name in lessons if name in order), default=0)
    readable = {lesson.reference_path.name for lesson in LESSONS[:first] if lesson.reference}
    if REFERENCE_DIR.is_dir():
        (REFERENCE_DIR / "__pycache__").mkdir(exist_ok=True)  # so that bytecode written later is out of reach too
        for path in REFERENCE_DIR.iterdir():
            if path.name not in readable:
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
    metadata = root / "submission_metadata.json"
    if metadata.exists():
        os.chmod(metadata, 0o600)


def failure_results(message):
    return {"score": 0, "output": f"The autograder could not grade this submission: {message}\n"
                                  "Please tell your instructor.",
            "tests": [{"name": "autograder", "score": 0, "max_score": 0, "status": "failed", "output": message,
                       "visibility": "visible"}]}


def run(root, protect_files=False):
    """Grade /autograder/submission into /autograder/results/results.json; return the results dict."""
    root = Path(root)
    results_path = root / "results" / "results.json"
    try:
        config = json.loads((root / "source" / "grading.json").read_text(encoding="utf-8"))
        hidden_dir = root / "source" / config["hidden"] if config["hidden"] else None
        if protect_files and os.geteuid() == 0:
            protect(root, hidden_dir, config["lessons"])
        with tempfile.TemporaryDirectory(prefix="llmc-gradescope-") as tmp:
            submissions = Path(tmp) / "submissions"
            submissions.mkdir()
            # One student named "submission"; symbolic links are copied as links, which the grader refuses.
            shutil.copytree(root / "submission", submissions / "submission", symlinks=True)
            grade(submissions, Path(tmp) / "out", lessons=config["lessons"], jobs=1,
                  limits=Limits(**config["limits"]), hidden_dir=hidden_dir, progress=False,
                  hide=[p for p in (root / "source", root / "submission", root / "results") if p.exists()])
            results = json.loads((Path(tmp) / "out" / "results" / "submission.json").read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001  Gradescope needs a results file whatever went wrong
        results = failure_results(f"{type(e).__name__}: {e}")
    atomic_write_json(results_path, results)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="Grade one Gradescope submission (run by run_autograder).")
    parser.add_argument("--root", type=Path, default=Path("/autograder"),
                        help="Gradescope's folder holding source/, submission/ and results/ (default: /autograder)")
    parser.add_argument("--protect", action="store_true",
                        help="chmod snapshots, source, submission and results to 0700 first (inside the container)")
    args = parser.parse_args(argv)
    results = run(args.root, args.protect)
    print(f"score {results['score']}; wrote {args.root / 'results' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
