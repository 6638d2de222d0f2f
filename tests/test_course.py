"""The course map: lesson order, and exercises that moved to another lesson keep working under their old ids."""
import json

import pytest

from llmc_core.checking import check, select_probes
from llmc_core.course import LESSONS, MOVED_EXERCISES, current_exercise_id, lesson_by_notebook, lesson_by_prefix
from llmc_core.exercises import exercises, load_probe_file, probes_for, snapshot_json
from llmc_core.grading.hidden import load_hidden, load_hidden_snapshots


def test_lessons_are_numbered_in_order_with_unique_prefixes():
    assert [int(lesson.notebook[:2]) for lesson in LESSONS] == list(range(len(LESSONS)))
    assert len({lesson.prefix for lesson in LESSONS}) == len(LESSONS)


def test_every_moved_exercise_exists_under_its_new_id_only():
    for old, new in MOVED_EXERCISES.items():
        old_lesson, new_lesson = (lesson_by_prefix(i.split("/")[0]) for i in (old, new))
        assert new in exercises(probes_for(new_lesson)), new
        assert old not in exercises(probes_for(old_lesson)), old
    assert current_exercise_id("cuda/softmax_online") == "cuda/softmax_online"


def test_check_with_an_old_id_runs_the_moved_exercise_and_says_where_it_went(capsys):
    lesson, probes = select_probes("cuda/adamw")
    assert lesson.notebook == "07_cuda_kernels_fast" and {p.exercise for p in probes} == {"cuda_fast/adamw_update"}
    check("cuda/adamw")  # this module defines no adamw_update: the probes report it missing
    out = capsys.readouterr().out
    assert out.startswith("cuda/adamw is now cuda_fast/adamw_update, in lesson 07_cuda_kernels_fast\n")
    assert "cuda_fast/adamw_update" in out.splitlines()[1]


@pytest.mark.parametrize("old,new", [("gpt2_backward/adamw", "gpt2_backward/adamw_update"),
                                     ("cuda_fast/adamw", "cuda_fast/adamw_update")])
def test_adamw_has_one_exercise_name_and_the_old_ids_still_resolve(old, new):
    assert current_exercise_id(old) == new
    lesson, probes = select_probes(old)
    assert {p.exercise for p in probes} == {new} and len(probes) >= 1
    assert old not in exercises(probes_for(lesson))


def test_hidden_snapshots_built_under_an_old_id_are_read_under_the_new_one(tmp_path):
    """An instructor's hidden probes and their snapshots, both from before AdamW's exercise was renamed."""
    (tmp_path / "extra.py").write_text("from llmc_core.exercises import probe\n\n"
                                       "@probe('cuda_fast/adamw')\n"
                                       "def launcher(nb):\n"
                                       "    return 1.5\n", encoding="utf-8")
    lesson = lesson_by_prefix("cuda_fast")
    entry = load_hidden(tmp_path)[lesson.notebook]
    data = json.loads(snapshot_json(lesson, {"cuda_fast/adamw/launcher": {"value": 1.5, "rtol": 1e-5, "atol": 1e-7}}))
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / f"{lesson.notebook}.json").write_text(
        json.dumps({**data, "sources_sha256": entry.digest}))
    assert [p.id for p in entry.probes] == ["cuda_fast/adamw_update/launcher"]
    assert load_hidden_snapshots(tmp_path, lesson, entry)["cuda_fast/adamw_update/launcher"]["value"] == 1.5


def test_a_hidden_probe_file_with_an_old_id_is_read_under_the_new_one(tmp_path):
    path = tmp_path / "extra.py"
    path.write_text("from llmc_core.exercises import probe\n\n"
                    "@probe('cuda/matmul_naive', points=2)\n"
                    "def square(nb):\n"
                    "    return nb.matmul_naive\n", encoding="utf-8")
    (found,) = load_probe_file(path)
    assert (found.exercise, found.id, found.points) == ("cuda_fast/matmul_naive", "cuda_fast/matmul_naive/square", 2)


def test_a_renamed_notebook_says_its_new_name():
    with pytest.raises(ValueError, match=r"'07_fast_trainer.ipynb' is now 08_fast_trainer.ipynb .*rename the file"):
        lesson_by_notebook("lessons/07_fast_trainer.ipynb")
    assert lesson_by_notebook("07_cuda_kernels_fast.ipynb").prefix == "cuda_fast"
