"""The `llmc` command as a user meets it: --version, a --help that imports no torch, and every mistake in one line.

Each case runs the installed `llmc` entry point in a subprocess, as a user would.
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmc_core.build import project_settings
from llmc_core.cli import COMMAND_MODULES, LAZY_COMMANDS, main
from llmc_core.course import REPO_DIR

LLMC = Path(sys.executable).parent / "llmc"


@pytest.fixture(autouse=True)
def offline(offline_env, monkeypatch):
    for name, value in offline_env.items():
        monkeypatch.setenv(name, value)


def llmc(*args, prefix=(), cwd=None):
    """Run `llmc ARGS` with this checkout's llmc_core; return (exit code, stdout, stderr).

    The `offline` fixture cuts the network.
    """
    command = [*prefix, str(LLMC) if LLMC.exists() else shutil.which("llmc"), *map(str, args)]
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))
    env.pop("LLMC_TRACEBACK", None)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return result.returncode, result.stdout, result.stderr


def assert_one_clear_line(code, err, *names):
    """Failed, said why in one or two lines without a traceback, and named what the user should look at."""
    lines = err.strip().splitlines()
    assert code != 0 and "Traceback" not in err and 1 <= len(lines) <= 2, err[-2000:]
    for name in names:
        assert name.lower() in err.lower(), f"{name!r} not in {err!r}"


def test_version():
    code, out, _ = llmc("--version")
    assert code == 0 and out.strip() == f"llmc {project_settings().version}"


def test_help_lists_every_command_without_importing_torch():
    script = ("import sys; from llmc_core.cli import main\n"
              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO_DIR)), timeout=60)
    assert result.stdout.strip().endswith("no torch")
    for commands in LAZY_COMMANDS.values():
        assert all(command in result.stdout for command in commands)


def test_lazy_command_list_matches_what_the_modules_register():
    for module, commands in LAZY_COMMANDS.items():
        assert module in COMMAND_MODULES
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        registered = {action.dest: action.help for action in sub._choices_actions}
        assert registered == commands


def can_mount():
    """Unprivileged mounts in a private namespace (Linux): a real full or read-only file system for a test."""
    if not shutil.which("unshare"):
        return False
    command = ["unshare", "-Urm", "mount", "-t", "tmpfs", "tmpfs", "/mnt"]
    return subprocess.run(command, capture_output=True).returncode == 0


def mounted(folder, options):
    """A prefix that runs a command with a fresh tmpfs mounted on `folder` with mount `options`."""
    folder.mkdir(parents=True, exist_ok=True)
    return ["unshare", "-Urm", "sh", "-c", f'mount -t tmpfs -o {options} tmpfs "{folder}" && exec "$@"', "sh"]


needs_mount = pytest.mark.skipif(not can_mount(), reason="needs unshare -Urm and tmpfs (Linux user namespaces)")


@needs_mount
@pytest.mark.parametrize("options,words", [("ro", ("read-only", "folder you can write to")),
                                           ("size=64k", ("no space left", "free some space"))],
                         ids=["read-only", "full"])
def test_release_to_a_read_only_or_full_folder(tmp_path, options, words):
    out = tmp_path / "mnt"
    code, _, err = llmc("release", "--out", out / "student", prefix=mounted(out, options))
    assert_one_clear_line(code, err, "llmc release", *words)


@needs_mount
def test_train_into_a_read_only_folder(tmp_path):
    out = tmp_path / "mnt"
    code, _, err = llmc("train", "--out", out / "run", "--max-steps", "1", "--data-dir", tmp_path / "data",
                        "--no-progress", prefix=mounted(out, "ro"))
    assert_one_clear_line(code, err, "llmc train", "read-only", str(out / "run"))


def test_missing_notebook():
    code, _, err = llmc("check", "nowhere/01_micrograd.ipynb")
    assert_one_clear_line(code, err, "llmc check", "nowhere/01_micrograd.ipynb")


def test_not_a_lesson_notebook(tmp_path):
    (tmp_path / "mine.ipynb").write_text("{}")
    code, _, err = llmc("check", tmp_path / "mine.ipynb")
    assert_one_clear_line(code, err, "mine.ipynb", "lesson")


def test_an_unexpected_error_is_one_line_with_the_way_to_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("LLMC_TRACEBACK", raising=False)
    import llmc_core.cli as cli

    def broken(args):
        raise RuntimeError("something broke")
    monkeypatch.setattr(cli, "cmd_progress", broken)
    assert main(["progress", "."]) == 1
    err = capsys.readouterr().err
    assert "llmc progress: RuntimeError: something broke" in err and "LLMC_TRACEBACK=1" in err


# Mistakes whose messages live with the code that runs them; each test turns green when that code names the fix.
def gpu_present():
    import torch
    return torch.cuda.is_available()


@pytest.mark.parametrize("dataset", ["tinystories", "fineweb-edu"])
def test_data_prepare_offline(tmp_path, dataset):
    code, _, err = llmc("data", "prepare", dataset, "--data-dir", tmp_path)
    assert_one_clear_line(code, err, dataset, "--source")


@pytest.mark.skipif(gpu_present(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_train_on_cuda_without_a_gpu(tmp_path, device):
    code, _, err = llmc("train", "--device", device, "--out", tmp_path / "run", "--data-dir", tmp_path / "data",
                        "--max-steps", "1", "--no-progress")
    assert_one_clear_line(code, err, "--device", "GPU")


def test_train_max_steps_zero(tmp_path):
    code, _, err = llmc("train", "--max-steps", "0", "--out", tmp_path / "run", "--data-dir", tmp_path / "data")
    assert_one_clear_line(code, err, "--max-steps")
    assert "TrainConfig" not in err and "max_steps" not in err


def test_a_flag_that_would_be_ignored(tmp_path):
    code, _, err = llmc("data", "prepare", "tinyshakespeare", "--source", tmp_path, "--data-dir", tmp_path / "data")
    assert_one_clear_line(code, err, "--source")
