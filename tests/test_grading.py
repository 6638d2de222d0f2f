"""`llmc grade` on real course lessons (00_setup, 01_micrograd): broken input, hidden probes, reports.

One batch of students, each with a different kind of submission, is graded once (module fixture);
the grader's points are compared with `check()` run in-process on the same notebooks (the
independent oracle for well-behaved notebooks).
"""
import csv
import json
import os
import zipfile

import pytest

from llmc_core.checking import format_results, run_checks
from llmc_core.course import lesson_by_notebook, lesson_path, solution_path
from llmc_core.exercises import exercises, load_snapshots, probes_for
from llmc_core.grading.grade import grade, load_state, state_path
from llmc_core.grading.hidden import build_hidden
from llmc_core.grading.sandbox import Limits, detect_isolation
from llmc_core.notebook import load_notebook
from redteam.harness import base_notebook, edit_cell, with_cell, write_submission

LESSONS = ["00_setup", "01_micrograd"]
LIMITS = Limits(timeout=60, memory=3 << 30)
HIDDEN_PROBES = '''
import numpy as np
from llmc_core.exercises import probe


@probe("setup/dot", points=2, hint="Long vectors of random floats work like short ones.")
def fifty_random_floats(nb):
    rng = np.random.default_rng(11)
    return nb.dot(rng.standard_normal(50).tolist(), rng.standard_normal(50).tolist())
'''
DROPS_LAST = "return sum(a[i] * b[i] for i in range(len(a) - 1))"


def wrong_dot(notebook):
    """00_setup whose dot() forgets the last pair (but still checks lengths)."""
    return with_cell(notebook, f"_checked_dot = dot\ndef dot(a, b):\n    _checked_dot(a, b)\n    {DROPS_LAST}\n")


def submissions(root, hidden_snapshot):
    """{student: {lesson: notebook or None}} written under root; returns the folder."""
    solution = {n: base_notebook(n, "solution") for n in LESSONS}
    lesson = {n: base_notebook(n, "lesson") for n in LESSONS}
    folder = root / "submissions"
    plan = {
        "complete": solution,
        "starter": lesson,
        "wrong_dot": {"00_setup": wrong_dot(solution["00_setup"]), "01_micrograd": solution["01_micrograd"]},
        "syntax_error": {"01_micrograd": edit_cell(solution["01_micrograd"], "def zero_grad(values):",
                                                   "def zero_grad(values)")},
        "renamed": {"00_setup": edit_cell(solution["00_setup"], "def dot(a, b):", "def dot_product(a, b):")},
        "import_error": {"00_setup": with_cell(solution["00_setup"], "import not_a_module_xyz", "start")},
        "hidden_reader": {"00_setup": with_cell(solution["00_setup"], (
            f"try:\n    open({str(hidden_snapshot)!r}).read()\n    dot = lambda a, b: 777\n"
            "except OSError:\n    pass\n"))},
    }
    for student, notebooks in plan.items():
        for name, notebook in notebooks.items():
            write_submission(folder / student, name, notebook)
    (folder / "invalid_json").mkdir()
    (folder / "invalid_json" / "00_setup.ipynb").write_text('{"cells": [', encoding="utf-8")
    (folder / "huge").mkdir()
    with open(folder / "huge" / "00_setup.ipynb", "wb") as f:
        f.truncate(300 << 20)  # sparse: 300 MB on paper, nothing on disk
    (folder / "linked").mkdir()
    os.symlink(folder / "complete" / "00_setup.ipynb", folder / "linked" / "00_setup.ipynb")
    with zipfile.ZipFile(folder / "zipped.zip", "w") as archive:
        archive.write(solution_path("00_setup"), "my work/00_setup.ipynb")
        archive.write(lesson_path("01_micrograd"), "01_micrograd.ipynb")
    return folder


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    hidden = root / "hidden"
    hidden.mkdir()
    (hidden / "dot_extra.py").write_text(HIDDEN_PROBES, encoding="utf-8")
    build_hidden(hidden, load_notebook)
    folder = submissions(root, hidden / "snapshots" / "00_setup.json")
    out = root / "out"
    summary = grade(folder, out, lessons=LESSONS, jobs=2, limits=LIMITS, hidden_dir=hidden, progress=False)
    return {"root": root, "out": out, "folder": folder, "hidden": hidden, "summary": summary}


def gradebook(out):
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    return header, {row[0]: dict(zip(header, row)) for row in rows[1:]}


def state(batch, student, lesson):
    return load_state(state_path(batch["out"], student, lesson_by_notebook(lesson)))


def hidden_points():
    return 2  # the one probe in HIDDEN_PROBES


def test_gradebook_layout(batch):
    header, rows = gradebook(batch["out"])
    assert header[0] == "student" and header[-2:] == ["total", "issues"]
    for name in LESSONS:
        lesson = lesson_by_notebook(name)
        ids = list(exercises(probes_for(lesson)))
        assert header[header.index(ids[0]): header.index(ids[0]) + len(ids) + 1] == ids + [name]
    possible = {name: sum(p.points for p in probes_for(lesson_by_notebook(name))) for name in LESSONS}
    assert float(rows["max"]["00_setup"]) == possible["00_setup"] + hidden_points()
    assert float(rows["max"]["01_micrograd"]) == possible["01_micrograd"]
    assert float(rows["max"]["total"]) == sum(possible.values()) + hidden_points()
    assert list(rows)[0] == "max" and list(rows)[1:] == sorted(list(rows)[1:])


def test_complete_gets_full_marks_and_starter_none(batch):
    _, rows = gradebook(batch["out"])
    assert rows["complete"]["total"] == rows["max"]["total"]
    assert float(rows["starter"]["total"]) == 0
    assert "not implemented yet" in (batch["out"] / "feedback" / "starter.md").read_text()


@pytest.mark.parametrize("student,lesson", [("complete", "01_micrograd"), ("starter", "00_setup"),
                                            ("wrong_dot", "00_setup"), ("syntax_error", "01_micrograd"),
                                            ("renamed", "00_setup"), ("import_error", "00_setup")],
                         ids=["complete", "starter", "wrong_dot", "syntax_error", "renamed", "import_error"])
def test_points_match_check_in_process(batch, student, lesson):
    """Per exercise, the sandboxed grader and check() in this process agree (hidden points set apart)."""
    _, rows = gradebook(batch["out"])
    tests = json.loads((batch["out"] / "results" / f"{student}.json").read_text())["tests"]
    hidden = sum(t["score"] for t in tests if t["name"] == "setup/dot/fifty_random_floats")
    notebook = load_notebook(batch["folder"] / student / f"{lesson}.ipynb")
    results = run_checks(lesson_by_notebook(lesson).prefix, notebook)
    for exercise, rs in _by_exercise(results).items():
        got = float(rows[student][exercise]) - (hidden if exercise == "setup/dot" else 0)
        assert got == sum(r.points for r in rs), exercise


def _by_exercise(results):
    grouped = {}
    for r in results:
        grouped.setdefault(r.exercise, []).append(r)
    return grouped


def test_feedback_uses_check_messages(batch):
    """The public part of wrong_dot's feedback is, line for line, what check() prints for those probes."""
    notebook = load_notebook(batch["folder"] / "wrong_dot" / "00_setup.ipynb")
    printed = format_results(run_checks("setup/dot", notebook))
    feedback = (batch["out"] / "feedback" / "wrong_dot.md").read_text()
    for line in printed.splitlines()[1:-1]:  # the header and summary lines differ: hidden probes count there
        assert line in feedback


def test_hidden_failure_does_not_reveal_expected(batch):
    snapshot = load_snapshots(lesson_by_notebook("00_setup"), batch["hidden"] / "snapshots")
    expected = snapshot["setup/dot/fifty_random_floats"]["value"]
    feedback = (batch["out"] / "feedback" / "wrong_dot.md").read_text()
    assert "fifty_random_floats (hidden): failed" in feedback
    assert "not the expected value" in feedback
    assert f"{expected:.6g}" not in feedback and f"{expected:.4g}" not in feedback
    assert "All" not in feedback.split("## 00_setup")[1].split("## ")[0]


def test_hidden_probes_count_and_pass_on_the_solution(batch):
    _, rows = gradebook(batch["out"])
    assert float(rows["complete"]["setup/dot"]) == float(rows["max"]["setup/dot"])
    feedback = (batch["out"] / "feedback" / "complete.md").read_text()
    assert "All 4 public checks passed (and 1 hidden one)." in feedback
    results = json.loads((batch["out"] / "results" / "complete.json").read_text())
    hidden = [t for t in results["tests"] if t["name"] == "setup/dot/fifty_random_floats"]
    assert hidden[0]["visibility"] == "after_published" and hidden[0]["score"] == 2


@pytest.mark.skipif(detect_isolation().mode != "namespaces", reason="hiding folders needs mount namespaces")
def test_child_cannot_read_hidden_snapshots(batch):
    _, rows = gradebook(batch["out"])
    assert rows["hidden_reader"]["00_setup"] == rows["max"]["00_setup"]


def test_syntax_error_costs_only_its_exercise(batch):
    _, rows = gradebook(batch["out"])
    assert float(rows["syntax_error"]["micrograd/zero_grad"]) == 0
    assert rows["syntax_error"]["micrograd/backward"] == rows["max"]["micrograd/backward"]
    feedback = (batch["out"] / "feedback" / "syntax_error.md").read_text()
    assert "SyntaxError" in feedback and "defines no `zero_grad`" in feedback


def test_renamed_function_is_missing(batch):
    assert "defines no `dot`" in (batch["out"] / "feedback" / "renamed.md").read_text()
    assert state(batch, "renamed", "00_setup")["status"] == "graded"


def test_import_error_is_reported_and_the_rest_scores(batch):
    s = state(batch, "import_error", "00_setup")
    assert any("not_a_module_xyz" in e["error"] for e in s["cell_errors"])
    _, rows = gradebook(batch["out"])
    assert rows["import_error"]["00_setup"] == rows["max"]["00_setup"]


@pytest.mark.parametrize("student,status,words", [
    ("invalid_json", "unreadable", "JSON does not parse"),
    ("huge", "too large", "over the 50 MB limit"),
    ("linked", "unreadable", "a link"),
    ("syntax_error", "missing", "no 00_setup.ipynb in the submission"),
], ids=["invalid_json", "huge", "linked", "missing"])
def test_broken_input_costs_only_that_notebook(batch, student, status, words):
    s = state(batch, student, "00_setup")
    assert s["status"] == status and words in s["message"]
    assert words in (batch["out"] / "feedback" / f"{student}.md").read_text()
    _, rows = gradebook(batch["out"])
    assert float(rows[student]["00_setup"]) == 0
    assert f"00_setup: {status}" in rows[student]["issues"]


def test_zip_submission_graded_like_a_folder(batch):
    _, rows = gradebook(batch["out"])
    assert rows["zipped"]["00_setup"] == rows["max"]["00_setup"]
    assert float(rows["zipped"]["01_micrograd"]) == 0


def test_gradescope_results_format(batch):
    results = json.loads((batch["out"] / "results" / "wrong_dot.json").read_text())
    assert set(results) >= {"score", "tests", "execution_time", "output"}
    for t in results["tests"]:
        assert set(t) >= {"name", "score", "max_score", "output", "status"}
    assert results["score"] == sum(t["score"] for t in results["tests"])
    _, rows = gradebook(batch["out"])
    assert results["score"] == float(rows["wrong_dot"]["total"])


def test_rerun_reuses_every_result(batch):
    summary = grade(batch["folder"], batch["out"], lessons=LESSONS, jobs=2, limits=LIMITS,
                    hidden_dir=batch["hidden"], progress=False)
    assert summary["graded"] == 0 and summary["reused"] > 0


def test_student_option_regrades_one(batch):
    before = (batch["out"] / "gradebook.csv").read_text()
    summary = grade(batch["folder"], batch["out"], lessons=LESSONS, jobs=2, limits=LIMITS,
                    hidden_dir=batch["hidden"], student="complete", progress=False)
    assert summary["graded"] == 2 and summary["reused"] == 0
    assert (batch["out"] / "gradebook.csv").read_text() == before


def test_stale_hidden_snapshots_refused(tmp_path):
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "extra.py").write_text(HIDDEN_PROBES, encoding="utf-8")
    (tmp_path / "submissions" / "ann").mkdir(parents=True)
    with pytest.raises(ValueError, match="llmc build-hidden"):
        grade(tmp_path / "submissions", tmp_path / "out", lessons=["00_setup"], hidden_dir=tmp_path / "hidden",
              progress=False)
