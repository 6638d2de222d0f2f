"""Find students in a submissions folder and read their lesson notebooks, without trusting either.

Each subfolder or `.zip` of the submissions folder is one student, named after it. A lesson
notebook is found by its file name (`01_micrograd.ipynb`) anywhere inside, the shallowest copy
first. Nothing is extracted to disk: zip members are read in memory, sizes are checked before
reading, and symbolic links are never followed (a link could point at another student's work).
"""
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_DEPTH = 4  # how deep inside a submission a notebook is looked for
SKIPPED_FOLDERS = {"__MACOSX", ".ipynb_checkpoints", ".git"}


@dataclass(frozen=True)
class Student:
    name: str      # safe for file names and CSV cells; what the gradebook shows
    source: Path   # the student's folder or zip
    kind: str      # "dir" | "zip"


@dataclass
class Found:
    """A lesson notebook read from a submission, or why there is none."""
    data: bytes = None
    status: str = "ok"   # ok | missing | too large | unreadable
    message: str = ""    # for the learner; a note even when ok (e.g. several copies)
    where: str = ""      # the path inside the submission


def safe_name(name):
    """A student name usable as a file name and harmless in a spreadsheet cell."""
    safe = re.sub(r"[^\w.@+-]", "_", name)
    if safe[:1] in ("=", "+", "-", "@", ".") or safe in ("max", "student"):
        safe = "_" + safe  # spreadsheets run = + - @ cells as formulas; "max" and "student" name gradebook rows
    return safe


def find_students(root):
    """The students in `root`: one per subfolder or .zip, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; pass the folder that holds one subfolder or .zip per student")
    students = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            student = Student(safe_name(entry.name), entry, "dir")
        elif entry.is_file() and entry.suffix.lower() == ".zip":
            student = Student(safe_name(entry.stem), entry, "zip")
        else:
            continue
        if student.name in students:
            raise ValueError(f"{students[student.name].source.name} and {entry.name} in {root} both map to the student "
                             f"name {student.name!r}; rename one of them")
        students[student.name] = student
    return [students[name] for name in sorted(students)]


def read_lesson_notebook(student, filename, max_bytes):
    """Found(data) for the notebook called `filename` in the student's submission."""
    try:
        if student.kind == "zip":
            return _read_from_zip(student.source, filename, max_bytes)
        return _read_from_folder(student.source, filename, max_bytes)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError) as e:
        return Found(status="unreadable", message=f"the submission could not be read: {type(e).__name__}: {e}")


def _too_large(size, filename, max_bytes):
    message = (f"{filename} is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit for a notebook; "
               "clear its outputs (Edit > Clear Outputs) and save")
    return Found(status="too large", message=message)


def _missing(filename, others):
    message = f"no {filename} in the submission"
    if others:
        message += f" (notebooks found: {', '.join(sorted(others)[:5])}; lesson notebooks must keep their file names)"
    return Found(status="missing", message=message)


def _several(candidates, chosen):
    if len(candidates) < 2:
        return ""
    return f"{len(candidates)} copies of the notebook in the submission; graded {chosen}"


def _read_from_folder(folder, filename, max_bytes):
    candidates, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder):  # os.walk does not follow links into folders
        depth = len(Path(dirpath).relative_to(folder).parts)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_FOLDERS and not d.startswith(".")) \
            if depth < MAX_DEPTH else []
        for name in filenames:
            if name == filename:
                candidates.append(Path(dirpath) / name)
            elif name.endswith(".ipynb"):
                others.append(name)
    if not candidates:
        return _missing(filename, others)
    path = min(candidates, key=lambda p: (len(p.parts), str(p)))
    where = str(path.relative_to(folder))
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        return Found(status="unreadable", message=f"{where} is a link or a special file, not a notebook", where=where)
    if info.st_size > max_bytes:
        return _too_large(info.st_size, filename, max_bytes)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        return _too_large(len(data), filename, max_bytes)
    return Found(data, "ok", _several(candidates, where), where)


def _read_from_zip(path, filename, max_bytes):
    with zipfile.ZipFile(path) as archive:
        candidates, others = [], []
        for info in archive.infolist():
            parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
            if info.is_dir() or not parts or any(p in SKIPPED_FOLDERS for p in parts):
                continue
            if parts[-1] == filename:
                candidates.append((len(parts), info.filename, info))
            elif parts[-1].endswith(".ipynb"):
                others.append(parts[-1])
        if not candidates:
            return _missing(filename, others)
        _, where, info = min(candidates, key=lambda c: c[:2])
        if info.file_size > max_bytes:
            return _too_large(info.file_size, filename, max_bytes)
        with archive.open(info) as member:
            data = member.read(max_bytes + 1)  # the declared size may lie; never read past the limit
        if len(data) > max_bytes:
            return _too_large(len(data), filename, max_bytes)
        return Found(data, "ok", _several(candidates, where), where)
