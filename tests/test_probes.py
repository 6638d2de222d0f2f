"""Every probe against the solutions (all pass) and the generated lessons (all cleanly "not implemented").

With `--notebooks DIR` (or LLMC_NOTEBOOKS=DIR) the first test runs against the notebooks in DIR:
each probe is one test, so `pytest tests/test_probes.py --notebooks my_work/` grades a folder.
"""
import pytest

from llmc_core.course import LESSONS, LESSONS_DIR, SOLUTIONS_DIR
from llmc_core.exercises import exercises, judge, load_snapshots, probes_for, run_probe

LESSONS_WITH_PROBES = [lesson for lesson in LESSONS
                       if (SOLUTIONS_DIR / lesson.filename).exists() and probes_for(lesson)]
ALL_PROBES = [(lesson, p) for lesson in LESSONS_WITH_PROBES for p in probes_for(lesson)]


@pytest.mark.parametrize("lesson,probe", ALL_PROBES, ids=[p.id for _, p in ALL_PROBES])
def test_probe_passes(lesson, probe, notebooks_dir, loaded_notebooks):
    """Each probe on its own: a cell that failed to run costs only the probes that need what it defines."""
    path = notebooks_dir / lesson.filename
    if not path.exists():
        pytest.skip(f"{path} does not exist")
    result = judge(probe, run_probe(probe, loaded_notebooks(path)), load_snapshots(lesson).get(probe.id))
    assert result.status == "passed", f"{result.status}: {result.message}"


@pytest.mark.parametrize("lesson", LESSONS_WITH_PROBES, ids=[lesson.notebook for lesson in LESSONS_WITH_PROBES])
def test_solution_loads_without_errors(lesson, loaded_notebooks):
    assert loaded_notebooks(SOLUTIONS_DIR / lesson.filename).cell_errors == []


@pytest.mark.parametrize("lesson", LESSONS_WITH_PROBES, ids=[lesson.notebook for lesson in LESSONS_WITH_PROBES])
def test_untouched_lesson_is_not_implemented_everywhere(lesson, loaded_notebooks):
    """The release gate's other direction: every graded probe of the lesson fails cleanly."""
    notebook = loaded_notebooks(LESSONS_DIR / lesson.filename)
    outcomes = {p.id: run_probe(p, notebook) for p in probes_for(lesson)}
    crashed = {pid: f"{o.kind}: {o.message}" for pid, o in outcomes.items() if o.kind != "not_implemented"}
    assert crashed == {}


@pytest.mark.parametrize("lesson", LESSONS_WITH_PROBES, ids=[lesson.notebook for lesson in LESSONS_WITH_PROBES])
def test_every_exercise_has_points_and_hints(lesson):
    for exercise_id, probes in exercises(probes_for(lesson)).items():
        assert sum(p.points for p in probes) > 0, exercise_id
        assert all(p.hint for p in probes), f"{exercise_id} has a probe without a hint"


def test_reference_tests_run_on_the_notebooks_folder_and_stop_at_cell_errors(tmp_path):
    """The shared `nb` fixture loads the lesson from --notebooks: a missing notebook skips, a failing cell fails."""
    import subprocess
    import sys

    import nbformat

    from redteam.harness import base_notebook, with_cell
    broken = tmp_path / "broken"
    broken.mkdir()
    nbformat.write(with_cell(base_notebook("01_micrograd", "solution"), "1 / 0"), str(broken / "01_micrograd.ipynb"))
    run = lambda folder: subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_micrograd_reference.py::test_node_used_twice", "--notebooks", str(folder)],
        capture_output=True, text=True, cwd=SOLUTIONS_DIR.parent, timeout=300)
    missing, failing = run(tmp_path), run(broken)
    assert missing.returncode == 0 and "1 skipped" in missing.stdout, missing.stdout
    assert (failing.returncode == 1 and "cells failed to run" in failing.stdout
            and "ZeroDivisionError" in failing.stdout), failing.stdout
