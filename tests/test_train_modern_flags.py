"""The modern recipe on the GPU code path: bf16 autocast and torch.compile, taken here on the CPU with a tiny model."""
import math

import pytest
import torch

from llmc_core import modern
from llmc_core.train.trainer import read_log, train
from test_train_modern import tiny


def test_modern_recipe_trains_under_bf16_autocast_and_torch_compile(toy_shards, tmp_path, monkeypatch, capsys):
    compiled, real_compile = [], torch.compile

    def spy(model, **kwargs):  # the trainer's call, traced by dynamo without generating C++ (seconds, not minutes)
        compiled.append(model)
        return real_compile(model, backend="eager")
    monkeypatch.setattr(torch, "compile", spy)
    config = tiny(toy_shards, max_steps=3, val_every=0, device="cpu")  # no evaluation: one graph to trace, not two
    train(config.replace(dtype="bfloat16", compile="on"), tmp_path / "bf16", progress=False)
    assert "bfloat16, compile on" in capsys.readouterr().out
    assert len(compiled) == 1 and isinstance(compiled[0], modern.GPT) and compiled[0].recipe.rope
    monkeypatch.undo()
    train(config, tmp_path / "fp32", progress=False)
    losses = [[r["loss"] for r in read_log(tmp_path / run) if "loss" in r] for run in ("bf16", "fp32")]
    # bf16 matmuls round to 8 bits of mantissa: the losses differ (autocast was on) but only a little
    assert losses[0] != losses[1]
    assert losses[0] == pytest.approx(losses[1], abs=0.05) and all(math.isfinite(x) for x in losses[0])
