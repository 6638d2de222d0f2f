"""`check()` in a notebook and the reports shared by `llmc check`, `llmc progress` and the grader."""
import html
import inspect
import sys
from dataclasses import replace

from llmc_core.course import LESSONS, current_exercise_id, lesson_by_prefix
from llmc_core.exercises import dependencies, exercises, judge, load_snapshots, probes_for, run_probe
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


def with_dependencies(chosen, probes):
    """`chosen` and the probes of every exercise they use, directly or not, in lesson order."""
    needed, todo = set(), [d for p in chosen for d in dependencies(p)]
    while todo:
        exercise = todo.pop()
        if exercise not in needed:
            needed.add(exercise)
            todo += [d for p in probes if p.exercise == exercise for d in dependencies(p)]
    return [p for p in probes if p in chosen or p.exercise in needed]


def run_checks(target, notebook, snapshots=None, hint_level=1):
    """Run the probes of `target` on `notebook` (a loaded module or a dict of globals) -> [ProbeResult].

    The exercises `target` uses are run too, so that a failure they cause says to fix them first.
    """
    lesson, chosen = select_probes(target)
    snapshots = load_snapshots(lesson) if snapshots is None else snapshots
    probes = with_dependencies(chosen, probes_for(lesson)) if "/" in target else chosen
    results = [judge(p, run_probe(p, notebook), snapshots.get(p.id), hint_level=hint_level) for p in probes]
    results = mark_blocked(probes, results)
    return [r for r, p in zip(results, probes) if p in chosen]


def mark_blocked(probes, results):
    """Results where a probe that fails and uses a failing exercise says to fix that exercise first (points unchanged).

    A blocked probe names the failing exercises at the root: those that fail on their own.
    """
    # a correct but slow exercise breaks nothing that uses it
    by_exercise = exercises(r for p, r in zip(probes, results) if not getattr(p.func, "measures_speed", False))
    roots = {}

    def root_failures(exercise):
        """The failing exercises, on their own, behind `exercise` ([exercise] when it fails by itself)."""
        if exercise not in roots:
            roots[exercise] = []  # guards against a cycle
            rs = by_exercise.get(exercise, [])
            if all(r.status == "passed" for r in rs):
                return []
            used = [d for p in probes if p.exercise == exercise for d in dependencies(p)]
            behind = [x for d in dict.fromkeys(used) for x in root_failures(d)]
            roots[exercise] = list(dict.fromkeys(behind)) or [exercise]
        return roots[exercise]

    marked = []
    for p, r in zip(probes, results):
        blockers = [x for d in dependencies(p) for x in root_failures(d)]
        if r.status != "passed" and blockers:
            blockers = list(dict.fromkeys(blockers))
            r = replace(r, blocked_by=blockers, hint="", more_hints=0, message=blocked_message(blockers, by_exercise))
        marked.append(r)
    return marked


def blocked_message(blockers, by_exercise):
    """'fix `micrograd/value_ops` first: this check uses it, and it fails its own checks'."""
    names = " and ".join(f"`{b}`" for b in blockers)
    it, fails = ("them", "they fail their") if len(blockers) > 1 else ("it", "it fails its")
    if all(all(r.status == "not implemented" for r in by_exercise.get(b, [])) for b in blockers):
        return f"write {names} first: this check uses {it}"
    return f"fix {names} first: this check uses {it}, and {fails} own checks"


def check(target, hint=1):
    """Check an exercise ("micrograd/backward") or a whole lesson ("micrograd") in this notebook and show the verdict.

    hint=2 (or more) shows the more direct hints of the failing checks: the formula or the API to use.
    """
    if is_loading():
        return  # loading a notebook for checking or grading runs definitions only
    if not isinstance(hint, int) or isinstance(hint, bool) or hint < 1:
        raise ValueError(f"check(..., hint={hint!r}): hint is the hint level, 1 (a nudge) or 2, 3, ... (more direct)")
    caller_globals = inspect.currentframe().f_back.f_globals
    if isinstance(target, str) and current_exercise_id(target) != target:
        moved = current_exercise_id(target)
        print(f"{target} is now {moved}, in lesson {lesson_by_prefix(moved.split('/')[0]).notebook}")
    results = run_checks(target, caller_globals, hint_level=hint)
    if in_jupyter():
        from IPython.display import display
        display({"text/html": format_html(results), "text/plain": format_results(results)}, raw=True)
    else:
        print(format_results(results), end="")


def in_jupyter():
    """True in a Jupyter kernel, where output can be HTML; False in a terminal, a script or the grader."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def exercise_points(results):
    """{exercise id: (points earned, points possible)}, in order."""
    return {exercise: (sum(r.points for r in rs), sum(r.max_points for r in rs))
            for exercise, rs in exercises(results).items()}


def format_points(x):
    return f"{x:g}"


def result_lines(results, hidden_probe_ids=()):
    """[(kind, text)] of what `check()` shows.

    kind is exercise, passed, failed, detail, hint, more, skipped or summary.
    """
    lines = []
    for exercise_id, rs in exercises(results).items():
        earned = sum(r.points for r in rs)
        possible = sum(r.max_points for r in rs)
        lines.append(("exercise", f"{exercise_id}  ({format_points(earned)}/{format_points(possible)} points)"))
        if all(r.status == "not implemented" and not r.blocked_by for r in rs):
            lines.append(("skipped",
                          "  · not implemented yet: replace the `raise NotImplementedError` line with your code"))
            continue
        failing = [r for r in rs if r.status != "passed"]
        if failing and all(r.blocked_by and r.message == failing[0].message for r in failing):
            # one cause for every failure: say it once instead of a line per check
            message = failing[0].message.replace("this check uses", "this exercise uses")
            if all(r.status == "not implemented" for r in failing):
                lines.append(("skipped", f"  · {message}"))
            else:
                verb = "fails" if len(failing) == 1 else "fail"
                lines.append(("failed", f"  ✗ {message} ({len(failing)} of {plural(len(rs), 'check')} here {verb} "
                                        "because of it)"))
            continue
        shown_hints, more_level = set(), 0
        for r in rs:
            tag = " (hidden)" if r.probe_id in hidden_probe_ids else ""
            if r.status == "passed":
                lines.append(("passed", f"  {MARKS[r.status]} {r.name}{tag}"))
                continue
            if r.blocked_by:
                lines.append(("failed", f"  {MARKS[r.status]} {r.name}{tag}: {r.message}"))
                continue
            lines.append(("failed", f"  {MARKS[r.status]} {r.name}{tag}: {r.status}"))
            if r.inputs:
                lines.append(("detail", f"      input: {abbreviate(r.inputs)}"))
            if r.message and r.message != "not implemented yet":
                lines.extend(("detail", "      " + line) for line in r.message.splitlines())
            for level, text in enumerate(r.hint.splitlines(), start=1):
                if text not in shown_hints:  # an exercise's nudge is said once, not under every check
                    shown_hints.add(text)
                    lines.append(("hint", f"      hint{'' if level == 1 else f' {level}'}: {text}"))
            if r.more_hints:
                more_level = len(r.hint.splitlines()) + 1
        if more_level:
            lines.append(("more", f'  more direct hints: check("{exercise_id}", hint={more_level})'))
    lines.append(("summary", summary(results, hidden_probe_ids)))
    return lines


def abbreviate(text, limit=160):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def format_results(results, hidden_probe_ids=()):
    """The text `check()` prints: one line per probe, messages and hints under failures, a summary."""
    return "\n".join(text for _, text in result_lines(results, hidden_probe_ids)) + "\n"


COLOURS = {"exercise": "font-weight:bold", "passed": "color:#1a7f37", "failed": "color:#cf222e",
           "detail": "color:#57606a", "hint": "color:#0550ae", "more": "color:#0550ae;font-style:italic",
           "skipped": "color:#57606a", "summary": "font-weight:bold"}


def format_html(results, hidden_probe_ids=()):
    """What `check()` shows in Jupyter: the lines of `format_results`, coloured by kind."""
    spans = [f'<span style="{COLOURS[kind]}">{html.escape(text)}</span>'
             for kind, text in result_lines(results, hidden_probe_ids)]
    return '<pre style="line-height:1.35">' + "\n".join(spans) + "</pre>"


def summary(results, hidden_probe_ids=()):
    passed = sum(r.status == "passed" for r in results)
    public = [r for r in results if r.probe_id not in hidden_probe_ids]
    if passed == len(results) and results:
        hidden = len(results) - len(public)
        also = f" (and {plural(hidden, 'hidden one')})" if hidden else ""
        kind = "public check" if hidden else "check"
        return (f"All {plural(len(public), kind)} passed" if len(public) > 1 else f"The {kind} passed") + also + "."
    if hidden_probe_ids:
        return f"{passed} of {plural(len(results), 'check')} passed, hidden ones included."
    return f"{passed} of {plural(len(results), 'check')} passed."


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
    for exercise_id, rs in exercises(results).items():
        status = exercise_status(rs)
        earned, possible = sum(r.points for r in rs), sum(r.max_points for r in rs)
        mark = {"passed": "✓", "not implemented": "·", "failed": "✗"}[status]
        line = f"  {mark} {exercise_id:<36} {format_points(earned):>4}/{format_points(possible):<4} {status}"
        lines.append(line)
        if status == "failed":
            first = next(r for r in rs if r.status != "passed")
            if first.blocked_by:
                lines.append(f"      {first.message}")
                continue
            lines.append(f"      {first.name}: {first.status}" + (f": {first.message}" if first.message else ""))
            if first.hint:
                lines.append(f"      hint: {first.hint.splitlines()[0]}")
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
        grouped = exercises(results)
        done = sum(exercise_status(rs) == "passed" for rs in grouped.values())
        note = f"{plural(len(notebook.cell_errors), 'cell')} failed to run" if notebook.cell_errors else ""
        points, max_points = sum(r.points for r in results), sum(r.max_points for r in results)
        rows.append((lesson, done, len(grouped), points, max_points, note))
    return rows
