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
def solutions():
    """get(lesson) -> that lesson's solution notebook, loaded once per test session."""
    from llmc_core.course import solution_path
    from llmc_core.notebook import load_notebook
    loaded = {}

    def get(lesson):
        if lesson.notebook not in loaded:
            loaded[lesson.notebook] = load_notebook(solution_path(lesson.notebook))
        return loaded[lesson.notebook]
    return get
