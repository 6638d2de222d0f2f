"""`llmc grade`: grade every (student, lesson) in a sandboxed child, commit each result as it finishes.

The pipeline for one notebook:
1. the parent reads the notebook from the submission (size checked first, never extracted);
2. `sandbox.run_child` loads it in a child process and runs the lesson's probes there, public and
   hidden; the child sends back plain outcomes;
3. the parent commits the outcomes to `OUT/.state/<student>/<lesson>.json` (atomically, `store.py`);
4. at the end, `gradebook.write_reports` judges every stored outcome against the snapshots,
   which only the parent reads, and writes the gradebook, feedback and Gradescope results.

A killed run restarts where it stopped: a committed (student, lesson) whose notebook, probes and
limits are unchanged is not graded again.
"""
import base64
import hashlib
import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from llmc_core.course import LESSONS, REFERENCE_DIR, REPO_DIR, SNAPSHOT_DIR, SOLUTIONS_DIR, lesson_by_notebook
from llmc_core.exercises import load_snapshots, probes_for
from llmc_core.grading import hidden as hidden_probes, lesson_needs, protocol, store
from llmc_core.grading.gradebook import write_reports
from llmc_core.grading.sandbox import Limits, detect_isolation, remove_stale_workroots, run_child
from llmc_core.grading.store import (
    digest,
    is_current,
    load_state,
    remove_partial_writes,
    remove_student,
    save_state,
    state_path,
    stored_students,
    writing_to,
)
from llmc_core.grading.submissions import Found, find_students, read_lesson_notebook

MAX_NOTEBOOK_BYTES = 50 << 20


@dataclass
class LessonPlan:
    """What grading one lesson needs: its probes (public, then hidden) and their snapshots."""
    lesson: object
    probes: list
    snapshots: dict
    hidden_ids: set = field(default_factory=set)
    hidden_sources: list = field(default_factory=list)
    readable: list = field(default_factory=list)  # files the child may read: earlier solutions, a runtime cache
    env: dict = field(default_factory=dict)       # variables for the child beyond the scrubbed environment
    fingerprint: str = ""   # changes when the probes (or the solutions they build on) change: results are then stale


def plan_lessons(names=None, hidden_dir=None):
    """[LessonPlan] for the lessons named (notebook stems) or, by default, every lesson with probes and snapshots."""
    hidden = hidden_probes.load_hidden(hidden_dir) if hidden_dir else {}
    lessons = [lesson_by_notebook(n) for n in names] if names else list(LESSONS)
    plans = []
    for lesson in lessons:
        public = probes_for(lesson)
        extra = hidden.get(lesson.notebook)
        probes = public + (extra.probes if extra else [])
        if not probes:
            if names:
                raise ValueError(f"lesson {lesson.notebook} has no probes to grade with yet")
            continue
        snapshots = load_snapshots(lesson)
        if public and not snapshots and not names:
            continue  # a lesson still being written: grade it once `llmc build` gave it snapshots
        if public and not snapshots:
            raise ValueError(f"lesson {lesson.notebook} has no snapshots; run `llmc build {lesson.notebook}` first")
        plan = LessonPlan(lesson, probes, dict(snapshots))
        if extra:
            clash = {p.id for p in public} & {p.id for p in extra.probes}
            if clash:
                raise ValueError(f"hidden probes reuse public probe ids {sorted(clash)}; give them other names")
            plan.snapshots.update(hidden_probes.load_hidden_snapshots(hidden_dir, lesson, extra))
            plan.hidden_ids = {p.id for p in extra.probes}
            plan.hidden_sources = extra.sources
        plan.readable = [str(p) for p in lesson_needs.earlier_solutions(lesson)]
        plan.fingerprint = probes_fingerprint(plan)
        plans.append(plan)
    return plans


def probes_fingerprint(plan):
    h = hashlib.sha256()
    module = sys.modules.get(plan.lesson.probe_module)
    if module is not None and getattr(module, "__file__", None):
        h.update(Path(module.__file__).read_bytes())
    h.update(json.dumps([p.id for p in plan.probes]).encode())
    h.update(hidden_probes.sources_digest(plan.hidden_sources).encode())
    for path in plan.readable:
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def grade_notebook(student, plan, found, limits, isolation, slot, hide, cancel=None, alone=False):
    """Grade one (student, lesson) -> the state dict to commit; `alone`: nothing else is being graded."""
    state = {"version": store.STATE_VERSION, "student": student.name, "lesson": plan.lesson.notebook,
             "notebook_sha256": digest(found.data), "fingerprint": plan.fingerprint, "limits": limits.to_json(),
             "status": found.status, "message": found.message, "cell_errors": [], "outcomes": {}, "log": "",
             "wall_s": 0.0}
    if found.status != "ok":
        return state
    request = {"lesson": plan.lesson.notebook, "notebook": base64.b64encode(found.data).decode(),
               "probe_ids": [p.id for p in plan.probes], "hidden": plan.hidden_sources}
    run = run_child(request, limits, isolation, slot=slot, hide=hide, cancel=cancel, readable=plan.readable,
                    env=plan.env)
    state.update(status=protocol.GRADED if run.status == protocol.OK else run.status, log=run.log,
                 wall_s=round(run.wall, 3), cpu_s=None if run.cpu is None else round(run.cpu, 3),
                 starved_s=round(run.starved, 3), overloaded=run.overloaded, retried_alone=alone)
    if run.status != protocol.OK:
        state["message"] = run.message
    if run.overloaded and alone:
        state["message"] += " (graded a second time, alone, because the machine was busy the first time)"
    wanted = {p.id for p in plan.probes}
    for event in run.events:
        if event.get("event") == protocol.UNREADABLE:
            state.update(status=protocol.UNREADABLE, message=protocol.clean_message(event))
        elif event.get("event") == protocol.LOADED:
            state["cell_errors"] = protocol.clean_cell_errors(event)
        elif event.get("probe") in wanted and event["probe"] not in state["outcomes"]:
            state["outcomes"][event["probe"]] = protocol.clean_outcome(event.get("outcome"))
    if found.message:
        state["message"] = "; ".join(m for m in (found.message, state["message"]) if m)
    return state


def hidden_paths(submissions, out, hidden_dir, extra=()):
    """Folders a grading child must not read: answers, other students' work, grader output."""
    # The reference copies of solutions are hidden too; a lesson that builds on an earlier one gets that
    # one's copy back (LessonPlan.readable).
    paths = [SNAPSHOT_DIR, REFERENCE_DIR, SOLUTIONS_DIR, REPO_DIR / ".git", Path(submissions), Path(out)]
    if hidden_dir:
        paths.append(Path(hidden_dir))
    paths += [Path(p) for p in extra]
    return [str(p.resolve()) for p in paths if p.exists()]


def check_layout(submissions, out):
    submissions_dir, out_dir = Path(submissions).resolve(), Path(out).resolve()
    if submissions_dir == out_dir or submissions_dir in out_dir.parents:
        raise ValueError(f"--out {out} is inside {submissions}, where it would be taken for a student; "
                         "write grades to a folder outside the submissions")
    package = Path(__file__).resolve().parents[1]
    for needed in (package, Path(sys.prefix).resolve()):
        for folder, flag in ((Path(submissions).resolve(), "SUBMISSIONS"), (Path(out).resolve(), "--out")):
            if needed == folder or folder in needed.parents:
                raise ValueError(f"{flag} {folder} contains {needed}, which grading needs to run; "
                                 "use a folder that holds only submissions (or only grades)")


def grade(submissions, out, lessons=None, jobs=None, limits=Limits(), hidden_dir=None, student=None,
          force=False, progress=True, max_notebook_bytes=MAX_NOTEBOOK_BYTES, hide=(), isolation=None):
    """Grade a folder of submissions into `out`; returns {"graded", "reused", "students", "isolation",
    "removed": [student], "changed": ["student/lesson"]}."""

    out = Path(out)
    check_layout(submissions, out)
    plans = plan_lessons(lessons, hidden_dir)
    students = find_students(submissions)
    if not students:
        raise ValueError(f"no students in {submissions}: expected one subfolder or .zip per student")
    chosen = students
    if student is not None:
        chosen = [s for s in students if s.name == student or s.source.name == student]
        if not chosen:
            raise ValueError(f"no student {student!r} in {submissions}; students: "
                             + ", ".join(s.name for s in students[:20]))
    isolation = isolation or detect_isolation()
    hide = hidden_paths(submissions, out, hidden_dir, hide)
    jobs = jobs or os.cpu_count() or 1
    with writing_to(out):
        (out / ".state").mkdir(parents=True, exist_ok=True)
        remove_partial_writes(out)
        remove_stale_workroots()
        removed = forget_removed_students(out, students)
        tasks, reused, changed = collect_tasks(chosen, plans, out, limits, force or student is not None,
                                               max_notebook_bytes)
        for s, plan, found in [t for t in tasks if t[2].status != "ok"]:  # nothing to run: commit at once
            save_state(out, s.name, plan.lesson, grade_notebook(s, plan, found, limits, isolation, 0, hide))
        tasks = [t for t in tasks if t[2].status == "ok"]
        prepare_cuda({plan.lesson.notebook: plan for _, plan, _ in tasks}.values())
        # Later lessons take longer to grade (torch, compiled kernels): starting them first keeps the end of
        # the run from waiting on one long notebook while the other jobs sit idle.
        order = [lesson.notebook for lesson in LESSONS]
        tasks.sort(key=lambda task: -order.index(task[1].lesson.notebook))
        run_tasks(tasks, out, limits, isolation, hide, jobs, progress)
        write_reports(out, students, plans)
    return {"graded": len(tasks), "reused": reused, "students": len(students), "isolation": isolation.mode,
            "removed": removed, "changed": changed}


def collect_tasks(students, plans, out, limits, again, max_notebook_bytes):
    """([(student, plan, Found)] to grade, how many committed results stand, ["student/lesson" that changed])."""
    tasks, reused, changed = [], 0, []
    for s in students:
        for plan in plans:
            found = read_lesson_notebook(s, plan.lesson.filename, max_notebook_bytes)
            state = load_state(state_path(out, s.name, plan.lesson))
            if not again and is_current(state, plan.fingerprint, found.data, limits):
                reused += 1
                continue
            if state is not None and state.get("notebook_sha256") != digest(found.data):
                changed.append(f"{s.name}/{plan.lesson.notebook}")
                log(f"grading {s.name}/{plan.lesson.notebook} again: the submitted notebook changed")
            tasks.append((s, plan, found))
    return tasks, reused, changed


def log(line):
    """One line of the run's log (stderr), for events an instructor should know of even without progress."""
    print(line, file=sys.stderr)


def forget_removed_students(out, students):
    """Delete the stored results and reports of students no longer in the submissions; their names."""
    present = {s.name for s in students}
    removed = [name for name in stored_students(out) if name not in present]
    for name in removed:
        remove_student(out, name)
        log(f"removed {name}: no longer in the submissions, so no longer in the gradebook")
    return removed


def prepare_cuda(plans):
    """Give the children of lessons that compile CUDA kernels the emulator runtime, built once here."""
    cuda_plans = [plan for plan in plans if lesson_needs.uses_cuda(plan.lesson)]
    runtime = lesson_needs.cuda_runtime_cache() if cuda_plans else None
    for plan in cuda_plans if runtime else ():
        plan.readable = plan.readable + [str(runtime)]
        plan.env = dict(plan.env, LLMC_CUDA_READONLY_CACHE=str(runtime))


def run_tasks(tasks, out, limits, isolation, hide, jobs, progress):
    """Grade `tasks` on `jobs` threads, each driving one child at a time; commit each result at once."""
    if not tasks:
        return
    from tqdm import tqdm

    slots = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    cancel = threading.Event()

    def work(task, alone=False):
        s, plan, found = task
        slot = slots.get()
        try:
            try:
                state = grade_notebook(s, plan, found, limits, isolation, slot, hide, cancel, alone)
            except Exception as e:  # noqa: BLE001  a failure of the grader costs this notebook only
                state = grade_notebook(s, plan, Found(None, "grader error", f"{type(e).__name__}: {e}"),
                                       limits, isolation, slot, hide)
            if not cancel.is_set():
                save_state(out, s.name, plan.lesson, state)
            return task, state
        finally:
            slots.put(slot)

    bar = tqdm(total=len(tasks), unit="notebook", desc="grading", disable=not progress, file=sys.stderr)
    started = time.monotonic()
    retry = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(work, t) for t in tasks}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    task, state = future.result()
                    bar.set_postfix_str(f"{state['student']}/{state['lesson']}: {state['status']}", refresh=False)
                    bar.update(1)
                    if state.get("overloaded"):
                        retry.append(task)
            for task in retry:  # one at a time, after the others: the time limit is then fair
                log(f"grading {task[0].name}/{task[1].lesson.notebook} again, alone: it timed out while the "
                    "machine was busy")
                pool.submit(work, task, True).result()
        except BaseException:
            cancel.set()  # children are killed; what was committed stays committed
            for future in pending:
                future.cancel()
            raise
        finally:
            bar.close()
    if progress:
        elapsed = time.monotonic() - started
        print(f"graded {len(tasks)} notebooks in {elapsed:.1f} s ({elapsed / len(tasks):.2f} s per notebook "
              f"on {jobs} jobs)", file=sys.stderr)
