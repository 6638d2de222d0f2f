"""Verdicts and reports: judge committed outcomes against the snapshots, write what instructors read.

Everything here runs in the parent, from the files under `OUT/.state/`. Outputs, each written
atomically:
- `gradebook.csv`: a `student` column, one column per exercise id, one per lesson (its total),
  `total`, and `issues` (timeouts, missing notebooks...); the first row, `max`, holds the points
  possible;
- `feedback/<student>.md`: per lesson, the same lines `check()` prints, plus why a notebook could
  not be graded;
- `results/<student>.json`: Gradescope's autograder results format, one test per probe.
"""
import csv
import io

from llmc_core.checking import format_points, format_results
from llmc_core.exercises import Outcome, exercises, judge
from llmc_core.fileio import atomic_write_json, atomic_write_text
from llmc_core.grading.grade import load_state, state_path
from llmc_core.grading.summary import write_summary


def outcome_for(probe_id, state, order):
    """The outcome of one probe from a committed state, or an error outcome saying why there is none."""
    if state is None:
        return Outcome("error", message="not graded yet")
    stored = state["outcomes"].get(probe_id)
    if stored is not None:
        return Outcome.from_json(stored)
    status, message = state["status"], state["message"]
    if status == "missing":
        return Outcome("missing", message="no notebook was submitted for this lesson")
    if status in ("too large", "unreadable"):
        return Outcome("error", message="the notebook could not be read (see above)")
    # The child stopped early (timeout, crash, exit): name the check that was running when it did.
    first_missing = next((pid for pid in order if pid not in state["outcomes"]), None)
    loaded = bool(state["outcomes"]) or state.get("cell_errors") or status == "graded"
    if not state["outcomes"] and status != "graded":
        return Outcome("error", message="the notebook could not be loaded for grading (see above)")
    if probe_id == first_missing and loaded:
        return Outcome("error", message=f"grading stopped during this check: {message}")
    return Outcome("error", message=f"not run: grading stopped at an earlier check ({message})")


def lesson_results(plan, state):
    """[ProbeResult] for one (student, lesson); hidden probes are judged without revealing expected values."""
    order = [p.id for p in plan.probes]
    return [judge(p, outcome_for(p.id, state, order), plan.snapshots.get(p.id), reveal=p.id not in plan.hidden_ids)
            for p in plan.probes]


def exercise_columns(plans):
    """[(column, plan or None)]: exercise ids of each lesson, then the lesson's total column."""
    columns = []
    for plan in plans:
        columns += [(exercise, plan) for exercise in exercises(plan.probes)]
        columns.append((plan.lesson.notebook, plan))
    return columns


def issues_of(plan, state):
    if state is None:
        return f"{plan.lesson.notebook}: not graded yet"
    if state["status"] == "graded":
        return f"{plan.lesson.notebook}: {len(state['cell_errors'])} cells failed" if state["cell_errors"] else ""
    return f"{plan.lesson.notebook}: {state['status']}"


def write_reports(out, students, plans):
    """Write gradebook.csv, feedback/ and results/ for every student from the committed states."""
    columns = exercise_columns(plans)
    header = ["student"] + [c for c, _ in columns] + ["total", "issues"]
    rows, graded = [_max_row(plans, columns)], []
    for student in students:
        states = {plan.lesson.notebook: load_state(state_path(out, student.name, plan.lesson)) for plan in plans}
        results = {plan.lesson.notebook: lesson_results(plan, states[plan.lesson.notebook]) for plan in plans}
        rows.append(_student_row(student.name, plans, columns, results, states))
        graded.append((student.name, results, states))
        feedback = feedback_markdown(student.name, plans, results, states)
        atomic_write_text(out / "feedback" / f"{student.name}.md", feedback)
        atomic_write_json(out / "results" / f"{student.name}.json", gradescope_results(plans, results, states))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header] + rows)
    atomic_write_text(out / "gradebook.csv", text.getvalue())
    write_summary(out, graded)


def _max_row(plans, columns):
    row = ["max"]
    for column, plan in columns:
        probes = plan.probes if column == plan.lesson.notebook else exercises(plan.probes)[column]
        row.append(format_points(sum(p.points for p in probes)))
    row.append(format_points(sum(p.points for plan in plans for p in plan.probes)))
    return row + [""]


def _student_row(name, plans, columns, results, states):
    row = [name]
    for column, plan in columns:
        rs = results[plan.lesson.notebook]
        if column != plan.lesson.notebook:
            rs = [r for r in rs if r.exercise == column]
        row.append(format_points(sum(r.points for r in rs)))
    row.append(format_points(sum(r.points for rs in results.values() for r in rs)))
    row.append("; ".join(i for i in (issues_of(p, states[p.lesson.notebook]) for p in plans) if i))
    return row


def _problems(state):
    """Lines about why a notebook was not graded, or which cells failed to run."""
    if state is None:
        return ["This notebook has not been graded yet."]
    lines = []
    if state["status"] == "missing":
        lines.append(f"Not submitted: {state['message']}.")
    elif state["status"] != "graded":
        lines.append(f"The notebook could not be graded completely ({state['status']}): {state['message']}.")
    elif state["message"]:
        lines.append(f"Note: {state['message']}.")
    for e in state["cell_errors"]:
        where = f"cell {e['cell']}, line {e['line']}" if e["line"] else f"cell {e['cell']}"
        code = f" (`{e['source_line'].strip()}`)" if e["source_line"].strip() else ""
        lines.append(f"A cell failed to run, so what it defines is missing: {where}: {e['error']}{code}")
    return lines


def feedback_markdown(name, plans, results, states):
    earned = sum(r.points for rs in results.values() for r in rs)
    possible = sum(r.max_points for rs in results.values() for r in rs)
    lines = [f"# Feedback for {name}", "", f"Total: {format_points(earned)}/{format_points(possible)} points.", ""]
    for plan in plans:
        rs, state = results[plan.lesson.notebook], states[plan.lesson.notebook]
        lesson_earned, lesson_possible = sum(r.points for r in rs), sum(r.max_points for r in rs)
        lines += [f"## {plan.lesson.notebook}: {plan.lesson.title} "
                  f"({format_points(lesson_earned)}/{format_points(lesson_possible)} points)", ""]
        problems = _problems(state)
        if problems:
            lines += [f"- {p}" for p in problems] + [""]
        if plan.hidden_ids:
            lines += [f"This lesson was also graded with {len(plan.hidden_ids)} hidden checks, marked (hidden).", ""]
        lines += ["```text", format_results(rs, plan.hidden_ids).rstrip("\n"), "```", ""]
    return "\n".join(lines)


def gradescope_results(plans, results, states):
    """Gradescope's results.json: the score and one test per probe (hidden probes visible once grades are published)."""
    tests, summary = [], []
    for plan in plans:
        rs, state = results[plan.lesson.notebook], states[plan.lesson.notebook]
        number = int(plan.lesson.notebook[:2])
        for i, r in enumerate(rs, start=1):
            output = r.message if r.status != "passed" else ""
            if r.hint:
                output += f"\nhint: {r.hint}"
            tests.append({"name": r.probe_id, "number": f"{number}.{i}", "score": r.points, "max_score": r.max_points,
                          "status": "passed" if r.status == "passed" else "failed",
                          "output": f"{r.status}: {output.strip()}" if output.strip() else r.status,
                          "tags": [r.exercise],
                          "visibility": "after_published" if r.probe_id in plan.hidden_ids else "visible"})
        summary += [f"{plan.lesson.notebook}: {p}" for p in _problems(state)]
    score = sum(r.points for rs in results.values() for r in rs)
    execution = sum((s or {}).get("wall_s", 0.0) for s in states.values())
    return {"score": score, "execution_time": round(execution, 3), "output": "\n".join(summary),
            "output_format": "text", "tests": tests}
