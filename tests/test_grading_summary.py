"""`grades/summary.md` and `summary.png`: the class overview, checked on a gradebook whose numbers are worked
out by hand."""
import shutil

import pytest

from llmc_core.course import solution_path
from llmc_core.exercises import ProbeResult
from llmc_core.grading.grade import grade
from llmc_core.grading.summary import (
    common_failures,
    exercise_rows,
    histogram,
    lesson_scores,
    slowest_notebooks,
    summary_markdown,
    write_summary,
)


def result(probe, status, max_points, hint=""):
    exercise, name = probe.rsplit("/", 1)
    return ProbeResult(probe, exercise, name, status, max_points if status == "passed" else 0, max_points, "", hint)


def lesson_a(add_1, add_2, mul):
    return [result("a/add/one", add_1, 1), result("a/add/two", add_2, 1),
            result("a/mul/sign", mul, 2, "check the sign")]


def state(status="graded", wall_s=1.0):
    return {"status": status, "wall_s": wall_s, "message": "", "cell_errors": []}


@pytest.fixture
def graded():
    """Four students, two lessons; dee submitted nothing for lesson A, bob has not started lesson B."""
    missing = ["missing"] * 3
    return [
        ("ann", {"A": lesson_a("passed", "passed", "passed"), "B": [result("b/dot/x", "passed", 4)]},
         {"A": state(wall_s=3.0), "B": state(wall_s=1.0)}),
        ("bob", {"A": lesson_a("passed", "failed", "failed"), "B": [result("b/dot/x", "not implemented", 4)]},
         {"A": state(wall_s=12.5), "B": state(wall_s=0.5)}),
        ("cy", {"A": lesson_a("passed", "passed", "failed"), "B": [result("b/dot/x", "passed", 4)]},
         {"A": state(status="timeout", wall_s=60.0), "B": state(wall_s=2.0)}),
        ("dee", {"A": lesson_a(*missing), "B": [result("b/dot/x", "passed", 4)]},
         {"A": state(status="missing", wall_s=0.0), "B": state(wall_s=1.5)}),
    ]


def test_exercise_pass_rates_and_mean_points(graded):
    assert exercise_rows(graded) == [("a/add", 2, 0.5, 1.25), ("a/mul", 2, 0.25, 0.5), ("b/dot", 4, 0.75, 3.0)]


def test_lesson_score_distribution(graded):
    assert lesson_scores(graded) == {"A": (4, [4, 1, 2, 0]), "B": (4, [4, 0, 4, 4])}
    assert histogram([4, 1, 2, 0], 4) == [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]  # 0%, 25%, 50%, 100% (the top bin holds 100%)


def test_slowest_notebooks_first(graded):
    assert slowest_notebooks(graded, n=3) == [(60.0, "cy", "A", "timeout"), (12.5, "bob", "A", "graded"),
                                              (3.0, "ann", "A", "graded")]


def test_common_failures_count_wrong_answers_among_students_who_submitted(graded):
    # a/mul/sign: bob and cy failed it, of the three who submitted lesson A (dee did not); not-implemented is no failure
    assert common_failures(graded) == [("a/mul/sign", 2, 3, "check the sign")]


def test_summary_files(graded, tmp_path):
    write_summary(tmp_path, graded)
    text = (tmp_path / "summary.md").read_text()
    assert "| `a/add` | 2 | 50% | 1.25 |" in text and "| `a/mul/sign` | 2/3 | check the sign |" in text
    assert "| `A` | 4 | 1.75 | 1.50 | 0.00 | 4.00 | 1 | 0 | 1 | 0 | 0 | 1 | 0 | 0 | 0 | 1 |" in text
    assert "| 60.0 | cy | `A` | timeout |" in text
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_common_failure_is_said_so(graded):
    assert "No check was failed by more than 50%" in summary_markdown(graded[:1])


def test_grade_writes_the_summary_beside_the_gradebook(tmp_path):
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    shutil.copy(solution_path("00_setup"), tmp_path / "subs" / "ann")
    grade(tmp_path / "subs", tmp_path / "grades", lessons=["00_setup"], jobs=1, progress=False)
    text = (tmp_path / "grades" / "summary.md").read_text()
    assert "# Class summary: 1 students" in text and "| `setup/dot` | 4 | 100% | 4.00 |" in text
    assert (tmp_path / "grades" / "summary.png").exists()
