"""The run folder: its JSON-lines log, its lock, and the leftovers of killed writes.

While a run uses a folder, `RunLock` holds an exclusive lock on `DIR/.lock` (which records the
process id), so a second `llmc train --out DIR` stops with a clear error instead of
interleaving the log. The kernel drops the lock when its process dies, however it died, so a
lock file left by a dead process is taken over; `remove_stale_temporaries` then deletes the
temporary files of writes that process did not finish (`fileio.atomic_open` names them
`.NAME.XXXX.tmp`).
"""
import fcntl
import json
import os
from pathlib import Path

from llmc_core.fileio import atomic_write_text

LOG_NAME = "log.jsonl"
LOCK_NAME = ".lock"


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


class RunLock:
    """An exclusive lock on a run folder while a run uses it; `stale_pid` is a dead holder taken over."""

    def __init__(self, run_dir):
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOCK_NAME
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise ValueError(f"the run folder {run_dir} is in use by process {holder} (it holds {self.path}); "
                             f"wait for that run to end or stop it, or pass another --out") from None
        previous = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
        self.stale_pid = int(previous) if previous.isdigit() and int(previous) != os.getpid() else None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # an empty lock file: nobody left it behind
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def remove_stale_temporaries(run_dir):
    """Delete the temporary files of interrupted atomic writes in run_dir; returns their names."""
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return sorted(removed)
