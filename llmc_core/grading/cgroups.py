"""One cgroup per grading child, so memory, processes and CPU are limited per notebook, not per process.

rlimits count each process alone: a notebook that starts a dozen processes could hold a dozen times
`--memory` and, forking busy loops, take every core from the notebook graded beside it. In a cgroup
the notebook's processes share one memory limit (`--memory`, the kernel's OOM killer acts inside the
group), one process limit and one CPU quota (`Limits.cpus` cores), and its CPU time is counted for all
of them together (`cpu_seconds`), which the timeout uses.

cgroups v2 are used where the grader may create groups with the memory, pids and cpu controllers
(root, and a cgroup of its own to put them under); else cgroups v1 (memory, pids, cpu, cpuacct
hierarchies); else none: `detect()` returns None and the grader keeps rlimits only.
The child joins its group itself, first thing, before it starts any other process.
"""
import functools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
V2_CONTROLLERS = ("memory", "pids", "cpu")
PERIOD_US = 100_000


@dataclass(frozen=True)
class Hierarchy:
    version: int          # 2 or 1
    parents: tuple        # folders the groups are made in: one (v2), or one per controller (v1)

    def describe(self):
        return f"cgroups v{self.version} (memory, processes and CPU per notebook)"


def own_paths():
    """{controller: this process's cgroup path} from /proc/self/cgroup; the v2 path under ""."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@functools.lru_cache(maxsize=None)
def detect():
    """The hierarchy to make grading groups in, or None where cgroups cannot be used here."""
    if os.geteuid() != 0:
        return None
    try:
        paths = own_paths()
        if (ROOT / "cgroup.controllers").exists() and "" in paths:
            return _usable(Hierarchy(2, (ROOT / paths[""].lstrip("/"),)))
        if all(c in paths for c in V1_CONTROLLERS):
            return _usable(Hierarchy(1, tuple(ROOT / c / paths[c].lstrip("/") for c in V1_CONTROLLERS)))
    except (OSError, ValueError):
        pass
    return None


def _usable(hierarchy):
    """`hierarchy` when a group with limits can be made and removed in it, else None."""
    try:
        if hierarchy.version == 2:
            control = hierarchy.parents[0] / "cgroup.subtree_control"
            missing = set(V2_CONTROLLERS) - set(control.read_text().split())
            if missing:  # fails (EBUSY) when processes live in our own group: then no cgroups
                control.write_text(" ".join(f"+{c}" for c in sorted(missing)))
        group = Group(hierarchy, f"llmc-grade-{os.getpid()}-probe", memory=1 << 30, processes=64, cpus=1.0)
        group.remove()
        return hierarchy
    except OSError:
        return None


class Group:
    """A cgroup (v2) or one group per controller (v1) holding one grading child and everything it starts."""

    def __init__(self, hierarchy, name, memory, processes, cpus):
        self.hierarchy = hierarchy
        self.folders = list(dict.fromkeys(p / name for p in hierarchy.parents))  # co-mounted v1 controllers
        for folder in self.folders:
            folder.mkdir(exist_ok=True)
        quota = f"{int(cpus * PERIOD_US)}"
        if hierarchy.version == 2:
            settings = {"memory.max": memory, "memory.swap.max": 0, "pids.max": processes,
                        "cpu.max": f"{quota} {PERIOD_US}"}
        else:
            settings = {"memory.limit_in_bytes": memory, "pids.max": processes, "cpu.cfs_period_us": PERIOD_US,
                        "cpu.cfs_quota_us": quota}
        for key, value in settings.items():
            for folder in self.folders:
                if (folder / key).exists():
                    (folder / key).write_text(str(value))

    def procs_files(self):
        """The files the child writes "0" into to join (every controller's group in v1)."""
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def cpu_seconds(self):
        """CPU time used by every process of the group so far (also those that ended)."""
        try:
            if self.hierarchy.version == 2:
                stat = dict(line.split() for line in (self.folders[0] / "cpu.stat").read_text().splitlines())
                return int(stat["usage_usec"]) / 1e6
            usage = next(f / "cpuacct.usage" for f in self.folders if (f / "cpuacct.usage").exists())
            return int(usage.read_text()) / 1e9
        except (OSError, KeyError, ValueError, StopIteration):
            return None

    def memory_killed(self):
        """True when the kernel killed a process of the group for going over its memory limit."""
        name = "memory.events" if self.hierarchy.version == 2 else "memory.oom_control"
        for folder in self.folders:
            try:
                fields = dict(line.split() for line in (folder / name).read_text().splitlines())
                return int(fields.get("oom_kill", 0)) > 0
            except (OSError, ValueError):
                continue
        return False

    def pids(self):
        found = set()
        for folder in self.folders:
            try:
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def kill(self):
        """SIGKILL every process of the group and wait (up to 10 s) until none is left."""
        kill_until_gone(self.pids)

    def remove(self):
        self.kill()
        for folder in self.folders:
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass


def create(name, limits):
    """A Group for one notebook under `limits`, or None where cgroups are not available."""
    hierarchy = detect()
    if hierarchy is None:
        return None
    return Group(hierarchy, name, limits.memory, limits.processes, limits.cpus)


def remove_stale():
    """Remove the groups of graders that were killed before they could clean up."""
    hierarchy = detect()
    for parent in hierarchy.parents if hierarchy else ():
        for folder in parent.glob("llmc-grade-*-*"):
            pid = folder.name.split("-")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                stale = Group.__new__(Group)
                stale.hierarchy, stale.folders = hierarchy, [folder]
                stale.remove()


def kill_until_gone(list_pids):
    """SIGKILL every process `list_pids()` names until it names none (up to 10 s)."""
    for _ in range(200):  # a fork bomb may still be forking; exiting processes take a moment to be reaped
        pids = list_pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
