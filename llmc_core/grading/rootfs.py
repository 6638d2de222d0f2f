"""The grading child's filesystem: an empty root holding only what running a notebook needs.

Default deny. The parent lists what the child may see (`plan_root`): the system's programs and
libraries (/usr, /etc and the /bin, /lib links), the Python installation and its site-packages, the
`llmc_core` package (not the checkout around it), and the few extra files a lesson reads. The child,
still trusted, builds a new root from those paths alone (`enter_root`): a small tmpfs, each path
bound in read-only at its own place, then `pivot_root` into it, so nothing else of the machine
exists for the learner's code: no checkout (build/, dist/, tests/, solutions/), no other students'
folders, no grader output, no /run or /var (no Unix sockets of local daemons), no /home or /root.

Inside what is bound, answer-bearing folders are covered by empty mounts: the package's snapshots
and reference solutions, those of every other copy of the package found in a site-packages folder
(a wheel install, an old build), and whatever the grader asks to hide.
"""
import ctypes
import functools
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 0x4000
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64
# The system's programs, libraries and configuration; nothing of people's files lives here.
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
# What a copy of the course package holds that a learner must not read while being graded.
ANSWER_FOLDERS = ("snapshots", "references")


# --- the plan, made by the parent ----------------------------------------------------------

def plan_root(hide=(), readable=()):
    """{"binds": [...], "links": {path: target}, "masks": [...], "keep": [...]}: what the child's root holds.

    `hide`: folders and files to cover when they lie inside a bound path; `readable`: files to bind
    back although they lie in a covered folder (an earlier lesson's solution, the CUDA runtime cache).
    """
    binds, links = [], {}
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.isdir(path):
            binds.append(path)
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    binds += python_paths() + [package] + [str(p) for p in readable]
    binds = _outermost(os.path.realpath(p) for p in binds if os.path.exists(p))
    masks = [os.path.realpath(p) for p in hide if os.path.exists(p)]
    masks += [os.path.join(package, name) for name in ANSWER_FOLDERS]
    masks += installed_answer_folders()
    masks = sorted({m for m in masks if any(_under(m, b) for b in binds) and os.path.exists(m)})
    return {"binds": binds, "links": links, "masks": masks, "keep": [os.path.realpath(p) for p in readable]}


@functools.lru_cache(maxsize=None)
def child_sys_path():
    """sys.path of `python -I` (what the child starts with: no PYTHONPATH, no user site, but .pth entries)."""
    code = "import json, sys; print(json.dumps(sys.path))"
    try:
        out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60,
                             check=True, env={"PATH": os.defpath}).stdout
        return tuple(json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError):
        return tuple(p for p in sys.path if p)


def python_paths():
    """The interpreter, its standard library and its site folders; never a source checkout on the path."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))]
    for entry in child_sys_path():
        # A .pth file may add any folder (an editable checkout); only site folders and zips are bound.
        if os.path.isabs(entry) and (_is_site_folder(entry) or os.path.isfile(entry)):
            paths.append(entry)
    return [p for p in paths if p and os.path.exists(p)]


def _is_site_folder(path):
    return os.path.basename(os.path.normpath(path)) in ("site-packages", "dist-packages")


def site_folders():
    """Every site-packages folder the child could see: its own and the system's Python installations'."""
    folders = {p for p in child_sys_path() if os.path.isabs(p) and _is_site_folder(p)}
    for prefix in {sys.prefix, sys.base_prefix, "/usr", "/usr/local"}:
        folders.update(glob.glob(os.path.join(prefix, "lib*", "python3*", "*-packages")))
    folders.update(glob.glob("/usr/lib/python3/dist-packages"))
    return sorted(f for f in folders if os.path.isdir(f))


@functools.lru_cache(maxsize=None)
def installed_answer_folders():
    return tuple(folder for site in site_folders() for folder in answer_folders_in(site))


def answer_folders_in(site):
    """Answer folders of every copy of the course package installed in `site` (any name it was given)."""
    found = []
    try:
        entries = os.scandir(site)
    except OSError:
        return found
    with entries:
        for entry in entries:
            if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "course.py")):
                found += [os.path.join(entry.path, name) for name in ANSWER_FOLDERS
                          if os.path.isdir(os.path.join(entry.path, name))]
    return found


def _outermost(paths):
    """Sorted paths without those inside another one of them."""
    kept = []
    for path in sorted(set(paths)):
        if not any(_under(path, k) for k in kept):
            kept.append(path)
    return kept


def _under(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# --- building the root, in the child -------------------------------------------------------

def libc_call(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}{args[:2]}: {os.strerror(errno)}")


def mount_tmpfs(target, options, flags=MS_NOSUID | MS_NODEV):
    libc_call("mount", b"tmpfs", str(target).encode(), b"tmpfs", flags, options.encode())


def bind(source_fd, target, recursive=True):
    """Bind what the O_PATH descriptor `source_fd` names onto `target`, creating the mount point."""
    if os.path.isdir(f"/proc/self/fd/{source_fd}"):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        Path(target).touch()
    flags = MS_BIND | (MS_REC if recursive else 0)
    libc_call("mount", f"/proc/self/fd/{source_fd}".encode(), str(target).encode(), None, flags, None)


def cover(path, keep=()):
    """Cover `path` with an empty read-only tmpfs (a folder) or /dev/null (a file); bind `keep` files back."""
    if os.path.isdir(path):
        kept = [(k, os.open(k, os.O_PATH)) for k in keep if os.path.isfile(k) and _under(k, path)]
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if not kept:
            mount_tmpfs(path, "size=4k,mode=000", MS_RDONLY | flags)
            return
        mount_tmpfs(path, "size=4k,mode=0755", flags)
        for file, fd in kept:
            bind(fd, file, recursive=False)
            os.close(fd)
        libc_call("mount", b"tmpfs", str(path).encode(), b"tmpfs", MS_REMOUNT | MS_RDONLY | flags, b"size=4k,mode=0755")
    elif os.path.exists(path):
        libc_call("mount", b"/dev/null", str(path).encode(), None, MS_BIND, None)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def read_only_root():
    """Make every mount of this namespace read-only (mount_setattr, Linux 5.12+); False where unsupported.

    Mounts made afterwards (the private /tmp, /dev/shm) stay writable, so the learner's code can
    write there and nowhere else.
    """
    AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 1
    if os.uname().machine not in SYS_PIVOT_ROOT:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    result = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/",
                          ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    return result == 0


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities():
    """Give up every capability of this process (its uid stays), so it cannot unmount or remount what covers answers.

    Needed where the child keeps the uid that owns its mount namespace (a user namespace): root there
    could otherwise undo the covering mounts. no_new_privs (set next) keeps them from coming back.
    """
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    libc_call("capset", ctypes.byref(header), data)


def pivot_into(folder):
    """Make `folder` (a mount point) the root of this mount namespace and drop the old root entirely."""
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {os.uname().machine}")
    os.chdir(folder)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(ctypes.c_long(number), b".", b".") != 0:  # the old root ends up stacked on the new one
        errno = ctypes.get_errno()
        raise OSError(errno, f"pivot_root: {os.strerror(errno)}")
    libc_call("umount2", b".", MNT_DETACH)  # ... and is detached here, with every mount under it
    os.chdir("/")


def enter_root(plan, tmp_options, staging="/tmp"):
    """Build the planned root on a tmpfs at `staging` and pivot into it; then / is read-only but /tmp and /dev/shm.

    Sources are opened before anything is mounted, so paths under `staging` itself stay reachable.
    """
    fds = [(path, os.open(path, os.O_PATH)) for path in plan["binds"]]
    devices = [(name, os.open(f"/dev/{name}", os.O_PATH)) for name in DEVICES if os.path.exists(f"/dev/{name}")]
    proc = os.open("/proc", os.O_PATH)
    mount_tmpfs(staging, "size=1m,mode=0755")
    new = lambda path: staging.rstrip("/") + path  # noqa: E731
    for path, fd in fds:
        bind(fd, new(path))
        os.close(fd)
    for path, target in plan["links"].items():
        os.symlink(target, new(path))
    for path in plan["masks"]:
        cover(new(path), keep=[new(k) for k in plan["keep"]])
    bind(proc, new("/proc"))  # this PID namespace's /proc, mounted by unshare --mount-proc
    os.close(proc)
    for name, fd in devices:
        bind(fd, new(f"/dev/{name}"), recursive=False)
        os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, new(f"/dev/{name}"))
    for folder in ("/tmp", "/dev/shm"):
        os.makedirs(new(folder), mode=0o755, exist_ok=True)
    pivot_into(staging)
    read_only_root()
    mount_tmpfs("/tmp", tmp_options)
    mount_tmpfs("/dev/shm", "size=1m,mode=1777")
