"""Exercises and probes: run a learner's code on fixed inputs, compare with the solution's snapshot.

A probe returns plain data; `llmc build` stores what it returned on the solution (the snapshot);
`judge` compares a learner's outcome with the snapshot. Running and judging are separate so the
grader can run probes in a sandboxed child and judge in the parent, out of the learner's reach.
"""
import importlib
import importlib.util
import inspect
import json
import linecache
import re
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmc_core import plain
from llmc_core.course import SNAPSHOT_DIR, Lesson, current_exercise_id
from llmc_core.notebook import CELL_FILENAME, NotebookModule

EXERCISE_ID = re.compile(r"^[a-z0-9_]+/[a-z0-9_]+$")
OUTCOME_KINDS = ("value", "not_implemented", "error", "missing")
MESSAGE_LIMIT = 2000  # characters of an outcome's message that are kept

# Tolerances a numeric probe names (`@probe(..., **FLOAT64)`): floats pass when
# |got - expected| <= atol + rtol * |expected|; everything else compares exactly.
# float64 results: another correct order of the same arithmetic agrees to ~1e-12, while a wrong
# formula (a lost factor, a sign, a missing term) is off by far more than 1e-5. Also the default.
FLOAT64 = {"rtol": 1e-5, "atol": 1e-7}
# float32 results (kernels, float32 numpy): ~6e-8 per rounding, grown by sums of up to ~1000 terms
# taken in another order (a tree reduction, fused multiply-adds, fast intrinsics).
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}
# float32 results of the same operations as the solution's, at most reordered: a few ulps apart.
FLOAT32_SAME_OPS = {"rtol": 1e-5, "atol": 1e-7}


@dataclass(frozen=True)
class Probe:
    exercise: str      # "micrograd/backward"
    name: str          # "node_used_twice": what is probed
    func: object = field(repr=False, compare=False)
    points: float = 1
    hint: object = ""  # a str, or a tuple of tiers: a nudge naming the concept first, the formula last
    rtol: float = FLOAT64["rtol"]
    atol: float = FLOAT64["atol"]
    uses: tuple = None  # exercises this probe runs besides its own; None: the module's USES for the exercise
    layout: dict = field(default=None, compare=False)  # {path of an array in the result: axes}, see plain.named_index

    @property
    def id(self):
        return f"{self.exercise}/{self.name}"

    @property
    def inputs(self):
        """What the probe feeds the learner's code.

        Its docstring's first paragraph, else a body of at most 3 lines, else ''.
        """
        doc = (self.func.__doc__ or "").strip().split("\n\n")[0]
        if doc:
            return " ".join(doc.split())
        try:
            lines = inspect.getsource(self.func).splitlines()
        except (OSError, TypeError):
            return ""
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("def ")), None)
        if start is None:
            return ""  # a lambda
        body = [line.strip() for line in lines[start + 1:]]
        body = [line for line in body if line and not line.startswith("#")]
        if not 0 < len(body) <= 3:
            return ""
        text = ""
        for line in body:  # statements joined by "; ", a line that opens a block or a bracket by a space
            separator = "" if not text else " " if text.endswith((":", ",", "(", "[", "{")) else "; "
            text += separator + re.sub(r"^return ", "", line)
        return text.replace("nb.", "")


def probe(exercise, points=1, hint="", rtol=FLOAT64["rtol"], atol=FLOAT64["atol"], uses=None, layout=None,
          cases=None):
    """Decorator: mark `func(nb) -> plain data` as a probe of `exercise` worth `points`.

    hint: a str or a tuple of tiers (nudge first); uses: exercise ids this probe depends on;
    layout: axes of the result's arrays, keyed by path ("result", "result['dqkv']") or given alone for "result".
    cases: a parametrized family, {probe name: arguments}: one probe per case, each running
    `func(nb, *arguments)`, its inputs line the docstring of `func` formatted with those arguments
    by parameter name; the decorated name then holds the tuple of the family's probes.
    """
    if not EXERCISE_ID.match(exercise):
        raise ValueError(f"exercise id {exercise!r} must look like 'lesson_prefix/short_name' (lowercase, digits, _)")
    if points <= 0:
        raise ValueError(f"a probe of {exercise} has points={points}; points must be positive")
    if uses is not None:
        uses = tuple(uses)
        bad = [u for u in uses if not EXERCISE_ID.match(u)]
        if bad:
            raise ValueError(f"a probe of {exercise} uses {bad}, which are not exercise ids")
    if layout is not None and not isinstance(layout, dict):
        layout = {"result": layout}

    def mark(func):
        func.probe = Probe(exercise, func.__name__, func, points, hint, rtol, atol, uses, layout)
        return func

    def family(func):
        return tuple(mark(_case(func, name, arguments)) for name, arguments in cases.items())
    return mark if cases is None else family


def _case(func, name, arguments):
    """`func` with one case's arguments bound: a probe function named `name`."""
    if not func.__doc__:
        raise ValueError(f"the probe family {func.__name__} needs a docstring: formatted with each case's "
                         f"arguments, it tells a learner what the probe fed their code")
    arguments = tuple(arguments) if isinstance(arguments, (tuple, list)) else (arguments,)
    bound = inspect.signature(func).bind(None, *arguments).arguments

    def run(nb):
        return func(nb, *arguments)
    run.__dict__.update(vars(func))  # marks such as measures_speed
    run.__name__ = run.__qualname__ = name
    run.__module__ = func.__module__
    run.__doc__ = func.__doc__.format(**bound)
    return run


def _module_setting(probe, name):
    """A per-module setting (USES, NUDGES) for `probe`: its own module's, else its lesson's probe module's."""
    own = sys.modules.get(getattr(probe.func, "__module__", ""), None)
    if own is not None and hasattr(own, name):
        return getattr(own, name)
    lesson_module = f"llmc_core.probes.{probe.exercise.split('/')[0]}"
    if importlib.util.find_spec(lesson_module) is None:
        return {}
    return getattr(importlib.import_module(lesson_module), name, {})


def dependencies(probe):
    """The exercises `probe` runs besides its own: its `uses`, else its module's USES for its exercise."""
    if probe.uses is not None:
        return probe.uses
    return tuple(_module_setting(probe, "USES").get(probe.exercise, ()))


def hint_tiers(probe):
    """The hints of `probe`, mildest first: its tuple, else (the exercise's nudge, its hint)."""
    if isinstance(probe.hint, (tuple, list)):
        return tuple(h for h in probe.hint if h)
    nudge = _module_setting(probe, "NUDGES").get(probe.exercise, "")
    return tuple(h for h in (nudge, probe.hint) if h)


def raised(fn, *args, **kwargs):
    """The name of the exception `fn(*args, **kwargs)` raises, or "no error".

    NotImplementedError passes through, so an unfinished exercise reads "not implemented yet".
    """
    try:
        fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as e:
        return type(e).__name__
    return "no error"


def probes_in(module):
    """The probes a module defines (a family's where its tuple is defined), in definition order; ids must be unique."""
    marked = lambda v: callable(v) and isinstance(getattr(v, "probe", None), Probe)
    found = []
    for value in vars(module).values():
        family = value if isinstance(value, tuple) and value and all(marked(v) for v in value) else (value,)
        found += [v.probe for v in family if marked(v)]
    ids = [p.id for p in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{module.__name__} defines probes with the same id twice: {duplicates}")
    return found


def probes_for(lesson: Lesson):
    """The public probes of a lesson (none when it has no probe module yet)."""
    if importlib.util.find_spec(lesson.probe_module) is None:
        return []
    found = probes_in(importlib.import_module(lesson.probe_module))
    for p in found:
        if not p.exercise.startswith(lesson.prefix + "/"):
            raise ValueError(f"probe {p.id} is in {lesson.probe_module} "
                             f"but its id does not start with {lesson.prefix}/")
    check_dependencies(found, lesson.probe_module)
    return found


def check_dependencies(probes, where):
    """Raise ValueError unless every probe depends only on exercises defined before its own."""
    order = list(exercises(probes))
    for p in probes:
        for used in dependencies(p):
            if used not in order or order.index(used) >= order.index(p.exercise):
                raise ValueError(f"probe {p.id} in {where} uses {used!r}, "
                                 "which is not an earlier exercise of its lesson")


def load_probe_file(path):
    """The probes defined in a Python file outside the package (an instructor's hidden probes)."""
    path = Path(path)
    stem = re.sub(r"\W", "_", path.stem)
    name = f"llmc_probe_file_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ValueError(f"{path} is not a Python file of probes")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    # A file written before an exercise moved to another lesson names it by its old id.
    return [replace(p, exercise=current_exercise_id(p.exercise)) for p in probes_in(module)]


def current_probe_id(probe_id):
    """The id a probe has now: "cuda_fast/adamw/three_steps" -> "cuda_fast/adamw_update/three_steps"."""
    exercise, _, name = probe_id.rpartition("/")
    return f"{current_exercise_id(exercise)}/{name}"


def exercises(items):
    """{exercise id: [items]} of probes or their results (anything with `.exercise`), in first-appearance order."""
    grouped = {}
    for item in items:
        grouped.setdefault(item.exercise, []).append(item)
    return grouped


class MissingName(Exception):
    """A probe asked for a name the notebook does not define."""


class Namespace:
    """What a probe sees of a notebook: attribute access to its globals, with a clear error for missing names."""

    def __init__(self, source):
        self._globals = source.__dict__ if isinstance(source, NotebookModule) else source
        self._cell_errors = source.cell_errors if isinstance(source, NotebookModule) else []

    def __getattr__(self, name):
        try:
            return self._globals[name]
        except KeyError:
            message = f"the notebook defines no `{name}`: was it renamed or deleted, or has its cell not been run?"
            if self._cell_errors:
                message += " Cells that failed to run: " + "; ".join(str(e).splitlines()[0] for e in self._cell_errors)
            raise MissingName(message) from None


@dataclass
class Outcome:
    """What happened when a probe ran: a value, or why there is none. Plain and JSON-ready."""
    kind: str           # one of OUTCOME_KINDS
    value: object = None
    message: str = ""

    def to_json(self):
        return {"kind": self.kind, "value": plain.encode(self.value), "message": self.message}

    @classmethod
    def from_json(cls, data):
        """Rebuild an outcome from untrusted JSON, accepting nothing but plain data."""
        if not isinstance(data, dict) or data.get("kind") not in OUTCOME_KINDS:
            raise ValueError("not a probe outcome")
        message = data.get("message", "")
        if not isinstance(message, str):
            raise ValueError("an outcome's message must be a string")
        value = plain.decode(data.get("value")) if data["kind"] == "value" else None
        return cls(data["kind"], value, message[:MESSAGE_LIMIT])


def where_in_learner_code(error):
    """'cell 7, line 3: `return 1 / x`' for the innermost frame outside llmc_core, or ''."""
    package = str(Path(__file__).resolve().parent)
    place = ""
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(package):
            continue
        match = CELL_FILENAME.match(filename)
        where = f"cell {match['cell']}, line {lineno}" if match else f"line {lineno}"
        text = linecache.getline(filename, lineno).strip()
        place = f"in {frame.f_code.co_name}(), {where}" + (f": `{text}`" if text else "")
    return place


def run_probe(probe, notebook):
    """Run one probe on a loaded notebook (a NotebookModule or a dict of globals) -> Outcome."""
    ns = notebook if isinstance(notebook, Namespace) else Namespace(notebook)
    try:
        result = probe.func(ns)
    except MissingName as e:
        return Outcome("missing", message=str(e))
    except NotImplementedError:
        return Outcome("not_implemented", message="not implemented yet")
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # SystemExit from learner code is an error of that code
        text = f"{type(e).__name__}: {e}".rstrip(": ")
        place = where_in_learner_code(e)
        return Outcome("error", message=(f"{text} ({place})" if place else text)[:MESSAGE_LIMIT])
    try:
        return Outcome("value", plain.to_plain(result))
    except TypeError as e:
        return Outcome("error", message=f"the code returned something unexpected: {e}")


@dataclass
class ProbeResult:
    probe_id: str
    exercise: str
    name: str
    status: str        # passed | failed | not implemented | error | missing
    points: float      # earned
    max_points: float
    message: str = ""
    hint: str = ""     # the hint tiers shown, one per line, mildest first
    more_hints: int = 0  # tiers not shown yet
    inputs: str = ""   # what the probe fed the code, shown with a failure
    blocked_by: list = field(default_factory=list)  # failing exercises this probe uses: fix those first


def judge(probe, outcome, snapshot, reveal=True, hint_level=1):
    """Compare an outcome with the probe's snapshot ({"value", "rtol", "atol"}) -> ProbeResult.

    With reveal=False (hidden probes) a failure says what was wrong without the expected value or input.
    A failure shows the first `hint_level` tiers of the probe's hints.
    """
    def result(status, message=""):
        earned = probe.points if status == "passed" else 0
        if status == "passed":
            return ProbeResult(probe.id, probe.exercise, probe.name, status, earned, probe.points, message)
        tiers = hint_tiers(probe)
        shown = tiers[:max(1, hint_level)]
        return ProbeResult(probe.id, probe.exercise, probe.name, status, earned, probe.points, message,
                           "\n".join(shown), len(tiers) - len(shown), probe.inputs if reveal else "")

    if outcome.kind == "not_implemented":
        return result("not implemented", "not implemented yet")
    if outcome.kind == "missing":
        return result("missing", outcome.message)
    if outcome.kind == "error":
        return result("error", outcome.message)
    if snapshot is None:
        return result("error", f"no snapshot for probe {probe.id}: the course author must run `llmc build`")
    difference = plain.compare(snapshot["value"], outcome.value, snapshot["rtol"], snapshot["atol"], reveal=reveal,
                               layout=probe.layout)
    return result("failed", difference) if difference else result("passed")


# --- snapshots: what each probe returned on the solution ------------------------------------

def snapshot_path(lesson, directory=None):
    return Path(directory or SNAPSHOT_DIR) / f"{lesson.notebook}.json"


def load_snapshots(lesson, directory=None):
    """{probe id: {"value", "rtol", "atol"}} for a lesson; {} when it has none yet."""
    path = snapshot_path(lesson, directory)
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {pid: {"value": plain.decode(s["value"]), "rtol": s["rtol"], "atol": s["atol"]}
            for pid, s in data["probes"].items()}


def compute_snapshots(probes, notebook):
    """Run every probe on the solution; each must return a value (else the course has a bug)."""
    snapshots = {}
    for p in probes:
        outcome = run_probe(p, notebook)
        if outcome.kind != "value":
            raise RuntimeError(f"probe {p.id} does not run on the solution: {outcome.kind}: {outcome.message}")
        snapshots[p.id] = {"value": outcome.value, "rtol": p.rtol, "atol": p.atol}
    return snapshots


def snapshot_json(lesson, snapshots):
    encoded = {pid: {"value": plain.encode(s["value"]), "rtol": s["rtol"], "atol": s["atol"]}
               for pid, s in snapshots.items()}
    return json.dumps({"notebook": lesson.notebook, "probes": encoded}, indent=1, ensure_ascii=False) + "\n"


def stale_snapshots(stored, fresh):
    """Why `stored` no longer matches `fresh` (a list of reasons; empty when current)."""
    reasons = []
    for pid in sorted(set(stored) ^ set(fresh)):
        reasons.append(f"probe {pid} is {'new' if pid in fresh else 'gone'}")
    for pid in sorted(set(stored) & set(fresh)):
        old, new = stored[pid], fresh[pid]
        if (old["rtol"], old["atol"]) != (new["rtol"], new["atol"]):
            reasons.append(f"probe {pid} changed its tolerance")
            continue
        difference = plain.compare(old["value"], new["value"], new["rtol"], new["atol"])
        if difference:
            reasons.append(f"probe {pid} now returns something else: {difference}")
    return reasons
