"""`llmc speedrun`: a calibrated compute budget, the contest's rules, the result card and the leaderboard file."""
import json
import os
import subprocess
import sys

import pytest
import torch

from llmc_core.cli import main
from llmc_core.course import REPO_DIR
from llmc_core.grading.leaderboard import check_card, read_leaderboard
from llmc_core.speedrun import BASE, calibrate, changed_options, contest_config, reference_step, speedrun
from llmc_core.train import preset

# a tiny entry, so that a speedrun is mostly its calibration
TINY = dict(n_layer=1, n_head=2, n_embd=32, seq_len=32, batch_size=4, total_batch_tokens=128, warmup_steps=2)
TINY_FLAGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--seq-len", "32", "--batch-size", "4",
              "--total-batch-tokens", "128", "--warmup-steps", "2"]
BUDGET = 5  # reference steps


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("speedrun_data")


def test_rules_refuse_what_would_change_the_race():
    for options, word in (({"time_budget": 60.0}, "--time-budget"), ({"val_data": "my.bin"}, "--val-data"),
                          ({"init_from": "gpt2"}, "--init-from"), ({"max_steps": 10}, "--max-steps")):
        with pytest.raises(ValueError, match=f"{word} is fixed by the speedrun's rules"):
            contest_config(options)
    with pytest.raises(ValueError, match="'n_embed' is not a training option"):
        contest_config({"n_embed": 64})
    rope = not preset(BASE).rope  # a change from the preset, whichever recipe it trains
    config = contest_config({"n_embd": 64, "rope": rope, "data": "tinyshakespeare"})  # a rule's own value is fine
    assert changed_options(config) == {"n_embd": 64, "rope": rope}


def test_cli_refuses_rule_flags_in_one_line(capsys):
    assert main(["speedrun", "--max-steps", "10"]) == 2
    assert "llmc speedrun: --max-steps is fixed by the speedrun's rules" in capsys.readouterr().err
    assert main(["speedrun", "--show"]) == 2
    assert "--show prints a leaderboard" in capsys.readouterr().err


def test_two_speedruns_on_this_machine_get_budgets_within_10_percent(data_dir, tmp_path, capsys):
    card = speedrun(TINY, budget=BUDGET, out_dir=tmp_path / "a", data_dir=data_dir, name="ann", progress=False)
    board = tmp_path / "board.json"
    assert main(["speedrun", "--budget", str(BUDGET), *TINY_FLAGS, "--out", str(tmp_path / "b"), "--name", "bob",
                 "--data-dir", str(data_dir), "--no-progress", "--leaderboard", str(board)]) == 0
    printed = capsys.readouterr().out
    second = json.loads((tmp_path / "b" / "speedrun.json").read_text())
    seconds = card["budget"]["seconds"], second["budget"]["seconds"]
    assert max(seconds) / min(seconds) < 1.10, (f"calibrated budgets {seconds} differ by more than 10% "
                                                f"(load {os.getloadavg()})")
    # the card: what the grader accepts, written where the run is, and consistent with itself
    assert check_card(card) == check_card(json.loads((tmp_path / "a" / "speedrun.json").read_text()))
    assert card["budget"]["seconds"] == pytest.approx(BUDGET * card["calibration"]["seconds_per_reference_step"])
    assert card["tokens"] == card["steps"] * 128 and card["steps"] >= 1 and card["parameters"] > 0
    assert card["options"] == TINY  # every field of TINY changes the preset: all of it is needed to run it again
    assert card["calibration"]["threads"] == 1 and card["budget"]["clock"] == "cpu"
    assert set(card["software"]) == {"python", "torch", "numpy", "llmc"}
    assert 0 < card["val_bpb"] < 16
    # the printed card and the leaderboard it was added to
    assert "speedrun card: bob" in printed and "reference steps" in printed and "bob" in printed.splitlines()[-1]
    entries, bad = read_leaderboard(board)
    assert [name for name, _ in entries] == ["bob"] and bad == []
    assert main(["speedrun", "--leaderboard", str(board), "--show"]) == 0
    assert "1 card(s)" in capsys.readouterr().out


def test_a_slower_machine_gets_proportionally_more_seconds(data_dir, tmp_path):
    def slowed(device):  # a machine at half speed: every reference step does the work twice
        step = reference_step(device)

        def twice():
            step()
            step()
        return twice
    normal = calibrate(threads=1, steps=4, warmup=1)
    slow = calibrate(threads=1, steps=4, warmup=1, workload=slowed)
    ratio = slow.seconds_per_step / normal.seconds_per_step
    assert 1.7 < ratio < 2.3, f"half speed should double the seconds per reference step, got x{ratio:.2f}"
    card = speedrun(TINY, budget=BUDGET, out_dir=tmp_path / "slow", data_dir=data_dir, calibration=slow,
                    progress=False)
    assert card["budget"]["seconds"] == pytest.approx(BUDGET * slow.seconds_per_step)
    assert card["calibration"]["seconds_per_reference_step"] == slow.seconds_per_step


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the script's path on a machine without a GPU")
def test_gpu_check_without_a_gpu_says_so_and_succeeds():
    done = subprocess.run(["bash", str(REPO_DIR / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gpu_check: no GPU: PyTorch sees no CUDA GPU; nothing was run or measured" in done.stdout
