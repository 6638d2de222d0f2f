"""Faults injected into runs: corrupted checkpoints, a second process, killed writes, empty shards,
resumed wall time."""
import os
import subprocess
import sys

import pytest

from llmc_core.train.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, load_checkpoint
from llmc_core.train.config import TrainConfig
from llmc_core.train.rundir import RunLock
from llmc_core.train.shards import write_shard
from llmc_core.train.trainer import read_log, train


def tiny(data, **changes):
    base = TrainConfig(n_layer=1, n_head=2, n_embd=16, seq_len=16, vocab_size=256, batch_size=4,
                       total_batch_tokens=64, max_steps=4, lr=1e-2, warmup_steps=1, val_every=0,
                       sample_every=0, checkpoint_every=1, train_data=str(data / "toy_train.bin"),
                       val_data=str(data / "toy_val.bin"))
    return base.replace(**changes)


def flip_middle(path, n=64):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + n] = bytes(b ^ 0xFF for b in data[middle:middle + n])
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_found_and_resume_uses_the_previous_checkpoint(toy_shards, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny(toy_shards, max_steps=3), run, progress=False)
    assert load_checkpoint(run / PREVIOUS_NAME)["step"] == 2  # the one step 3 replaced
    flip_middle(run / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match=rf"{CHECKPOINT_NAME} is corrupt.*checksum.*{PREVIOUS_NAME}"):
        load_checkpoint(run)
    summary = train(tiny(toy_shards, max_steps=4), run, resume=True, progress=False)
    assert f"resuming from {run / PREVIOUS_NAME} (step 2)" in capsys.readouterr().out
    assert summary["step"] == 4
    assert [r["step"] for r in read_log(run) if "loss" in r] == [1, 2, 3, 4]  # step 3 redone once


def test_a_file_without_the_checksum_header_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(ValueError, match=rf"{path} is not an llmc training checkpoint"):
        load_checkpoint(path)


LOCK_HOLDER = """
import sys, time
from llmc_core.train.rundir import RunLock
lock = RunLock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_process_on_the_same_run_folder_is_refused(toy_shards, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"run folder {run} is in use by process {holder.pid}.*another --out"):
            train(tiny(toy_shards), run, progress=False)
        assert not (run / "log.jsonl").exists()  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(toy_shards, tmp_path, capsys):
    run = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", LOCK_HOLDER.replace("time.sleep(60)", "os._exit(0)")
                           .replace("import sys", "import os, sys"), str(run)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert dead.stdout.strip() == "locked"
    stale_pid = int((run / ".lock").read_text())  # os._exit: the lock file still names the dead process
    train(tiny(toy_shards, max_steps=1), run, progress=False)
    assert f"took over the lock left by process {stale_pid}" in capsys.readouterr().out
    RunLock(run).release()  # the run released it


def test_temporary_files_of_killed_writes_are_removed_at_the_next_start(toy_shards, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    leftover = run / ".checkpoint.pt.k1ll3d.tmp"  # what atomic_open leaves when killed mid-write
    leftover.write_bytes(b"\0" * 1000)
    train(tiny(toy_shards, max_steps=1), run, progress=False)
    assert not leftover.exists()
    assert "removed 1 temporary file(s) of interrupted writes: .checkpoint.pt.k1ll3d.tmp" in capsys.readouterr().out


def test_an_empty_shard_is_a_clear_error(toy_shards, tmp_path):
    empty = tmp_path / "empty_val.bin"
    write_shard(empty, [])
    with pytest.raises(ValueError, match=rf"shard {empty} holds 0 tokens"):
        train(tiny(toy_shards, val_data=str(empty)), tmp_path / "run", progress=False)


def test_summary_wall_time_counts_every_resumed_part(toy_shards, tmp_path):
    run = tmp_path / "run"
    train(tiny(toy_shards), run, stop_at=2, progress=False)
    first_part = load_checkpoint(run)["wall_s"]
    summary = train(tiny(toy_shards), run, resume=True, progress=False)
    assert first_part > 0 and summary["wall_s_this_part"] > 0
    assert summary["wall_s"] == pytest.approx(first_part + summary["wall_s_this_part"], rel=1e-9)


def test_the_checkpoint_carries_the_tokenizer(toy_shards, tmp_path):
    from llmc_core.tokenizer import load_tokenizer, tokenizer_fingerprint, tokenizer_from_dict
    train(tiny(toy_shards, max_steps=1), tmp_path / "run", progress=False)
    enc = tokenizer_from_dict(load_checkpoint(tmp_path / "run")["tokenizer"])
    assert tokenizer_fingerprint(enc) == tokenizer_fingerprint(load_tokenizer("gpt2"))
