"""A student release works the way its README says: `make course` sets it up, `make check` checks work.

One release and one virtual environment serve every test here (about a minute). The environment sees the
packages already installed for the tests through a .pth file, so nothing is downloaded; only the course
package is installed into it, from the release, by the release's own Makefile.
"""
import json
import os
import re
import shutil
import site
import subprocess
import sys

import pytest

from llmc_core.build import COLAB_IDS
from llmc_core.course import LESSONS, REPO_DIR, solution_path
from llmc_core.grading.release import release

pytestmark = pytest.mark.skipif(not shutil.which("make") or os.name == "nt", reason="needs make and a POSIX venv")
FIRST = LESSONS[0]


@pytest.fixture(scope="module", autouse=True)
def offline(offline_env):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in offline_env.items():
            patch.setenv(name, value)
        yield


def run(command, cwd, **kwargs):
    """Run a command as the student would, offline; pip finds only what is on this machine (torch pinned as CI does)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the venv itself provides
    env.update(PIP_CONSTRAINT=str(REPO_DIR / ".ci" / "constraints.txt"), MPLBACKEND="Agg", LLMC_SMALL="1")
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def student(tmp_path_factory, offline):
    """A release, set up with `make setup` (what `make course` runs before opening JupyterLab)."""
    folder = tmp_path_factory.mktemp("student") / "llmc"
    release(folder)
    # A venv whose site-packages points at this interpreter's: the dependencies are there, the course is not.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / ".venv")], check=True)
    (venv_site,) = (folder / ".venv" / "lib").glob("python3*/site-packages")
    (venv_site / "installed-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    result = run(["make", "setup", f"PYTHON={sys.executable}"], folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def test_readme_names_the_commands_the_makefile_has(student):
    readme = (student / "README.md").read_text()
    commands = set(re.findall(r"^make (\w+)", readme, re.M))
    assert commands == {"course", "check"}
    for command in commands:
        assert run(["make", "-n", command], student).returncode == 0
    assert "<this repository>" not in readme and "solutions/" not in readme and "make test" not in readme
    for lesson in LESSONS:
        assert f"`{lesson.notebook}`" in readme and f"lessons/{lesson.filename})" in readme  # with its Colab link


def test_every_relative_link_in_the_release_resolves(student):
    for page in [student / "README.md", *sorted((student / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links {target}, which the release lacks"


def test_license_and_course_package_come_from_the_release(student):
    assert "MIT License" in (student / "LICENSE").read_text()
    where = run([".venv/bin/python", "-c", "import llmc_core; print(llmc_core.__file__)"], student)
    assert where.stdout.strip() == str(student / "llmc_core" / "__init__.py")
    assert ((student / ".venv" / "bin" / "jupyter").exists()
            or run([".venv/bin/python", "-m", "jupyterlab", "--version"], student).returncode == 0)


def solve_first_exercise(lesson_file):
    """Do what a learner does in lesson 00: write the exercise's code where the stub is."""
    lesson = json.loads(lesson_file.read_text())
    solution = {c["id"]: c for c in json.loads(solution_path(FIRST.notebook).read_text())["cells"]}
    for cell in lesson["cells"]:
        if "nbgrader" in cell["metadata"]:
            cell["source"] = solution[cell["id"]]["source"]
    lesson_file.write_text(json.dumps(lesson))


def test_first_lesson_runs_and_checks_pass_once_solved(student):
    lesson = student / "lessons" / FIRST.filename
    before = run([".venv/bin/llmc", "check", str(lesson)], student)
    assert before.returncode == 1 and "not implemented" in before.stdout
    solve_first_exercise(lesson)
    execute = ("import json, nbformat, sys; from nbclient import NotebookClient; nb = nbformat.read(sys.argv[1], 4); "
               "NotebookClient(nb, kernel_name='python3', timeout=300).execute(); "
               "print(json.dumps([(c.source, ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '') "
               "for o in c.outputs)) for c in nb.cells if 'outputs' in c]))")
    executed = run([".venv/bin/python", "-c", execute, str(lesson)], student)
    assert executed.returncode == 0, executed.stderr[-2000:]
    checks = [text for source, text in json.loads(executed.stdout) if source.startswith("check(")]
    assert checks and all("✓" in text and "✗" not in text for text in checks), checks
    assert run([".venv/bin/llmc", "check", str(lesson)], student).returncode == 0
    progress = run(["make", "check"], student)
    assert progress.returncode == 0 and re.search(rf"{FIRST.notebook}\s+1/1", progress.stdout), progress.stdout


@pytest.mark.parametrize("command", [["build", "--check"], ["release", "--out", "elsewhere"]], ids=["build", "release"])
def test_commands_that_need_the_sources_say_so(student, command):
    result = run([".venv/bin/llmc", *command], student)
    assert result.returncode != 0
    assert "no course sources here" in result.stderr and "clone of the course repository" in result.stderr
    assert "Traceback" not in result.stderr and not (student / "elsewhere").exists()


def test_lessons_carry_the_colab_cells(student):
    lesson = json.loads((student / "lessons" / FIRST.filename).read_text())
    assert [c["id"] for c in lesson["cells"][:2]] == list(COLAB_IDS)
