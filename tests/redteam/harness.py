"""Build submissions for the grader's tests: a lesson or solution notebook with extra cells."""
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from llmc_core.course import lesson_path, solution_path

CASES_DIR = Path(__file__).resolve().parent


@dataclass
class Case:
    """A red-team submission: one cell of code, where it goes, and the verdict it must get."""
    name: str
    lesson: str        # notebook stem, e.g. "00_setup"
    base: str          # "lesson" (nothing implemented) or "solution" (everything implemented)
    position: str      # "end" or "start" of the notebook
    status: str        # the state's status after grading
    points: str        # "max" or a number of points
    needs: str         # "namespaces" when only that sandbox mode can contain it safely, else ""
    alone: bool        # graded by a test of its own (it needs a setup of its own), not in the shared batch
    source: str
    summary: str


def load_case(path):
    text = Path(path).read_text(encoding="utf-8")
    header = dict(re.findall(r"^# ([a-z-]+): (.+)$", text, flags=re.MULTILINE))
    return Case(Path(path).stem, header["lesson"], header["base"], header.get("position", "end"),
                header["expect-status"], header["expect-points"], header.get("needs", ""),
                header.get("alone") == "yes", text,
                text.splitlines()[0][2:])


def all_cases():
    """Every red-team case: the files of this folder that declare the verdict they must get."""
    return [load_case(p) for p in sorted(CASES_DIR.glob("*.py")) if "\n# expect-status: " in p.read_text()]


def base_notebook(lesson, base):
    return nbformat.read(str(solution_path(lesson) if base == "solution" else lesson_path(lesson)), as_version=4)


def with_cell(notebook, source, position="end"):
    """A copy of `notebook` with a code cell holding `source` at the start or the end."""
    notebook = nbformat.from_dict(notebook)
    cell = nbformat.v4.new_code_cell(source)
    notebook.cells.insert(0 if position == "start" else len(notebook.cells), cell)
    return notebook


def edit_cell(notebook, find, replace):
    """A copy of `notebook` where the first code cell containing `find` has it replaced."""
    notebook = nbformat.from_dict(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code" and find in cell.source:
            cell.source = cell.source.replace(find, replace, 1)
            return notebook
    raise ValueError(f"no code cell contains {find!r}")


def write_submission(folder, lesson, notebook):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(folder / f"{lesson}.ipynb"))
    return folder / f"{lesson}.ipynb"
