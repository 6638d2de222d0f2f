"""`llmc release` (what students receive), the Gradescope autograder zip and its runner, the CLI."""
import json
import shutil
import zipfile

import pytest

from llmc_core.build import BEGIN
from llmc_core.course import REPO_DIR, solution_path
from llmc_core.grading.cli import parse_size
from llmc_core.grading.grade import grade
from llmc_core.grading.gradescope import build_autograder_zip, run
from llmc_core.grading.release import release
from llmc_core.grading.submissions import safe_name


@pytest.fixture
def small_repo(tmp_path):
    """A course checkout with lesson 00 only: its solution, its generated lesson and the package files."""
    repo = tmp_path / "repo"
    for folder in ("solutions", "lessons"):
        (repo / folder).mkdir(parents=True)
        shutil.copy(REPO_DIR / folder / "00_setup.ipynb", repo / folder)
    (repo / "llmc_core" / "snapshots").mkdir(parents=True)
    (repo / "llmc_core" / "__init__.py").write_text('"""package"""\n')
    (repo / "llmc_core" / "snapshots" / "00_setup.json").write_text("{}\n")
    shutil.copy(REPO_DIR / "pyproject.toml", repo)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("")
    return repo


def test_release_holds_lessons_and_no_solutions(small_repo, tmp_path):
    files = release(tmp_path / "release", repo=small_repo)
    names = {str(p.relative_to(tmp_path / "release")) for p in files}
    assert "lessons/00_setup.ipynb" in names and "llmc_core/snapshots/00_setup.json" in names
    assert not any(n.startswith(("solutions", "tests")) for n in names)
    assert all(BEGIN not in p.read_text(errors="replace") for p in files if p.suffix == ".ipynb")


def test_release_writes_a_student_readme_makefile_and_license(small_repo, tmp_path):
    shutil.copy(REPO_DIR / "LICENSE", small_repo)
    release(tmp_path / "release", repo=small_repo)
    readme = (tmp_path / "release" / "README.md").read_text()
    assert "make course" in readme and "make check" in readme and "colab.research.google.com" in readme
    assert "check:" in (tmp_path / "release" / "Makefile").read_text()
    assert "MIT License" in (tmp_path / "release" / "LICENSE").read_text()


def test_release_without_course_sources_says_what_is_missing(small_repo, tmp_path):
    shutil.rmtree(small_repo / "solutions")
    with pytest.raises(FileNotFoundError, match="no course sources here.*clone of the course repository"):
        release(tmp_path / "release", repo=small_repo)
    assert not (tmp_path / "release").exists()


def test_release_refuses_stale_lessons(small_repo, tmp_path):
    shutil.copy(small_repo / "solutions" / "00_setup.ipynb", small_repo / "lessons" / "00_setup.ipynb")
    with pytest.raises(ValueError, match="llmc build"):
        release(tmp_path / "release", repo=small_repo)
    assert not (tmp_path / "release").exists()


def test_release_refuses_to_overwrite(small_repo, tmp_path):
    (tmp_path / "release").mkdir()
    with pytest.raises(ValueError, match="--replace"):
        release(tmp_path / "release", repo=small_repo)
    assert release(tmp_path / "release", replace=True, repo=small_repo)


def test_gradescope_zip_grades_one_submission(tmp_path):
    zip_path = tmp_path / "autograder.zip"
    build_autograder_zip(zip_path, lessons=["00_setup"])
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        assert {"setup.sh", "run_autograder", "grading.json", "llmc/pyproject.toml",
                "llmc/llmc_core/snapshots/00_setup.json"} <= names
        assert archive.getinfo("run_autograder").external_attr >> 16 & 0o111
        archive.extractall(root / "source")
    assert "llmc_core.grading.gradescope" in (root / "source" / "run_autograder").read_text()
    (root / "submission").mkdir()
    shutil.copy(solution_path("00_setup"), root / "submission")
    run(root)
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0


def test_gradescope_always_writes_results(tmp_path):
    (tmp_path / "source").mkdir()  # no grading.json: the runner itself fails
    run(tmp_path)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["score"] == 0 and "could not grade" in results["output"]


@pytest.mark.parametrize("text,expected", [("4G", 4 << 30), ("512M", 512 << 20), ("1.5g", 3 << 29),
                                           ("64k", 64 << 10), ("1000", 1000), ("2GiB", 2 << 30)],
                         ids=["4G", "512M", "1.5g", "64k", "bytes", "GiB"])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_nonsense():
    with pytest.raises(ValueError, match="4G"):
        parse_size("lots")


def test_llmc_cli_has_grading_commands():
    import argparse

    from llmc_core.cli import COMMAND_MODULES
    from llmc_core.grading.cli import register

    assert "llmc_core.grading.cli" in COMMAND_MODULES
    parser = argparse.ArgumentParser(prog="llmc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["grade", "subs", "--out", "grades", "--memory", "2G",
                              "--lessons", "00_setup,01_micrograd"])
    assert args.memory == 2 << 30 and args.lessons == ["00_setup", "01_micrograd"] and args.jobs >= 1
    for command in (["build-hidden", "dir"], ["release", "--out", "x"], ["gradescope", "--out", "a.zip"]):
        assert callable(parser.parse_args(command).run)


@pytest.mark.parametrize("name,safe", [("ann", "ann"), ("Ann Lee", "Ann_Lee"), ("=cmd()", "_cmd__"), ("+1", "_+1"),
                                       ("max", "_max"), ("ünal", "ünal")],
                         ids=["plain", "space", "equals", "formula", "reserved", "unicode"])
def test_safe_student_names(name, safe):
    assert safe_name(name) == safe


def test_out_inside_submissions_refused(tmp_path):
    (tmp_path / "ann").mkdir()
    with pytest.raises(ValueError, match="outside the submissions"):
        grade(tmp_path, tmp_path / "grades", lessons=["00_setup"], progress=False)


def test_gradescope_protect_leaves_only_earlier_references_readable(tmp_path, monkeypatch):
    """Without namespaces, lesson 03's child must read lesson 02's module, not lesson 04's nor any bytecode."""
    from llmc_core.grading import gradescope

    references = tmp_path / "references"
    (references / "__pycache__").mkdir(parents=True)
    for name in ("gpt2_numpy_forward.py", "bpe_tokenizer.py", "__pycache__/gpt2_numpy_forward.cpython-311.pyc"):
        (references / name).write_text("", encoding="utf-8")
        (references / name).chmod(0o644)
    monkeypatch.setattr(gradescope, "REFERENCE_DIR", references)
    monkeypatch.setattr(gradescope, "SNAPSHOT_DIR", tmp_path / "no_snapshots_here")  # leave the real ones alone
    gradescope.protect(tmp_path / "autograder", None, ["03_gpt2_numpy_backward"])
    modes = {p.name: p.stat().st_mode & 0o777 for p in references.iterdir()}
    assert modes == {"gpt2_numpy_forward.py": 0o644, "bpe_tokenizer.py": 0o600, "__pycache__": 0o700}


def test_gradescope_protect_makes_the_bytecode_folder_before_anything_writes_there(tmp_path, monkeypatch):
    """A folder the grader's own imports create later would be world-readable; protect makes it first, closed."""
    from llmc_core.grading import gradescope

    references = tmp_path / "references"
    references.mkdir()
    (references / "gpt2_numpy_forward.py").write_text("", encoding="utf-8")
    monkeypatch.setattr(gradescope, "REFERENCE_DIR", references)
    monkeypatch.setattr(gradescope, "SNAPSHOT_DIR", tmp_path / "no_snapshots_here")
    gradescope.protect(tmp_path / "autograder", None, ["02_gpt2_numpy_forward"])
    assert (references / "__pycache__").stat().st_mode & 0o777 == 0o700
    assert (references / "gpt2_numpy_forward.py").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("notebook,earlier", [
    ("02_gpt2_numpy_forward", []), ("03_gpt2_numpy_backward", ["02_gpt2_numpy_forward"]),
    ("04_bpe_tokenizer", []), ("07_cuda_kernels_fast", ["06_cuda_kernels"]), ("08_fast_trainer", ["04_bpe_tokenizer"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_grading_child_reads_the_modules_of_earlier_solutions_it_imports(notebook, earlier):
    from llmc_core.course import lesson_by_notebook
    from llmc_core.grading.lesson_needs import earlier_solutions
    expected = [lesson_by_notebook(name).reference_path for name in earlier]
    assert earlier_solutions(lesson_by_notebook(notebook)) == expected


def test_solution_users_import_the_reference_module_they_name():
    """The grader's table of which course module imports which lesson's solution matches the imports."""
    import importlib
    import inspect

    from llmc_core.course import lesson_by_notebook
    from llmc_core.grading.lesson_needs import SOLUTION_USERS
    for name in ("llmc_core.numpy_gpt2", "llmc_core.bpe", "llmc_core.kernels"):
        module, reference = importlib.import_module(name), lesson_by_notebook(SOLUTION_USERS[name]).reference_module
        origins = {getattr(module, n).__module__ for n in module.__all__ if callable(getattr(module, n))}
        assert origins == {reference}, name
    # train_tokenizer imports llmc_core.bpe where it runs (so that importing the tokenizer imports no solution)
    assert "from llmc_core import bpe" in inspect.getsource(importlib.import_module("llmc_core.tokenizer"))
    assert SOLUTION_USERS["llmc_core.tokenizer"] == SOLUTION_USERS["llmc_core.bpe"]
