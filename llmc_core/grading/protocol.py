"""What the grading child and its parent say to each other, and the statuses a graded notebook can end in.

The child (`child.py`) writes one JSON object per line to its result pipe, in this order:

    {"event": "ready"}                                  the sandbox is set up; the learner's code starts
    {"event": "loaded", "cell_errors": [...]}           the notebook ran (some cells may have failed)
    {"probe": id, "outcome": Outcome.to_json()}         one per probe, as each finishes
    {"event": "done"}                                   every probe ran
    {"event": "unreadable", "message": "..."}           instead of "loaded": the notebook could not be loaded

The builders below are what the child sends; `parse` and the `clean_*` functions are how the
parent (`sandbox.py`, `grade.py`) reads it back. The child runs the learner's code, so everything
read back is untrusted: it is size-capped, type-checked and reduced to plain fields.
"""
import json

from llmc_core.exercises import Outcome

READY, LOADED, DONE, UNREADABLE = "ready", "loaded", "done", "unreadable"
MESSAGE_CAP = 2000          # characters of a message (an unreadable notebook, a probe's error)
CELL_ERRORS_CAP = 50        # cell errors reported
CELL_ERROR_CAP = 500        # characters of one cell's error
SOURCE_LINE_CAP = 300       # characters of the source line that raised

# How a run of the child ended (sandbox.ChildRun.status); all but OK cost the notebook its unfinished checks.
OK, TIMEOUT, CRASHED, OUTPUT_TOO_LARGE, GRADER_ERROR = "ok", "timeout", "crashed", "output too large", "grader error"
CHILD_FAILURES = (TIMEOUT, CRASHED, OUTPUT_TOO_LARGE)  # worth another try with other limits
# How a stored (student, lesson) ended: GRADED, a child status, or what the submission was.
GRADED, MISSING, TOO_LARGE = "graded", "missing", "too large"
NOT_READ = (TOO_LARGE, UNREADABLE)  # the notebook never reached the child, or the child could not load it


def ready():
    return {"event": READY}


def loaded(cell_errors):
    """`cell_errors`: notebook.CellError objects."""
    return {"event": LOADED, "cell_errors": [
        {"cell": e.cell, "line": e.line, "error": str(e.error)[:CELL_ERROR_CAP],
         "source_line": str(e.source_line)[:SOURCE_LINE_CAP]} for e in cell_errors[:CELL_ERRORS_CAP]]}


def probe_result(probe_id, outcome_json):
    return {"probe": probe_id, "outcome": outcome_json}


def done():
    return {"event": DONE}


def unreadable(message):
    return {"event": UNREADABLE, "message": str(message)[:MESSAGE_CAP]}


def encode(event):
    return (json.dumps(event) + "\n").encode()


def parse(data):
    """([event dicts], finished) from the child's newline-delimited JSON; stops at the first malformed line."""
    events, finished = [], False
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            break
        if not isinstance(event, dict):
            break
        events.append(event)
        if event.get("event") in (DONE, UNREADABLE):
            finished = True
            break
    return events, finished


def started(events):
    return any(e.get("event") == READY for e in events)


def clean_cell_errors(event):
    """The cell errors of a `loaded` event, reduced to plain fields of the expected types."""
    errors = event.get("cell_errors")
    return [_cell_error(e) for e in errors[:CELL_ERRORS_CAP]] if isinstance(errors, list) else []


def _cell_error(e):
    if not isinstance(e, dict):
        return {"cell": 0, "line": 0, "error": "malformed report", "source_line": ""}
    number = lambda v: v if isinstance(v, int) and not isinstance(v, bool) else 0  # noqa: E731
    text = lambda v, cap: v[:cap] if isinstance(v, str) else ""  # noqa: E731
    return {"cell": number(e.get("cell")), "line": number(e.get("line")), "error": text(e.get("error"), CELL_ERROR_CAP),
            "source_line": text(e.get("source_line"), SOURCE_LINE_CAP)}


def clean_outcome(data):
    """An outcome from the child (untrusted), validated and in canonical form."""
    try:
        return Outcome.from_json(data).to_json()
    except (ValueError, TypeError, KeyError, RecursionError):
        return Outcome("error", message="the grading process returned malformed data for this check").to_json()


def clean_message(event):
    return str(event.get("message", ""))[:MESSAGE_CAP]
