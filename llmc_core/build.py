"""`llmc build`: write lessons/ and the probe snapshots from solutions/, or check that they are current."""
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from llmc_core.course import REPO_DIR, lesson_by_notebook
from llmc_core.exercises import compute_snapshots, load_snapshots, probes_for, snapshot_json, snapshot_path, stale_snapshots
from llmc_core.fileio import atomic_write_text
from llmc_core.notebook import cell_source, load_notebook, read_notebook

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", 'raise NotImplementedError("not implemented yet: replace this line with your code")']
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
# Cells `llmc build` adds in front of every lesson; their ids say so (solutions never hold them).
COLAB_IDS = ("llmc-colab-badge", "llmc-colab-setup")
# The setup cell: plain Python (no IPython magic), so loading a notebook for checks and grading runs it too, as a no-op.
COLAB_SETUP = """\
# On Google Colab: install the course package (elsewhere `make course` has done it). Does nothing anywhere else.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("llmc_core") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{spec}"], check=True)"""


@dataclass(frozen=True)
class Project:
    """The course's version and repository URL, set once in pyproject.toml (`version`, `[project.urls] Repository`)."""
    version: str
    repository: str  # https://github.com/OWNER/NAME

    @property
    def ref(self):
        return f"v{self.version}"  # each release is tagged v<version>, so links and installs match the lessons

    @property
    def pip_spec(self):
        return f"llmc @ git+{self.repository}@{self.ref}"

    def colab_url(self, path):
        """Opens `path` (relative to the repository root) in Colab, straight from GitHub."""
        return f"https://colab.research.google.com/github/{self.repository.removeprefix('https://github.com/')}/blob/{self.ref}/{path}"

    def colab_badge(self, path):
        return f"[![Open In Colab]({COLAB_BADGE})]({self.colab_url(path)})"


def project_settings(root=REPO_DIR):
    """The Project of the checkout at `root` (its pyproject.toml, or this package's where `root` has none)."""
    path = Path(root) / "pyproject.toml"
    text = (path if path.exists() else REPO_DIR / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    repository = re.search(r'^Repository\s*=\s*"(https://github.com/[^"/]+/[^"/]+?)/?"', text, re.M)
    if not (version and repository):
        raise ValueError(f"{path} needs `version = \"...\"` under [project] and `Repository = \"https://github.com/OWNER/NAME\"` "
                         "under [project.urls]: the lessons' Colab links and install come from them")
    return Project(version.group(1), repository.group(1))


def course_sources(root):
    """The solution notebooks of the checkout at `root`; a clear error where this install has none."""
    solutions = sorted((Path(root) / "solutions").glob("*.ipynb"))
    if not solutions:
        raise FileNotFoundError(
            f"no course sources here: {Path(root) / 'solutions'} holds no solution notebooks (this llmc is installed "
            "without them). Run the command in a clone of the course repository, installed there with `pip install -e .`")
    return solutions


def strip_solutions(source, where="a cell"):
    """Replace each BEGIN/END SOLUTION region by the stub, indented like the BEGIN line.

    >>> strip_solutions("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION\\n")
    'def f():\\n    # YOUR CODE HERE\\n    raise NotImplementedError("not implemented yet: replace this line with your code")\\n'
    """
    out, inside = [], False
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: a second {BEGIN} before the {END} of the first")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub + "\n" for stub in STUB)
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}")
    return "".join(out)


def cleaned(nb):
    """A copy of the notebook with outputs, execution counts and run timings removed, and cell ids set."""
    nb = json.loads(json.dumps(nb))
    nb["nbformat"], nb["nbformat_minor"] = 4, max(nb.get("nbformat_minor", 5), 5)
    for index, cell in enumerate(nb["cells"]):
        if "id" not in cell:  # stable: derived from the notebook's first cell and the position
            seed = f"{index}:{cell_source(nb['cells'][0])}"
            cell["id"] = hashlib.sha1(seed.encode()).hexdigest()[:8]
        metadata = cell.setdefault("metadata", {})
        for key in ("execution", "ExecuteTime", "collapsed", "scrolled"):
            metadata.pop(key, None)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def colab_cells(name, project):
    """A badge that opens the lesson in Colab, and the setup cell that installs the course there."""
    badge = {"cell_type": "markdown", "id": COLAB_IDS[0], "metadata": {},
             "source": project.colab_badge(f"lessons/{name}") + " (on Colab, run the next cell first)"}
    setup = {"cell_type": "code", "id": COLAB_IDS[1], "metadata": {"tags": ["setup"]}, "execution_count": None,
             "outputs": [], "source": COLAB_SETUP.format(spec=project.pip_spec)}
    return [badge, setup]


def nbgrader_metadata(cell):
    """nbgrader's marks for a cell holding an exercise, so that nbgrader users can import the course."""
    return {"grade": False, "grade_id": cell["id"], "locked": False, "schema_version": 3, "solution": True, "task": False}


def lesson_from_solution(solution, name, project=None):
    """The learner's notebook: Colab cells first, solution regions stubbed out, outputs cleared, ids and tags kept."""
    lesson = cleaned(solution)
    for number, cell in enumerate(lesson["cells"], start=1):
        if cell["cell_type"] == "code":
            source = cell_source(cell)
            cell["source"] = strip_solutions(source, f"{name}, cell {number}")
            if cell["source"] != source:
                cell["metadata"]["nbgrader"] = nbgrader_metadata(cell)
    lesson["cells"][:0] = colab_cells(name, project or project_settings())
    lesson["metadata"].pop("jupytext", None)  # an author's .py pairing (docs/authors.md) is not the learner's
    return lesson


def notebook_text(nb):
    node = nbformat.from_dict(nb)
    nbformat.validate(node)
    return nbformat.writes(node) + "\n"


def has_outputs(nb):
    return any(c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb["cells"])


def build(names=None, check_only=False, root=REPO_DIR, log=print):
    """Build (or, with check_only, verify) the lessons named (stems), or all. Returns [(stale file, why)].

    `root` is a course checkout: solutions/, lessons/ and llmc_core/snapshots/ beneath it.
    """
    root = Path(root)
    solutions_dir, lessons_dir = root / "solutions", root / "lessons"
    snapshot_dir, reference_dir = root / "llmc_core" / "snapshots", root / "llmc_core" / "references"
    solutions = course_sources(root)
    project = project_settings(root)
    if names:
        wanted = {lesson_by_notebook(n).notebook for n in names}
        solutions = [p for p in solutions if p.stem in wanted]
        missing = wanted - {p.stem for p in solutions}
        if missing:
            raise ValueError(f"no solution notebook for {sorted(missing)} in {solutions_dir}")
    stale = []
    for solution_path in solutions:
        lesson = lesson_by_notebook(solution_path)
        solution = read_notebook(solution_path)
        lesson_path = lessons_dir / solution_path.name
        clean_solution_text = notebook_text(cleaned(solution))
        lesson_text = notebook_text(lesson_from_solution(solution, solution_path.name, project))
        if has_outputs(solution) or "id" not in solution["cells"][0]:
            stale.append((solution_path, "is stored with outputs or without cell ids"))
            if not check_only:
                atomic_write_text(solution_path, clean_solution_text)
        outputs = [(lesson_path, lesson_text)]
        if lesson.reference:
            outputs.append((reference_dir / solution_path.name, clean_solution_text))
        for path, text in outputs:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append((path, "differs from what its solution generates"))
                if not check_only:
                    atomic_write_text(path, text)
        probes = probes_for(lesson)
        if probes:
            notebook = load_notebook(solution_path)
            if notebook.cell_errors:
                errors = "; ".join(str(e) for e in notebook.cell_errors)
                raise RuntimeError(f"{solution_path} does not load cleanly: {errors}")
            fresh = compute_snapshots(probes, notebook)
            reasons = stale_snapshots(load_snapshots(lesson, snapshot_dir), fresh)
            if reasons:
                path = snapshot_path(lesson, snapshot_dir)
                stale.append((path, "; ".join(reasons[:3]) + (" ..." if len(reasons) > 3 else "")))
                if not check_only:
                    atomic_write_text(path, snapshot_json(lesson, fresh))
        log(f"{'checked' if check_only else 'built'} {lesson.notebook} ({len(probes)} probes)")
    if not names:
        for orphan in sorted({p.name for p in lessons_dir.glob("*.ipynb")} - {p.name for p in solutions}):
            stale.append((lessons_dir / orphan, "has no solution notebook in solutions/"))
    return stale
