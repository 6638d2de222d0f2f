"""Compile CUDA C with NVRTC (CuPy's own compiler) and nvcc, without a GPU.

The CPU emulator compiles kernels with g++, which accepts some code a GPU compiler rejects;
`compile_check(source)` catches that.  NVRTC comes from the PyPI wheel `nvidia-cuda-nvrtc-cu12`
(loaded with ctypes: no GPU or driver needed); CUDA headers such as <cuda_bf16.h> from
`nvidia-cuda-runtime-cu12` (with `nvidia-cuda-cccl-cu12` for cooperative groups) or `$CUDA_PATH/include`.
nvcc is used where it is on PATH.
"""
from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .emulator import KERNEL_FILE
from .errors import CompileError

DEFAULT_ARCH = "80"   # Ampere (A100); every GPU the course targets runs compute_80 code


class NvrtcUnavailable(RuntimeError):
    """libnvrtc could not be found or loaded."""


def _package_dirs(name: str) -> list[Path]:
    """Directories of a namespace package such as nvidia.cuda_nvrtc, without importing CUDA."""
    out = []
    for entry in sys.path:
        p = Path(entry) / "nvidia" / name
        if p.is_dir():
            out.append(p)
    return out


def _nvrtc_candidates() -> list[str]:
    found = []
    if os.environ.get("LLMC_NVRTC_PATH"):
        found.append(os.environ["LLMC_NVRTC_PATH"])
    for d in _package_dirs("cuda_nvrtc"):
        found += sorted(glob.glob(str(d / "lib" / "libnvrtc.so*")))
        found += sorted(glob.glob(str(d / "bin" / "nvrtc64_*.dll")))
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            found += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
    return [f for f in found if "alt" not in os.path.basename(f) and "builtins" not in os.path.basename(f)]


_lib = None
_lib_error = None


def _load():
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        if _lib is None:
            raise NvrtcUnavailable(_lib_error)
        return _lib
    errors = []
    for path in _nvrtc_candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append(f"{path}: {e}")
    else:
        _lib_error = ("libnvrtc not found or not loadable ("
                      + ("; ".join(errors) if errors else "no candidate file") +
                      "). Install it with `pip install nvidia-cuda-nvrtc-cu12` (no GPU needed)")
        raise NvrtcUnavailable(_lib_error)
    P = ctypes.c_void_p
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                       ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcCompileProgram.argtypes = [P, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcAddNameExpression.argtypes = [P, ctypes.c_char_p]
    lib.nvrtcGetProgramLogSize.argtypes = [P, ctypes.POINTER(ctypes.c_size_t)]
    lib.nvrtcGetProgramLog.argtypes = [P, ctypes.c_char_p]
    lib.nvrtcGetLoweredName.argtypes = [P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(P)]
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    _lib = lib
    return lib


def nvrtc_version() -> tuple[int, int]:
    lib = _load()
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def nvrtc_available() -> tuple[bool, str]:
    """(True, 'NVRTC 12.9') or (False, why not)."""
    try:
        major, minor = nvrtc_version()
    except NvrtcUnavailable as e:
        return False, str(e)
    return True, f"NVRTC {major}.{minor}"


def _toolkit_major(include_dir: str) -> int | None:
    try:
        text = Path(include_dir, "cuda.h").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"#define\s+CUDA_VERSION\s+(\d+)", text)
    return int(m.group(1)) // 1000 if m else None


def cuda_include_dirs() -> list[str]:
    """Where <cuda_bf16.h> and friends live: the cudart wheel (plus the CCCL wheel, whose
    <nv/target> cooperative groups need), else a CUDA toolkit of NVRTC's major version
    (headers of another version do not compile under this NVRTC)."""
    dirs = [str(d / "include") for d in _package_dirs("cuda_runtime") if (d / "include" / "cuda_bf16.h").exists()]
    if dirs:
        dirs += [str(d / "include") for d in _package_dirs("cuda_cccl") if (d / "include" / "nv" / "target").exists()]
        return dirs
    try:
        major = nvrtc_version()[0]
    except NvrtcUnavailable:
        return []
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        inc = os.path.join(root, "include") if root else None
        if inc and os.path.exists(os.path.join(inc, "cuda_bf16.h")) and _toolkit_major(inc) == major:
            dirs.append(inc)
            if os.path.isdir(os.path.join(inc, "cccl")):   # CUDA 13 keeps CCCL here
                dirs.append(os.path.join(inc, "cccl"))
            break
    return dirs


def missing_headers(source: str) -> str | None:
    """Why NVRTC cannot compile `source` here for want of CUDA headers, or None if it has them."""
    dirs = cuda_include_dirs()
    wants = {"cuda_bf16.h": "cuda_bf16.h", "cuda_fp16.h": "cuda_fp16.h", "cooperative_groups": "nv/target"}
    for include, needs in wants.items():
        if re.search(r"#\s*include\s*<" + re.escape(include), source) and \
                not any(os.path.exists(os.path.join(d, needs)) for d in dirs):
            return (f"<{include}...> needs CUDA headers that match NVRTC: pip install nvidia-cuda-runtime-cu12 "
                    f"nvidia-cuda-cccl-cu12")
    return None


def _check(lib, result, what):
    if result != 0:
        raise RuntimeError(f"{what} failed: {lib.nvrtcGetErrorString(result).decode()}")


def compile_nvrtc(source: str, name_expressions=(), options=(), arch: str = DEFAULT_ARCH) -> dict[str, str]:
    """Compile with NVRTC as CuPy would; returns {name expression: lowered (mangled) name}."""
    lib = _load()
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), KERNEL_FILE.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        for expr in name_expressions:
            _check(lib, lib.nvrtcAddNameExpression(prog, expr.encode()), "nvrtcAddNameExpression")
        opts = [f"-arch=compute_{arch}", "--std=c++17", *[f"-I{d}" for d in cuda_include_dirs()], *options]
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        result = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetProgramLog(prog, log)
        text = log.value.decode("utf-8", "replace").strip()
        if result != 0:
            raise CompileError(f"NVRTC (what CuPy uses on a GPU) rejects the kernel source:\n{text}")
        lowered = {}
        for expr in name_expressions:
            name = ctypes.c_char_p()
            _check(lib, lib.nvrtcGetLoweredName(prog, expr.encode(), ctypes.byref(name)), "nvrtcGetLoweredName")
            lowered[expr] = name.value.decode()
        return lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _run_nvcc(source: str, name_expressions, options, arch: str, mode: list[str]) -> str:
    """Run nvcc with `mode` (e.g. ["--ptx"]) on the source; template instances named in
    name_expressions are instantiated explicitly.  Returns nvcc's stderr."""
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None:
        raise FileNotFoundError("nvcc is not on PATH")
    text = source
    if name_expressions:
        refs = ", ".join(f"(void*)&{e}" for e in name_expressions)
        text += f"\nstatic void* __llmc_instances[] __attribute__((used)) = {{ {refs} }};\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / KERNEL_FILE
        path.write_text(text)
        flags = [o for o in options if o.startswith(("-D", "-I", "-U", "--std", "-std"))]
        cmd = [nvcc, *mode, f"-arch=sm_{arch}", "-std=c++17", *flags, str(path), "-o", str(Path(tmp) / "k.out")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"nvcc {' '.join(mode)} rejects the kernel source:\n{proc.stderr.strip()}")
    return proc.stderr


def compile_nvcc(source: str, name_expressions=(), options=(), arch: str = DEFAULT_ARCH) -> None:
    """`nvcc --ptx`; template instances named in name_expressions are instantiated explicitly."""
    _run_nvcc(source, name_expressions, options, arch, ["--ptx"])


def kernel_registers(source: str, name_expressions=(), options=(), arch: str = DEFAULT_ARCH) -> dict[str, int]:
    """Registers per thread of each kernel, as ptxas allocates them for sm_`arch` (nvcc must be on
    PATH: NVRTC alone stops at PTX).  Keys are kernel names, and name expressions where given
    (`"matmul<4>"`); raises FileNotFoundError without nvcc."""
    log = _run_nvcc(source, name_expressions, options, arch, ["-cubin", "-Xptxas", "-v"])
    regs, current = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            regs[current] = int(m.group(1))
            current = None
    if name_expressions:
        lowered = compile_nvrtc(source, name_expressions, options, arch)   # expression -> mangled name
        regs.update({expr: regs[name] for expr, name in lowered.items() if name in regs})
    return regs


def compile_check(source: str, name_expressions=(), options=(), compilers=("nvrtc", "nvcc"),
                  arch: str = DEFAULT_ARCH) -> dict[str, str]:
    """Compile `source` with each GPU compiler that is available; raise CompileError if one rejects it.

    Returns {compiler: 'ok (0.05 s)' or 'skipped: why'}.  NVRTC is the strict one: it has no host
    headers, so M_PI, INFINITY or std:: fail there as they would under CuPy on a GPU.
    """
    report = {}
    for name in compilers:
        if name not in ("nvrtc", "nvcc"):
            raise ValueError(f"compiler {name!r}: expected 'nvrtc' or 'nvcc'")
        t0 = time.perf_counter()
        try:
            if name == "nvrtc":
                compile_nvrtc(source, name_expressions, options, arch)
            else:
                compile_nvcc(source, name_expressions, options, arch)
        except (NvrtcUnavailable, FileNotFoundError) as e:
            report[name] = f"skipped: {e}"
            continue
        report[name] = f"ok ({time.perf_counter() - t0:.2f} s)"
    return report
