"""The trainer as a command: SIGTERM saves a checkpoint, torchrun DDP (and ZeRO-1) matches one process."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import llmc_core
from llmc_core.train.checkpoint import load_checkpoint
from llmc_core.train.shards import write_shard
from llmc_core.train.trainer import read_log

REPO = str(Path(llmc_core.__file__).resolve().parents[1])  # so that a child in another cwd imports this checkout
TINY_FLAGS = ["--tokenizer", "gpt2", "--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--seq-len", "16",
              "--vocab-size", "256",
              "--lr", "1e-2", "--warmup-steps", "2", "--sample-every", "0", "--checkpoint-every", "0",
              "--val-batches", "2", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("clidata")
    rng = np.random.default_rng(10)
    for split, n in (("train", 6000), ("val", 1500)):
        write_shard(d / f"toy_{split}.bin", rng.integers(0, 256, size=n))
    return ["--train-data", str(d / "toy_train.bin"), "--val-data", str(d / "toy_val.bin")]


def env(threads):
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    e.pop("WORLD_SIZE", None)
    return e


def losses(run_dir):
    return [r["loss"] for r in read_log(run_dir) if "loss" in r]


def test_sigterm_saves_a_checkpoint_and_resume_continues(data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "llmc_core.train", "train", "--out", str(run), "--max-steps", "100000",
           "--val-every", "0", "--batch-size", "4", "--total-batch-tokens", "64", *TINY_FLAGS, *data]
    proc = subprocess.Popen(cmd, env=env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "log.jsonl").exists() and len(losses(run)) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped at step" in out and "SIGTERM" in out
    step = load_checkpoint(run)["step"]
    assert step == len(losses(run)) >= 3  # the checkpoint holds the last logged step
    # resume for two more steps: the log continues from the checkpoint
    rc = subprocess.run([sys.executable, "-m", "llmc_core.train", "train", "--resume", str(run),
                         "--max-steps", str(step + 2), "--no-progress"], env=env(1), capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert [r["step"] for r in read_log(run) if "loss" in r] == list(range(1, step + 3))


def test_two_processes_match_one_process_with_accumulation(data, tmp_path):
    common = ["--max-steps", "4", "--val-every", "2", "--batch-size", "2", "--total-batch-tokens", "64",
              "--device", "cpu", "--recipe", "gpt2", "--dropout", "0", *TINY_FLAGS, *data]
    # (AdamW, whose state ZeRO-1 shards; no dropout, whose masks differ between one and two processes)
    one = subprocess.run([sys.executable, "-m", "llmc_core.train", "train", "--out", str(tmp_path / "one"), *common],
                         env=env(1), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "llmc_core.train", "train", "--out", str(tmp_path / "two"), *common],
                         env=env(1), capture_output=True, text=True)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "2 process(es) x 1 micro-steps" in two.stdout and "1 process(es) x 2 micro-steps" in one.stdout
    log1, log2 = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    # the same tokens, gradients summed in another order (all-reduce vs accumulation):
    # equal up to float32 rounding, which a few steps of AdamW amplify to ~1e-6
    np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=0, atol=1e-5)
    val1 = [r["val_loss"] for r in log1 if "val_loss" in r]
    val2 = [r["val_loss"] for r in log2 if "val_loss" in r]
    np.testing.assert_allclose(val2, val1, rtol=0, atol=1e-5)
    # ZeRO-1 shards AdamW's state across the two processes; the update is the same
    zero = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "llmc_core.train", "train", "--out", str(tmp_path / "zero"), "--zero1", *common],
                          env=env(1), capture_output=True, text=True)
    assert zero.returncode == 0, zero.stdout + zero.stderr
    np.testing.assert_allclose(losses(tmp_path / "zero"), losses(tmp_path / "one"), rtol=0, atol=1e-5)


def test_default_command_prepares_shakespeare_and_writes_a_run_folder(tmp_path):
    # the no-argument path, cut to one step: tiny Shakespeare is prepared on first use
    cmd = [sys.executable, "-m", "llmc_core.train", "train", "--max-steps", "1", "--val-batches", "1",
           "--sample-tokens", "4", "--data-dir", str(tmp_path / "data"), "--no-progress"]
    done = subprocess.run(cmd, cwd=tmp_path, env=dict(env(2), PYTHONPATH=REPO), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "unigram baseline" in done.stdout and "--- sample at step 1 ---" in done.stdout
    (run,) = (tmp_path / "runs").iterdir()  # runs/<timestamp>
    assert load_checkpoint(run)["step"] == 1
    assert [r["step"] for r in read_log(run)] == [0, 1]
    # the default preset's tokenizer has its own shard folder
    from llmc_core.train.config import preset
    from llmc_core.train.prepare import dataset_dir
    folder = dataset_dir("tinyshakespeare", tmp_path / "data", preset("shakespeare-cpu").tokenizer)
    assert folder.name.startswith("tinyshakespeare-shakespeare-4096-")
    assert (folder / "tiny_shakespeare_train.bin").is_file()
    from llmc_core.tokenizer import tokenizer_from_dict
    assert tokenizer_from_dict(load_checkpoint(run)["tokenizer"]).n_vocab == 4096  # sample decodes with it


@pytest.mark.parametrize("flags, message", [
    (["--device", "cuda"], "--device cuda: this PyTorch sees no CUDA GPU; use --device cpu"),
    (["--device", "cuda:0"], "--device cuda:0: this PyTorch sees no CUDA GPU; use --device cpu"),
    (["--max-steps", "0"], "--max-steps must be positive, got 0"),
    (["--hellaswag-path", "x.jsonl"], "--hellaswag-path has no effect without --hellaswag-every N"),
], ids=["cuda", "cuda0", "max-steps-0", "ignored-flag"])
def test_train_mistakes_end_in_one_line(data, tmp_path, capsys, flags, message):
    import torch

    from llmc_core.train.cli import main
    if flags[0] == "--device" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rc = main(["train", "--out", str(tmp_path / "run"), *TINY_FLAGS, *data, *flags])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_resume_refuses_a_flag_it_would_ignore(data, tmp_path, capsys):
    from llmc_core.train.cli import main
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--max-steps", "1", "--val-every", "0", "--batch-size", "4",
                 "--total-batch-tokens", "64", *TINY_FLAGS, *data]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "2", "--n-layer", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n-layer: a resumed run keeps the model and tokenizer of its checkpoint" in err
