"""load_notebook: cells run in order, demo cells skipped, a broken cell recorded without hiding the rest."""
import nbformat
import pytest

from llmc_core import load_notebook
from llmc_core.exercises import MissingName, Namespace


def write_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        if source.startswith("#md "):
            cell = nbformat.v4.new_markdown_cell(source[4:])
        else:
            cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def broken(tmp_path):
    return load_notebook(write_notebook(tmp_path / "broken.ipynb", [
        ("#md # A title", None),                                   # cell 1
        ("import math\ndef area(r):\n    return math.pi * r * r", None),
        ("def oops(:\n    pass", None),                            # cell 3: syntax error
        ("x = 1\ny = x / 0\nz = 3", None),                         # cell 4: runtime error on line 2
        ("raise RuntimeError('demo cells are skipped')", ["demo"]),
        ("%matplotlib inline\n!echo hi\nw = area(1.0)", None),    # IPython-only lines are skipped
        ("from llmc_core import check\ncheck('setup/dot')", None), # does nothing while loading
        ("import sys\nsys.exit(3)", None),                         # cell 8: must not end the loading
        ("from dataclasses import dataclass\n@dataclass\nclass P:\n    a: int = 1", None),
    ]))


def test_definitions_of_good_cells_load(broken):
    assert broken.area(2.0) == pytest.approx(12.566370614359172, rel=1e-12)
    assert broken.w == pytest.approx(3.141592653589793, rel=1e-12)
    assert broken.x == 1 and broken.P().a == 1


def test_errors_are_recorded_with_cell_and_line(broken):
    summary = [(e.cell, e.line, e.error.split(":")[0]) for e in broken.cell_errors]
    assert summary == [(3, 1, "SyntaxError"), (4, 2, "ZeroDivisionError"), (8, 2, "SystemExit")]
    assert broken.cell_errors[1].source_line == "y = x / 0"
    assert str(broken.cell_errors[1]).startswith("cell 4, line 2: ZeroDivisionError: division by zero")


def test_a_failed_cell_stops_at_the_line_that_raised(broken):
    assert not hasattr(broken, "z") and not hasattr(broken, "y")


def test_demo_cells_run_when_asked(tmp_path):
    path = write_notebook(tmp_path / "demo.ipynb", [("a = 1", None), ("a = 2", ["demo"])])
    assert load_notebook(path).a == 1
    assert load_notebook(path, skip_tags=()).a == 2


def test_missing_name_mentions_the_cells_that_failed(broken):
    with pytest.raises(MissingName, match="defines no `oops`.*cell 3, line 1: SyntaxError"):
        Namespace(broken).oops


@pytest.mark.parametrize("content,problem", [
    ("{not json", "is not a valid notebook"),
    ('{"cells": 3}', "not a Jupyter notebook"),
], ids=["bad-json", "no-cells"])
def test_unreadable_notebooks_raise_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.ipynb"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as info:
        load_notebook(path)
    assert "bad.ipynb" in str(info.value)


def test_missing_notebook_raises_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.ipynb"):
        load_notebook(tmp_path / "nothere.ipynb")


def test_notebook_runs_in_its_own_folder(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    path = write_notebook(tmp_path / "reads.ipynb", [("text = open('data.txt').read()", None)])
    assert load_notebook(path).text == "hello"
