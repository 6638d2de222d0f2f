"""llmc_core: the shared library of the llmc course.

The names a notebook needs are importable from here without loading torch:
`load_notebook`, `check`, `small_run`.
"""
import os

from llmc_core.notebook import guard_unfinished_cells, load_notebook

guard_unfinished_cells()  # in Jupyter, a cell that needs an unfinished exercise says so in one line; Run All goes on

__all__ = ["check", "load_notebook", "small_run"]


def __getattr__(name):
    """`check` is imported on first use, so that `llmc --help` loads no numpy."""
    if name == "check":
        from llmc_core.checking import check
        return check
    raise AttributeError(f"module 'llmc_core' has no attribute {name!r}")


def small_run():
    """True when demos should run at a small size (LLMC_SMALL=1, as CI sets it)."""
    return os.environ.get("LLMC_SMALL", "") not in ("", "0")
