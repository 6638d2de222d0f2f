"""Load a notebook as a module: run its code cells in order, skip demo cells, keep going past errors."""
import ast
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
                         "open it in a text editor to repair it, "
                         "or start again from a fresh copy of the lesson") from None
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


# --- Run All before the exercises are done ------------------------------------------------------
# In Jupyter a cell that calls an unfinished exercise would stop Run All with a traceback. The guard
# wraps each cell so that NotImplementedError (or a NameError for a name such a cell would have made)
# prints one line instead, and the next cells still run. Other errors still show in full.

GUARD_HANDLER = "__llmc_unfinished__"


def assigned_names(body):
    """Variables that the top-level statements of a cell assign (not those inside its functions)."""
    names = set()
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue  # their own scope
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        todo.extend(ast.iter_child_nodes(node))
    return names


class UnfinishedCellGuard(ast.NodeTransformer):
    """Wrap a cell in try/except so that work that needs an unfinished exercise is skipped in one line."""

    def visit_Module(self, module):
        body = module.body
        if not body or any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in body):
            return module
        last, tail = body[-1], []
        inner = body[:-1]
        if isinstance(last, ast.Expr):  # keep the cell's value displayed, as without the guard
            inner.append(ast.Assign([ast.Name("_llmc_cell_value", ast.Store())], last.value))
            tail = [ast.Expr(ast.Name("_llmc_cell_value", ast.Load()))]
        else:
            inner.append(last)
        names = ast.Tuple([ast.Constant(n) for n in sorted(assigned_names(body))], ast.Load())
        # except (NotImplementedError, NameError) as _llmc_error:
        #     if not GUARD_HANDLER(_llmc_error, names, globals()): raise
        globals_call = ast.Call(ast.Name("globals", ast.Load()), [], [])
        guard_call = ast.Call(ast.Name(GUARD_HANDLER, ast.Load()),
                              [ast.Name("_llmc_error", ast.Load()), names, globals_call], [])
        handler = ast.ExceptHandler(
            type=ast.Tuple([ast.Name("NotImplementedError", ast.Load()), ast.Name("NameError", ast.Load())],
                           ast.Load()),
            name="_llmc_error",
            body=[ast.If(test=ast.UnaryOp(ast.Not(), guard_call), body=[ast.Raise()], orelse=[])])
        start = ast.Assign([ast.Name("_llmc_cell_value", ast.Store())], ast.Constant(None))
        module.body = [start, ast.Try(body=inner, handlers=[handler], orelse=[], finalbody=[])] + tail
        return ast.fix_missing_locations(module)


def unfinished_function(error):
    """The innermost function in the traceback of `error` ('attention_forward'), or '' for the cell itself."""
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    code = frames[-1].f_code if frames else None
    return "" if code is None or code.co_name == "<module>" else code.co_qualname


class UnfinishedWork:
    """The guard's handler: says in one line what a skipped cell needs; removes what it made only in part."""

    def __init__(self):
        self.not_made = set()

    def __call__(self, error, names, namespace):
        if isinstance(error, NameError) and error.name not in self.not_made:
            return False  # a real NameError (a typo, a cell not run): show it as usual
        if isinstance(error, NotImplementedError) and not str(error).startswith("not implemented yet"):
            return False  # not an exercise stub (e.g. a library's): show it as usual
        self.not_made.update(names)
        for name in names:  # a cell that stopped half-way leaves no half-made results (a list filled in part)
            namespace.pop(name, None)
        if isinstance(error, NameError):
            needs = f"`{error.name}`, which an earlier cell could not make yet"
        else:
            function = unfinished_function(error)
            needs = f"`{function}`, which is not written yet" if function else "an exercise that is not written yet"
        print(f"⏭ skipped: this cell needs {needs} (run it again once that passes its check)")
        return True


def guard_unfinished_cells(shell=None):
    """In a Jupyter kernel (or the given IPython shell), install the guard once; elsewhere do nothing."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None or getattr(shell, "kernel", None) is None:
            return
    if not any(isinstance(t, UnfinishedCellGuard) for t in shell.ast_transformers):
        shell.user_ns.setdefault(GUARD_HANDLER, UnfinishedWork())
        shell.ast_transformers.append(UnfinishedCellGuard())
