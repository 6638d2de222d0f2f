"""Atomic writes: the old content or the new, never a mix; the usual file mode."""
import json
import os
import stat

import pytest

from llmc_core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_replace_the_whole_file_and_leave_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "f.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["f.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    class Boom:
        def __len__(self):
            raise RuntimeError("disk full")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, Boom())
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_files_get_the_umask_mode_not_0600(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_json_is_readable_back(tmp_path):
    atomic_write_json(tmp_path / "f.json", {"ü": [1, 2.5]})
    assert json.loads((tmp_path / "f.json").read_text(encoding="utf-8")) == {"ü": [1, 2.5]}
