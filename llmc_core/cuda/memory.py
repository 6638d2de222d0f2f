"""'Device' memory for the CPU backend: numpy arrays in their own pages, followed by guard pages.

A kernel that writes (or reads) past the end of such an array hits the inaccessible pages; the
emulator turns the fault into an IllegalAddressError instead of a dead Jupyter kernel.  The guard
is 1 MiB, not one page: blocks run on several OS threads, and until they see the first fault the
others go on with later blocks, which write further past the end; a write that lands beyond the
guard would corrupt whatever memory lies there (another array, Python's own heap).  The array
starts 256-byte aligned, like cudaMalloc memory, so up to 255 bytes of padding can sit between
its end and the guard pages: that padding holds a known byte pattern, checked after every launch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap

import numpy as np

from .errors import IllegalAddressError

PAGE = mmap.PAGESIZE
ALIGN = 256          # cudaMalloc's alignment
CANARY = 0xA5
POISON = 0xFF        # fresh cp.empty memory: NaN as float, -1 as int (a GPU gives garbage)
GUARD = max(PAGE, 1 << 20)  # PROT_NONE bytes after each array: address space only, no memory

try:  # POSIX; elsewhere arrays simply have no guard pages
    _mprotect = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).mprotect
    _mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError, TypeError):
    _mprotect = None


class DeviceBuffer(mmap.mmap):
    """Anonymous pages holding one array, followed by GUARD bytes of PROT_NONE pages."""
    pad_addr: int
    pad_len: int
    nbytes: int


def device_empty(shape, dtype=float, fill: int | None = POISON) -> np.ndarray:
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    data_pages = max(1, -(-nbytes // PAGE))
    buf = DeviceBuffer(-1, data_pages * PAGE + GUARD)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    guard = base + data_pages * PAGE
    if _mprotect is not None and _mprotect(guard, GUARD, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed for a device array's guard pages")
    offset = (data_pages * PAGE - nbytes) // ALIGN * ALIGN
    buf.pad_addr = base + offset + nbytes
    buf.pad_len = guard - buf.pad_addr
    buf.nbytes = nbytes
    ctypes.memset(buf.pad_addr, CANARY, buf.pad_len)
    if fill is not None and nbytes:
        ctypes.memset(base + offset, fill, nbytes)
    return np.frombuffer(buf, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset).reshape(shape)


def device_copy(a, dtype=None) -> np.ndarray:
    a = np.asarray(a, dtype=dtype)
    out = device_empty(a.shape, a.dtype, fill=None)
    out[...] = a
    return out


def buffer_of(a: np.ndarray):
    """The DeviceBuffer behind an array (or a view of one), else None."""
    obj = a
    for _ in range(64):
        if isinstance(obj, DeviceBuffer):
            return obj
        if isinstance(obj, memoryview):
            obj = obj.obj
        elif isinstance(obj, np.ndarray):
            obj = obj.base
        else:
            return None
    return None


def check_guards(arrays, expr: str) -> None:
    """Raise if a launch overwrote the padding after any (name, device array) it was given."""
    for name, a in arrays:
        buf = buffer_of(a)
        if buf is None or buf.pad_len == 0:
            continue
        pad = ctypes.string_at(buf.pad_addr, buf.pad_len)
        if pad.count(CANARY) != len(pad):
            first = next(k for k, c in enumerate(pad) if c != CANARY)
            ctypes.memset(buf.pad_addr, CANARY, buf.pad_len)
            raise IllegalAddressError(
                f"kernel {expr!r} wrote byte {first} past the end of argument `{name}` (a {buf.nbytes}-byte array): "
                f"an out-of-bounds write. On a GPU this corrupts whatever lies there (or fails with "
                f"cudaErrorIllegalAddress). Check the index bound of every store.")
