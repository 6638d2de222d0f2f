"""llmc's fast, scalable GPT-2 trainer: token shards, data loading, the training loop, evaluation.

Start with `llmc train` (docs/trainer.md) or `train(preset("shakespeare-cpu"), "runs/demo")`.
"""
from llmc_core.train.config import PRESETS, TrainConfig, preset

__all__ = ["PRESETS", "TrainConfig", "preset", "train"]


def train(config, out_dir, **kwargs):
    """Train per `config` into out_dir; see llmc_core.train.trainer.train."""
    from llmc_core.train.trainer import train as _train
    return _train(config, out_dir, **kwargs)
