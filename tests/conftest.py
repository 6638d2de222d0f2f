"""Shared pytest options: which folder of notebooks the probe tests run against."""
import os
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory):
    """Train and val token shards of a learnable toy language: a cycle of 97 tokens with 10% noise."""
    from llmc_core.train.shards import write_shard
    folder = tmp_path_factory.mktemp("toy_shards")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6000), ("val", 1500)):
        tokens = np.arange(n) % 97
        noise = rng.random(n) < 0.1
        tokens[noise] = rng.integers(0, 256, size=noise.sum())
        write_shard(folder / f"toy_{split}.bin", tokens)
    return folder


@pytest.fixture(scope="session")
def offline_env():
    """Environment variables that send every HTTP(S) request to a closed local port: the network is off."""
    dead = "http://127.0.0.1:9"
    return {"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
            "all_proxy": dead, "NO_PROXY": "", "no_proxy": "", "PIP_RETRIES": "0"}


@pytest.fixture(scope="session")
def loaded_notebooks():
    """load(path) -> the notebook at `path`, loaded once per test session (its cell errors kept on it)."""
    from llmc_core.notebook import load_notebook
    cache = {}

    def load(path):
        path = Path(path).resolve()
        if path not in cache:
            cache[path] = load_notebook(path)
        return cache[path]
    return load


def lesson_notebook_getter(folder, loaded_notebooks):
    """get(lesson or notebook name) -> that lesson's notebook in `folder`, loaded once per session.

    A notebook that is not there skips the test; one whose cells failed to run fails it, naming
    the cells, since every test of that notebook would fail for that reason.
    """
    def get(lesson):
        path = Path(folder) / (getattr(lesson, "notebook", lesson) + ".ipynb")
        if not path.exists():
            pytest.skip(f"{path} does not exist")
        notebook = loaded_notebooks(path)
        if notebook.cell_errors:
            pytest.fail(f"{path}: cells failed to run: "
                        + "; ".join(str(e).splitlines()[0] for e in notebook.cell_errors))
        return notebook
    return get


@pytest.fixture(scope="session")
def notebooks(notebooks_dir, loaded_notebooks):
    """get(lesson) -> the lesson's notebook from --notebooks DIR (solutions/ by default): what the tests check."""
    return lesson_notebook_getter(notebooks_dir, loaded_notebooks)


@pytest.fixture(scope="session")
def solutions(loaded_notebooks):
    """get(lesson) -> the lesson's solution notebook, whatever --notebooks says: for tests of the probes themselves."""
    return lesson_notebook_getter(SOLUTIONS_DIR, loaded_notebooks)


@pytest.fixture(scope="module")
def nb(request, notebooks):
    """The notebook (see `notebooks`) of the lesson a test module names in its LESSON constant ("01_micrograd")."""
    return notebooks(request.module.LESSON)
