"""environment.yml and pyproject.toml describe the same environment; the CI script runs the README's test command."""
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parent.parent


def requirement_names(requirements):
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements if not r.startswith("-")}


def conda_requirements():
    """The package lines of environment.yml (conda's and pip's), read without a YAML library."""
    lines = []
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        match = re.match(r"^\s+- ([^#]+?)\s*$", line)
        if match and match.group(1) != "pip:":
            lines.append(match.group(1))
    return lines


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = requirement_names(project["dependencies"] + project["optional-dependencies"]["dev"])
    have = requirement_names(conda_requirements()) - {"python", "pip"}
    assert have == wanted
    assert "-e .[dev]" in conda_requirements(), "environment.yml installs this package through pip"


def test_versions_agree_where_both_pin_them():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject_pins = {requirement_names([r]).pop(): r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    for line in conda_requirements():
        name = requirement_names([line])
        if name and (n := name.pop()) in pyproject_pins:
            pin = pyproject_pins[n].split(";")[0]  # environment markers are pip's business
            assert line.replace(" ", "") == pin.replace(" ", ""), n


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
