"""The run folder: its JSON-lines log, read back by `llmc plot` and the tests."""
import json
from pathlib import Path

from llmc_core.fileio import atomic_write_text

LOG_NAME = "log.jsonl"


class RunLog:
    """The JSON-lines log: one record per step ({"step", "loss", "lr", ...}), appended as it goes."""

    def __init__(self, path, keep_up_to_step=None):
        self.path = Path(path)
        if keep_up_to_step is not None and self.path.exists():
            # resuming: drop the records of steps after the checkpoint, they will be redone
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= keep_up_to_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        elif keep_up_to_step is None:
            atomic_write_text(self.path, "")

    def write(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_log(run_dir):
    """The records of a run's log.jsonl, in order."""
    path = Path(run_dir) / LOG_NAME
    if not path.is_file():
        raise ValueError(f"no training log at {path}; pass a run folder written by `llmc train`")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
