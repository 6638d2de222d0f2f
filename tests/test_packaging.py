"""environment.yml and pyproject.toml describe the same environment; the CI script runs the README's test command."""
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parent.parent


def requirement_names(requirements):
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].strip().lower() for r in requirements if not r.startswith("-")}


def conda_requirements():
    """environment.yml's packages: (conda's, pip's), read as YAML."""
    yaml = pytest.importorskip("yaml")
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    (pip,) = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    return conda, pip


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_installs_what_the_lessons_need():
    """The runtime dependencies and JupyterLab ([lab]); the test tools stay optional (`pip install -e .[dev]`)."""
    project = pyproject()
    conda, pip = conda_requirements()
    wanted = requirement_names(project["dependencies"] + project["optional-dependencies"]["lab"])
    assert requirement_names(conda + pip) - {"python", "pip"} == wanted
    assert "-e .[lab]" in pip, "environment.yml installs this package through pip"


def test_environment_yml_works_on_every_platform():
    conda, pip = conda_requirements()
    assert not [r for r in conda + pip if r.lower().startswith("nvidia") and "platform_system" not in r]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip  # the CPU build of PyTorch
    dev = pyproject()["optional-dependencies"]["dev"]
    assert all("platform_system != 'Darwin'" in r for r in dev if r.lower().startswith("nvidia"))


def test_versions_agree_where_both_pin_them():
    project = pyproject()
    pyproject_pins = {requirement_names([r]).pop(): r for extra in project["optional-dependencies"].values()
                      for r in extra} | {requirement_names([r]).pop(): r for r in project["dependencies"]}
    conda, pip = conda_requirements()
    for line in conda + pip:
        name = requirement_names([line])
        if name and (n := name.pop()) in pyproject_pins:
            pin = pyproject_pins[n].split(";")[0]  # environment markers are pip's business
            assert line.replace(" ", "") == pin.replace(" ", ""), n


def test_runtime_dependencies_are_what_a_learner_needs():
    """Colab installs the package into its own Jupyter: JupyterLab, nbclient and test tools are extras."""
    project = pyproject()
    assert requirement_names(project["dependencies"]) == {
        "numpy", "torch", "matplotlib", "tiktoken", "regex", "tqdm", "safetensors", "nbformat"}
    assert {"jupyterlab", "ipykernel"} <= requirement_names(project["optional-dependencies"]["lab"])
    assert {"pytest", "nbclient", "llmc"} <= requirement_names(project["optional-dependencies"]["dev"])


def test_license_file_is_mit_and_packaged():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert pyproject()["license"] == "MIT" and pyproject()["license-files"] == ["LICENSE"]


def test_repository_setting_is_what_build_reads():
    from llmc_core.build import project_settings
    project = pyproject()
    assert project_settings(ROOT).repository == project["urls"]["Repository"].rstrip("/")
    assert project_settings(ROOT).version == project["version"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_readme_links_follow_the_repository_setting():
    """The README is written by hand; its clone, badge and install lines must say what pyproject.toml says."""
    from llmc_core.build import project_settings
    from llmc_core.course import LESSONS
    project = project_settings(ROOT)
    readme = (ROOT / "README.md").read_text()
    assert f"git clone {project.repository}" in readme
    assert project.colab_badge(f"lessons/{LESSONS[0].filename}") in readme
    assert project.pip_spec in readme
    for page in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("lessons/*.ipynb")]:
        assert "<this repository>" not in page.read_text(), page
