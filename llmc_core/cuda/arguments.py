"""Kernel arguments and launch shapes, checked the way a careful GPU would check them.

CuPy passes each argument's bytes as they are; a GPU then reads garbage without complaint when a
Python float meets a `float` parameter or a float64 array meets a `float*`.  Here such mismatches
raise, naming the parameter (from the source) and the fix.  The kernel's own parameter types come
from the compiled module (`describe`: kind, size, pointee kind, pointee size).
"""
from __future__ import annotations

import ctypes

import numpy as np

from . import source as source_mod

KIND_POINTER, KIND_FLOAT, KIND_SIGNED, KIND_UNSIGNED, KIND_BOOL, KIND_VOID = 1, 2, 3, 4, 5, 6


def _param_desc(kernel, i, desc):
    p = kernel.params[i] if i < len(kernel.params) else source_mod.Param(f"arg{i}", "?")
    return f"argument {i} (`{p.type} {p.name}`)"


_CUPY_PASSES = ("On a GPU, CuPy passes a Python float as an 8-byte double and a Python int as an 8-byte "
                "long long")


def _scalar_bytes(kernel, i, desc, value) -> bytes:
    kind, size = desc[0], desc[1]
    what = _param_desc(kernel, i, desc)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (np.generic,)):
        dt = value.dtype
        if kind == KIND_FLOAT and (dt.kind != "f" or dt.itemsize != size):
            raise TypeError(f"{what} is a {size}-byte floating-point parameter but got numpy.{dt.name}: the GPU "
                            f"would read its {dt.itemsize} bytes as the float's bits"
                            + (" and shift every later argument" if dt.itemsize != size else "")
                            + f". Pass numpy.float{8 * size}(x).")
        if kind in (KIND_SIGNED, KIND_UNSIGNED) and (dt.kind not in "iu" or dt.itemsize != size):
            raise TypeError(f"{what} is a {size}-byte integer parameter but got numpy.{dt.name}: the GPU "
                            f"would read {dt.itemsize} bytes as the integer's bits"
                            + (" and shift every later argument" if dt.itemsize != size else "")
                            + f". Pass numpy.int{8 * size}(n).")
        if kind == KIND_BOOL and dt.kind != "b":
            raise TypeError(f"{what} is a bool parameter but got numpy.{dt.name}; pass numpy.bool_(b) or a Python bool")
        if dt.itemsize != size:
            raise TypeError(f"{what} takes {size} bytes but got numpy.{dt.name} of {dt.itemsize} bytes: every "
                            "later argument would be shifted")
        return np.asarray(value).tobytes()
    if isinstance(value, bool):
        if kind == KIND_BOOL:
            return bytes([int(value)])
        raise TypeError(f"{what} got a Python bool; {_CUPY_PASSES} and a bool as 1 byte, so the kernel would "
                        f"read garbage. Pass a numpy scalar of the parameter's type.")
    if isinstance(value, float):
        if kind == KIND_FLOAT and size == 8:
            return np.float64(value).tobytes()
        hint = "numpy.float32(x)" if kind == KIND_FLOAT and size == 4 else "a numpy scalar of the parameter's type"
        raise TypeError(f"{what} got a Python float. {_CUPY_PASSES}, so this {size}-byte parameter would read "
                        f"half of a double and every later argument would be shifted by {8 - size} bytes; "
                        f"a GPU would not complain. Pass {hint}.")
    if isinstance(value, int):
        if kind in (KIND_SIGNED, KIND_UNSIGNED) and size == 8:
            lo, hi = (-(2 ** 63), 2 ** 63 - 1) if kind == KIND_SIGNED else (0, 2 ** 64 - 1)
            if not lo <= value <= hi:
                raise ValueError(f"{what}: {value} does not fit in 8 bytes")
            return value.to_bytes(8, "little", signed=kind == KIND_SIGNED)
        hint = {4: "numpy.int32(n)", 2: "numpy.int16(n)", 1: "numpy.int8(n)"}.get(size, "numpy.float32(x)")
        if kind == KIND_FLOAT:
            hint = "numpy.float32(x)" if size == 4 else "float(x)"
        raise TypeError(f"{what} got a Python int. {_CUPY_PASSES}, so this {size}-byte parameter would "
                        + ("read the low bytes and every later argument would be shifted by "
                           f"{8 - size} bytes" if kind != KIND_FLOAT else "read the integer's bits as a float")
                        + f"; a GPU would not complain. Pass {hint}.")
    if isinstance(value, np.ndarray):
        raise TypeError(f"{what} is a scalar parameter but got an array of shape {value.shape}; pass one value "
                        "(e.g. numpy.float32(x))")
    raise TypeError(f"{what}: cannot pass a {type(value).__name__} to a CUDA kernel; pass an array or a numpy scalar")


def _pointer_value(kernel, i, desc, value, guards) -> int:
    what = _param_desc(kernel, i, desc)
    pkind, psize = desc[2], desc[3]
    if value is None:
        return 0
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise ValueError(f"{what} got a non-contiguous array (strides {value.strides}): the kernel receives "
                             "only a pointer and would walk memory as if the array were C-contiguous. Pass "
                             "cp.ascontiguousarray(x).")
        dt = value.dtype
        wanted = {(KIND_FLOAT, 4): "float32", (KIND_FLOAT, 8): "float64", (KIND_SIGNED, 4): "int32",
                  (KIND_UNSIGNED, 4): "uint32", (KIND_SIGNED, 8): "int64", (KIND_UNSIGNED, 8): "uint64",
                  (KIND_SIGNED, 2): "int16", (KIND_UNSIGNED, 2): "uint16", (KIND_SIGNED, 1): "int8",
                  (KIND_UNSIGNED, 1): "uint8", (KIND_BOOL, 1): "bool"}.get((pkind, psize))
        bad = False
        if pkind == KIND_FLOAT:
            bad = dt.kind != "f" or dt.itemsize != psize
        elif pkind in (KIND_SIGNED, KIND_UNSIGNED, KIND_BOOL):
            bad = dt.kind not in "iub" or dt.itemsize != psize
        elif pkind == 0 and psize == 2:   # __nv_bfloat16 / __half storage
            bad = dt.itemsize != 2
            wanted = "a 2-byte dtype (e.g. uint16 holding bfloat16 bits)"
        if bad:
            raise TypeError(f"{what} points to {psize}-byte elements but got a {dt.name} array "
                            f"({dt.itemsize}-byte elements): the GPU would reinterpret the bytes silently. "
                            f"Pass an array of dtype {wanted} (x.astype(cp.{wanted}) ).".replace("cp.a 2", "a 2"))
        guards.append((_param_name(kernel, i), value))
        return value.ctypes.data
    ptr = getattr(value, "ptr", None)
    if isinstance(ptr, int):
        return ptr
    raise TypeError(f"{what} is a pointer parameter but got {type(value).__name__} {value!r:.40}; pass an array "
                    "created with cp (cp.asarray, cp.zeros, ...)")


def _dims(value, what: str) -> tuple[int, int, int]:
    if isinstance(value, (int, np.integer)):
        value = (int(value),)
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 3:
        raise TypeError(f"{what} must be an int or a tuple of 1 to 3 ints, got {value!r}")
    dims = []
    for v in value:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{what} must hold ints, got {v!r} in {value!r}")
        dims.append(int(v))
    dims += [1] * (3 - len(dims))
    if min(dims) < 1:
        raise ValueError(f"{what}={tuple(value)}: every dimension must be at least 1 (CUDA_ERROR_INVALID_VALUE)")
    return tuple(dims)


def launch_shape(grid, block, shared_mem, max_dynamic_shared: int):
    """(grid, block) as 3-tuples, after the checks a GPU makes at launch."""
    g = _dims(grid, "grid")
    b = _dims(block, "block")
    if b[0] * b[1] * b[2] > 1024 or b[2] > 64:
        raise ValueError(f"block={b}: a block holds at most 1024 threads (and blockDim.z <= 64); "
                         f"this launch would fail with CUDA_ERROR_INVALID_VALUE")
    if g[0] > 2 ** 31 - 1 or g[1] > 65535 or g[2] > 65535:
        raise ValueError(f"grid={g}: gridDim.x <= 2**31-1, gridDim.y and .z <= 65535 (CUDA_ERROR_INVALID_VALUE)")
    if not isinstance(shared_mem, (int, np.integer)) or shared_mem < 0:
        raise ValueError(f"shared_mem={shared_mem!r}: expected a number of bytes >= 0")
    if shared_mem > max_dynamic_shared:
        raise ValueError(f"shared_mem={shared_mem} bytes is more than the kernel's max_dynamic_shared_size_bytes "
                         f"({max_dynamic_shared}); a GPU refuses this launch (CUDA_ERROR_INVALID_VALUE). Raise "
                         "kernel.max_dynamic_shared_size_bytes first (up to 227 KiB on an H100).")
    return g, b


class Marshalled:
    """The argument array a launch passes (cuLaunchKernel style), and what it points into."""

    def __init__(self, kernel, expr: str, sig, args):
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"args must be a tuple of kernel arguments, got {type(args).__name__}")
        if len(args) != len(sig):
            names = ", ".join(p.name for p in kernel.params)
            raise TypeError(f"kernel {expr!r} takes {len(sig)} arguments ({names}) but got {len(args)}: a GPU "
                            "would read whatever bytes follow as the missing ones (or ignore the extra ones)")
        self.holders = []   # keeps each value's bytes alive during the launch
        self.guards = []    # (name, device array): padding to check afterwards
        self.ranges = []    # (name, address, bytes) of each pointer argument
        self.argv = (ctypes.c_void_p * max(1, len(sig)))()
        for i, (desc, value) in enumerate(zip(sig, args)):
            if desc[0] == KIND_POINTER:
                holder = ctypes.c_void_p(_pointer_value(kernel, i, desc, value, self.guards))
                self.ranges.append((_param_name(kernel, i), holder.value or 0, _extent(value)))
            else:
                if value is None or (isinstance(value, np.ndarray) and value.ndim > 0):
                    raise TypeError(f"{_param_desc(kernel, i, desc)} is a scalar parameter but got "
                                    f"{'None' if value is None else 'an array'}; pass one value (e.g. numpy.int32(n))")
                data = _scalar_bytes(kernel, i, desc, value)
                holder = ctypes.create_string_buffer(data, max(len(data), 8))
            self.holders.append(holder)
            self.argv[i] = ctypes.addressof(holder)


def _param_name(kernel, i: int) -> str:
    return kernel.params[i].name if i < len(kernel.params) else f"arg{i}"


def _extent(value) -> int:
    """Bytes of device memory behind a pointer argument (0 if unknown)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    return int(getattr(value, "size", 0) or 0)
