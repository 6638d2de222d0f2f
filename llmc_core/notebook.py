"""Load a notebook as a module: run its code cells in order, skip demo cells, keep going past errors."""
import itertools
import json
import linecache
import os
import re
import sys
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_loads = itertools.count()
_loading = [False]  # True while a notebook is being loaded: check() calls in it do nothing
CELL_FILENAME = re.compile(r"^<notebook (?P<notebook>.+), cell (?P<cell>\d+)>$")


@dataclass
class CellError:
    """A code cell that raised while the notebook was loaded."""
    cell: int         # 1-based position of the cell in the notebook (markdown cells count too)
    line: int         # 1-based line within the cell; 0 when unknown
    error: str        # "ZeroDivisionError: division by zero"
    source_line: str  # the cell's line that raised

    def __str__(self):
        where = f"cell {self.cell}, line {self.line}" if self.line else f"cell {self.cell}"
        text = f"{where}: {self.error}"
        return text + (f"\n    {self.source_line.strip()}" if self.source_line.strip() else "")


class NotebookModule(types.ModuleType):
    """A module holding what a notebook defines; `cell_errors` lists the cells that failed."""

    @property
    def cell_errors(self):
        return self.__dict__.get("__cell_errors__", [])


def read_notebook(path):
    """The notebook's JSON as a dict, or a ValueError that names the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such notebook")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid notebook (its JSON does not parse: {e}); "
                         "open it in a text editor to repair it, or start again from a fresh copy of the lesson") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise ValueError(f"{path} is not a Jupyter notebook in format 4 (no list of cells); "
                         "save it from Jupyter as .ipynb")
    return nb


def cell_source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_tags(cell):
    return set(cell.get("metadata", {}).get("tags", []) or [])


def python_source(source):
    """The cell without IPython-only syntax: `%magic` and `!shell` lines become `pass`; `%%` cells run nothing."""
    if source.lstrip().startswith("%%"):
        return ""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass  # " + stripped  # keeps line numbers and blocks intact
        lines.append(line)
    return "\n".join(lines) + "\n"


@contextmanager
def loading():
    """While active, `check()` calls do nothing (a notebook's own checks are not part of loading it)."""
    previous, _loading[0] = _loading[0], True
    try:
        yield
    finally:
        _loading[0] = previous


def is_loading():
    return _loading[0]


def load_notebook(path, skip_tags=("demo",)):
    """Run the code cells of the notebook at `path` in a fresh module and return the module.

    Cells tagged with any of `skip_tags` are skipped. A cell that raises is recorded in the
    module's `cell_errors` (cell number, line, error) and the next cells still run.
    """
    path = Path(path)
    nb = read_notebook(path)
    stem = re.sub(r"\W", "_", path.stem)
    name = f"llmc_notebook_{stem}_{next(_loads)}"
    module = NotebookModule(name, f"Notebook {path.name}")
    module.__file__ = str(path)
    module.__dict__["__cell_errors__"] = []
    sys.modules[name] = module  # dataclasses and pickle look classes up by module name
    cwd = os.getcwd()
    try:
        os.chdir(path.resolve().parent)  # as in Jupyter, relative paths start at the notebook's folder
        with loading():
            for number, cell in enumerate(nb["cells"], start=1):
                if cell.get("cell_type") != "code" or cell_tags(cell) & set(skip_tags):
                    continue
                error = run_cell(module, python_source(cell_source(cell)), path.name, number)
                if error:
                    module.__dict__["__cell_errors__"].append(error)
    finally:
        os.chdir(cwd)
    return module


def run_cell(module, source, notebook_name, number):
    """Execute one cell's source in `module`; return a CellError if it raised, else None."""
    filename = f"<notebook {notebook_name}, cell {number}>"
    lines = source.splitlines(True)
    linecache.cache[filename] = (len(source), None, lines, filename)  # so tracebacks show the source
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except KeyboardInterrupt:
        raise
    except SyntaxError as e:
        line = e.lineno or 0
        text = lines[line - 1] if 0 < line <= len(lines) else (e.text or "")
        return CellError(number, line, f"SyntaxError: {e.msg}", text.rstrip("\n"))
    except BaseException as e:  # SystemExit too: a cell must not end the loading
        line = 0
        for frame, lineno in traceback.walk_tb(e.__traceback__):
            if frame.f_code.co_filename == filename:
                line = lineno
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        return CellError(number, line, f"{type(e).__name__}: {e}".rstrip(": "), text.rstrip("\n"))
    return None
