"""`llmc release --out DIR`: the course as students receive it, with nothing an instructor keeps back.

A release holds the generated lessons, the `llmc_core` package (with the public snapshots that
`check()` needs), the packaging files, the learner's docs, a README written for learners and the
Makefile its two commands use; never `solutions/`, tests, benchmarks, git history or hidden
probes. It refuses to write a release whose lessons are stale or still hold a solution region.
"""
import shutil
import tempfile
from pathlib import Path

from llmc_core.build import BEGIN, course_sources, lesson_from_solution, notebook_text, project_settings
from llmc_core.course import LESSONS, REPO_DIR, lesson_by_notebook
from llmc_core.notebook import read_notebook

RELEASED = ("lessons", "llmc_core", "docs", "pyproject.toml", "environment.yml", "LICENSE")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
INSTRUCTOR_ONLY = ("docs/instructors.md", "docs/authors.md")

# The release's Makefile: `make course` and `make check`, each setting up .venv first.
# A backslash that ends a line in it is Python's: the two lines are one in the Makefile.
STUDENT_MAKEFILE = """\
# `make course` opens the lessons in JupyterLab; `make check` says which exercises pass. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# Linux without an NVIDIA GPU: `make course TORCH_INDEX=https://download.pytorch.org/whl/cpu` saves GBs of CUDA wheels.
TORCH_INDEX ?=

.PHONY: setup course check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
\t$(PYTHON) -c 'import sys; sys.exit("llmc needs Python >= 3.10, this is " + sys.version.split()[0]) \
if sys.version_info < (3, 10) else None'
\t$(PYTHON) -m venv $(VENV)
\t$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
\t$(BIN)/python -m pip install --quiet -e ".[lab]"
\ttouch $@

course: setup
\t$(BIN)/jupyter lab lessons/

check: setup
\t$(BIN)/llmc progress lessons/
"""


def student_readme(project, lessons=LESSONS):
    """The release's README: how to start, check work and get help, with a Colab badge per lesson."""
    rows = "\n".join(f"| `{lesson.notebook}` | {lesson.title} | {project.colab_badge(f'lessons/{lesson.filename}')} |"
                     for lesson in lessons)
    first = lessons[0].filename
    return f"""# llmc: build GPT-2 training from scratch (version {project.version})

A notebook course that takes you from a scalar autograd engine to a fast GPT-2 trainer.
Every layer is written by hand and checked on the spot against a trusted reference.
It runs on a laptop CPU; a GPU is optional.

## Start

You need Python 3.10 or newer and `make`. In this folder:

```bash
make course     # sets everything up in .venv, then opens JupyterLab on lessons/
```

Open `{first}` and work top to bottom.
On Linux without an NVIDIA GPU, `make course TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the
CPU build of PyTorch instead of several GB of CUDA libraries.
Without `make`: `python3 -m venv .venv`, `.venv/bin/pip install -e ".[lab]"`, `.venv/bin/jupyter lab lessons/`
(Windows: `.venv\\Scripts\\...`).
With conda: `conda env create -f environment.yml && conda activate llmc`, then `jupyter lab lessons/`.

Or open a lesson on Google Colab with its badge below; its first code cell installs the course there.

## Check your work

```bash
make check      # one row per lesson: exercises passed, points
```

Inside a notebook, run the `check(...)` cell under each exercise.
From a terminal, `.venv/bin/llmc check lessons/{first}` checks every exercise of one notebook
(exit code 0 only when all pass).
Each check prints ✓ or ✗; a ✗ names the first value that differs, expected against got, and gives a hint.
An exercise you have not started says "not implemented yet".

## Lessons

| notebook | you build | Colab |
| --- | --- | --- |
{rows}

Each lesson imports the building blocks of earlier ones from `llmc_core`, never from your notebooks,
so being stuck in one lesson never blocks the next.

## More

- [docs/notebook-api.md](docs/notebook-api.md): how notebooks are loaded and checked
- [docs/cuda-backend.md](docs/cuda-backend.md): CUDA kernels without a GPU
- [docs/trainer.md](docs/trainer.md): `llmc train`, the course's GPT-2 trainer
- [LICENSE](LICENSE): MIT
"""


def check_lessons(repo):
    """Every solution has a current lesson beside it, and no lesson holds a solution region."""
    problems, project = [], project_settings(repo)
    for solution in course_sources(repo):
        lesson_by_notebook(solution)  # a stray notebook name is an error, not a silent skip
        lesson = repo / "lessons" / solution.name
        expected = notebook_text(lesson_from_solution(read_notebook(solution), solution.name, project))
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
    course_sources(repo)
    if out == repo.resolve() or repo.resolve() in out.parents:
        raise ValueError(f"--out {out} is inside the course repository; release to a folder outside it")
    if out.exists() and not replace:
        raise ValueError(f"{out} exists; pass --replace to overwrite it, or choose a new folder")
    check_lessons(repo)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:  # name the folder the user chose, not the staging folder beside it
        raise OSError(e.errno, e.strerror, str(out.parent)) from e
    try:
        for name in RELEASED:
            source = repo / name
            if source.is_dir():
                shutil.copytree(source, staging / name, ignore=SKIPPED)
            elif source.is_file():
                shutil.copy2(source, staging / name)
        for name in INSTRUCTOR_ONLY:
            (staging / name).unlink(missing_ok=True)
        (staging / "README.md").write_text(student_readme(project_settings(repo)), encoding="utf-8")
        (staging / "Makefile").write_text(STUDENT_MAKEFILE, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p for p in out.rglob("*") if p.is_file())
