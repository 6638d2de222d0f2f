"""Verdicts and reports: judge committed outcomes against the snapshots, write what instructors read.

Everything here runs in the parent, from the files under `OUT/.state/`. Outputs, each written
atomically:
- `gradebook.csv`: a `student` column, one column per exercise id, one per lesson (its total),
  `total`, and `issues` (timeouts, missing notebooks...); the first row, `max`, holds the points
  possible (it is the first row by position: `read_gradebook` reads it so, whatever a student is called);
- `feedback/<student>.md`: per lesson, the same lines `check()` prints, plus why a notebook could
  not be graded;
- `results/<student>.json`: Gradescope's autograder results format, one test per probe.
"""
import csv
import html
import io
import re

from llmc_core.checking import format_points, format_results, mark_blocked, plural
from llmc_core.exercises import Outcome, exercises, judge
from llmc_core.fileio import atomic_write_json, atomic_write_text
from llmc_core.grading import protocol
from llmc_core.grading.leaderboard import add_submission_card
from llmc_core.grading.store import load_state, state_path
from llmc_core.grading.summary import write_summary


def outcome_for(probe_id, state, order):
    """The outcome of one probe from a committed state, or an error outcome saying why there is none."""
    if state is None:
        return Outcome("error", message="not graded yet")
    stored = state["outcomes"].get(probe_id)
    if stored is not None:
        return Outcome.from_json(stored)
    status, message = state["status"], state["message"]
    if status == protocol.MISSING:
        return Outcome("missing", message="no notebook was submitted for this lesson")
    if status in protocol.NOT_READ:
        return Outcome("error", message="the notebook could not be read (see above)")
    # The child stopped early (timeout, crash, exit): name the check that was running when it did.
    first_missing = next((pid for pid in order if pid not in state["outcomes"]), None)
    loaded = bool(state["outcomes"]) or state.get("cell_errors") or status == protocol.GRADED
    if not state["outcomes"] and status != protocol.GRADED:
        return Outcome("error", message="the notebook could not be loaded for grading (see above)")
    if probe_id == first_missing and loaded:
        return Outcome("error", message=f"grading stopped during this check: {message}")
    return Outcome("error", message=f"not run: grading stopped at an earlier check ({message})")


def lesson_results(plan, state):
    """[ProbeResult] for one (student, lesson); hidden probes are judged without revealing expected values."""
    order = [p.id for p in plan.probes]
    results = [judge_safely(p, state, order, plan) for p in plan.probes]
    return mark_blocked(plan.probes, results)  # a failure caused by an earlier exercise says to fix that one


def judge_safely(probe, state, order, plan):
    """judge() one probe; a stored result that cannot be compared (a huge integer...) costs this check only."""
    reveal = probe.id not in plan.hidden_ids
    try:
        return judge(probe, outcome_for(probe.id, state, order), plan.snapshots.get(probe.id), reveal=reveal)
    except Exception as e:  # noqa: BLE001  whatever the learner's value made the comparison raise
        message = f"could not be judged: {type(e).__name__}: {e}"[:500]
        return judge(probe, Outcome("error", message=message), None, reveal=reveal)


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
    if state["status"] == protocol.GRADED:
        if not state["cell_errors"]:
            return ""
        return f"{plan.lesson.notebook}: {plural(len(state['cell_errors']), 'cell')} failed"
    return f"{plan.lesson.notebook}: {state['status']}"


def write_reports(out, students, plans):
    """Write gradebook.csv, feedback/ and results/ for every student from the committed states.

    Returns the gradebook's rows: the header, the max row, then one row per student.
    """
    columns = exercise_columns(plans)
    header = ["student"] + [c for c, _ in columns] + ["total", "issues"]
    rows, graded, speedruns = [_max_row(plans, columns)], [], {"entries": [], "rejected": []}
    for student in students:
        try:
            row, feedback, results, graded_lessons = student_reports(out, student.name, plans, columns)
            graded.append((student.name, *graded_lessons))
            add_submission_card(student, results, speedruns)
        except Exception as e:  # noqa: BLE001  one student's unreadable results cost that student only
            row, feedback, results = failed_reports(student.name, columns, f"{type(e).__name__}: {e}"[:500])
        rows.append(row)
        atomic_write_text(out / "feedback" / f"{student.name}.md", feedback)
        atomic_write_json(out / "results" / f"{student.name}.json", results)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header] + rows)
    atomic_write_text(out / "gradebook.csv", text.getvalue())
    write_summary(out, graded, speedruns)
    return [header] + rows


def student_reports(out, name, plans, columns):
    """(gradebook row, feedback Markdown, Gradescope results, (results, states) by lesson) for one student."""
    states = {plan.lesson.notebook: load_state(state_path(out, name, plan.lesson)) for plan in plans}
    results = {plan.lesson.notebook: lesson_results(plan, states[plan.lesson.notebook]) for plan in plans}
    return (_student_row(name, plans, columns, results, states), feedback_markdown(name, plans, results, states),
            gradescope_results(plans, results, states), (results, states))


def failed_reports(name, columns, error):
    """Reports saying that this student's results could not be judged (zero points, the reason in `issues`)."""
    message = f"could not be judged: {error}"
    row = [name] + ["0"] * len(columns) + ["0", message]
    feedback = f"# Feedback for {name}\n\nYour work {message_line(message)}. Your instructor has been told.\n"
    results = {"score": 0, "execution_time": 0.0, "output": message, "output_format": "text", "tests": []}
    return row, feedback, results


def read_gradebook(path):
    """(header, max row, [student rows]) of a gradebook.csv; the max row is the first row, by position."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or rows[0][:1] != ["student"]:
        raise ValueError(f"{path} is not a gradebook written by `llmc grade` (no header and max row)")
    return rows[0], rows[1], rows[2:]


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
    message = message_line(state["message"])
    if state["status"] == protocol.MISSING:
        lines.append(f"Not submitted: {message}.")
    elif state["status"] != protocol.GRADED:
        lines.append(f"The notebook could not be graded completely ({state['status']}): {message}.")
    elif state["message"]:
        lines.append(f"Note: {message}.")
    for e in state["cell_errors"]:
        where = f"cell {e['cell']}, line {e['line']}" if e["line"] else f"cell {e['cell']}"
        code = f" ({code_span(e['source_line'])})" if e["source_line"].strip() else ""
        lines.append(f"A cell failed to run, so what it defines is missing: {where}: {message_line(e['error'])}{code}")
    return lines


# Learner-made text (error messages, source lines, file names) goes into the feedback as inert text: on one
# line (no headers, no fake "Total" lines), with Markdown's inline marks escaped and HTML as entities.
# An underscore between two letters or digits never marks emphasis, so file names keep theirs.
INLINE_MARKS = re.compile(r"([\\`*\[\]~|]|(?<![^\W_])_|_(?![^\W_]))")


def message_line(text):
    """`text` as one line of plain Markdown text that renders as itself."""
    return INLINE_MARKS.sub(r"\\\1", html.escape(" ".join(str(text).split()), quote=False))


def code_span(text):
    """`text` on one line as inline code, with a fence of backticks longer than any run inside it."""
    text = " ".join(str(text).split())
    ticks = "`" * (longest_run(text, "`") + 1)
    return f"{ticks} {text} {ticks}"


def fenced(text, info="text"):
    """A fenced code block holding `text` verbatim; no line inside can close it."""
    fence = "`" * max(3, longest_run(text, "`") + 1)
    return [fence + info, text, fence]


def longest_run(text, char):
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


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
        lines += fenced(format_results(rs, plan.hidden_ids).rstrip("\n")) + [""]
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
