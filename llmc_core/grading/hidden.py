"""Hidden probes: an instructor's private probe files and their snapshots, kept off students' machines.

A hidden folder holds Python files of probes written with the same `@probe` decorator as the
public ones (any file name; a file may probe several lessons), and a `snapshots/` folder that
`llmc build-hidden DIR` fills by running those probes on `solutions/`:

    hidden/
      micrograd_extra.py          @probe("micrograd/backward", points=2, hint=...) ...
      snapshots/01_micrograd.json what each hidden probe returned on the solution

Hidden probes count like public ones. While grading, their source reaches the grading child
through its stdin (never as a readable file) and their snapshots never leave the parent; a
failed hidden probe reports what was wrong without the expected value.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from llmc_core.course import lesson_by_prefix, solution_path
from llmc_core.exercises import compute_snapshots, current_probe_id, load_probe_file, load_snapshots, snapshot_json
from llmc_core.fileio import atomic_write_text


@dataclass
class HiddenLesson:
    probes: list      # Probe objects, in file and definition order
    sources: list     # [{"name": file name, "source": text}] of the files holding them
    digest: str       # sha256 of those sources: snapshots built from other sources are stale


def probe_files(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"--hidden {directory}: no such folder; it should hold your private probe files (*.py)")
    files = sorted(directory.glob("*.py"))
    if not files:
        raise ValueError(f"--hidden {directory} holds no .py probe files")
    return files


def load_hidden(directory):
    """{lesson notebook: HiddenLesson} for the probe files in `directory`."""
    by_lesson = {}
    for path in probe_files(directory):
        source = path.read_text(encoding="utf-8")
        for p in load_probe_file(path):
            lesson = lesson_by_prefix(p.exercise.split("/")[0])
            entry = by_lesson.setdefault(lesson.notebook, HiddenLesson([], [], ""))
            entry.probes.append(p)
            if not any(s["name"] == path.name for s in entry.sources):
                entry.sources.append({"name": path.name, "source": source})
    for entry in by_lesson.values():
        entry.digest = sources_digest(entry.sources)
    return by_lesson


def sources_digest(sources):
    h = hashlib.sha256()
    for s in sources:
        h.update(s["name"].encode() + b"\0" + s["source"].encode() + b"\0")
    return h.hexdigest()


def snapshot_dir(directory):
    return Path(directory) / "snapshots"


def load_hidden_snapshots(directory, lesson, entry):
    """The hidden snapshots of one lesson; a ValueError when they are missing or stale."""
    path = snapshot_dir(directory) / f"{lesson.notebook}.json"
    fix = f"run `llmc build-hidden {directory}` to compute them from the solutions"
    if not path.exists():
        raise ValueError(f"no snapshots for the hidden probes of {lesson.notebook} in {path.parent}; {fix}")
    if json.loads(path.read_text(encoding="utf-8")).get("sources_sha256") != entry.digest:
        raise ValueError(f"the hidden probe files of {lesson.notebook} changed since their snapshots were built; {fix}")
    # Snapshots built before an exercise was renamed name its probes by the old id, as the files do.
    snapshots = {current_probe_id(pid): s for pid, s in load_snapshots(lesson, snapshot_dir(directory)).items()}
    missing = [p.id for p in entry.probes if p.id not in snapshots]
    if missing:
        raise ValueError(f"hidden probes without a snapshot: {missing}; {fix}")
    return snapshots


def build_hidden(directory, load_notebook):
    """Run the hidden probes on each lesson's solution and write their snapshots; returns the files written."""
    written = []
    for notebook, entry in load_hidden(directory).items():
        lesson = lesson_by_prefix(entry.probes[0].exercise.split("/")[0])
        solution = load_notebook(solution_path(notebook))
        snapshots = compute_snapshots(entry.probes, solution)
        data = json.loads(snapshot_json(lesson, snapshots))
        data["sources_sha256"] = entry.digest
        path = snapshot_dir(directory) / f"{notebook}.json"
        atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written
