"""Find students in a submissions folder and read their lesson notebooks, without trusting either.

Each subfolder or `.zip` of the submissions folder is one student, named after it. A lesson
notebook is found by its file name (`01_micrograd.ipynb`) anywhere inside, the shallowest copy
first. Nothing is extracted to disk: zip members are read in memory, sizes are checked before
reading, and symbolic links are never followed (a link could point at another student's work).
"""
import hashlib
import json
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from llmc_core.grading.protocol import MISSING, TOO_LARGE, UNREADABLE

MAX_DEPTH = 4  # how deep inside a submission a notebook is looked for
SKIPPED_FOLDERS = {"__MACOSX", ".ipynb_checkpoints", ".git"}
# File names hold at most 255 bytes; a student's name becomes `.<name>.json.<random>.tmp` while written.
MAX_NAME_BYTES = 96
RESERVED_NAMES = ("max", "student")  # the gradebook's header and its first row
LOOKALIKE_MARK = "_lookalike_"
CELL_TYPES = ("code", "markdown", "raw")


@dataclass(frozen=True)
class Student:
    name: str      # safe for file names and CSV cells; what the gradebook shows
    source: Path   # the student's folder or zip
    kind: str      # "dir" | "zip"


@dataclass
class Found:
    """A lesson notebook read from a submission, or why there is none."""
    data: bytes = None
    status: str = "ok"   # "ok", or MISSING, TOO_LARGE, UNREADABLE (protocol.py)
    message: str = ""    # for the learner; a note even when ok (e.g. several copies)
    where: str = ""      # the path inside the submission


def safe_name(name):
    """A student name usable as a file name and harmless in a spreadsheet cell.

    Long names are cut and given a hash of the whole name, so they stay distinct and the same on
    every run; names that look like the gradebook's own rows get a visible mark.
    """
    safe = re.sub(r"[^\w.@+-]", "_", name)
    if safe[:1] in ("=", "+", "-", "@", ".") or safe in RESERVED_NAMES:
        safe = "_" + safe  # spreadsheets run = + - @ cells as formulas; "max" and "student" name gradebook rows
    elif looks_reserved(safe):
        safe = LOOKALIKE_MARK + safe
    if len(safe.encode("utf-8")) > MAX_NAME_BYTES:
        tag = "-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        while len((safe + tag).encode("utf-8")) > MAX_NAME_BYTES:
            safe = safe[:-1]
        safe += tag
    return safe


def looks_reserved(name):
    """True for names a reader could take for "max" or "student": Unicode look-alikes ("mах" in Cyrillic)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    if folded in RESERVED_NAMES:
        return True
    if folded.isascii():
        return False
    # Any letter outside ASCII may pass for the ASCII one at its place; mark rather than guess which.
    return any(len(folded) == len(word) and all(a == b or not a.isascii() for a, b in zip(folded, word))
               for word in RESERVED_NAMES)


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
    return checked(read_submission_file(student, filename, max_bytes), filename)


def read_submission_file(student, filename, max_bytes):
    """Found(data) for the file called `filename` in the student's submission (the shallowest copy), unchecked."""
    try:
        if student.kind == "zip":
            return _read_from_zip(student.source, filename, max_bytes)
        return _read_from_folder(student.source, filename, max_bytes)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError,
            ValueError, zlib.error) as e:
        return Found(status=UNREADABLE, message=f"the submission could not be read: {type(e).__name__}: {e}")


def checked(found, filename):
    """`found`, or an unreadable Found saying what is wrong when its bytes are not a usable notebook."""
    if found.status != "ok":
        return found
    problem = notebook_problem(found.data)
    if not problem:
        return found
    message = (f"{filename} is not a usable notebook: {problem}; open it in Jupyter and save it again, "
               "or start from a fresh copy of the lesson")
    return Found(status=UNREADABLE, message=message, where=found.where)


def notebook_problem(data):
    """What makes `data` unusable as a notebook the grader can load, in words, or "" when nothing does."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"it is not UTF-8 text (byte {e.start} is {data[e.start:e.start + 1]!r})"
    try:
        nb = json.loads(text)
    except RecursionError:
        return "its JSON is nested too deeply"
    except ValueError as e:
        return f"its JSON does not parse ({e})"
    if not isinstance(nb, dict):
        return f"it holds a JSON {_kind(nb)}, not a notebook object"
    if nb.get("nbformat") != 4 or isinstance(nb.get("nbformat"), bool):
        return f"its nbformat is {_short(nb.get('nbformat'))}, not 4 (save it from Jupyter as .ipynb)"
    if not isinstance(nb.get("cells"), list):
        return f"its `cells` is {_kind(nb.get('cells'))}, not a list"
    for i, cell in enumerate(nb["cells"]):
        problem = _cell_problem(cell)
        if problem:
            return f"cells[{i}] {problem}"
    return ""


def _cell_problem(cell):
    if not isinstance(cell, dict):
        return f"is {_kind(cell)}, not a cell object"
    if cell.get("cell_type") not in CELL_TYPES:
        return f"has cell_type {_short(cell.get('cell_type'))}, not one of {', '.join(CELL_TYPES)}"
    source = cell.get("source")
    if not (isinstance(source, str) or isinstance(source, list) and all(isinstance(x, str) for x in source)):
        return f"has a source that is {_kind(source)}, not text or a list of lines"
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        return f"has metadata that is {_kind(metadata)}, not an object"
    tags = metadata.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        return "has metadata.tags that is not a list of strings"
    return ""


def _kind(value):
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return "missing" if value is None else names.get(type(value), type(value).__name__)


def _short(value):
    try:
        text = json.dumps(value) if value is not None else "missing"
    except ValueError:  # an integer with more digits than Python converts
        text = "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def _too_large(size, filename, max_bytes):
    message = (f"{filename} is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit for a notebook; "
               "clear its outputs (Edit > Clear Outputs) and save")
    return Found(status=TOO_LARGE, message=message)


def _missing(filename, others):
    message = f"no {filename} in the submission"
    if others:
        message += f" (notebooks found: {', '.join(sorted(others)[:5])}; lesson notebooks must keep their file names)"
    return Found(status=MISSING, message=message)


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
        return Found(status=UNREADABLE, message=f"{where} is a link or a special file, not a notebook", where=where)
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
