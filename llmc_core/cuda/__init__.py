"""CUDA for the course, with or without a GPU: `from llmc_core.cuda import cp`.

`cp` is CuPy when CuPy and an NVIDIA GPU are there, otherwise a numpy-backed shim whose
RawModule/RawKernel compile the same CUDA C for the CPU emulator.  `LLMC_CUDA_BACKEND`
(`auto`, `cupy` or `cpu`) overrides the choice; `backend_name()` and `backend_reason()` say
what was chosen and why.  See docs/cuda-backend.md.
"""
from __future__ import annotations

import os

BACKENDS = ("auto", "cupy", "cpu")


def _probe_cupy() -> tuple[object | None, str]:
    """(cupy module or None, why)."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a CUDA library that fails to load
        return None, f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return None, f"CuPy {cupy.__version__} is installed but finds no GPU ({type(e).__name__}: {e})"
    if n < 1:
        return None, f"CuPy {cupy.__version__} is installed but finds no GPU"
    try:
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:
        name = "GPU 0"
    return cupy, f"CuPy {cupy.__version__} with {n} GPU(s), using {name}"


def _choose():
    wanted = os.environ.get("LLMC_CUDA_BACKEND", "auto").strip().lower() or "auto"
    if wanted not in BACKENDS:
        raise ValueError(f"LLMC_CUDA_BACKEND={wanted!r}: expected one of {', '.join(BACKENDS)}")
    if wanted == "cpu":
        from . import shim
        return shim, "cpu", "LLMC_CUDA_BACKEND=cpu asks for the CPU emulator"
    cupy, why = _probe_cupy()
    if cupy is not None:
        suffix = " (LLMC_CUDA_BACKEND=cupy)" if wanted == "cupy" else ""
        return cupy, "cupy", why + suffix
    if wanted == "cupy":
        raise RuntimeError(f"LLMC_CUDA_BACKEND=cupy but {why}. Install cupy-cuda12x on a machine with an NVIDIA "
                           "GPU, or unset LLMC_CUDA_BACKEND to fall back to the CPU emulator")
    from . import shim
    return shim, "cpu", why + "; kernels run on the CPU emulator (g++)"


cp, _NAME, _REASON = _choose()


def backend_name() -> str:
    """'cupy' (a real GPU) or 'cpu' (the emulator)."""
    return _NAME


def backend_reason() -> str:
    """One sentence on why this backend was chosen."""
    return _REASON


def backend_report() -> str:
    """What lesson 00 prints: the backend, why, and where compiled kernels are cached."""
    lines = [f"CUDA backend: {_NAME}", f"  why: {_REASON}"]
    if _NAME == "cpu":
        from . import emulator
        try:
            lines.append(f"  compiler: {emulator.compiler_id().splitlines()[1]}")
        except (RuntimeError, IndexError) as e:
            lines.append(f"  compiler: none ({e})")
        lines.append(f"  kernel cache: {emulator.cache_dir()}")
    return "\n".join(lines)


def __getattr__(name):
    # Emulator-only tools, imported lazily so that the cupy backend never builds the runtime.
    if name in ("CudaEmulatorError", "KernelDeadlockError", "DivergentBarrierError", "IllegalAddressError",
                "CompileError"):
        from . import errors
        return getattr(errors, name)
    if name == "profiling":
        from . import profile
        return profile.profiling
    if name == "profile_launch":
        from . import probing
        return probing.profile_launch
    if name == "race_exposure":
        from . import emulator
        return emulator.race_exposure
    if name in ("compile_check", "nvrtc_available", "NvrtcUnavailable", "kernel_registers"):
        from . import nvrtc_check
        return getattr(nvrtc_check, name)
    raise AttributeError(f"module 'llmc_core.cuda' has no attribute {name!r}")


__all__ = ["cp", "backend_name", "backend_reason", "backend_report", "race_exposure", "compile_check", "profiling",
           "profile_launch"]
