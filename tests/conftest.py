"""Shared pytest options: which folder of notebooks the probe tests run against."""
import os
from pathlib import Path

import pytest

from llmc_core.course import SOLUTIONS_DIR


def pytest_addoption(parser):
    parser.addoption("--notebooks", default=None,
                     help="run the lesson probes against the notebooks in this folder instead of solutions/ "
                          "(also LLMC_NOTEBOOKS=DIR)")


@pytest.fixture(scope="session")
def notebooks_dir(request):
    chosen = request.config.getoption("--notebooks") or os.environ.get("LLMC_NOTEBOOKS")
    return Path(chosen) if chosen else SOLUTIONS_DIR
