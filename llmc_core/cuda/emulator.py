"""The CPU emulator: compile CUDA C with g++ against include/emulation.h, load it, launch it.

A module's source is parsed (source.py), its __shared__ declarations rewritten, launchers
appended, and the whole compiled once into a shared library cached on disk under
`LLMC_CACHE_DIR/cuda` (default `~/.cache/llmc/cuda`), keyed by a hash of the source, the
options, the emulator's headers and the compiler's version.  The runtime (runtime.cpp: fibers,
the block scheduler, the thread pool) is a separate library built once the same way.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from . import arguments, memory, profile as profile_mod, source as source_mod
from .errors import (  # noqa: F401
    CompileError,
    CudaEmulatorError,
    DivergentBarrierError,
    IllegalAddressError,
    KernelDeadlockError,
    raise_for,
)

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HERE / "include"
RUNTIME_SRC = HERE / "runtime.cpp"
PROFILER_SRC = HERE / "profiler.cpp"
EMULATOR_VERSION = "1"
KERNEL_FILE = "kernel.cu"          # the file name compile errors and diagnostics use
STATIC_SHARED_LIMIT = 48 * 1024    # bytes of static __shared__ per block, as on every NVIDIA GPU
DEFAULT_DYNAMIC_SHARED_LIMIT = 48 * 1024
COMPILE_FLAGS = ["-std=c++17", "-O3", "-fPIC", "-shared", "-fno-strict-aliasing", "-fno-math-errno",
                 "-fvisibility=hidden"]
if sys.platform == "darwin":
    # kernel modules call into the runtime library, which is already loaded when they are
    COMPILE_FLAGS.append("-Wl,-undefined,dynamic_lookup")
else:
    # A frame bigger than a fiber's stack (a large local array) is touched page by page from the top, so the
    # first touch past the stack hits its guard page; without probes the frame's first writes land below the
    # guard, in whatever memory is mapped there, before anything faults.
    COMPILE_FLAGS.append("-fstack-clash-protection")
# A build for profiling: every memory access calls __tsan_readN/__tsan_writeN and every basic
# block __sanitizer_cov_trace_pc, which the runtime (profiler.cpp) implements; the object is
# linked without the sanitizer's own library.  No vectorising: a GPU thread makes scalar accesses.
# -fno-tree-sra keeps a float4 load one 16-byte access (as nvcc's ld.v4), not four scalar loads of its fields.
PROFILE_FLAGS = ["-O2", "-fno-tree-vectorize", "-fno-tree-slp-vectorize", "-fno-tree-loop-distribute-patterns",
                 "-fno-tree-sra", "-fsanitize=thread", "-fsanitize-coverage=trace-pc", "-DLLMC_CUEMU_PROFILE=1"]
# memcpy/memset calls of a size known only at run time go to the runtime's counting versions
# (GNU ld's --wrap; elsewhere such calls are not counted).
PROFILE_LINK_FLAGS = ["-Wl,--wrap=memcpy", "-Wl,--wrap=memset"] if sys.platform.startswith("linux") else []


def cache_dir() -> Path:
    """Where compiled kernels go: $LLMC_CACHE_DIR/cuda, else ~/.cache/llmc/cuda (a temp dir if unwritable)."""
    root = os.environ.get("LLMC_CACHE_DIR")
    if root:
        path = Path(root) / "cuda"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "llmc" / "cuda"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    path = Path(tempfile.gettempdir()) / f"llmc-cuda-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_library(name: str) -> Path | None:
    """A library already built under this name: in the cache, or in a read-only cache that a
    grader prepared ($LLMC_CUDA_READONLY_CACHE, folders separated by os.pathsep).  Names are
    hashes of everything that goes into the build, so a file found under its name is the one."""
    for folder in [cache_dir(), *filter(None, os.environ.get("LLMC_CUDA_READONLY_CACHE", "").split(os.pathsep))]:
        path = Path(folder) / name
        if path.exists():
            return path
    return None


def compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not cxx:
        raise RuntimeError("the CPU CUDA emulator needs a C++ compiler (g++ or clang++) on PATH; "
                           "install one (e.g. `apt-get install g++`, `xcode-select --install`, "
                           "`conda install gxx_linux-64`) or set CXX")
    return cxx


_compiler_id_cache: dict[str, str] = {}


def compiler_id() -> str:
    cxx = compiler()
    if cxx not in _compiler_id_cache:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True)
        _compiler_id_cache[cxx] = cxx + "\n" + out.stdout.strip()
    return _compiler_id_cache[cxx]


def header_hash() -> str:
    """A hash of everything a kernel library is built and linked against: the headers and the runtime.

    Kernel libraries call into the runtime library, so a changed runtime must not reuse them.
    """
    h = hashlib.sha256(EMULATOR_VERSION.encode())
    for p in sorted(f for f in INCLUDE_DIR.rglob("*") if f.is_file()):
        h.update(str(p.relative_to(INCLUDE_DIR)).encode())
        h.update(p.read_bytes())
    h.update(RUNTIME_SRC.read_bytes())
    h.update(PROFILER_SRC.read_bytes())
    return h.hexdigest()


def _build(source_text: str, out: Path, flags: list[str], what: str, link_flags: list[str] | None = None) -> float:
    """Compile `source_text` into the shared library `out` (atomically); returns seconds taken.
    With `link_flags`, compile an object with `flags` first, then link it with `link_flags`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_src = tempfile.mkstemp(suffix=".cpp", dir=out.parent)
    with os.fdopen(fd, "w") as f:
        f.write(source_text)
    tmp_out = str(out) + f".{os.getpid()}.{threading.get_ident()}.tmp"
    tmp_obj = tmp_out + ".o"
    t0 = time.perf_counter()
    try:
        if link_flags is None:
            proc = subprocess.run([compiler(), *flags, tmp_src, "-o", tmp_out], capture_output=True, text=True)
        else:
            proc = subprocess.run([compiler(), *flags, "-c", tmp_src, "-o", tmp_obj], capture_output=True, text=True)
            if proc.returncode == 0:
                proc = subprocess.run([compiler(), *link_flags, tmp_obj, "-o", tmp_out], capture_output=True,
                                      text=True)
    finally:
        os.unlink(tmp_src)
        if os.path.exists(tmp_obj):
            os.unlink(tmp_obj)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        if os.path.exists(tmp_out):
            os.unlink(tmp_out)
        raise CompileError(format_compiler_errors(proc.stderr, source_text, what))
    os.replace(tmp_out, out)
    return seconds


def format_compiler_errors(stderr: str, source_text: str, what: str) -> str:
    """Keep the compiler lines about the learner's file, each followed by its source line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    keep = [ln for ln in lines if KERNEL_FILE + ":" in ln and ("error" in ln or "note" in ln)]
    if not keep:
        keep = [ln for ln in lines if "error" in ln][:20] or lines[:20]
    msg = [f"{what} does not compile (g++ in the CPU emulator):"]
    msg += keep[:30]
    if len(keep) > 30:
        msg.append(f"... and {len(keep) - 30} more")
    msg += [hint for needle, hint in UNSUPPORTED_HINTS if needle in stderr]
    return "\n".join(msg)


# Compiler messages about things a GPU compiler accepts and the emulator cannot run, and why.
UNSUPPORTED_HINTS = [
    ("Assembler messages", "The source has inline PTX (asm(...)): that is GPU machine code, which the CPU "
                           "emulator cannot run. Write the operation in CUDA C (or an intrinsic) instead."),
    ("cuda_fp16.h: No such file", "The CPU emulator has no __half (cuda_fp16.h); use float or __nv_bfloat16 "
                                  "(cuda_bf16.h)."),
]


_runtime_lib = None
_runtime_lock = threading.Lock()
# Where glibc has no static TLS left for the runtime's initial-exec variables (libraries loaded
# earlier used it up), the runtime and every kernel module are built with the general model instead.
_tls_defines: list[str] = []


def runtime_library() -> ctypes.CDLL:
    """Build (once per machine) and load the emulator runtime into the global symbol scope."""
    global _runtime_lib
    with _runtime_lock:
        if _runtime_lib is not None:
            return _runtime_lib
        try:
            lib = _load_runtime()
        except OSError as e:
            if "static TLS" not in str(e) or _tls_defines:
                raise
            _tls_defines.append("-DLLMC_CUEMU_DYNAMIC_TLS")
            lib = _load_runtime()
        lib.cuemu_launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.cuemu_launch.restype = ctypes.c_int
        lib.cuemu_error_message.restype = ctypes.c_char_p
        lib.cuemu_take_output.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        lib.cuemu_take_output.restype = ctypes.c_ulong
        lib.cuemu_set_workers.argtypes = [ctypes.c_int]
        lib.cuemu_profile_fields.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        workers = os.environ.get("LLMC_CUDA_THREADS")
        if workers:
            if not workers.isdigit() or int(workers) < 1:
                raise ValueError(f"LLMC_CUDA_THREADS={workers!r}: expected a positive integer (OS threads for blocks)")
            lib.cuemu_set_workers(int(workers))
        _runtime_lib = lib
        return lib


def _load_runtime() -> ctypes.CDLL:
    flags = [f for f in COMPILE_FLAGS if f != "-fvisibility=hidden"] + [f"-I{INCLUDE_DIR}", "-pthread", *_tls_defines]
    if sys.platform.startswith("linux") and not _tls_defines:
        flags.append("-ftls-model=initial-exec")   # see LLMC_TLS_MODEL in llmc_cuemu_abi.h
    if os.environ.get("LLMC_CUDA_FIBERS", "").lower() == "ucontext":
        flags.append("-DLLMC_CUEMU_UCONTEXT=1")
    text = (f'#line 1 "{PROFILER_SRC.name}"\n' + PROFILER_SRC.read_text()
            + f'\n#line 1 "{RUNTIME_SRC.name}"\n' + RUNTIME_SRC.read_text())
    key = hashlib.sha256("\n".join([header_hash(), compiler_id(), " ".join(flags), text]).encode()).hexdigest()
    name = f"libllmc_cuemu-{key[:24]}.so"
    path = cached_library(name)
    if path is None:
        path = cache_dir() / name
        _build(text, path, [*flags, "-x", "c++"], "the emulator runtime")
    return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


class LaunchConfig(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("shmem", ctypes.c_ulong),
                ("static_limit", ctypes.c_ulong), ("fibers", ctypes.c_int), ("race_seed", ctypes.c_ulonglong),
                ("profile", ctypes.c_int), ("ranges", ctypes.c_void_p), ("nranges", ctypes.c_int),
                ("profile_out", ctypes.c_void_p)]


# ---------------------------------------------------------------- race exposure
_race_seed = None


def _env_race_seed():
    v = os.environ.get("LLMC_CUDA_RACE", "").strip()
    if v in ("", "0"):
        return None
    if not v.isdigit():
        raise ValueError(f"LLMC_CUDA_RACE={v!r}: expected 0 (off), 1 (on) or a larger integer seed")
    return int(v)


@contextmanager
def race_exposure(seed: int = 1):
    """Within this block, threads run in a random order between barriers (seeded), so a
    missing __syncthreads() shows up as a wrong result instead of hiding behind thread order."""
    global _race_seed
    if int(seed) < 1:
        raise ValueError(f"seed={seed!r}: race exposure needs a positive seed")
    old, _race_seed = _race_seed, int(seed)
    try:
        yield
    finally:
        _race_seed = old


# ---------------------------------------------------------------- modules

class EmulatedModule:
    """One compiled CUDA source: its kernels (by name or name expression) and globals."""

    def __init__(self, code: str, options=(), name_expressions=None):
        if not isinstance(code, str):
            raise TypeError(f"code must be a str of CUDA C source, got {type(code).__name__}")
        self.code = code
        self.options = tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        runtime_library()
        try:
            parsed, parse_error = source_mod.parse(code), None
        except ValueError as e:
            parsed, parse_error = None, e
        if parse_error is not None:
            _syntax_check(code)   # unbalanced braces and the like: let the compiler say where
            raise parse_error
        self.kernels = parsed.kernels
        self.global_names = parsed.globals
        defines = []
        for opt in self.options:
            if not isinstance(opt, str):
                raise TypeError(f"options must be strings, got {opt!r}")
            if opt.startswith(("-D", "-U", "-I")) and len(opt) > 2:
                defines.append(opt)
            elif opt.startswith("--define-macro="):
                defines.append("-D" + opt.split("=", 1)[1])
        # Launch targets: every plain kernel, plus each template instance asked for by name.
        self.targets = []   # (expression, kernel)
        for k in self.kernels.values():
            if not k.is_template:
                self.targets.append((k.name, k))
        for expr in self.name_expressions:
            base = expr.split("<")[0].strip()
            if base not in self.kernels:
                raise ValueError(f"name expression {expr!r}: no __global__ function {base!r} in the source")
            if expr not in [t[0] for t in self.targets]:
                self.targets.append((expr, self.kernels[base]))
        launchers = ['\n#line 1 "<llmc-emulator-launchers>"', 'extern "C" {']
        vis = '__attribute__((visibility("default")))'
        for i, (expr, _) in enumerate(self.targets):
            launchers.append(f"{vis} void cuemu_thread_{i}(void** a) {{ cuemu::invoke(&{expr}, a); }}")
            launchers.append(f"{vis} int cuemu_describe_{i}(int* out) {{ return cuemu::describe(&{expr}, out); }}")
        for i, g in enumerate(self.global_names):
            launchers.append(f"{vis} void* cuemu_global_{i}(unsigned long* size) "
                             f"{{ *size = sizeof({g}); return (void*)&{g}; }}")
        launchers.append("}")
        text = f'#line 1 "{KERNEL_FILE}"\n' + parsed.text + "\n" + "\n".join(launchers) + "\n"
        extra = os.environ.get("LLMC_CUDA_CXXFLAGS", "").split()
        self._text = text
        self._flags = [*extra, f"-I{INCLUDE_DIR}", "-include", "emulation.h", *_tls_defines, *defines, "-x", "c++"]
        path, seconds = _cached_build(text, [*COMPILE_FLAGS, *self._flags], "mod")
        self.from_cache, self.compile_seconds = seconds is None, seconds or 0.0
        self.cache_path = path
        self.lib = ctypes.CDLL(str(path))
        self._profile_lib = None
        self._signatures = {}

    def profile_library(self) -> ctypes.CDLL:
        """The build of this source that counts memory accesses (made on first use)."""
        if self._profile_lib is None:
            flags = [f for f in COMPILE_FLAGS if f not in ("-O3", "-shared")] + PROFILE_FLAGS + self._flags
            link = ["-shared", "-fPIC"] + [f for f in COMPILE_FLAGS if f.startswith("-Wl,")] + PROFILE_LINK_FLAGS
            path, _ = _cached_build(self._text, flags, "prof", link, "the kernel source built for counting "
                                    "(-fsanitize=thread -fsanitize-coverage=trace-pc)")
            self._profile_lib = ctypes.CDLL(str(path))
        return self._profile_lib

    def target(self, name: str):
        for i, (expr, kernel) in enumerate(self.targets):
            if expr == name or (expr.replace(" ", "") == name.replace(" ", "")):
                if not kernel.is_template and not kernel.extern_c and name not in self.name_expressions:
                    raise ValueError(
                        f"kernel {name!r} is not declared extern \"C\": NVRTC mangles its name, so CuPy cannot "
                        f"find it (CUDA_ERROR_NOT_FOUND). Write `extern \"C\" __global__ void {name}(...)`, or "
                        f"pass name_expressions=[{name!r}] to RawModule")
                return i, expr, kernel
        if name in self.kernels and self.kernels[name].is_template:
            raise ValueError(f"kernel {name!r} is a template: create the RawModule with "
                             f"name_expressions=['{name}<...>'] and get_function('{name}<...>')")
        known = ", ".join(repr(e) for e, _ in self.targets) or "none"
        raise ValueError(f"no kernel named {name!r} in this module (CUDA_ERROR_NOT_FOUND); kernels: {known}")

    def signature(self, index: int) -> list[tuple[int, int, int, int]]:
        if index not in self._signatures:
            out = (ctypes.c_int * (4 * 256))()
            n = getattr(self.lib, f"cuemu_describe_{index}")(out)
            self._signatures[index] = [tuple(out[4 * i:4 * i + 4]) for i in range(n)]
        return self._signatures[index]

    def thread_function(self, index: int, profiled: bool = False) -> int:
        lib = self.profile_library() if profiled else self.lib
        return ctypes.cast(getattr(lib, f"cuemu_thread_{index}"), ctypes.c_void_p).value

    def global_address(self, name: str, profiled: bool = False) -> tuple[int, int]:
        """(address, bytes) of a file-scope __device__/__constant__ variable, in the normal build or
        the profiling one (each has its own copy; see profiled_globals)."""
        if name not in self.global_names:
            known = ", ".join(self.global_names) or "none"
            raise ValueError(f"no __device__ or __constant__ variable named {name!r} at file scope "
                             f"(CUDA_ERROR_NOT_FOUND); globals: {known}")
        lib = self.profile_library() if profiled else self.lib
        fn = getattr(lib, f"cuemu_global_{self.global_names.index(name)}")
        fn.restype = ctypes.c_void_p
        size = ctypes.c_ulong()
        addr = fn(ctypes.byref(size))
        return addr, size.value

    @contextmanager
    def profiled_globals(self):
        """Give the profiling build the globals' current values for a launch, and take back what
        the kernel wrote to them, so that get_global() sees one variable."""
        pairs = [(self.global_address(n), self.global_address(n, profiled=True)[0]) for n in self.global_names]
        for (addr, size), prof_addr in pairs:
            ctypes.memmove(prof_addr, addr, size)
        try:
            yield [(n, prof_addr, size) for n, ((_, size), prof_addr) in zip(self.global_names, pairs)]
        finally:
            for (addr, size), prof_addr in pairs:
                ctypes.memmove(addr, prof_addr, size)


def _cached_build(text: str, flags: list[str], prefix: str, link_flags: list[str] | None = None,
                  what: str = "the kernel source"):
    """(path, seconds spent compiling, or None if it was cached) of the library built from `text`."""
    key = hashlib.sha256("\n".join([header_hash(), compiler_id(), " ".join(flags), " ".join(link_flags or ()),
                                     text]).encode()).hexdigest()
    name = f"{prefix}-{key[:32]}.so"
    path = cached_library(name)
    if path is not None:
        return path, None
    path = cache_dir() / name
    return path, _build(text, path, flags, what, link_flags)


def _syntax_check(code: str) -> None:
    """Raise the compiler's CompileError for `code` if it has one (used when parsing fails)."""
    text = f'#line 1 "{KERNEL_FILE}"\n' + code
    cmd = [compiler(), "-std=c++17", f"-I{INCLUDE_DIR}", "-include", "emulation.h", "-fsyntax-only", "-x", "c++", "-"]
    proc = subprocess.run(cmd, input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(format_compiler_errors(proc.stderr, text, "the kernel source"))


_module_cache: dict[tuple, EmulatedModule] = {}
_module_lock = threading.Lock()


def load_module(code: str, options=(), name_expressions=None) -> EmulatedModule:
    key = (code, tuple(options), tuple(name_expressions or ()))
    with _module_lock:
        mod = _module_cache.get(key)
        if mod is None:
            mod = EmulatedModule(code, options, name_expressions)
            _module_cache[key] = mod
        return mod


def launch(module: EmulatedModule, index: int, grid, block, args, shared_mem: int, max_dynamic_shared: int,
           profile: bool = False):
    """Check a launch the way a careful GPU would, run it, print the kernel's printf output.
    With `profile` (or inside profile.profiling()), count its memory traffic and return the counts."""
    expr, kernel = module.targets[index][0], module.targets[index][1]
    g, b = arguments.launch_shape(grid, block, shared_mem, max_dynamic_shared)
    m = arguments.Marshalled(kernel, expr, module.signature(index), args)
    race = _race_seed if _race_seed is not None else _env_race_seed()
    fibers = kernel.needs_fibers or race is not None or os.environ.get("LLMC_CUDA_FIBERS") == "always"
    lib = runtime_library()
    if not (profile or profile_mod.active()):
        cfg = LaunchConfig((ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), int(shared_mem), STATIC_SHARED_LIMIT,
                           int(fibers), race or 0, 0, None, 0, None)
        _run(lib, module.thread_function(index), m, cfg, expr, m.ranges)
        return None
    with module.profiled_globals() as global_ranges:
        ranges = m.ranges + global_ranges
        flat = (ctypes.c_ulonglong * max(1, 2 * len(ranges)))(*[v for _, start, size in ranges for v in (start, size)])
        counts = profile_mod.buffer(lib)
        cfg = LaunchConfig((ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), int(shared_mem), STATIC_SHARED_LIMIT,
                           int(fibers), race or 0, 1, ctypes.cast(flat, ctypes.c_void_p), len(ranges),
                           ctypes.cast(counts, ctypes.c_void_p))
        _run(lib, module.thread_function(index, profiled=True), m, cfg, expr, ranges)
    shape = {"kernel": expr, "grid": list(g), "block": list(b), "threads_per_block": b[0] * b[1] * b[2],
             "blocks": g[0] * g[1] * g[2], "dynamic_shared_bytes": int(shared_mem)}
    result = profile_mod.read(counts, lib, [name for name, _, _ in ranges], shape)
    profile_mod.collect(result)
    return result


def _run(lib, fn: int, m, cfg, expr: str, ranges) -> None:
    """One launch through the runtime; raises what it reports, then checks the arrays' padding."""
    code = lib.cuemu_launch(fn, m.argv, ctypes.byref(cfg))
    _flush_printf(lib)
    if code:
        msg = lib.cuemu_error_message().decode("utf-8", "replace")
        raise_for(code, f"kernel {expr!r}: {msg}{_fault_owner(msg, ranges)}")
    memory.check_guards(m.guards, expr)


def _fault_owner(message: str, ranges) -> str:
    """A sentence naming the array argument whose guard pages a fault hit, or a null pointer."""
    m = re.search(r"illegal memory access at address (0x[0-9a-f]+)", message)
    if not m:
        return ""
    addr = int(m.group(1), 16)
    for name, start, size in ranges:
        if start and start + size <= addr < start + size + memory.PAGE + memory.GUARD:
            return (f" The address is byte {addr - start - size} past the end of argument `{name}` "
                    f"({size} bytes): an index that reached its length or beyond (a `>` that should be `>=`?).")
    if addr < memory.PAGE:
        return " The address is near 0: a null pointer (an argument passed as None?)."
    return ""


def _flush_printf(lib):
    n = lib.cuemu_take_output(None, 0)
    if n:
        buf = ctypes.create_string_buffer(n)
        lib.cuemu_take_output(buf, n)
        sys.stdout.write(buf.raw[:n].decode("utf-8", "replace"))
        sys.stdout.flush()
