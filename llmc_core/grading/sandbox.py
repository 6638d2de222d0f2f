"""Run one notebook's probes in a child process that the learner's code cannot escape or fool.

The parent (this module) starts `child.py` with limits and reads back plain JSON events, one per
line, size-capped (`protocol.py`). The verdict is never decided here or in the child: `gradebook.py`
compares the outcomes with snapshots the child never sees.

What contains the child depends on what the machine allows; `detect_isolation()` picks the
strongest of these, and `Isolation.describe()` says which one is in use:

- `namespaces` (root): `unshare --mount --net --pid --ipc --fork --mount-proc`, then a private uid
  per job slot: no network; its own IPC; a new root holding only an allow-list, read-only, with
  answer folders covered (rootfs.py) and a private /tmp; every process killed with the namespace.
- `user-namespaces` (not root): the same through `unshare --user --map-root-user`, keeping your uid.
- `private-user` (root without namespaces, e.g. a container): a private uid per job slot, so files
  readable only by their owner stay out of reach; leftover processes and IPC are removed by uid.
- `rlimits-only`: nothing else is available.

Every mode sets rlimits (CPU time, address space, processes, file size, open files), a time limit
enforced here (clock.py), a cap on what the child may send back, and a scrubbed environment; where
the grader may make cgroups (cgroups.py), each notebook also gets one for memory, processes and CPU.
"""
import ctypes
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmc_core.grading import cgroups, protocol, rootfs
from llmc_core.grading.clock import Clock

CHILD_SCRIPT = Path(__file__).resolve().parent / "child.py"
# Private uids for grading children: far above any normal account, one block per grader process,
# one uid per job slot, so RLIMIT_NPROC (counted per uid) and file permissions separate them.
UID_BASE = 1_900_000_000


@dataclass(frozen=True)
class Limits:
    """Resource limits for one notebook's grading process."""
    timeout: float = 120.0        # seconds charged for loading the notebook and running its probes (see Clock)
    memory: int = 4 << 30         # bytes of address space (torch alone maps ~0.7 GB)
    processes: int = 64           # processes and threads of the child's uid
    file_size: int = 64 << 20     # bytes in any one file the child writes
    open_files: int = 256
    disk: int = 256 << 20         # size of the child's private /tmp (namespace modes)
    output: int = 8 << 20         # bytes of results the child may send back
    log: int = 64 << 10           # bytes of the child's stdout/stderr kept (its tail) for the instructor
    cpus: float = 1.0             # CPU cores the notebook's processes share (cgroup quota, where available)

    def to_json(self):
        return asdict(self)


@dataclass(frozen=True)
class Isolation:
    mode: str                     # namespaces | user-namespaces | private-user | rlimits-only
    unshare: tuple = ()           # the unshare command line prefix, empty when not used

    @property
    def mounts(self):
        return self.mode in ("namespaces", "user-namespaces")

    @property
    def private_uid(self):
        return self.mode in ("namespaces", "private-user")

    def describe(self):
        return {
            "namespaces": "network, PID, IPC and mount namespaces; a private uid per job; a read-only root "
                          "holding only Python, the system and the package, answers covered; a private /tmp",
            "user-namespaces": "network, PID, IPC and mount namespaces through a user namespace; a read-only root "
                               "holding only Python, the system and the package, answers covered; a private /tmp; "
                               "children keep your uid",
            "private-user": "no namespaces available: a private uid per job, killed by uid; network is NOT blocked and "
                            "world-readable files (snapshots included) are readable by the child",
            "rlimits-only": "no namespaces and not root: resource limits only; network is NOT blocked, "
                            "the child can read what you can read, and a process it detaches may outlive its notebook",
        }[self.mode]


def _works(command):
    try:
        return subprocess.run(command + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def detect_isolation(allow_namespaces=True):
    """The strongest isolation this machine allows (tried once per process)."""
    unshare = shutil.which("unshare")
    base = ["--mount", "--net", "--pid", "--ipc", "--fork", "--mount-proc", "--kill-child", "--propagation", "private"]
    if allow_namespaces and unshare:
        if os.geteuid() == 0 and _works([unshare] + base):
            return Isolation("namespaces", tuple([unshare] + base))
        userns = [unshare, "--user", "--map-root-user"] + base
        if os.geteuid() != 0 and _works(userns):
            return Isolation("user-namespaces", tuple(userns))
    if os.geteuid() == 0 and python_reachable_by_others():
        return Isolation("private-user")
    return Isolation("rlimits-only")


def python_reachable_by_others():
    """True when a uid other than ours can read the interpreter, its libraries and this package."""
    needed = [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)] + [str(CHILD_SCRIPT.parents[2])]
    for path in map(Path, needed):
        if (path.stat().st_mode & 0o004) == 0:  # o+r on the folder itself
            return False
        if any((folder.stat().st_mode & 0o001) == 0 for folder in [path, *path.parents]):  # o+x on the way
            return False
    return True


@dataclass
class ChildRun:
    """What came back from one grading child."""
    status: str                   # protocol.OK, or one of protocol.CHILD_FAILURES, or protocol.GRADER_ERROR
    events: list = field(default_factory=list)
    message: str = ""             # why the status is not ok, in words for the learner
    log: str = ""                 # tail of the child's stdout and stderr, for the instructor
    wall: float = 0.0
    cpu: float = None             # CPU seconds of all the notebook's processes (None without a cgroup)
    starved: float = 0.0          # seconds its main process waited for a CPU while it could have run
    overloaded: bool = False      # a timeout on a machine too busy to call it fair: grade it again, alone


class _Tail:
    """Keep the last `limit` bytes written."""

    def __init__(self, limit):
        self.limit, self.data, self.dropped = limit, bytearray(), 0

    def add(self, chunk):
        self.data += chunk
        if len(self.data) > self.limit:
            cut = len(self.data) - self.limit
            self.dropped += cut
            del self.data[:cut]

    def text(self):
        head = f"[{self.dropped} earlier bytes dropped]\n" if self.dropped else ""
        return head + self.data.decode("utf-8", "replace")


def scrubbed_env():
    """The environment the child starts with: nothing of the instructor's, one thread per library."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "USER": "student", "LOGNAME": "student", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
           "MPLBACKEND": "Agg", "LLMC_SMALL": "1"}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "LLMC_CUDA_THREADS"):
        env[var] = "1"  # threads count against RLIMIT_NPROC and jobs already use every core
    return env


@functools.lru_cache(maxsize=None)
def matplotlib_font_cache():
    """matplotlib's font list, built once here, so that each child need not rebuild it (~0.5 s each)."""
    try:
        import matplotlib
        import matplotlib.font_manager  # noqa: F401  builds the font list when it is missing
    except ImportError:
        return ()
    return tuple(str(p) for p in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))


@functools.lru_cache(maxsize=None)
def death_signal_prefix():
    """`setpriv --pdeathsig KILL --`: the child dies with the grader, even a grader killed by SIGKILL.

    (The signal comes when the thread that started the child ends; grading threads live as long as the run.)
    """
    setpriv = shutil.which("setpriv")
    if setpriv and _works([setpriv, "--pdeathsig", "KILL", "--"]):
        return [setpriv, "--pdeathsig", "KILL", "--"]
    return []


def slot_uid(slot):
    return UID_BASE + (os.getpid() % 100_000) * 64 + slot


def processes_of_uid(uid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def kill_uid(uid):
    """SIGKILL every process of a private grading uid and wait (up to 10 s) until none is left."""
    cgroups.kill_until_gone(lambda: processes_of_uid(uid))


def remove_ipc_of_uid(uid):
    """Remove the System V shared memory, queues and semaphores a private uid left (modes without an IPC namespace)."""
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_RMID = 0
    remove = {"shm": lambda i: libc.shmctl(i, IPC_RMID, None), "msg": lambda i: libc.msgctl(i, IPC_RMID, None),
              "sem": lambda i: libc.semctl(i, 0, IPC_RMID)}
    for kind, rm in remove.items():
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        column = {"shm": 7, "msg": 7, "sem": 4}[kind]  # the owner's uid
        for fields in (line.split() for line in lines):
            if len(fields) > column and int(fields[column]) == uid:
                rm(int(fields[1]))
    for leftover in Path("/dev/shm").glob("*"):  # POSIX shared memory and semaphores
        try:
            if leftover.lstat().st_uid == uid:
                leftover.unlink()
        except OSError:
            pass


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


SIGNAL_REASONS = {
    signal.SIGXCPU: "it used more CPU time than allowed",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted",
    signal.SIGKILL: "it was killed (often: out of memory)",
    signal.SIGBUS: "it crashed (bus error)",
    signal.SIGXFSZ: "it wrote a file larger than allowed",
}


def run_child(request, limits, isolation, slot=0, hide=(), workroot=None, cancel=None, readable=(), env=None):
    """Run `child.py` on `request` (see child.py) under `limits` -> ChildRun.

    `hide`: folders the child must not read (snapshots, solutions, submissions, output).
    `readable`: files and folders the child may read although they sit in a hidden or covered folder
    (an earlier lesson's solution that the package loads, a prebuilt read-only cache).
    `env`: variables added to the scrubbed environment.
    `workroot`: a folder for the child's working directory when it gets no private /tmp.
    `cancel`: a threading.Event; when set, the child is killed and the run reported as cancelled.
    """
    uid = slot_uid(slot) if isolation.private_uid else None
    group = cgroups.create(f"llmc-grade-{os.getpid()}-{slot}", limits)
    own_workroot = workroot is None
    workroot = Path(workroot or tempfile.mkdtemp(prefix=f"llmc-grade-{os.getpid()}-"))
    os.chmod(workroot, 0o711)  # private uids pass through to their own 0700 folder, and list nothing
    workdir = Path(tempfile.mkdtemp(prefix=f"slot{slot}-", dir=workroot))
    if uid is not None and not isolation.mounts:
        os.chown(workdir, uid, uid)
    read_end, write_end = os.pipe()
    jail = {"mounts": isolation.mounts, "uid": uid, "workdir": str(workdir),
            "root": rootfs.plan_root(hide, readable) if isolation.mounts else None,
            "matplotlib_cache": list(matplotlib_font_cache()),
            "processes_now": None if uid is not None else _count_my_processes(),
            "cgroups": group.procs_files() if group else []}
    message = dict(request, jail=jail, limits=limits.to_json(), result_fd=write_end)
    payload = json.dumps(message).encode()
    command = death_signal_prefix() + list(isolation.unshare) + [sys.executable, "-I", str(CHILD_SCRIPT)]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**scrubbed_env(), **(env or {})}, cwd="/", pass_fds=(write_end,),
                                start_new_session=True)
    finally:
        os.close(write_end)
    try:
        run = _supervise(proc, payload, read_end, limits, Clock(start, limits, proc, isolation, group), cancel)
        if group is not None and run.status == protocol.CRASHED and group.memory_killed():
            run.message = (f"it went over the memory limit of {limits.memory / 2**30:.3g} GB "
                           "(all its processes together)")
        return run
    finally:
        _kill_group(proc)
        proc.wait()
        os.close(read_end)
        if group is not None:
            group.remove()  # kills what is left of the notebook, whatever its uid or session
        if uid is not None:
            kill_uid(uid)  # also waits for the PID namespace's processes to be gone before the slot is reused
            if not isolation.mounts:
                remove_ipc_of_uid(uid)
        shutil.rmtree(workroot if own_workroot else workdir, ignore_errors=True)


def remove_stale_workroots():
    """Delete the working folders (and cgroups) of graders that were killed before they could clean up."""
    cgroups.remove_stale()
    for folder in Path(tempfile.gettempdir()).glob("llmc-grade-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _count_my_processes():
    return len(processes_of_uid(os.getuid()))


def _supervise(proc, payload, read_end, limits, clock, cancel):
    """Feed the request, drain output and results under caps, enforce the time limit."""
    log = _Tail(limits.log)
    results = bytearray()
    start = clock.start
    # Write the request from a thread: a child that never reads stdin must not block us.
    feeder = threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True)
    feeder.start()
    open_fds = {proc.stdout.fileno(): "log", read_end: "results"}
    status, reason, exited_at, overloaded = protocol.OK, "", None, False
    while open_fds:
        now = time.monotonic()
        if cancel is not None and cancel.is_set():
            status, reason = protocol.CRASHED, "grading was cancelled"
            break
        if clock.expired(now):
            status, reason = protocol.TIMEOUT, f"it ran past the time limit of {limits.timeout:g} s"
            overloaded = clock.overloaded(now)
            break
        if proc.poll() is not None:
            # The child is gone; a process it left behind may still hold the pipes open.
            exited_at = exited_at or now
            if now - exited_at > 1.0:
                break
        ready, _, _ = select.select(list(open_fds), [], [], 0.1)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                del open_fds[fd]
            elif open_fds[fd] == "log":
                log.add(chunk)
            else:
                results += chunk
                if len(results) > limits.output:
                    status = protocol.OUTPUT_TOO_LARGE
                    reason = f"it sent back more than {limits.output} bytes of results"
                    open_fds.clear()
                    break
    if status != protocol.OK:
        _kill_group(proc)
    try:
        returncode = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        returncode = proc.wait()
    events, complete = protocol.parse(bytes(results))
    if not protocol.started(events) and status != protocol.TIMEOUT:
        # The child failed before any learner code ran: a problem of the grader or the machine.
        return ChildRun(protocol.GRADER_ERROR, [], "the grader failed before running the notebook: "
                        + (log.text().strip().splitlines() or ["no output"])[-1], log.text(), time.monotonic() - start)
    if status == protocol.OK and not complete:
        status = protocol.CRASHED
        reason = _exit_reason(returncode)
    return ChildRun(status, events, reason, log.text(), time.monotonic() - start, clock.cpu, clock.starved,
                    overloaded)


def _feed(stdin, payload):
    try:
        stdin.write(payload)
        stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _exit_reason(returncode):
    if returncode is None:
        return "it did not finish"
    if returncode < 0 or returncode > 128:
        number = -returncode if returncode < 0 else returncode - 128
        try:
            return SIGNAL_REASONS.get(signal.Signals(number), f"it was killed by signal {signal.Signals(number).name}")
        except ValueError:
            return f"it ended with status {returncode}"
    return f"it ended (exit status {returncode}) before reporting every check: the notebook's code exited the process"
