"""`check()` in a notebook and the reports shared by `llmc check`, `llmc progress` and the grader."""
import inspect

from llmc_core.course import LESSONS, current_exercise_id, lesson_by_prefix
from llmc_core.exercises import exercises, judge, load_snapshots, probes_for, run_probe
from llmc_core.notebook import is_loading

MARKS = {"passed": "✓", "failed": "✗", "error": "✗", "missing": "✗", "not implemented": "·"}


def select_probes(target):
    """(lesson, probes) for an exercise id ("micrograd/backward") or a whole lesson ("micrograd")."""
    if not isinstance(target, str) or not target:
        raise TypeError(f"check() takes an exercise id such as 'micrograd/backward', not {target!r}")
    target = current_exercise_id(target)
    prefix = target.split("/")[0]
    lesson = lesson_by_prefix(prefix)
    probes = probes_for(lesson)
    if "/" in target:
        chosen = [p for p in probes if p.exercise == target]
        if not chosen:
            known = ", ".join(exercises(probes)) or "none yet"
            raise ValueError(f"no exercise named {target!r}; the exercises of lesson {lesson.notebook} are: {known}")
        return lesson, chosen
    return lesson, probes


def run_checks(target, notebook, snapshots=None):
    """Run the probes of `target` on `notebook` (a loaded module or a dict of globals) -> [ProbeResult]."""
    lesson, probes = select_probes(target)
    snapshots = load_snapshots(lesson) if snapshots is None else snapshots
    return [judge(p, run_probe(p, notebook), snapshots.get(p.id)) for p in probes]


def check(target):
    """Check an exercise ("micrograd/backward") or a whole lesson ("micrograd") in this notebook and print the verdict."""
    if is_loading():
        return  # loading a notebook for checking or grading runs definitions only
    caller_globals = inspect.currentframe().f_back.f_globals
    if isinstance(target, str) and current_exercise_id(target) != target:
        moved = current_exercise_id(target)
        print(f"{target} is now {moved}, in lesson {lesson_by_prefix(moved.split('/')[0]).notebook}")
    print(format_results(run_checks(target, caller_globals)), end="")


def exercise_points(results):
    """{exercise id: (points earned, points possible)}, in order."""
    totals = {}
    for r in results:
        earned, possible = totals.get(r.exercise, (0, 0))
        totals[r.exercise] = (earned + r.points, possible + r.max_points)
    return totals


def format_points(x):
    return f"{x:g}"


def format_results(results, hidden_probe_ids=()):
    """The text `check()` prints: one line per probe, messages and hints under failures, a summary."""
    lines = []
    by_exercise = {}
    for r in results:
        by_exercise.setdefault(r.exercise, []).append(r)
    for exercise_id, rs in by_exercise.items():
        earned = sum(r.points for r in rs)
        possible = sum(r.max_points for r in rs)
        lines.append(f"{exercise_id}  ({format_points(earned)}/{format_points(possible)} points)")
        if all(r.status == "not implemented" for r in rs):
            lines.append(f"  · not implemented yet: replace the `raise NotImplementedError` line with your code")
            continue
        for r in rs:
            tag = " (hidden)" if r.probe_id in hidden_probe_ids else ""
            lines.append(f"  {MARKS[r.status]} {r.name}{tag}" + ("" if r.status == "passed" else f": {r.status}"))
            if r.status != "passed":
                if r.message and r.message != "not implemented yet":
                    lines.extend("      " + line for line in r.message.splitlines())
                if r.hint:
                    lines.append(f"      hint: {r.hint}")
    lines.append(summary(results, hidden_probe_ids))
    return "\n".join(lines) + "\n"


def summary(results, hidden_probe_ids=()):
    passed = sum(r.status == "passed" for r in results)
    public = [r for r in results if r.probe_id not in hidden_probe_ids]
    if passed == len(results) and results:
        if len(public) < len(results):
            return f"All {len(public)} public checks passed (and {len(results) - len(public)} hidden ones)."
        return f"All {len(results)} checks passed."
    if hidden_probe_ids:
        return f"{passed} of {len(results)} checks passed, hidden ones included."
    return f"{passed} of {len(results)} checks passed."


def exercise_status(rs):
    """One word for an exercise from its probe results."""
    if all(r.status == "passed" for r in rs):
        return "passed"
    if all(r.status == "not implemented" for r in rs):
        return "not implemented"
    return "failed"


def notebook_report(lesson, notebook):
    """(text, all_passed) for `llmc check`: one line per exercise, then the cells that failed."""
    results = run_checks(lesson.prefix, notebook)
    lines = [f"{lesson.notebook}: {lesson.title}"]
    by_exercise = {}
    for r in results:
        by_exercise.setdefault(r.exercise, []).append(r)
    for exercise_id, rs in by_exercise.items():
        status = exercise_status(rs)
        earned, possible = sum(r.points for r in rs), sum(r.max_points for r in rs)
        mark = {"passed": "✓", "not implemented": "·", "failed": "✗"}[status]
        line = f"  {mark} {exercise_id:<36} {format_points(earned):>4}/{format_points(possible):<4} {status}"
        lines.append(line)
        if status == "failed":
            first = next(r for r in rs if r.status != "passed")
            lines.append(f"      {first.name}: {first.status}" + (f": {first.message}" if first.message else ""))
            if first.hint:
                lines.append(f"      hint: {first.hint}")
    for error in getattr(notebook, "cell_errors", []):
        lines.append("  cell error: " + str(error).replace("\n", "\n  "))
    earned, possible = sum(r.points for r in results), sum(r.max_points for r in results)
    lines.append(f"  total {format_points(earned)}/{format_points(possible)} points; {summary(results)}")
    passed = bool(results) and all(r.status == "passed" for r in results)
    return "\n".join(lines) + "\n", passed


def progress_rows(directory, load):
    """[(lesson, passed exercises, exercises, points, possible, note)] for the lessons found in `directory`."""
    rows = []
    for lesson in LESSONS:
        path = directory / lesson.filename
        if not path.exists():
            continue
        probes = probes_for(lesson)
        if not probes:
            continue
        try:
            notebook = load(path)
        except (ValueError, OSError) as e:
            rows.append((lesson, 0, len(exercises(probes)), 0, sum(p.points for p in probes), str(e).splitlines()[0]))
            continue
        results = run_checks(lesson.prefix, notebook)
        grouped = {}
        for r in results:
            grouped.setdefault(r.exercise, []).append(r)
        done = sum(exercise_status(rs) == "passed" for rs in grouped.values())
        note = f"{len(notebook.cell_errors)} cells failed to run" if notebook.cell_errors else ""
        rows.append((lesson, done, len(grouped), sum(r.points for r in results), sum(r.max_points for r in results), note))
    return rows
