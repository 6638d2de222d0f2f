"""Red-team submissions against `llmc grade`: each is contained and earns no points it did not compute.

Every file in tests/redteam/ is one hostile cell plus the verdict it must get. All cases are graded
in one batch (one student each, 2 jobs) and checked one by one; negative controls show that the
cheats do work when a notebook is checked in-process without the sandbox, so these tests can fail.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmc_core.course import SNAPSHOT_DIR, lesson_by_notebook
from llmc_core.exercises import probes_for
from llmc_core.grading.grade import grade, load_state, state_path
from llmc_core.grading.sandbox import UID_BASE, Limits, detect_isolation, processes_of_uid
from redteam.harness import all_cases, base_notebook, load_case, with_cell, write_submission

LIMITS = Limits(timeout=6, memory=1536 << 20)
PWNED = "llmc_redteam_pwned.txt"
ISOLATION = detect_isolation()
# Cases marked `needs: namespaces` would really write files or reach the network under a weaker
# sandbox, so they are not even run there.
CASES = [c for c in all_cases() if c.needs in ("", ISOLATION.mode)]
needs_namespaces = pytest.mark.skipif(ISOLATION.mode != "namespaces",
                                      reason=f"needs root and unshare; this machine gives {ISOLATION.mode}")


class Listener:
    """A TCP server on every interface of this machine that records whether anyone connected."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
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
    for case in CASES:
        source = case.source.replace("HOST_ADDRESS", host_address()).replace("PORT", str(listener.port))
        notebook = with_cell(base_notebook(case.lesson, case.base), source, case.position)
        write_submission(root / "submissions" / case.name, case.lesson, notebook)
    before = protected_files()
    out = root / "out"
    grade(root / "submissions", out, lessons=sorted({c.lesson for c in CASES}), jobs=2, limits=LIMITS,
          progress=False)
    listener.close()
    yield out, listener, before, protected_files()


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
def test_nothing_written_outside(graded):
    out, _, before, after = graded
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
    assert "floats_with_signs: error\n      grading stopped during this check: it ran past the time limit" in feedback
    assert "empty_vectors: error\n      not run: grading stopped at an earlier check" in feedback


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
