"""`llmc release --out DIR`: the course as students receive it, with nothing an instructor keeps back.

A release holds the generated lessons, the `llmc_core` package (with the public snapshots that
`check()` needs), the packaging files and the docs; never `solutions/`, tests, benchmarks, git
history or hidden probes. It refuses to write a release whose lessons are stale or still hold a
solution region.
"""
import shutil
import tempfile
from pathlib import Path

from llmc_core.build import BEGIN, lesson_from_solution, notebook_text
from llmc_core.course import REPO_DIR, lesson_by_notebook
from llmc_core.notebook import read_notebook

RELEASED = ("lessons", "llmc_core", "docs", "pyproject.toml", "README.md", "environment.yml", "LICENSE")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


def check_lessons(repo):
    """Every solution has a current lesson beside it, and no lesson holds a solution region."""
    problems = []
    for solution in sorted((repo / "solutions").glob("*.ipynb")):
        lesson_by_notebook(solution)  # a stray notebook name is an error, not a silent skip
        lesson = repo / "lessons" / solution.name
        expected = notebook_text(lesson_from_solution(read_notebook(solution), solution.name))
        if not lesson.exists():
            problems.append(f"{lesson} is missing")
        elif lesson.read_text(encoding="utf-8") != expected:
            problems.append(f"{lesson} differs from what {solution} generates")
    for lesson in sorted((repo / "lessons").glob("*.ipynb")):
        if BEGIN in lesson.read_text(encoding="utf-8"):
            problems.append(f"{lesson} still holds a {BEGIN} region")
    if problems:
        raise ValueError("the lessons are not ready to release: " + "; ".join(problems)
                         + ". Run `llmc build` first.")


def release(out, replace=False, repo=REPO_DIR):
    """Write the student release to `out` (atomically: built beside it, then renamed); return its files."""
    repo, out = Path(repo), Path(out).resolve()
    if out == repo.resolve() or repo.resolve() in out.parents:
        raise ValueError(f"--out {out} is inside the course repository; release to a folder outside it")
    if out.exists() and not replace:
        raise ValueError(f"{out} exists; pass --replace to overwrite it, or choose a new folder")
    check_lessons(repo)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in RELEASED:
            source = repo / name
            if source.is_dir():
                shutil.copytree(source, staging / name, ignore=SKIPPED)
            elif source.is_file():
                shutil.copy2(source, staging / name)
        (staging / "docs" / "instructors.md").unlink(missing_ok=True)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p for p in out.rglob("*") if p.is_file())
