"""`llmc build`: lessons are the solutions with solution regions stubbed out, and --check catches staleness."""
import json
import re
import shutil

import pytest

from llmc_core.build import BEGIN, COLAB_IDS, END, build, lesson_from_solution, project_settings, strip_solutions
from llmc_core.cli import main
from llmc_core.course import LESSONS, REPO_DIR, SOLUTIONS_DIR, solution_path
from llmc_core.notebook import cell_source, read_notebook

SOLUTIONS = sorted(SOLUTIONS_DIR.glob("*.ipynb"))


def test_strip_keeps_indentation_and_code_outside_regions():
    source = f"def f(x):\n    y = 2\n    {BEGIN}\n    return x * y\n    {END}\n\nprint(f)\n"
    assert strip_solutions(source) == ('def f(x):\n    y = 2\n    # YOUR CODE HERE\n'
                                       '    raise NotImplementedError("not implemented yet: '
                                       'replace this line with your code")\n'
                                       '\nprint(f)\n')


def test_strip_handles_several_regions():
    source = f"{BEGIN}\na = 1\n{END}\nb = 2\n  {BEGIN}\n  c = 3\n  {END}\n"
    stripped = strip_solutions(source)
    assert stripped.count("# YOUR CODE HERE") == 2 and "b = 2" in stripped
    assert "a = 1" not in stripped and "c = 3" not in stripped


@pytest.mark.parametrize("source,problem", [
    (f"{BEGIN}\nx = 1\n", "never closed"),
    (f"x = 1\n{END}\n", "without a"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "a second"),
], ids=["unclosed", "end-without-begin", "nested"])
def test_strip_rejects_broken_markers_naming_the_place(source, problem):
    with pytest.raises(ValueError, match=problem) as info:
        strip_solutions(source, "lesson.ipynb, cell 3")
    assert "lesson.ipynb, cell 3" in str(info.value)


def test_repository_lessons_and_snapshots_are_current():
    assert build(check_only=True, log=lambda *_: None) == []


def solution_only_lines(solution):
    """Lines that appear inside solution regions and nowhere else in the solution notebook."""
    inside, outside = set(), set()
    for cell in solution["cells"]:
        in_region = False
        for line in cell_source(cell).splitlines():
            marker = line.strip()
            if marker in (BEGIN, END):
                in_region = marker == BEGIN
                continue
            (inside if in_region else outside).add(marker)
    return {line for line in inside - outside if len(line) >= 8}


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_no_solution_code_leaks_into_the_lesson(path):
    solution = read_notebook(path)
    lesson_text = (REPO_DIR / "lessons" / path.name).read_text()
    lesson = json.loads(lesson_text)
    lesson_lines = {line.strip() for cell in lesson["cells"] for line in cell_source(cell).splitlines()}
    leaked = solution_only_lines(solution) & lesson_lines
    assert leaked == set()
    assert BEGIN not in lesson_text and END not in lesson_text
    regions = sum(cell_source(c).count(BEGIN) for c in solution["cells"])
    assert sum(cell_source(c).count("# YOUR CODE HERE") for c in lesson["cells"]) >= regions > 0


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_lesson_keeps_ids_tags_and_prose_and_has_no_outputs(path):
    solution = read_notebook(path)
    lesson = read_notebook(REPO_DIR / "lessons" / path.name)
    assert [c["id"] for c in lesson["cells"][:len(COLAB_IDS)]] == list(COLAB_IDS)
    lesson["cells"] = lesson["cells"][len(COLAB_IDS):]
    assert [c["id"] for c in lesson["cells"]] == [c["id"] for c in solution["cells"]]
    assert ([c["metadata"].get("tags") for c in lesson["cells"]]
            == [c["metadata"].get("tags") for c in solution["cells"]])
    prose = lambda nb: [cell_source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert prose(lesson) == prose(solution)
    code_cells = [c for c in lesson["cells"] + solution["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code_cells)


@pytest.fixture
def course_copy(tmp_path):
    """A checkout with lesson 00 only, built once."""
    (tmp_path / "solutions").mkdir()
    shutil.copy(SOLUTIONS_DIR / "00_setup.ipynb", tmp_path / "solutions")
    build(root=tmp_path, log=lambda *_: None)
    return tmp_path


def rewrite_solution(root, old, new):
    path = root / "solutions" / "00_setup.ipynb"
    text = path.read_text()
    assert json.dumps(old)[1:-1] in text
    path.write_text(text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))


def test_fresh_build_is_current(course_copy):
    assert build(root=course_copy, check_only=True, log=lambda *_: None) == []
    assert (course_copy / "lessons" / "00_setup.ipynb").exists()
    assert (course_copy / "llmc_core" / "snapshots" / "00_setup.json").exists()


def test_check_names_a_hand_edited_lesson(course_copy, capsys):
    lesson = course_copy / "lessons" / "00_setup.ipynb"
    lesson.write_text(lesson.read_text().replace("The warm-up", "The warmup"))
    assert main(["build", "--check", "--root", str(course_copy)]) == 1
    assert "lessons/00_setup.ipynb differs from what its solution generates" in capsys.readouterr().err


def test_check_names_stale_snapshots_when_the_solution_changes(course_copy, capsys):
    rewrite_solution(course_copy, "return sum(x * y for x, y in zip(a, b))",
                     "return sum(x * y for x, y in zip(a, b)) + 1")
    assert main(["build", "--check", "--root", str(course_copy)]) == 1
    err = capsys.readouterr().err
    assert "snapshots/00_setup.json" in err and "setup/dot/small_integers now returns something else" in err
    assert main(["build", "--root", str(course_copy)]) == 0
    assert main(["build", "--check", "--root", str(course_copy)]) == 0


def test_build_clears_outputs_a_solution_was_saved_with(course_copy):
    path = course_copy / "solutions" / "00_setup.ipynb"
    nb = json.loads(path.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    code["execution_count"] = 3
    path.write_text(json.dumps(nb))
    stale = build(root=course_copy, check_only=True, log=lambda *_: None)
    assert [(p.name, why) for p, why in stale] == [("00_setup.ipynb", "is stored with outputs or without cell ids")]
    build(root=course_copy, log=lambda *_: None)
    assert build(root=course_copy, check_only=True, log=lambda *_: None) == []


def test_lesson_from_solution_stubs_regions_inside_methods():
    solution = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"id": "a1", "cell_type": "code", "metadata": {"tags": ["x"]}, "execution_count": 1, "outputs": [],
         "source": f"class A:\n    def f(self):\n        {BEGIN}\n        return 42\n        {END}\n"}]}
    cell = lesson_from_solution(solution, "t.ipynb")["cells"][-1]
    assert "        # YOUR CODE HERE\n        raise NotImplementedError" in cell["source"]
    assert "42" not in cell["source"] and cell["metadata"]["tags"] == ["x"] and cell["execution_count"] is None


def test_build_without_course_sources_says_what_is_missing(tmp_path, capsys):
    assert main(["build", "--check", "--root", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "no course sources here" in err and "clone of the course repository" in err


def colab_setup_cell():
    lesson = lesson_from_solution(read_notebook(SOLUTIONS[0]), SOLUTIONS[0].name)
    (cell,) = [c for c in lesson["cells"] if c["id"] == COLAB_IDS[1]]
    return cell_source(cell)


@pytest.mark.parametrize("on_colab,installed,runs", [(True, False, True), (True, True, False), (False, False, False)],
                         ids=["colab", "colab-already-installed", "elsewhere"])
def test_colab_setup_cell_installs_the_matching_version_only_on_colab(monkeypatch, on_colab, installed, runs):
    import importlib.util
    import subprocess
    import sys
    import types
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append((command, kwargs)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if on_colab:  # Colab's kernel has imported google.colab before the first cell runs
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real_find_spec(name) if installed else None) if name == "llmc_core"
                        else real_find_spec(name, *a))
    exec(colab_setup_cell(), {})
    project = project_settings()
    if runs:
        assert calls == [([sys.executable, "-m", "pip", "install", "-q", project.pip_spec], {"check": True})]
        assert project.pip_spec == f"llmc @ git+{project.repository}@v{project.version}"
    else:
        assert calls == []


def test_lessons_open_in_colab_at_their_own_path():
    lesson = lesson_from_solution(read_notebook(SOLUTIONS[0]), SOLUTIONS[0].name)
    badge = cell_source(lesson["cells"][0])
    project = project_settings()
    assert (f"colab.research.google.com/github/{project.repository.removeprefix('https://github.com/')}"
            f"/blob/v{project.version}/lessons/{SOLUTIONS[0].name})") in badge


def test_exercise_cells_carry_nbgrader_metadata():
    lesson = lesson_from_solution(read_notebook(SOLUTIONS[0]), SOLUTIONS[0].name)
    marked = [c for c in lesson["cells"] if "nbgrader" in c["metadata"]]
    assert marked and all("# YOUR CODE HERE" in cell_source(c) for c in marked)
    assert all(c["metadata"]["nbgrader"]["solution"] and c["metadata"]["nbgrader"]["grade_id"] == c["id"]
               for c in marked)


def test_an_authors_jupytext_pairing_stays_out_of_the_lesson():
    solution = read_notebook(SOLUTIONS[0])
    solution["metadata"]["jupytext"] = {"formats": "ipynb,py:percent"}
    assert "jupytext" not in lesson_from_solution(solution, SOLUTIONS[0].name)["metadata"]


# --- modules generated from the solutions that later lessons import (Lesson.reference) ----------

@pytest.fixture
def reference_copy(tmp_path, monkeypatch):
    """A checkout with lesson 02 only (later lessons import its solution), built once; its probes are not run here."""
    monkeypatch.setattr("llmc_core.build.probes_for", lambda lesson: [])
    (tmp_path / "solutions").mkdir()
    shutil.copy(SOLUTIONS_DIR / "02_gpt2_numpy_forward.ipynb", tmp_path / "solutions")
    build(root=tmp_path, log=lambda *_: None)
    return tmp_path


def test_check_names_a_stale_generated_module(reference_copy, capsys):
    module = reference_copy / "llmc_core" / "references" / "gpt2_numpy_forward.py"
    text = module.read_text()
    assert text.startswith('"""Lesson 02\'s solution, solutions/02_gpt2_numpy_forward.ipynb, as a module')
    assert "\nGPT-2 in numpy: the forward pass.\nGenerated by `llmc build`" in text and "Do not edit this file" in text
    module.write_text(text.replace("def layernorm_forward(", "def layernorm_forward_edited("))
    assert main(["build", "--check", "--root", str(reference_copy)]) == 1
    assert "references/gpt2_numpy_forward.py differs from what its solution generates" in capsys.readouterr().err
    assert main(["build", "--root", str(reference_copy)]) == 0
    assert main(["build", "--check", "--root", str(reference_copy)]) == 0
    assert module.read_text() == text


def test_check_names_a_generated_module_whose_solution_changed(reference_copy, capsys):
    rewrite_solution_file(reference_copy / "solutions" / "02_gpt2_numpy_forward.ipynb",
                          "GELU_SCALE = math.sqrt(2.0 / math.pi)", "GELU_SCALE = math.sqrt(2 / math.pi)")
    assert main(["build", "--check", "--root", str(reference_copy)]) == 1
    assert "references/gpt2_numpy_forward.py differs" in capsys.readouterr().err


def test_check_names_a_leftover_file_among_the_generated_modules(reference_copy, capsys):
    (reference_copy / "llmc_core" / "references" / "02_gpt2_numpy_forward.ipynb").write_text("{}")
    assert main(["build", "--check", "--root", str(reference_copy)]) == 1
    assert "02_gpt2_numpy_forward.ipynb is generated from no solution notebook" in capsys.readouterr().err


def rewrite_solution_file(path, old, new):
    text = path.read_text()
    assert json.dumps(old)[1:-1] in text
    path.write_text(text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))


@pytest.mark.parametrize("lesson", [entry for entry in LESSONS if entry.reference], ids=lambda entry: entry.notebook)
def test_generated_module_holds_the_solutions_definitions_but_no_demo_or_check(lesson):
    """What the module defines, the loaded solution defines too (same names); checks, demos and markers are gone."""
    import importlib
    solution = read_notebook(solution_path(lesson.notebook))
    text = lesson.reference_path.read_text()
    module = importlib.import_module(lesson.reference_module)
    assert BEGIN not in text and END not in text and "\ncheck(" not in text
    code = {number: c for number, c in enumerate(solution["cells"], start=1) if c["cell_type"] == "code"}
    demo = {number for number, c in code.items() if "demo" in c["metadata"].get("tags", [])}
    checks = {number for number, c in code.items() if cell_source(c).startswith("check(")}
    kept = {int(n) for n in re.findall(r"^# cell (\d+)$", text, re.M)}
    assert demo and checks and kept == set(code) - demo - checks
    exercises = [cell_source(c).split("(")[0].removeprefix("def ") for c in solution["cells"]
                 if c["cell_type"] == "code" and BEGIN in cell_source(c) and cell_source(c).startswith("def ")]
    assert exercises and all(callable(getattr(module, name)) for name in exercises)
