"""A grading run killed with SIGKILL mid-batch, then started again, ends exactly like an uninterrupted run."""
import os
import re
import signal
import subprocess
import sys
import time

from llmc_core.course import REPO_DIR
from llmc_core.grading.grade import grade
from llmc_core.grading.sandbox import UID_BASE, Limits, processes_of_uid
from redteam.harness import base_notebook, write_submission

LESSONS = ["00_setup"]  # the fastest real lesson: the test is about the batch, not the notebooks
STUDENTS = {"ana": "solution", "ben": "lesson", "cho": "solution", "dev": "lesson", "eve": "solution", "fay": "lesson"}


def make_submissions(folder):
    for student, base in STUDENTS.items():
        for lesson in LESSONS:
            write_submission(folder / student, lesson, base_notebook(lesson, base))
    return folder


def cli(submissions, out, **popen):
    command = [sys.executable, "-m", "llmc_core.grading.cli", "grade", str(submissions), "--out", str(out),
               "--lessons", ",".join(LESSONS), "--jobs", "1", "--timeout", "60", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)


def committed(out):
    return sorted((out / ".state").glob("*/*.json")) if (out / ".state").exists() else []


def report_files(out):
    files = [out / "gradebook.csv"] + sorted((out / "feedback").glob("*.md"))
    return {p.relative_to(out): p.read_text() for p in files}


def test_killed_run_resumes_to_the_same_gradebook(tmp_path):
    submissions = make_submissions(tmp_path / "submissions")
    grade(submissions, tmp_path / "reference", lessons=LESSONS, jobs=1, limits=Limits(timeout=60), progress=False)

    out = tmp_path / "out"
    run = cli(submissions, out, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(committed(out)) < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    done_at_kill = len(committed(out))
    assert 2 <= done_at_kill < len(STUDENTS) * len(LESSONS), "the kill must land mid-batch"
    assert not (out / "gradebook.csv").exists()

    # The grading child of the killed run dies with it (parent-death signal and PID namespace).
    uids = [UID_BASE + (run.pid % 100_000) * 64 + slot for slot in range(2)]
    for _ in range(50):
        if not any(processes_of_uid(uid) for uid in uids):
            break
        time.sleep(0.1)
    assert not any(processes_of_uid(uid) for uid in uids)

    rerun = cli(submissions, out)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    graded, reused = map(int, re.search(r"(\d+) notebooks graded, (\d+) already graded", stdout).groups())
    assert reused >= done_at_kill and graded + reused == len(STUDENTS) * len(LESSONS)
    assert report_files(out) == report_files(tmp_path / "reference")
