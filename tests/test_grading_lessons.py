"""`llmc grade` on every lesson of the course: the solution earns every point, the untouched lesson none.

Two students, `solution` (each solution notebook) and `lesson` (each generated lesson), are graded in
one batch under the strongest sandbox this machine allows and the default limits. A lesson joins as
soon as its solution, probes and snapshots exist. The grader's points per exercise are compared with
check() run in this process on the same notebooks (the oracle for well-behaved notebooks).

Lesson 03 builds on lesson 02's solution (its module in llmc_core/references/), which its grading child
may read; a third student, `thief`, tries to load lesson 03's own solution from the checkout and to
open lesson 02's copy for writing (namespaces only).
"""
import csv
import shutil

import pytest

from llmc_core.checking import exercise_points, run_checks
from llmc_core.course import LESSONS, lesson_by_notebook, lesson_path, solution_path
from llmc_core.exercises import load_snapshots, probes_for
from llmc_core.grading.grade import grade, load_state, state_path
from llmc_core.grading.sandbox import Limits, detect_isolation
from llmc_core.notebook import load_notebook
from redteam.harness import base_notebook, with_cell, write_submission

GRADED = [lesson.notebook for lesson in LESSONS
          if solution_path(lesson.notebook).exists() and lesson_path(lesson.notebook).exists()
          and probes_for(lesson) and load_snapshots(lesson)]
STUDENTS = {"solution": solution_path, "lesson": lesson_path}
BUILDS_ON = "03_gpt2_numpy_backward"  # imports 02_gpt2_numpy_forward's solution through llmc_core.numpy_gpt2
EARLIER = lesson_by_notebook("02_gpt2_numpy_forward").reference_path
STEAL = f"""
from llmc_core import load_notebook
from llmc_core.course import solution_path
try:
    _stolen = load_notebook(solution_path("{BUILDS_ON}"))
    for _name in dir(_stolen):
        if not _name.startswith("_"):
            globals()[_name] = getattr(_stolen, _name)
except Exception as e:
    print("no solution to steal:", e)
"""
# Opening for appending, then closing, asks for write access without changing the file.
TAMPER = f"""
try:
    open({str(EARLIER)!r}, "a").close()
    print("could open the earlier solution for writing")
except OSError as e:
    print("cannot change the earlier solution:", e)
"""
WITH_THIEF = BUILDS_ON in GRADED and EARLIER.exists() and detect_isolation().mode == "namespaces"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("every_lesson")
    for student, path_of in STUDENTS.items():
        (root / "submissions" / student).mkdir(parents=True)
        for name in GRADED:
            shutil.copy(path_of(name), root / "submissions" / student / f"{name}.ipynb")
    if WITH_THIEF:
        thief = with_cell(base_notebook(BUILDS_ON, "lesson"), STEAL + TAMPER)
        write_submission(root / "submissions" / "thief", BUILDS_ON, thief)
    summary = grade(root / "submissions", root / "out", lessons=GRADED, jobs=2, limits=Limits(), progress=False)
    assert summary["graded"] == len(GRADED) * len(STUDENTS) + WITH_THIEF
    with open(root / "out" / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    return {"root": root, "out": root / "out", "rows": {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}}


def graded_state(batch, student, name):
    state = load_state(state_path(batch["out"], student, lesson_by_notebook(name)))
    assert state["status"] == "graded", (state["message"], state["log"][-3000:])
    assert state["cell_errors"] == [], state["cell_errors"]
    return state


@pytest.mark.parametrize("name", GRADED)
def test_solution_earns_every_point(batch, name):
    state = graded_state(batch, "solution", name)
    failed = {pid: o for pid, o in state["outcomes"].items() if o["kind"] != "value"}
    assert failed == {}
    assert set(state["outcomes"]) == {p.id for p in probes_for(lesson_by_notebook(name))}
    rows = batch["rows"]
    assert float(rows["solution"][name]) == float(rows["max"][name]) > 0


@pytest.mark.parametrize("name", GRADED)
def test_untouched_lesson_earns_nothing(batch, name):
    state = graded_state(batch, "lesson", name)
    assert {o["kind"] for o in state["outcomes"].values()} == {"not_implemented"}
    assert set(state["outcomes"]) == {p.id for p in probes_for(lesson_by_notebook(name))}
    assert float(batch["rows"]["lesson"][name]) == 0


@pytest.mark.parametrize("student", list(STUDENTS))
@pytest.mark.parametrize("name", GRADED)
def test_points_match_check_in_process(batch, name, student, monkeypatch):
    """Per exercise, the sandboxed grader gives what check() gives in this process on the same notebook."""
    monkeypatch.setenv("LLMC_SMALL", "1")  # as in the grading child
    lesson = lesson_by_notebook(name)
    notebook = load_notebook(batch["root"] / "submissions" / student / lesson.filename)
    in_process = exercise_points(run_checks(lesson.prefix, notebook))
    graded = {exercise: float(batch["rows"][student][exercise]) for exercise in in_process}
    assert graded == {exercise: float(earned) for exercise, (earned, _) in in_process.items()}
    possible = {exercise: float(batch["rows"]["max"][exercise]) for exercise in in_process}
    assert possible == {exercise: float(total) for exercise, (_, total) in in_process.items()}


@pytest.mark.skipif(not WITH_THIEF, reason=f"needs {BUILDS_ON} and the namespaces sandbox (root and unshare)")
def test_later_lesson_reads_earlier_solution_but_not_its_own(batch, monkeypatch):
    state = graded_state(batch, "thief", BUILDS_ON)
    assert "no solution to steal" in state["log"] and "cannot change the earlier solution" in state["log"]
    assert "could open the earlier solution for writing" not in state["log"]
    assert {o["kind"] for o in state["outcomes"].values()} == {"not_implemented"}
    assert float(batch["rows"]["thief"][BUILDS_ON]) == 0
    # Negative control: in this process, without the sandbox, the theft earns every point.
    monkeypatch.setenv("LLMC_SMALL", "1")
    lesson = lesson_by_notebook(BUILDS_ON)
    path = write_submission(batch["root"] / "control", BUILDS_ON, with_cell(base_notebook(BUILDS_ON, "lesson"), STEAL))
    results = run_checks(lesson.prefix, load_notebook(path))
    assert all(r.status == "passed" for r in results)
