"""The grading child: load one learner notebook and run its probes; report outcomes, never verdicts.

Started by `sandbox.run_child` as `python -I child.py` (inside fresh namespaces when the machine
allows), it reads one JSON request from stdin:

    {"lesson": "01_micrograd", "notebook": <base64 of the .ipynb bytes>, "probe_ids": [...],
     "hidden": [{"name": "extra.py", "source": "..."}], "result_fd": 3, "limits": {...},
     "jail": {"mounts": bool, "uid": int | null, "workdir": "...", "root": rootfs.plan_root(...),
              "processes_now": int | null}}

Then, still trusted: imports the probes (public ones from the package, hidden ones from the
request through a file deleted at once), pivots into a new root that holds only what the parent
allowed (rootfs.py) with a private /tmp, writes the notebook into its working directory, sets
rlimits and drops to a private uid.
Only then does the learner's code run. It writes to `result_fd` the events of `protocol.py`.
"""
import base64
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
from llmc_core.grading import protocol, rootfs  # noqa: E402
from llmc_core.notebook import load_notebook  # noqa: E402

PR_SET_NO_NEW_PRIVS = 38
REQUEST_LIMIT = 1 << 30


class Channel:
    """The write end of the results pipe; one JSON object per line."""

    def __init__(self, fd):
        self.fd = fd

    def send(self, event):
        data = protocol.encode(event)
        while data:
            data = data[os.write(self.fd, data):]


def build_jail(jail, limits):
    """Pivot into the planned root (rootfs.py) with a private /tmp; return the working directory."""
    uid, workdir = jail["uid"], Path(jail["workdir"])
    if not jail["mounts"]:
        return workdir
    rootfs.enter_root(jail["root"], tmp_options=f"size={limits['disk']},mode=1777")
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
    else:
        rootfs.drop_capabilities()
    rootfs.libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


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
    for procs in request["jail"]["cgroups"]:  # first: every process started from here on is the notebook's
        Path(procs).write_text("0")
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
    channel.send(protocol.ready())
    try:
        notebook = load_notebook(path)
    except Exception as e:  # noqa: BLE001  a notebook the loader cannot walk; the learner's cells ran inside it
        text = str(e) if isinstance(e, (ValueError, OSError)) else f"it could not be loaded: {type(e).__name__}: {e}"
        channel.send(protocol.unreadable(text.replace(str(path), lesson.filename)))
        os._exit(0)
    channel.send(protocol.loaded(notebook.cell_errors))
    for p in probes:
        try:
            outcome = run_probe(p, notebook).to_json()
            json.dumps(outcome)  # an outcome that cannot be sent is an error of the learner's result
        except BaseException as e:  # noqa: BLE001  anything the learner's code raised past run_probe
            outcome = Outcome("error", message=f"{type(e).__name__}: {e}"[:protocol.MESSAGE_CAP]).to_json()
        channel.send(protocol.probe_result(p.id, outcome))
    channel.send(protocol.done())
    for stream in (sys.stdout, sys.stderr):  # what the notebook printed goes to the instructor's log
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001  the learner's code may have replaced the stream
            pass
    os._exit(0)  # skip atexit hooks and finalizers the learner's code may have registered


if __name__ == "__main__":
    main()
