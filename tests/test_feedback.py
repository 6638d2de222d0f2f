"""What check() and the grader's feedback say: dependencies, data in mismatches, hint tiers, plurals, HTML,
skipped cells."""
import json

import numpy as np
import pytest

from llmc_core import checking, load_notebook
from llmc_core.checking import format_html, format_results, mark_blocked, run_checks, summary
from llmc_core.course import solution_path
from llmc_core.exercises import Outcome, Probe, ProbeResult, check_dependencies, judge
from llmc_core.notebook import guard_unfinished_cells
from llmc_core.plain import compare, named_index


def make_probe(exercise, name, uses=(), hint="", **kw):
    return Probe(exercise, name, lambda nb: None, hint=hint, uses=uses, **kw)


def judged(probe, got, expected):
    return judge(probe, Outcome("value", got), {"value": expected, "rtol": 1e-6, "atol": 0.0})


# --- dependencies ------------------------------------------------------------------------------

def test_a_failure_caused_by_a_failing_exercise_says_to_fix_that_one_first():
    mul = make_probe("x/mul", "two_values", hint="times out.grad")
    back = [make_probe("x/backward", n, uses=("x/mul",), hint="reverse order") for n in ("a", "b")]
    alone = make_probe("x/backward", "leaf_only", hint="seed the grad")  # uses no other exercise
    probes = [mul] + back + [alone]
    results = mark_blocked(probes, [judged(mul, 1.0, 2.0), judged(back[0], 3.0, 4.0), judged(back[1], 5.0, 5.0),
                                    judged(alone, 0.0, 1.0)])
    assert results[1].blocked_by == ["x/mul"] and results[1].hint == "" and results[1].points == 0
    assert results[2].status == "passed" and results[2].points == 1  # points stay per probe
    assert results[3].blocked_by == [] and results[3].hint == "seed the grad"
    text = format_results(results)
    backward = text.split("x/backward")[1]
    assert "✗ a: fix `x/mul` first: this check uses it, and it fails its own checks\n" in backward
    assert "reverse order" not in backward and "expected 4" not in backward
    assert "✗ leaf_only: failed\n      result: expected 1, got 0" in backward and "hint: seed the grad" in backward
    assert "hint: times out.grad" in text.split("x/backward")[0]  # the root cause keeps its own hint


def test_an_exercise_failing_only_because_of_a_dependency_gets_one_line():
    mul = make_probe("x/mul", "m")
    back = [make_probe("x/backward", n, uses=("x/mul",)) for n in "abc"]
    results = mark_blocked([mul] + back, [judged(mul, 1.0, 2.0)] + [judged(p, 0.0, 1.0) for p in back])
    lines = format_results(results).split("x/backward")[1].splitlines()
    assert lines[1] == ("  ✗ fix `x/mul` first: this exercise uses it, and it fails its own checks "
                        "(3 of 3 checks here fail because of it)")
    assert len(lines) == 3  # the header's rest, the one line, the summary


def test_the_root_cause_is_named_through_a_chain_of_exercises():
    a, b, c = make_probe("x/a", "p"), make_probe("x/b", "p", uses=("x/a",)), make_probe("x/c", "p", uses=("x/b",))
    results = mark_blocked([a, b, c], [judged(a, 0, 1), judged(b, 0, 1), judged(c, 0, 1)])
    assert results[2].blocked_by == ["x/a"] and "fix `x/a` first" in results[2].message
    d = make_probe("x/d", "p", uses=("x/a", "x/e"))
    e = make_probe("x/e", "p")
    both = mark_blocked([a, e, d], [judged(a, 0, 1), judged(e, 0, 1), judged(d, 0, 1)])[2]
    assert both.message == "fix `x/a` and `x/e` first: this check uses them, and they fail their own checks"


def test_an_unwritten_dependency_says_write_it_first():
    mul = make_probe("x/mul", "m")
    back = make_probe("x/backward", "b", uses=("x/mul",))
    nothing = Outcome("not_implemented", message="not implemented yet")
    results = mark_blocked([mul, back], [judge(mul, nothing, None), judge(back, nothing, None)])
    assert "· write `x/mul` first: this exercise uses it" in format_results(results)


def test_dependencies_must_be_earlier_exercises_of_the_lesson():
    first, later = make_probe("x/a", "p", uses=("x/b",)), make_probe("x/b", "p")
    with pytest.raises(ValueError, match="uses 'x/b', which is not an earlier exercise"):
        check_dependencies([first, later], "probes")
    check_dependencies([later, make_probe("x/c", "p", uses=("x/b",))], "probes")


@pytest.fixture(scope="module")
def micrograd_with_assignment_bug(tmp_path_factory):
    """Lesson 01's solution with `=` instead of `+=` in __mul__'s backward."""
    nb = json.loads(solution_path("01_micrograd").read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]).replace("self.grad += other.data * out.grad",
                                                         "self.grad = other.data * out.grad")
    path = tmp_path_factory.mktemp("bug") / "01_micrograd.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return load_notebook(path)


def test_check_of_a_later_exercise_runs_its_dependencies_and_points_at_the_bug(micrograd_with_assignment_bug):
    results = run_checks("micrograd/backward", micrograd_with_assignment_bug)
    assert {r.exercise for r in results} == {"micrograd/backward"}  # dependencies run, but are not reported
    failing = [r for r in results if r.status != "passed"]
    assert failing and all(r.blocked_by == ["micrograd/value_ops"] for r in failing)
    own = run_checks("micrograd/value_ops", micrograd_with_assignment_bug)
    mul = next(r for r in own if r.name == "mul_two_values")
    assert mul.status == "failed" and "a.grad" in mul.message and mul.inputs  # the data and the probe's input


def test_grader_feedback_names_the_exercise_to_fix_first(micrograd_with_assignment_bug):
    from types import SimpleNamespace

    from llmc_core.course import lesson_by_prefix
    from llmc_core.exercises import load_snapshots, probes_for, run_probe
    from llmc_core.grading.gradebook import lesson_results
    lesson = lesson_by_prefix("micrograd")
    probes = probes_for(lesson)
    state = {"outcomes": {p.id: run_probe(p, micrograd_with_assignment_bug).to_json() for p in probes},
             "status": "graded", "message": "", "cell_errors": []}
    plan = SimpleNamespace(probes=probes, snapshots=load_snapshots(lesson), hidden_ids=set())
    results = lesson_results(plan, state)
    text = format_results(results)
    assert "fix `micrograd/value_ops` first" in text.split("micrograd/backward")[1]
    assert sum(r.points for r in results) == sum(r.points for r in results if r.status == "passed")


# --- the data of a mismatch ------------------------------------------------------------------------

def test_a_list_mismatch_shows_position_values_lengths_and_neighbours():
    expected, got = [97, 258, 99, 100, 101, 102, 103, 104], [97, 258, 99, 100, 257, 102, 103, 104, 105]
    message = compare(expected, got, 0, 0)
    assert message.startswith("result[4]: expected 101, got 257; the first difference in the list; "
                              "lengths: expected 8, got 9")
    assert "expected [..., 258, 99, 100, 101, 102, 103, 104]" in message
    assert compare([1, 2], [1, 2, 3], 0, 0) == (
        "result: expected a list of length 2, got length 3; "
        "the items agree up to position 1, then got has 1 more, starting with 3")
    assert compare([5, 6], [5], 0, 0) == (
        "result: expected a list of length 2, got length 1; got stops after position 0, where expected goes on with 6")
    assert compare([5], [], 0, 0) == (
        "result: expected a list of length 1, got length 0; got is empty; expected goes on with 5")
    assert "goes on with" not in compare([5, 6], [5], 0, 0, reveal=False)


QKV = ("b", "t", [("part", ("q", "k", "v")), ("head", 2), ("channel", 4)])


def test_an_array_mismatch_names_the_part_of_a_named_layout():
    expected = np.zeros((2, 3, 24))
    got = expected.copy()
    got[1, 2, 8 + 4 + 1] = 0.5  # k, head 1, channel 1
    got[0, 1, 8] = 0.25          # k, head 0, channel 0
    message = compare({"dqkv": expected}, {"dqkv": got}, 1e-5, 1e-8, layout={"result['dqkv']": QKV})
    assert "2 of 144 values differ, all in part k; first at index (0, 1, 8) = b 0, t 1, k, head 0, channel 0" in message
    assert "tolerance |got - expected| <= 1e-08 + 1e-05 * |expected|" in message
    assert named_index((1, 2, 13), QKV) == "b 1, t 2, k, head 1, channel 1"
    assert "part" not in compare(expected, got, 1e-5, 1e-8, layout={"result": ("b", "t", "c")})  # a plain layout


def test_a_layout_that_does_not_fit_is_ignored():
    message = compare(np.zeros((2, 5)), np.ones((2, 5)), 0, 0, layout={"result": QKV})
    assert message.startswith("result: 10 of 10 values differ; first at index (0, 0) (expected 0, got 1)")


def test_nan_in_an_array_is_counted():
    assert "got is NaN at 2 of them" in compare(np.zeros(3), np.array([0.0, np.nan, np.nan]), 1e-5, 1e-8)


def test_numeric_mismatches_print_the_tolerance():
    assert compare(1.0, 1.5, 1e-5, 1e-7) == (
        "result: expected 1, got 1.5; got - expected = 0.5; tolerance |got - expected| <= 1e-07 + 1e-05 * |expected|")
    assert "tolerance" not in compare(3, 4, 1e-5, 1e-7)  # ints compare exactly


def test_a_mismatch_by_a_whole_factor_says_so():
    """A loss not divided by the k micro-batches is k times too large; a missing 1/k shows as a factor."""
    assert "got = 3 x expected; tolerance" in compare(3.48372, 10.45116, 1e-4, 1e-6)
    assert "got = expected / 4 everywhere" in compare(np.array([4.0, -8.0]), np.array([1.0, -2.0]), 1e-4, 1e-6)
    assert "got = -expected" in compare(np.array([4.0, -8.0]), np.array([-4.0, 8.0]), 1e-4, 1e-6)
    assert "got =" not in compare(np.array([1.0, 2.0]), np.array([3.0, 5.0]), 1e-4, 1e-6)  # no common factor


def test_a_failure_shows_the_probes_input_but_a_hidden_one_does_not():
    def mul_two_values(nb):
        """a, b = Value(-1.7), Value(2.3); out = a * b

        More detail that is not shown."""
    p = Probe("micrograd/value_ops", "mul_two_values", mul_two_values)
    shown = judge(p, Outcome("value", 1.0), {"value": 2.0, "rtol": 0, "atol": 0})
    assert shown.inputs == "a, b = Value(-1.7), Value(2.3); out = a * b"
    assert "      input: a, b = Value(-1.7), Value(2.3); out = a * b" in format_results([shown])
    assert judge(p, Outcome("value", 1.0), {"value": 2.0, "rtol": 0, "atol": 0}, reveal=False).inputs == ""


def test_a_short_probe_without_a_docstring_shows_its_body_as_input():
    def merge_run_of_three(nb):
        return nb.merge([5, 5, 5, 6], (5, 5), 256)

    def with_a_block(nb):
        with open("x") as f:
            return nb.read(f,
                           1)
    assert Probe("bpe/merge", "m", merge_run_of_three).inputs == "merge([5, 5, 5, 6], (5, 5), 256)"
    assert Probe("bpe/merge", "w", with_a_block).inputs == 'with open("x") as f: read(f, 1)'


# --- hint tiers ------------------------------------------------------------------------------------

def test_the_first_failure_shows_the_nudge_and_the_formula_only_on_request():
    p = make_probe("micrograd/pow", "cube", hint=("Power rule.", "d(x**k)/dx = k * x**(k - 1)"))
    first = judge(p, Outcome("value", 1.0), {"value": 2.0, "rtol": 0, "atol": 0})
    text = format_results([first])
    assert "hint: Power rule." in text and "k * x**" not in text
    assert 'more direct hints: check("micrograd/pow", hint=2)' in text
    second = format_results([judge(p, Outcome("value", 1.0), {"value": 2.0, "rtol": 0, "atol": 0}, hint_level=2)])
    assert "hint: Power rule." in second and "hint 2: d(x**k)/dx = k * x**(k - 1)" in second
    assert "more direct" not in second


def test_an_exercise_nudge_is_said_once():
    probes = [make_probe("x/pow", n, hint=("Power rule.", f"formula {n}")) for n in "ab"]
    text = format_results([judge(p, Outcome("value", 1.0), {"value": 2.0, "rtol": 0, "atol": 0}) for p in probes])
    assert text.count("hint: Power rule.") == 1 and text.count("more direct hints") == 1


def test_a_module_nudge_comes_before_a_plain_hint():
    from llmc_core.course import lesson_by_prefix
    from llmc_core.exercises import hint_tiers, probes_for
    from llmc_core.probes import micrograd
    mul = next(p for p in probes_for(lesson_by_prefix("micrograd")) if p.name == "mul_two_values")
    tiers = hint_tiers(mul)
    assert len(tiers) == 2 and tiers[0] == micrograd.NUDGES["micrograd/value_ops"]


def test_check_rejects_a_bad_hint_level():
    with pytest.raises(ValueError, match="hint is the hint level"):
        checking.check("setup/dot", hint=0)


# --- plurals and output formats ----------------------------------------------------------------------

def one_result(status):
    return ProbeResult("setup/dot/p", "setup/dot", "p", status, 1 if status == "passed" else 0, 1)


def test_summaries_read_correctly_for_one_and_many():
    assert summary([one_result("passed")]) == "The check passed."
    assert summary([one_result("failed")]) == "0 of 1 check passed."
    assert summary([one_result("passed")] * 2) == "All 2 checks passed."
    hidden = ProbeResult("setup/dot/h", "setup/dot", "h", "passed", 1, 1)
    assert summary([one_result("passed"), hidden], {"setup/dot/h"}) == "The public check passed (and 1 hidden one)."


def test_html_in_jupyter_and_text_elsewhere(monkeypatch, capsys):
    results = [one_result("passed"),
               ProbeResult("setup/dot/q", "setup/dot", "q<b>", "failed", 0, 1, "result: 1 < 2", "hint")]
    page = format_html(results)
    assert page.startswith("<pre") and "color:#1a7f37" in page and "color:#cf222e" in page and "q&lt;b&gt;" in page
    assert not checking.in_jupyter()
    checking.check("setup/dot")
    assert "setup/dot  (" in capsys.readouterr().out
    shown = []
    monkeypatch.setattr(checking, "in_jupyter", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    checking.check("setup/dot")
    assert capsys.readouterr().out == ""
    assert shown[0]["text/html"].startswith("<pre") and "setup/dot  (" in shown[0]["text/plain"]


# --- Run All before the exercises are done --------------------------------------------------------

def test_a_cell_that_needs_unfinished_work_says_so_in_one_line(capsys):
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    guard_unfinished_cells(shell)
    guard_unfinished_cells(shell)  # installing twice keeps one guard
    stub = ('def attention_forward(x):\n'
            '    raise NotImplementedError("not implemented yet: replace this line with your code")')
    assert shell.run_cell(stub).success
    capsys.readouterr()
    assert shell.run_cell("out = attention_forward(3)\nout").success
    assert capsys.readouterr().out == ("⏭ skipped: this cell needs `attention_forward`, which is not written yet "
                                       "(run it again once that passes its check)\n")
    assert shell.run_cell("print(out.shape)").success  # `out` was never made: one line again
    assert "needs `out`, which an earlier cell could not make yet" in capsys.readouterr().out
    shell.run_cell("peaks = []\nfor t in (1, 2):\n    peaks.append(t if t < 2 else attention_forward(t))")
    assert "peaks" not in shell.user_ns  # filled in part: removed, so a later plot of it is skipped, not wrong
    assert shell.run_cell("1 + 2").result == 3  # a cell's value is still shown
    assert not shell.run_cell("print(no_such_name)").success  # a real mistake still shows in full
    assert not shell.run_cell("raise NotImplementedError('a library cannot do this')").success


def test_llmc_check_report_names_the_exercise_to_fix_first(micrograd_with_assignment_bug):
    from llmc_core.checking import notebook_report
    from llmc_core.course import lesson_by_prefix
    text, passed = notebook_report(lesson_by_prefix("micrograd"), micrograd_with_assignment_bug)
    backward = text.split("micrograd/backward")[1].splitlines()
    assert not passed and "fix `micrograd/value_ops` first" in backward[1]


def test_every_declared_layout_fits_the_solution_snapshot():
    """A layout that does not fit its array is ignored by the messages; here it must fit."""
    import re

    from llmc_core.course import LESSONS
    from llmc_core.exercises import load_snapshots, probes_for
    from llmc_core.plain import layout_fits
    checked = 0
    for lesson in LESSONS:
        snapshots = load_snapshots(lesson)
        for p in probes_for(lesson):
            for path, axes in (p.layout or {}).items():
                value = snapshots[p.id]["value"]
                for key in re.findall(r"\['([^']+)'\]", path):
                    value = value[key]
                assert layout_fits(value.shape, axes), (p.id, path, value.shape, axes)
                checked += 1
    assert checked >= 8
