"""The grading child: load one learner notebook and run its probes; report outcomes, never verdicts.

Started by `sandbox.run_child` as `python -I child.py` (inside fresh namespaces when the machine
allows), it reads one JSON request from stdin:

    {"lesson": "01_micrograd", "notebook": <base64 of the .ipynb bytes>, "probe_ids": [...],
     "hidden": [{"name": "extra.py", "source": "..."}], "result_fd": 3, "limits": {...},
     "jail": {"mounts": bool, "uid": int | null, "workdir": "...", "hide": [...], "readable": [...],
              "processes_now": int | null}}

Then, still trusted: imports the probes (public ones from the package, hidden ones from the
request through a file deleted at once), mounts a private /tmp and empty folders over `hide`,
writes the notebook into its working directory, sets rlimits and drops to a private uid.
Only then does the learner's code run. It writes to `result_fd` one JSON line per event:

    {"event": "ready"}                                  the sandbox is set up; the learner's code starts
    {"event": "loaded", "cell_errors": [...]}           the notebook ran (some cells may have failed)
    {"probe": id, "outcome": Outcome.to_json()}         one per probe, as each finishes
    {"event": "done"}                                   every probe ran
    {"event": "unreadable", "message": "..."}           the notebook could not be read at all
"""
import base64
import ctypes
import json
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # -I leaves the package off sys.path
sys.dont_write_bytecode = True  # -I ignores PYTHONDONTWRITEBYTECODE; the hidden probes must leave no .pyc

import numpy  # noqa: E402,F401  imported while trusted, before the learner's code can touch sys.modules

from llmc_core import plain  # noqa: E402,F401
from llmc_core.course import lesson_by_notebook  # noqa: E402
from llmc_core.exercises import Outcome, load_probe_file, probes_for, run_probe  # noqa: E402
from llmc_core.notebook import load_notebook  # noqa: E402

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 0x4000
PR_SET_NO_NEW_PRIVS = 38
REQUEST_LIMIT = 1 << 30


class Channel:
    """The write end of the results pipe; one JSON object per line."""

    def __init__(self, fd):
        self.fd = fd

    def send(self, event):
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def libc_call(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}{args[:2]}: {os.strerror(errno)}")


def mount_tmpfs(target, options, flags=MS_NOSUID | MS_NODEV):
    libc_call("mount", b"tmpfs", str(target).encode(), b"tmpfs", flags, options.encode())


def hide(path, keep=()):
    """Cover `path` with an empty read-only tmpfs (a folder) or /dev/null (a file), in this mount namespace only.

    Files of `keep` inside the folder are bound back at their place; they stay read-only, since a bind
    mount inherits the read-only flag of the mount it comes from (see `read_only_root`).
    """
    if os.path.isdir(path):
        kept = [(k, os.open(k, os.O_PATH)) for k in keep if os.path.isfile(k) and under(k, path)]
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if not kept:
            mount_tmpfs(path, "size=4k,mode=000", MS_RDONLY | flags)
            return
        mount_tmpfs(path, "size=4k,mode=0755", flags)
        for file, fd in kept:
            target = os.path.join(path, os.path.relpath(os.path.realpath(file), os.path.realpath(path)))
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            Path(target).touch()
            libc_call("mount", f"/proc/self/fd/{fd}".encode(), target.encode(), None, MS_BIND, None)
            os.close(fd)
        libc_call("mount", b"tmpfs", str(path).encode(), b"tmpfs", MS_REMOUNT | MS_RDONLY | flags, b"size=4k,mode=0755")
    elif os.path.exists(path):
        libc_call("mount", b"/dev/null", str(path).encode(), None, MS_BIND, None)


def under(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def read_only_root():
    """Make every mount of this namespace read-only (mount_setattr, Linux 5.12+); False where unsupported.

    Mounts made afterwards (the private /tmp, the working directory) stay writable, so the learner's
    code can write there and nowhere else, even into world-writable folders of the machine.
    """
    SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1
    if os.uname().machine not in ("x86_64", "aarch64"):  # 442 is the number on both
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    result = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/",
                          ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    return result == 0


def closed_folder(path):
    """The top-most folder above `path` that other users cannot pass through (no o+x), or None."""
    for folder in reversed(Path(path).parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


# The system's own top-level folders. Every other one (/home, /root, /srv, /opt, /work, ...) may hold
# people's files, such as a course checkout with its solutions or other students' work, so the child
# sees it only as an empty folder with the paths it needs bound back in.
SYSTEM_FOLDERS = frozenset({"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
                            "/proc", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var"})


def people_folders():
    return [f"/{name}" for name in sorted(os.listdir("/"))
            if f"/{name}" not in SYSTEM_FOLDERS and os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}")]


def cover_all_but(needed, private_uid, tmp_options):
    """Cover /tmp and people's folders (and, for a private uid, folders it could not pass through,
    e.g. /root) with an empty tmpfs, and bind each `needed` path back at its own place.

    /tmp gets a writable tmpfs (`tmp_options`): it is the child's scratch space, and what others left
    there (a checkout, pytest's folders, another grading run) must not be visible.
    Needed paths are reached through file descriptors opened before anything is covered; bind
    mounts are recursive, so folders hidden earlier (snapshots inside the package) stay hidden.
    """
    covered = {folder: [] for folder in ["/tmp"] + people_folders()}
    for path in sorted({os.path.realpath(p) for p in needed if os.path.isabs(p) and os.path.exists(p)}):
        folder = next((f for f in covered if under(path, f)), None)
        if folder is None and private_uid:
            closed = closed_folder(path)
            folder = str(closed) if closed is not None else None
        if folder is not None:
            covered.setdefault(folder, []).append(path)
    for folder, paths in covered.items():
        fds = {p: os.open(p, os.O_PATH) for p in paths if not any(under(p, q) and p != q for q in paths)}
        mount_tmpfs(folder, tmp_options if folder == "/tmp" else "size=4k,mode=0755", MS_NOSUID | MS_NODEV)
        for p, fd in fds.items():
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(p, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
                Path(p).touch()
            libc_call("mount", f"/proc/self/fd/{fd}".encode(), p.encode(), None, MS_BIND | MS_REC, None)
            os.close(fd)


def build_jail(jail, limits):
    """Mount the private folders and hide the instructor's; return the working directory."""
    uid, workdir = jail["uid"], Path(jail["workdir"])
    if not jail["mounts"]:
        return workdir
    read_only_root()
    readable = jail.get("readable", [])
    needed = [p for p in sys.path if p] + [sys.prefix, sys.base_prefix, __file__]
    for folder in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(folder) and not any(under(p, folder) for p in needed):
            mount_tmpfs(folder, "size=1m,mode=1777")
    for path in jail["hide"]:
        if os.path.exists(path):
            hide(path, keep=readable)
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # llmc_core, not the checkout around it
    cover_all_but(needed + readable + [package, os.path.dirname(os.path.realpath(sys.executable))],
                  uid is not None, tmp_options=f"size={limits['disk']},mode=1777")
    workdir = Path("/tmp/submission")
    workdir.mkdir(mode=0o700)
    if uid is not None:
        os.chown(workdir, uid, uid)
    return workdir


def set_limits(limits, jail):
    """rlimits, soft = hard, so the learner's code cannot raise them again."""
    processes = limits["processes"]
    if jail["processes_now"] is not None:  # no private uid: the count includes the instructor's processes
        processes += jail["processes_now"]
    cpu = int(limits["timeout"]) + 1  # CPU seconds: a busy loop dies by SIGXCPU even if the grader is gone
    for rlimit, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                          (resource.RLIMIT_AS, (limits["memory"],) * 2),
                          (resource.RLIMIT_NPROC, (processes,) * 2),
                          (resource.RLIMIT_FSIZE, (limits["file_size"],) * 2),
                          (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
                          (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(rlimit, value)


def drop_privileges(uid):
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def load_hidden(sources, workdir):
    """Probes from the instructor's hidden files: written to a private file, imported, deleted."""
    probes = []
    folder = tempfile.mkdtemp(prefix=".probes-", dir=workdir)  # 0700 and ours: the learner's code has not run yet
    try:
        for i, item in enumerate(sources):
            path = Path(folder) / f"hidden_{i}_{Path(item['name']).stem}.py"
            path.write_text(item["source"], encoding="utf-8")
            probes += load_probe_file(path)
            path.unlink()
    finally:
        shutil.rmtree(folder)
    return probes


def copy_font_cache(files, folder, uid):
    """Give matplotlib the parent's font list ({name: bytes}) so importing pyplot does not rebuild it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if uid is not None:
        for path in (folder.parent, folder, *folder.iterdir()):
            os.chown(path, uid, uid)


def main():
    request = json.loads(sys.stdin.buffer.read(REQUEST_LIMIT))
    channel = Channel(request["result_fd"])
    lesson = lesson_by_notebook(request["lesson"])
    available = {p.id: p for p in probes_for(lesson)}
    limits, jail = request["limits"], request["jail"]
    font_cache = {Path(f).name: Path(f).read_bytes() for f in jail["matplotlib_cache"] if os.path.isfile(f)}
    workdir = build_jail(jail, limits)
    available.update({p.id: p for p in load_hidden(request["hidden"], workdir)})
    probes = [available[pid] for pid in request["probe_ids"]]
    path = workdir / lesson.filename
    path.write_bytes(base64.b64decode(request["notebook"]))
    del request
    if jail["uid"] is not None:
        os.chown(path, jail["uid"], jail["uid"])
    mpl = workdir / ".config" / "matplotlib"
    copy_font_cache(font_cache, mpl, jail["uid"])
    os.environ.update({"HOME": str(workdir), "TMPDIR": str(workdir), "MPLCONFIGDIR": str(mpl)})
    os.chdir(workdir)
    set_limits(limits, jail)
    drop_privileges(jail["uid"])
    sys.stdin.close()

    # From here on the learner's code runs and may do anything this process can do.
    channel.send({"event": "ready"})
    try:
        notebook = load_notebook(path)
    except (ValueError, OSError, RecursionError, MemoryError) as e:
        channel.send({"event": "unreadable", "message": str(e).replace(str(path), lesson.filename)[:2000]})
        os._exit(0)
    errors = [{"cell": e.cell, "line": e.line, "error": str(e.error)[:500], "source_line": str(e.source_line)[:300]}
              for e in notebook.cell_errors]
    channel.send({"event": "loaded", "cell_errors": errors[:50]})
    for p in probes:
        try:
            outcome = run_probe(p, notebook).to_json()
            json.dumps(outcome)  # an outcome that cannot be sent is an error of the learner's result
        except BaseException as e:  # noqa: BLE001  anything the learner's code raised past run_probe
            outcome = Outcome("error", message=f"{type(e).__name__}: {e}"[:2000]).to_json()
        channel.send({"probe": p.id, "outcome": outcome})
    channel.send({"event": "done"})
    for stream in (sys.stdout, sys.stderr):  # what the notebook printed goes to the instructor's log
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001  the learner's code may have replaced the stream
            pass
    os._exit(0)  # skip atexit hooks and finalizers the learner's code may have registered


if __name__ == "__main__":
    main()
