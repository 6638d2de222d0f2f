"""The grader's stored results: one JSON file per (student, lesson) under `OUT/.state/`.

`grade.py` commits a state as soon as a notebook is graded; `gradebook.py` judges and reports from
the stored states alone. A state holds the plain outcomes the child sent back and what decides
whether they still stand (the notebook's hash, the probes' fingerprint, the limits):

    {"version": 1, "student", "lesson", "notebook_sha256", "fingerprint", "limits",
     "status": protocol.GRADED | a child status | a submission status, "message", "cell_errors",
     "outcomes": {probe id: Outcome.to_json()}, "log", "wall_s", "cpu_s", "starved_s",
     "overloaded", "retried_alone"}

Every write is atomic (a reader sees the old file or the new one), so a run killed at any point
resumes from what is here. `load_state` is the one reader of stored states.
"""
import errno
import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from llmc_core.fileio import atomic_write_json
from llmc_core.grading import protocol

STATE_VERSION = 1
# Errors of the output folder itself (full, read-only, not ours), which no retry of a notebook would fix.
OUTPUT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def state_path(out, student, lesson):
    return Path(out) / ".state" / student / f"{lesson.notebook}.json"


def load_state(path):
    """A committed result, or None when there is none (or it is unreadable: then it is graded again)."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else None


def save_state(out, student, lesson, state):
    atomic_write_json(state_path(out, student, lesson), state)


def digest(data):
    return hashlib.sha256(data).hexdigest() if data is not None else None


def is_current(state, fingerprint, data, limits):
    """True when a committed result still stands for this notebook (`data`), these probes and these limits."""
    if state is None or state["status"] == protocol.GRADER_ERROR:
        return False
    if state["fingerprint"] != fingerprint or state["notebook_sha256"] != digest(data):
        return False
    if state.get("overloaded") and not state.get("retried_alone"):
        return False  # a timeout on a busy machine is final only once it was graded again alone
    if state["status"] in protocol.CHILD_FAILURES:
        return state["limits"] == limits.to_json()  # new limits deserve another try
    return True


def remove_student(out, name):
    """Delete a student's stored results and reports."""
    shutil.rmtree(Path(out) / ".state" / name, ignore_errors=True)
    (Path(out) / "feedback" / f"{name}.md").unlink(missing_ok=True)
    (Path(out) / "results" / f"{name}.json").unlink(missing_ok=True)


def stored_students(out):
    folder = Path(out) / ".state"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def remove_partial_writes(out):
    """Delete temporary files a killed run left behind (atomic writes go through `.name.*.tmp`)."""
    out = Path(out)
    for folder in (out, out / "feedback", out / "results", *(out / ".state").iterdir()):
        if folder.is_dir():
            for leftover in folder.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)


@contextmanager
def writing_to(out):
    """Turn a full, read-only or forbidden output folder into one line naming it and what to do."""
    try:
        yield
    except OSError as e:
        if e.errno not in OUTPUT_ERRORS:
            raise
        raise ValueError(f"cannot write to --out {out}: {e.strerror}; free some space there or make it writable, "
                         "then run the same command again (every notebook already graded is kept)") from None
