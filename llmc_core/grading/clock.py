"""The time a grading child is charged: fair on a busy machine, bounded anyway."""
from pathlib import Path

# A notebook is never given more than this many times its timeout in wall-clock time, however starved.
WALL_BACKSTOP = 3
# A timeout is taken as the machine's fault when the notebook waited for a CPU this share of the time.
STARVED_SHARE = 0.1


class Clock:
    """The time charged to a notebook: its CPU time, or wall time less the time it waited for a CPU.

    Wall time alone is unfair on a busy machine (a neighbour's busy loops, other users): the notebook
    would lose points for time it could not run. So the time charged is the larger of the CPU time
    of all its processes (from its cgroup, where there is one) and the wall time less its main
    process's run-queue wait (/proc/PID/schedstat): a busy notebook is charged its CPU time, one that
    sleeps or blocks its wall time. `WALL_BACKSTOP` bounds the wall time anyway.
    """

    def __init__(self, start, limits, proc, isolation, group):
        self.start, self.limits, self.proc, self.group = start, limits, proc, group
        self.unshared = bool(isolation.unshare)
        self.main_pid, self.starved, self.cpu = None, 0.0, None

    def update(self, now):
        """-> seconds charged so far."""
        if self.main_pid is None:
            self.main_pid = self._find_main()
        if self.main_pid is not None:
            try:  # time on the CPU, time waiting on a run queue, time slices (ns)
                self.starved = int(Path(f"/proc/{self.main_pid}/schedstat").read_text().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                pass
        if self.group is not None:
            self.cpu = self.group.cpu_seconds()
        return max(now - self.start - self.starved, self.cpu or 0.0)

    def _find_main(self):
        """The host pid of the Python process that runs the notebook (unshare's child, or the process itself)."""
        if not self.unshared:
            return self.proc.pid
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def expired(self, now):
        return self.update(now) > self.limits.timeout or now - self.start > WALL_BACKSTOP * self.limits.timeout

    def overloaded(self, now):
        """True when the notebook spent a real share of its time waiting for a CPU, or hit the backstop,
        without having used its whole time on the CPU itself (its own busy processes do not count)."""
        if self.cpu is not None and self.cpu >= self.limits.timeout:
            return False
        wall = now - self.start
        return self.starved > STARVED_SHARE * wall or wall > WALL_BACKSTOP * self.limits.timeout
