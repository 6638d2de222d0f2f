"""Every lesson's probe module follows one layout, names its tolerances, and wraps its hints.

Layout: a docstring, the imports, USES, NUDGES, the module's constants, then the probes grouped by
exercise in the order the lesson checks them, each exercise under a `# --- name ---` divider.
"""
import ast
import importlib
import json
import re
import types
from pathlib import Path

import pytest

from llmc_core.course import LESSONS, solution_path
from llmc_core.exercises import FLOAT64, exercises, load_snapshots, probe, probes_in

# Probe modules still laid out the older way, where some of these tests fail; delete a name once
# its module follows the conventions.
LESSONS_WITH_PROBES = [lesson for lesson in LESSONS if importlib.util.find_spec(lesson.probe_module)]
LESSON_PARAMS = [pytest.param(lesson, id=lesson.prefix) for lesson in LESSONS_WITH_PROBES]
HINT_WIDTH = 99  # characters per source line that holds hint or nudge text


def module_of(lesson):
    module = importlib.import_module(lesson.probe_module)
    source = Path(module.__file__).read_text(encoding="utf-8")
    return module, source, ast.parse(source)


def probe_call(node):
    """The @probe(...) decorator call of a top-level function, or None."""
    for d in getattr(node, "decorator_list", []):
        if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "probe":
            return d
    return None


def assigned(tree, name):
    return next((i for i, node in enumerate(tree.body) if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == name for t in node.targets)), None)


def checked_in_notebook(lesson):
    """The exercise ids the solution notebook checks, in its order."""
    cells = json.loads(solution_path(lesson.notebook).read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return list(dict.fromkeys(re.findall(r"""check\(["']([a-z0-9_]+/[a-z0-9_]+)["']""", code)))


@pytest.mark.parametrize("lesson", LESSON_PARAMS)
def test_module_opens_with_docstring_imports_uses_and_nudges(lesson):
    module, _, tree = module_of(lesson)
    assert ast.get_docstring(tree), "the module needs a docstring saying what its probes feed the code"
    first_probe = next(i for i, node in enumerate(tree.body) if probe_call(node))
    last_import = max(i for i, node in enumerate(tree.body) if isinstance(node, (ast.Import, ast.ImportFrom)))
    uses, nudges = assigned(tree, "USES"), assigned(tree, "NUDGES")
    assert uses is not None and nudges is not None, "define USES and NUDGES (an empty dict when there is none)"
    assert last_import < uses < nudges < first_probe, "order: imports, USES, NUDGES, constants, then probes"
    ids = set(exercises(probes_in(module)))
    assert set(module.USES) <= ids and set(module.NUDGES) <= ids


@pytest.mark.parametrize("lesson", LESSON_PARAMS)
def test_probes_are_grouped_by_exercise_in_lesson_order_under_dividers(lesson):
    module, source, tree = module_of(lesson)
    lines = source.splitlines()
    spans = {}  # exercise -> [first line, last line] of its probes
    for node in tree.body:
        call = probe_call(node)
        if call is not None:
            exercise = ast.literal_eval(call.args[0])
            spans.setdefault(exercise, [call.lineno, node.end_lineno])[1] = node.end_lineno
    order = list(spans)
    assert order == list(exercises(probes_in(module)))
    for before, after in zip(order, order[1:]):
        assert spans[before][1] < spans[after][0], f"the probes of {before} and {after} are interleaved"
    checked = [e for e in checked_in_notebook(lesson) if e in spans]
    assert order == checked, "probes follow the order in which the lesson checks its exercises"
    previous_end = 0
    for exercise in order:
        short = exercise.split("/", 1)[1]
        dividers = [n for n, line in enumerate(lines[previous_end:spans[exercise][0]], start=previous_end + 1)
                    if line.startswith(f"# --- {short} -")]
        assert dividers, f"no `# --- {short} ---` divider above the probes of {exercise}"
        previous_end = spans[exercise][1]


def hint_literals(tree):
    """The string literals of hints and nudges: @probe(hint=...), NUDGES values, *_HINT constants."""
    found = []
    for node in tree.body:
        call = probe_call(node)
        if call is not None:
            found += [k.value for k in call.keywords if k.arg == "hint"]
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "NUDGES"
                                                or getattr(t, "id", "").endswith("_HINT") for t in node.targets):
            found += node.value.values if isinstance(node.value, ast.Dict) else [node.value]
    return [c for f in found for c in ast.walk(f) if isinstance(c, ast.Constant) and isinstance(c.value, str)]


@pytest.mark.parametrize("lesson", LESSON_PARAMS)
def test_hint_and_nudge_lines_fit_in_100_columns(lesson):
    _, source, tree = module_of(lesson)
    lines = source.splitlines()
    literals = hint_literals(tree)
    assert literals
    long = sorted({n for c in literals for n in range(c.lineno, c.end_lineno + 1) if len(lines[n - 1]) > HINT_WIDTH})
    assert long == [], f"lines over {HINT_WIDTH} characters: " + ", ".join(map(str, long))


def holds_float(value):
    if isinstance(value, float):
        return True
    if hasattr(value, "dtype"):
        return value.dtype.kind in "fc"
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return any(holds_float(v) for v in items)


@pytest.mark.parametrize("lesson", LESSON_PARAMS)
def test_every_numeric_probe_names_its_tolerance(lesson):
    """A probe whose result holds floats passes a named tolerance (`**FLOAT64`), never bare numbers."""
    module, _, tree = module_of(lesson)
    snapshots = load_snapshots(lesson)
    named = {}  # probe name -> whether its decorator names a tolerance
    for node in tree.body:
        call = probe_call(node)
        if call is None:
            continue
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        assert not {"rtol", "atol"} & set(keywords), f"{node.name}: name the tolerance (**FLOAT64, ...)"
        has_name = any(k.arg is None and isinstance(k.value, ast.Name) for k in call.keywords)
        cases = [k.value for k in keywords["cases"].keys] if "cases" in keywords else []
        for name in [node.name, *cases]:
            named[name] = has_name
    for p in probes_in(module):
        if holds_float(snapshots[p.id]["value"]):
            assert named[p.name], f"{p.id} returns floats but names no tolerance"


# --- families ----------------------------------------------------------------------------------

@probe("conventions/square", points=2, **FLOAT64, hint="x * x", cases={"small": 1.5, "negative": (-2.0,)})
def square(nb, x):
    """square({x})"""
    return nb.square(x)


def test_a_family_is_one_probe_per_case_in_order():
    first, second = square
    assert [(p.id, p.points, p.rtol, p.hint) for p in (first.probe, second.probe)] == [
        ("conventions/square/small", 2, FLOAT64["rtol"], "x * x"),
        ("conventions/square/negative", 2, FLOAT64["rtol"], "x * x")]
    assert (first.probe.inputs, second.probe.inputs) == ("square(1.5)", "square(-2.0)")
    notebook = types.SimpleNamespace(square=lambda x: x * x)
    assert (first(notebook), second(notebook)) == (2.25, 4.0)


def test_probes_in_finds_a_family_where_it_is_defined():
    module = types.ModuleType("family_module")

    @probe("conventions/a")
    def before(nb):
        return 1

    @probe("conventions/b")
    def after(nb):
        return 2
    module.before, module.family, module.after = before, square, after
    assert [p.id for p in probes_in(module)] == ["conventions/a/before", "conventions/square/small",
                                                 "conventions/square/negative", "conventions/b/after"]


def test_a_family_without_a_docstring_is_refused():
    with pytest.raises(ValueError, match="needs a docstring"):
        probe("conventions/x", cases={"one": 1})(lambda nb, x: x)
