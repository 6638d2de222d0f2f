"""Red-team submissions against `llmc grade`: each is contained and earns no points it did not compute.

Every file in tests/redteam/ is one hostile cell plus the verdict it must get. All cases are graded
in one batch (one student each, 2 jobs) and checked one by one; negative controls show that the
cheats do work when a notebook is checked in-process without the sandbox, so these tests can fail.
"""
import base64
import ctypes
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmc_core.course import PACKAGE_DIR, SNAPSHOT_DIR, lesson_by_notebook, solution_path
from llmc_core.exercises import probes_for
from llmc_core.grading import cgroups, clock, grade as grade_module, sandbox
from llmc_core.grading.grade import grade, load_state, state_path
from llmc_core.grading.gradebook import message_line, read_gradebook
from llmc_core.grading.sandbox import UID_BASE, Limits, detect_isolation, processes_of_uid, remove_ipc_of_uid, run_child
from llmc_core.grading.submissions import Student, read_lesson_notebook, safe_name
from redteam.harness import CASES_DIR, all_cases, base_notebook, load_case, with_cell, write_submission
from redteam.malformed import huge_outputs, malformed_notebooks, odd_zips

LIMITS = Limits(timeout=6, memory=1536 << 20)
PWNED = "llmc_redteam_pwned.txt"
IPC_KEYS = {0x4C4C4D43, 0x4C4C4D44, 0x4C4C4D45}  # what ipc_and_sockets.py creates
ISOLATION = detect_isolation()
# Cases marked `needs: namespaces` would really write files or reach the network under a weaker
# sandbox, so they are not even run there.
CASES = [c for c in all_cases() if c.needs in ("", ISOLATION.mode) and not c.alone]
needs_namespaces = pytest.mark.skipif(ISOLATION.mode != "namespaces",
                                      reason=f"needs root and unshare; this machine gives {ISOLATION.mode}")


class Listener:
    """A TCP server on every interface of this machine (or a Unix socket anyone may connect to) that
    records whether anyone connected."""

    def __init__(self, unix_path=None):
        if unix_path is None:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("0.0.0.0", 0))
            self.port = self.sock.getsockname()[1]
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o777)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def host_address():
    """This machine's address on its default route (not loopback), or loopback when there is none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only picks a route
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


def protected_files():
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SNAPSHOT_DIR.glob("*.json"))}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every red-team case as one student; return (out folder, listener, files before, files after)."""
    root = tmp_path_factory.mktemp("redteam")
    listener = Listener()
    unix_path = Path("/run" if os.path.isdir("/run") else "/tmp") / f"llmc-redteam-{os.getpid()}.sock"
    unix_listener = Listener(str(unix_path))
    for case in CASES:
        source = case.source.replace("HOST_ADDRESS", host_address()).replace("PORT", str(listener.port))
        source = source.replace("UNIX_SOCKET", str(unix_path))
        notebook = with_cell(base_notebook(case.lesson, case.base), source, case.position)
        write_submission(root / "submissions" / case.name, case.lesson, notebook)
    before = protected_files()
    out = root / "out"
    grade(root / "submissions", out, lessons=sorted({c.lesson for c in CASES}), jobs=2, limits=LIMITS,
          progress=False)
    listener.close()
    unix_listener.close()
    unix_path.unlink()
    yield out, listener, before, protected_files(), unix_listener


def lesson_points(out, case):
    state = load_state(state_path(out, case.name, lesson_by_notebook(case.lesson)))
    results = json.loads((out / "results" / f"{case.name}.json").read_text())
    prefix = lesson_by_notebook(case.lesson).prefix + "/"
    return state, sum(t["score"] for t in results["tests"] if t["name"].startswith(prefix))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_gets_its_verdict(graded, case):
    out = graded[0]
    state, points = lesson_points(out, case)
    assert state["status"] == case.status, (state["status"], state["message"], state["log"][-500:])
    possible = sum(p.points for p in probes_for(lesson_by_notebook(case.lesson)))
    assert points == (possible if case.points == "max" else float(case.points)), state["outcomes"]


def test_other_lessons_of_the_batch_still_graded(graded):
    """The timeouts and crashes cost only their own notebook: every student has a results file and feedback."""
    out = graded[0]
    for case in CASES:
        assert (out / "results" / f"{case.name}.json").exists()
        assert (out / "feedback" / f"{case.name}.md").exists()
    rows = (out / "gradebook.csv").read_text().splitlines()
    assert len(rows) == 2 + len(CASES)  # header, max, one row per student


@needs_namespaces
def test_no_connection_reached_the_listener(graded):
    assert graded[1].connections == 0


@needs_namespaces
def test_no_unix_socket_reached(graded):
    assert graded[4].connections == 0


def system_v_keys():
    keys = set()
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        keys.update(int(line.split()[0]) for line in lines)
    return keys


def test_no_system_v_ipc_left_behind(graded):
    assert not IPC_KEYS & system_v_keys()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a private uid")
def test_ipc_of_a_private_uid_removed():
    """Without an IPC namespace (private-user mode) the grader removes what the child's uid left."""
    uid = UID_BASE + 99_999 * 64 + 63
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(uid)
            ctypes.CDLL(None).shmget(min(IPC_KEYS), 4096, 0o1000 | 0o600)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert min(IPC_KEYS) in system_v_keys()
    remove_ipc_of_uid(uid)
    assert min(IPC_KEYS) not in system_v_keys()


@needs_namespaces
def test_nothing_written_outside(graded):
    out, _, before, after, _ = graded
    assert before == after, "a snapshot file changed"
    package = SNAPSHOT_DIR.parent
    for folder in (package, package / "snapshots", package / "probes", package.parent, Path("/tmp"),
                   Path("/var/tmp"), Path("/dev/shm"), Path("/root"), Path("/run/lock")):
        assert not (folder / PWNED).exists(), folder / PWNED


def test_no_process_survives(graded):
    for uid in range(UID_BASE + (os.getpid() % 100_000) * 64, UID_BASE + (os.getpid() % 100_000) * 64 + 2):
        assert processes_of_uid(uid) == []


def test_output_flood_kept_as_a_short_tail(graded):
    state = load_state(state_path(graded[0], "output_flood", lesson_by_notebook("00_setup")))
    assert len(state["log"]) <= LIMITS.log + 100


def test_forged_results_file_not_written(graded):
    results = json.loads((graded[0] / "results" / "forge_results.json").read_text())
    assert results["score"] == 0
    assert not Path("/autograder/results/results.json").exists()


def test_hang_in_probe_names_the_check(graded):
    feedback = (graded[0] / "feedback" / "hang_in_probe.md").read_text()
    # each failed check: its status line, the probe's input, then why it failed
    assert re.search(r"floats_with_signs: error\n +input: .*"
                     r"\n +grading stopped during this check: it ran past the time limit", feedback)
    assert re.search(r"empty_vectors: error\n +input: .*\n +not run: grading stopped at an earlier check", feedback)


def test_timeout_message_names_the_limit(graded):
    state = load_state(state_path(graded[0], "infinite_loop", lesson_by_notebook("00_setup")))
    assert "time limit of 6 s" in state["message"]
    feedback = (graded[0] / "feedback" / "infinite_loop.md").read_text()
    assert "time limit of 6 s" in feedback


CONTROL = """
import sys
from llmc_core import load_notebook
from llmc_core.checking import run_checks
nb = load_notebook(sys.argv[1])
print(sum(r.status == "passed" for r in run_checks("setup/dot", nb)))
"""


@pytest.mark.parametrize("name", ["snapshot_thief", "disk_search", "monkeypatch_harness"])
def test_cheat_works_without_the_sandbox(tmp_path, name):
    """Negative control: checked in-process, each cheat does pass, so the sandboxed verdict of 0 means something."""
    case = load_case(Path(__file__).parent / "redteam" / f"{name}.py")
    path = write_submission(tmp_path, case.lesson, with_cell(base_notebook(case.lesson, case.base), case.source))
    env = dict(os.environ, PYTHONPATH=str(SNAPSHOT_DIR.parents[1]))
    passed = subprocess.run([sys.executable, "-c", CONTROL, str(path)], capture_output=True, text=True,
                            env=env, timeout=120, check=True).stdout.split()[-1]
    assert int(passed) == len(probes_for(lesson_by_notebook("00_setup")))


def copy_package(target):
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("data", "__pycache__"))


def gradebook_rows(out):
    lines = (out / "gradebook.csv").read_text().splitlines()
    return {line.split(",")[0]: line.split(",") for line in lines[1:]}


@needs_namespaces
def test_no_answer_file_is_readable(tmp_path):
    """Answers planted wherever an installed or checked-out course keeps files are absent from the child."""
    checkout = tmp_path / "checkout"  # a source checkout the grader runs from (like an editable install)
    copy_package(checkout / "llmc_core")
    venv = tmp_path / "venv"  # a Python environment holding a wheel-like copy of the course and an editable one
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    copy_package(site / "llmc_core")
    (site / "main.pth").write_text("\n".join(p for p in sys.path if p.endswith("-packages")) + "\n")
    (site / "editable.pth").write_text(str(tmp_path / "editable") + "\n")
    planted = [checkout / "build/lib/llmc_core/snapshots/00_setup.ipynb", checkout / "dist/00_setup.ipynb",
               checkout / "tests/cuda_kernels/00_setup.ipynb", checkout / "solutions/00_setup.ipynb",
               checkout / "llmc_core/snapshots/00_setup.ipynb", checkout / "llmc_core/references/00_setup.ipynb",
               site / "llmc_core/snapshots/00_setup.ipynb", site / "llmc_core/references/00_setup.ipynb",
               tmp_path / "editable/llmc_core/snapshots/00_setup.ipynb", tmp_path / "editable/solutions/00_setup.ipynb",
               checkout / "submissions-2025/ann/00_setup.ipynb", checkout / "grades-2025/feedback/00_setup.ipynb",
               checkout / "grades/planted/00_setup.ipynb"]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(solution_path("00_setup"), path)
    case = load_case(CASES_DIR / "answer_hunt.py")
    source = case.source.replace("PLANTED_PATHS", repr([str(p) for p in planted]))
    submissions = checkout / "submissions"
    write_submission(submissions / "attacker", case.lesson, with_cell(base_notebook(case.lesson, case.base), source))
    write_submission(submissions / "bob", case.lesson, base_notebook(case.lesson, "solution"))  # a sibling's work
    out = checkout / "grades"
    command = [str(venv / "bin" / "python"), "-m", "llmc_core.grading.cli", "grade", str(submissions),
               "--out", str(out), "--lessons", case.lesson, "--jobs", "2", "--timeout", "60", "--quiet"]
    run = subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(checkout)), cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    state = load_state(state_path(out, "attacker", lesson_by_notebook(case.lesson)))
    assert "readable planted answers: []" in state["log"], state["log"][-2000:]
    assert "answer found" not in state["log"], state["log"][-2000:]
    rows = gradebook_rows(out)
    assert rows["bob"][-3] == rows["max"][-3] != "0"  # the grader works: the sibling's solution gets full marks
    assert float(rows["attacker"][-3]) == 0


def test_huge_numbers_could_not_be_judged(graded):
    """A result that cannot be compared costs its own checks, with the reason; the batch completes."""
    feedback = (graded[0] / "feedback" / "huge_numbers.md").read_text()
    assert "could not be judged: OverflowError" in feedback


def test_forged_feedback_renders_inert(graded):
    """Rendered as CommonMark, the feedback shows one total and one header per lesson, whatever the messages say."""
    markdown_it = pytest.importorskip("markdown_it")
    text = (graded[0] / "feedback" / "forged_feedback.md").read_text()
    tokens = markdown_it.MarkdownIt("commonmark").parse(text)
    headers = [t for t in tokens if t.type == "heading_open"]
    assert [t.tag for t in headers] == ["h1", "h2"], text
    inline = [t.content for t in tokens if t.type == "inline"]
    assert sum(line.startswith("Total:") for line in inline) == 1, text
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")], text
    assert tokens[-1].type == "fence" and "setup/dot" in tokens[-1].content  # the real results, still visible


SMALL = Limits(timeout=60, memory=1536 << 20)


def small_batch(folder, students):
    """Write 00_setup submissions {name: "solution" | "lesson"} under `folder`; return it."""
    for name, base in students.items():
        write_submission(folder / name, "00_setup", base_notebook("00_setup", base))
    return folder


def test_long_student_names_shortened_stably(tmp_path):
    """Folder names too long for the output's file names get a short name with a hash, the same on every run."""
    long_names = {"a" * 239 + "1": "solution", "a" * 239 + "2": "lesson"}  # a folder may have 255 bytes
    submissions = small_batch(tmp_path / "submissions", long_names)
    grade(submissions, tmp_path / "out", lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    header, maximum, rows = read_gradebook(tmp_path / "out" / "gradebook.csv")
    names = [row[0] for row in rows]
    assert len(set(names)) == 2 and all(len(n.encode()) <= 96 and n.startswith("a" * 50) for n in names)
    points = {row[0]: row[-3] for row in rows}
    assert [points[safe_name(name)] for name in long_names] == [maximum[-3], "0"]
    again = grade(submissions, tmp_path / "out", lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    assert again["graded"] == 0 and again["reused"] == 2


def test_lookalike_max_is_marked(tmp_path):
    """Names that pass for the max row are marked; the max row is the first row, whatever the names."""
    submissions = small_batch(tmp_path / "submissions", {"m\u0430\u0445": "solution", "\uff4d\uff41\uff58": "solution",
                                                          "max": "lesson"})
    grade(submissions, tmp_path / "out", lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    header, maximum, rows = read_gradebook(tmp_path / "out" / "gradebook.csv")
    assert maximum[0] == "max" and float(maximum[-3]) > 0
    lookalikes = ["_lookalike_m\u0430\u0445", "_lookalike_\uff4d\uff41\uff58"]  # Cyrillic, then fullwidth letters
    assert sorted(row[0] for row in rows) == sorted(["_max", *lookalikes])


def test_deleted_and_changed_submissions(tmp_path, capfd):
    """A deleted student leaves the gradebook with their stored results; a changed notebook is graded again."""
    submissions = small_batch(tmp_path / "submissions", {"ann": "solution", "ben": "lesson"})
    out = tmp_path / "out"
    grade(submissions, out, lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    shutil.rmtree(submissions / "ann")
    small_batch(submissions, {"ben": "solution"})
    capfd.readouterr()
    summary = grade(submissions, out, lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    log = capfd.readouterr().err
    assert not (out / ".state" / "ann").exists() and not (out / "feedback" / "ann.md").exists()
    assert not (out / "results" / "ann.json").exists()
    assert summary["removed"] == ["ann"] and summary["changed"] == ["ben/00_setup"] and summary["graded"] == 1
    assert "removed ann" in log and "grading ben/00_setup again: the submitted notebook changed" in log
    header, maximum, rows = read_gradebook(out / "gradebook.csv")
    assert [(row[0], row[-3]) for row in rows] == [("ben", maximum[-3])]


FULL_DISK = """
set -u
mount -t tmpfs -o size=1m tmpfs "$OUT"
dd if=/dev/zero of="$OUT/ballast" bs=4k 2>/dev/null
$GRADE; echo "full: rc=$?"
rm "$OUT/ballast"
$GRADE; echo "freed: rc=$?"
ls -a "$OUT/.state/ann" "$OUT/.state/ben"
test -f "$OUT/gradebook.csv" && echo "gradebook written"
mount -o remount,ro "$OUT"
$GRADE --force; echo "read-only: rc=$?"
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root to mount a small disk")
def test_full_or_read_only_out(tmp_path):
    """A full --out ends in one line naming it; after space is freed the same command completes the batch."""
    submissions = small_batch(tmp_path / "submissions", {"ann": "solution", "ben": "lesson"})
    (tmp_path / "out").mkdir()
    grade_command = (f"{sys.executable} -m llmc_core.grading.cli grade {submissions} --out {tmp_path / 'out'} "
                     "--lessons 00_setup --jobs 2 --timeout 60 --quiet")
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent), OUT=str(tmp_path / "out"), GRADE=grade_command)
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", FULL_DISK],
                         env=env, capture_output=True, text=True, timeout=300)
    out, err = run.stdout, run.stderr
    assert "full: rc=2" in out and "freed: rc=0" in out and "gradebook written" in out, (out, err)
    assert "read-only: rc=2" in out, (out, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all(f"cannot write to --out {tmp_path / 'out'}" in e for e in errors), err
    assert "No space left on device" in errors[0] and "Read-only file system" in errors[1]
    assert ".tmp" not in out  # no half-written file left in the committed results


MAX_FUZZ_BYTES = 1 << 18


def fuzz_submissions(folder):
    """Write every malformed submission under `folder`, one student each; [(Student, label, words)]."""
    items = []
    for i, (label, data, words) in enumerate([*malformed_notebooks(), *huge_outputs(MAX_FUZZ_BYTES)]):
        (folder / f"n{i:03d}").mkdir(parents=True)
        (folder / f"n{i:03d}" / "00_setup.ipynb").write_bytes(data)
        items.append((Student(f"n{i:03d}", folder / f"n{i:03d}", "dir"), label, words))
    for i, (label, data, words) in enumerate(odd_zips(MAX_FUZZ_BYTES)):
        (folder / f"z{i:03d}.zip").write_bytes(data)
        items.append((Student(f"z{i:03d}", folder / f"z{i:03d}.zip", "zip"), label, words))
    return items


def test_fuzzed_submissions_each_get_a_status_that_says_why(tmp_path):
    """Over 500 malformed submissions: every one ends in its own status with a message naming the problem."""
    items = fuzz_submissions(tmp_path)
    assert len(items) >= 500
    wrong = []
    for student, label, words in items:
        found = read_lesson_notebook(student, "00_setup.ipynb", MAX_FUZZ_BYTES)
        if found.status not in ("unreadable", "too large", "missing") or words not in found.message:
            wrong.append((label, found.status, found.message[:200]))
    assert not wrong, wrong[:10]


def test_a_few_fuzzed_submissions_through_the_whole_grader(tmp_path):
    """A handful of them graded as a batch: each gets its status and message in the state and the feedback."""
    chosen = ["top=null", "cells.1=3", "utf-16", "huge output", "symbolic link", "encrypted"]
    items = {label: (student, words) for student, label, words in fuzz_submissions(tmp_path / "all")}
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for label in chosen:
        student = items[label][0]
        shutil.move(student.source, submissions / student.source.name)
    out = tmp_path / "out"
    grade(submissions, out, lessons=["00_setup"], jobs=2, limits=SMALL, progress=False,
          max_notebook_bytes=MAX_FUZZ_BYTES)
    for label in chosen:
        student, words = items[label]
        state = load_state(state_path(out, student.name, lesson_by_notebook("00_setup")))
        assert state["status"] in ("unreadable", "too large") and words in state["message"], (label, state["message"])
        assert message_line(words) in (out / "feedback" / f"{student.name}.md").read_text()


@pytest.mark.parametrize("notebook", [{"nbformat": 4, "cells": [1, 2]},
                                      {"nbformat": 4, "cells": [{"cell_type": "code", "source": "x = 1",
                                                                 "metadata": "tags"}]}], ids=["ints", "metadata"])
def test_child_reports_an_unloadable_notebook(notebook):
    """Past the parent's checks, a notebook the loader cannot walk is `unreadable` with the reason, not a crash."""
    lesson = lesson_by_notebook("00_setup")
    request = {"lesson": lesson.notebook, "notebook": base64.b64encode(json.dumps(notebook).encode()).decode(),
               "probe_ids": [p.id for p in probes_for(lesson)], "hidden": []}
    run = run_child(request, SMALL, ISOLATION)
    unreadable = [e for e in run.events if e.get("event") == "unreadable"]
    assert run.status == "ok" and unreadable, (run.status, run.message, run.log[-500:])
    assert "could not be loaded" in unreadable[0]["message"] and "Error" in unreadable[0]["message"]


@pytest.mark.skipif(cgroups.detect() is None, reason="needs cgroups (root, and v2 or v1 controllers)")
def test_memory_is_limited_per_notebook(tmp_path):
    """Three processes of 700 MB each (each under --memory 1.5G) cannot all live: the notebook's memory is one pool."""
    case = load_case(CASES_DIR / "memory_spread.py")
    write_submission(tmp_path / "submissions" / "spreader", case.lesson,
                     with_cell(base_notebook(case.lesson, case.base), case.source))
    grade(tmp_path / "submissions", tmp_path / "out", lessons=[case.lesson], jobs=1, limits=SMALL, progress=False)
    state = load_state(state_path(tmp_path / "out", "spreader", lesson_by_notebook(case.lesson)))
    held = re.search(r"processes holding 700 MB each: (\d)", state["log"])
    # the pool holds one or two of them beside the notebook's own process, never all three
    assert state["status"] == "graded" and held and int(held[1]) in (1, 2), state["log"][-500:]
    header, maximum, rows = read_gradebook(tmp_path / "out" / "gradebook.csv")
    assert float(rows[0][-3]) == 0


def spin_on(cpu):
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def test_starved_notebook_is_charged_only_the_time_it_ran(tmp_path, monkeypatch):
    """Busy loops on the notebook's CPU make it wait past its time limit.

    The wait is not charged: it keeps its points.
    """
    monkeypatch.setattr(clock, "WALL_BACKSTOP", 30)  # the subject here is the charged time, not the backstop
    burn = ("import time\nstart = time.process_time()\n"
            "while time.process_time() - start < 0.6:  # CPU seconds\n    pass\n")
    busy = with_cell(base_notebook("00_setup", "solution"), burn)
    write_submission(tmp_path / "submissions" / "ann", "00_setup", busy)
    submissions = tmp_path / "submissions"
    mask = os.sched_getaffinity(0)
    cpu = min(mask)
    spinners = [spin_on(cpu) for _ in range(6)]
    try:
        os.sched_setaffinity(0, {cpu})  # the grading threads and the child inherit it: they share that CPU
        grade(submissions, tmp_path / "out", lessons=["00_setup"], jobs=1,
              limits=Limits(timeout=1.5, memory=1536 << 20), progress=False)
    finally:
        os.sched_setaffinity(0, mask)
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    state = load_state(state_path(tmp_path / "out", "ann", lesson_by_notebook("00_setup")))
    times = {k: state.get(k) for k in ("wall_s", "cpu_s", "starved_s")}
    if state["status"] == "graded" and state["wall_s"] <= 1.5:  # the scheduler found it another CPU in time
        pytest.skip(f"the busy loops did not hold the notebook past its time limit on this machine: {times}")
    assert state["status"] == "graded" and state["wall_s"] > 1.5, times  # it did take longer than the limit
    header, maximum, rows = read_gradebook(tmp_path / "out" / "gradebook.csv")
    assert rows[0][-3] == maximum[-3]


def test_overloaded_timeout_graded_again_alone(tmp_path, monkeypatch, capfd):
    """A timeout on a busy machine is graded again after the others, alone; only that second result is final."""
    real, in_flight, calls = grade_module.run_child, [], []

    def busy_machine(request, limits, isolation, **kwargs):
        is_ann = b"ANN_MARK" in base64.b64decode(request["notebook"])
        in_flight.append(request)
        try:
            calls.append((is_ann, len(in_flight)))
            if is_ann:  # ann's notebook is always caught by an overloaded machine
                return sandbox.ChildRun("timeout", [{"event": "ready"}], "it ran past the time limit of 60 s",
                                        overloaded=True)
            return real(request, limits, isolation, **kwargs)
        finally:
            in_flight.remove(request)

    monkeypatch.setattr(grade_module, "run_child", busy_machine)
    submissions = small_batch(tmp_path / "submissions", {"ben": "lesson"})
    write_submission(submissions / "ann", "00_setup", with_cell(base_notebook("00_setup", "solution"), "ANN_MARK = 1"))
    grade(submissions, tmp_path / "out", lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    ann = [alone for is_ann, alone in calls if is_ann]
    assert len(ann) == 2 and ann[1] == 1 and calls[-1][0], calls  # twice; the second last and alone
    state = load_state(state_path(tmp_path / "out", "ann", lesson_by_notebook("00_setup")))
    assert state["status"] == "timeout" and state["retried_alone"] and "second time, alone" in state["message"]
    assert "grading ann/00_setup again, alone" in capfd.readouterr().err
    again = grade(submissions, tmp_path / "out", lessons=["00_setup"], jobs=2, limits=SMALL, progress=False)
    assert again["graded"] == 0  # the second result is final


DROPPED = """
import os, sys
from llmc_core.grading import rootfs
rootfs.drop_capabilities()
try:
    rootfs.mount_tmpfs(sys.argv[1], "size=4k")
    print("mounted")
except OSError as e:
    print("refused:", e)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_child_without_capabilities_cannot_mount(tmp_path):
    """A child that keeps uid 0 of its namespace (user-namespaces mode) gives up the capabilities to undo mounts."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", DROPPED,
                          str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert "refused:" in run.stdout and "Operation not permitted" in run.stdout, (run.stdout, run.stderr)
