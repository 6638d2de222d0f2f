"""check(), run_probe/judge, and the `llmc check` / `llmc progress` commands."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from llmc_core import check, load_notebook
from llmc_core.checking import format_results, run_checks
from llmc_core.course import LESSONS_DIR, SOLUTIONS_DIR
from llmc_core.exercises import Outcome, Probe, judge, probe, raised, run_probe


def wrong_dot(a, b):
    return sum(x * y for x, y in zip(a[:-1], b[:-1]))


def right_dot(a, b):
    if len(a) != len(b):
        raise ValueError("lengths differ")
    return sum(x * y for x, y in zip(a, b))


def test_format_results_prints_a_mark_per_probe_and_a_summary():
    results = run_checks("setup/dot", {"dot": right_dot})
    text = format_results(results)
    assert "setup/dot  (4/4 points)" in text and text.count("✓") == 4 and "All 4 checks passed." in text


def test_check_reads_the_callers_globals(capsys):
    namespace = {"dot": wrong_dot, "check": check}
    exec("check('setup/dot')", namespace)
    out = capsys.readouterr().out
    assert "✗ small_integers: failed" in out and "result: expected 32, got 14" in out
    assert "hint: The dot product pairs up" in out and "Multiply matching elements" not in out  # a nudge first
    assert 'more direct hints: check("setup/dot", hint=2)' in out
    exec("check('setup/dot', hint=2)", namespace)
    assert "hint 2: Multiply matching elements" in capsys.readouterr().out


def test_an_untouched_exercise_reads_not_implemented():
    def stub(a, b):
        raise NotImplementedError("not implemented yet: replace this line with your code")
    text = format_results(run_checks("setup/dot", {"dot": stub}))
    assert "not implemented yet" in text and "Traceback" not in text and "0 of 4 checks passed" in text


def test_unknown_exercise_lists_the_real_ones():
    with pytest.raises(ValueError, match="the exercises of lesson 00_setup are: setup/dot"):
        run_checks("setup/dott", {})
    with pytest.raises(ValueError, match="lesson prefixes are setup, micrograd"):
        run_checks("nosuch/thing", {})


def probe_of(func, **kw):
    return Probe("setup/demo", func.__name__, func, **kw)


def test_run_probe_classifies_what_happened():
    def returns(nb):
        return nb.f(2)
    assert run_probe(probe_of(returns), {"f": lambda x: np.float32(x) * 2}) == Outcome("value", 4.0)
    assert run_probe(probe_of(returns), {}).kind == "missing"
    divides_by_zero = run_probe(probe_of(returns), {"f": lambda x: 1 / 0})
    assert divides_by_zero.message.startswith("ZeroDivisionError: division by zero (in <lambda>()")
    returns_object = run_probe(probe_of(returns), {"f": lambda x: object()})
    assert returns_object.message.startswith("the code returned something unexpected")

    def exits(x):
        sys.exit(1)
    assert run_probe(probe_of(returns), {"f": exits}).kind == "error"


def test_errors_point_at_the_notebook_cell_and_line(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("def dot(a, b):\n    total = 0\n    return total / 0")]
    nbformat.write(nb, tmp_path / "00_setup.ipynb")
    results = run_checks("setup/dot", load_notebook(tmp_path / "00_setup.ipynb"))
    assert results[0].status == "error"
    assert results[0].message == "ZeroDivisionError: division by zero (in dot(), cell 2, line 3: `return total / 0`)"


def test_raised_lets_not_implemented_through():
    def stub():
        raise NotImplementedError
    with pytest.raises(NotImplementedError):
        raised(stub)
    assert raised(int, "x") == "ValueError" and raised(int, "1") == "no error"


def test_judge_uses_the_snapshot_tolerance_and_gives_partial_credit():
    p = Probe("setup/demo", "value", None, points=2, hint="look here")
    snapshot = {"value": 1.0, "rtol": 1e-3, "atol": 0.0}
    assert judge(p, Outcome("value", 1.0005), snapshot).points == 2
    failed = judge(p, Outcome("value", 1.1), snapshot)
    assert (failed.status, failed.points, failed.max_points, failed.hint) == ("failed", 0, 2, "look here")
    assert judge(p, Outcome("value", 1.0), None).status == "error"


def test_outcome_json_accepts_only_plain_data():
    outcome = Outcome("value", {"a": np.arange(3.0)})
    back = Outcome.from_json(json.loads(json.dumps(outcome.to_json())))
    np.testing.assert_array_equal(back.value["a"], np.arange(3.0))
    with pytest.raises(ValueError):
        Outcome.from_json({"kind": "passed"})
    with pytest.raises(ValueError):
        Outcome.from_json({"kind": "value", "value": {"__ndarray__": [], "dtype": "object", "shape": [0]}})


def test_probe_ids_must_name_lesson_and_exercise():
    with pytest.raises(ValueError, match="must look like"):
        probe("NoSlash")
    with pytest.raises(ValueError, match="points must be positive"):
        probe("setup/x", points=0)


def llmc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "llmc_core.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_llmc_check_on_the_untouched_lesson_and_the_solution():
    untouched = llmc("check", str(LESSONS_DIR / "00_setup.ipynb"))
    assert untouched.returncode == 1 and "· setup/dot" in untouched.stdout and "not implemented" in untouched.stdout
    solved = llmc("check", str(SOLUTIONS_DIR / "00_setup.ipynb"))
    assert solved.returncode == 0 and "All 4 checks passed." in solved.stdout


def test_llmc_check_names_a_wrong_exercise_and_its_first_difference(tmp_path):
    text = (SOLUTIONS_DIR / "00_setup.ipynb").read_text()
    wrong = text.replace("for x, y in zip(a, b))", "for x, y in zip(a[1:], b[1:]))")
    assert wrong != text
    (tmp_path / "00_setup.ipynb").write_text(wrong)
    result = llmc("check", str(tmp_path / "00_setup.ipynb"))
    assert result.returncode == 1
    assert "✗ setup/dot" in result.stdout and "small_integers: failed: result: expected 32, got 28" in result.stdout


def test_llmc_check_refuses_a_file_that_is_not_a_lesson(tmp_path):
    shutil.copy(SOLUTIONS_DIR / "00_setup.ipynb", tmp_path / "homework.ipynb")
    result = llmc("check", str(tmp_path / "homework.ipynb"))
    assert result.returncode == 2 and "'homework.ipynb' is not a lesson notebook" in result.stderr


def test_llmc_progress_tables_every_lesson_found(tmp_path):
    shutil.copy(SOLUTIONS_DIR / "00_setup.ipynb", tmp_path)
    result = llmc("progress", str(tmp_path))
    assert result.returncode == 0
    assert "00_setup" in result.stdout and "1/1" in result.stdout and "4/4" in result.stdout


def test_llmc_check_on_lesson_01_untouched_wrong_and_solved(tmp_path):
    untouched = llmc("check", str(LESSONS_DIR / "01_micrograd.ipynb"))
    exercise_lines = [line for line in untouched.stdout.splitlines() if line.startswith("  ") and "micrograd/" in line]
    assert untouched.returncode == 1 and len(exercise_lines) >= 8
    assert all("not implemented" in line for line in exercise_lines) and "Traceback" not in untouched.stdout

    text = (SOLUTIONS_DIR / "01_micrograd.ipynb").read_text()
    wrong = text.replace("self.grad += (1 - t**2) * out.grad", "self.grad += (1 - t) * out.grad")
    assert wrong != text
    (tmp_path / "01_micrograd.ipynb").write_text(wrong)
    result = llmc("check", str(tmp_path / "01_micrograd.ipynb"))
    assert result.returncode == 1
    assert "✗ micrograd/tanh" in result.stdout
    assert "expected" in result.stdout.split("micrograd/tanh", 1)[1].splitlines()[1]

    solved = llmc("check", str(SOLUTIONS_DIR / "01_micrograd.ipynb"))
    assert solved.returncode == 0 and "checks passed." in solved.stdout and "✗" not in solved.stdout
