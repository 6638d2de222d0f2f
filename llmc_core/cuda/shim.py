"""A CuPy look-alike for machines without a GPU: numpy arrays plus the CPU kernel emulator.

Lesson code written against this module runs unchanged with real CuPy on a GPU:
`cp.asarray`, `cp.zeros`, `cp.asnumpy`, `cp.RawModule`, `cp.RawKernel`, `cp.cuda.*`.
Anything else numpy has (`cp.float32`, `cp.exp`, `cp.allclose`, ...) is numpy's.
"""
from __future__ import annotations

import time

import numpy as np

from . import emulator, memory

__all__ = ["RawKernel", "RawModule", "asarray", "array", "asnumpy", "zeros", "ones", "empty", "full", "cuda"]

# ---------------------------------------------------------------- arrays
# "Device" arrays are numpy arrays in guarded pages (memory.py); host->device is a copy, as in CuPy.


def asarray(a, dtype=None, order=None):
    """Copy host data to a new device array (CuPy: a host-to-device transfer)."""
    return memory.device_copy(a, dtype)


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    out = memory.device_copy(obj, dtype)
    return out.reshape((1,) * (ndmin - out.ndim) + out.shape) if ndmin > out.ndim else out


def ascontiguousarray(a, dtype=None):
    return memory.device_copy(a, dtype)


def asnumpy(a, stream=None, order="C", out=None):
    """Copy a device array to a new host numpy array."""
    if out is not None:
        out[...] = a
        return out
    return np.array(a, copy=True, order=order)


def empty(shape, dtype=float, order="C"):
    """Uninitialized device memory: filled with 0xff bytes (NaN / -1) so reading it shows up."""
    return memory.device_empty(shape, dtype)


def zeros(shape, dtype=float, order="C"):
    return memory.device_empty(shape, dtype, fill=0)


def ones(shape, dtype=float, order="C"):
    out = memory.device_empty(shape, dtype, fill=None)
    out[...] = 1
    return out


def full(shape, fill_value, dtype=None, order="C"):
    dtype = np.asarray(fill_value).dtype if dtype is None else dtype
    out = memory.device_empty(shape, dtype, fill=None)
    out[...] = fill_value
    return out


def empty_like(a, dtype=None, order="K", shape=None):
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def zeros_like(a, dtype=None, order="K", shape=None):
    return zeros(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def ones_like(a, dtype=None, order="K", shape=None):
    return ones(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def full_like(a, fill_value, dtype=None, order="K", shape=None):
    return full(a.shape if shape is None else shape, fill_value, a.dtype if dtype is None else dtype)


def arange(*args, **kwargs):
    return memory.device_copy(np.arange(*args, **kwargs))


def get_array_module(*args):
    return np


class _NdarrayMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, np.ndarray)


class ndarray(metaclass=_NdarrayMeta):
    """`cp.ndarray(shape, dtype, memptr)`: a view on device memory (e.g. from get_global).

    isinstance(x, cp.ndarray) is true for every numpy array, since those are this backend's arrays.
    """

    def __new__(cls, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is None:
            return empty(shape, dtype)
        dtype = np.dtype(dtype)
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > memptr.size:
            raise ValueError(f"an array of shape {shape} and dtype {dtype} needs {nbytes} bytes but the memory "
                             f"pointer holds {memptr.size}")
        raw = (np.ctypeslib.ctypes.c_char * nbytes).from_address(memptr.ptr)
        out = np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize).reshape(shape)
        out.flags.writeable = True
        return out


# ---------------------------------------------------------------- cupy.cuda
class MemoryPointer:
    """A raw address of device memory, as returned by RawModule.get_global."""

    def __init__(self, ptr: int, size: int, owner=None):
        self.ptr, self.size, self._owner = ptr, size, owner

    def copy_from_host(self, mem, size):
        np.ctypeslib.ctypes.memmove(self.ptr, mem, size)

    def copy_to_host(self, mem, size):
        np.ctypeslib.ctypes.memmove(mem, self.ptr, size)

    def memset(self, value, size):
        np.ctypeslib.ctypes.memset(self.ptr, value, size)

    def __int__(self):
        return self.ptr

    def __repr__(self):
        return f"MemoryPointer(ptr=0x{self.ptr:x}, size={self.size})"


class _Synchronous:
    """A device or stream of the emulator: launches are synchronous, so there is nothing to wait for."""

    def synchronize(self):
        pass

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Device(_Synchronous):
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise ValueError(f"device {device!r}: the CPU backend has one device, 0")
        self.compute_capability = "80"

    def __repr__(self):
        return "<CUDA Device 0 (llmc CPU emulator)>"


class _Stream(_Synchronous):
    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0


_Stream.null = _Stream(null=True)


class _Event:
    """Timing events: record() notes the wall clock (launches are synchronous here)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        pass

    @property
    def done(self):
        return True


def _get_elapsed_time(start: _Event, end: _Event) -> float:
    """Milliseconds between two recorded events, like cupy.cuda.get_elapsed_time."""
    if start.time is None or end.time is None:
        raise ValueError("both events must be recorded (event.record()) before get_elapsed_time")
    return (end.time - start.time) * 1e3


class _Runtime:
    @staticmethod
    def deviceSynchronize():
        pass

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDevice():
        return 0

    @staticmethod
    def getDeviceProperties(device):
        return {"name": b"llmc CPU emulator", "major": 8, "minor": 0, "warpSize": 32,
                "maxThreadsPerBlock": 1024, "sharedMemPerBlock": emulator.STATIC_SHARED_LIMIT,
                "multiProcessorCount": 1, "totalGlobalMem": 0}

    @staticmethod
    def runtimeGetVersion():
        return 0


class _Cuda:
    """The parts of `cupy.cuda` that lessons use."""
    Device = _Device
    Stream = _Stream
    Event = _Event
    MemoryPointer = MemoryPointer
    runtime = _Runtime()
    get_elapsed_time = staticmethod(_get_elapsed_time)

    @staticmethod
    def get_current_stream():
        return _Stream.null

    @staticmethod
    def is_available():
        return False


cuda = _Cuda()


# ---------------------------------------------------------------- kernels
class RawKernel:
    """One kernel, called as `kernel(grid, block, args, shared_mem=0)` (CuPy's convention).

    `args` is a tuple matching the kernel's parameters: arrays for pointers, numpy scalars
    (numpy.float32, numpy.int32, ...) for values.  Unlike CuPy, wrong types raise instead of
    silently passing misaligned bytes.
    """

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, *,
                 enable_cooperative_groups=False, jitify=False):
        if backend not in ("nvrtc", "nvcc"):
            raise ValueError(f"backend={backend!r}: expected 'nvrtc' or 'nvcc'")
        self.code, self.name, self.options, self.backend = code, name, tuple(options), backend
        self.enable_cooperative_groups = enable_cooperative_groups
        self._module = None
        self._index = None
        self.max_dynamic_shared_size_bytes = emulator.DEFAULT_DYNAMIC_SHARED_LIMIT
        self._name_expressions = ()

    def _target(self):
        if self._module is None:
            self._module = emulator.load_module(self.code, self.options, self._name_expressions)
            self._index = self._module.target(self.name)[0]
        return self._module, self._index

    def compile(self, log_stream=None):
        self._target()

    @property
    def kernel(self):
        return self._target()

    @property
    def attributes(self):
        return {"max_threads_per_block": 1024, "shared_size_bytes": 0, "const_size_bytes": 0,
                "local_size_bytes": 0, "num_regs": 0, "ptx_version": 80, "binary_version": 80,
                "max_dynamic_shared_size_bytes": self.max_dynamic_shared_size_bytes}

    @property
    def max_threads_per_block(self):
        return 1024

    def __call__(self, grid, block, args, *, shared_mem=0, profile=False):
        """Run the kernel; with profile=True, return its performance counters (a dict, see
        llmc_core.cuda.profile) instead of None."""
        module, index = self._target()
        return emulator.launch(module, index, grid, block, args, shared_mem, self.max_dynamic_shared_size_bytes,
                               profile)

    def __repr__(self):
        return f"<RawKernel {self.name!r} (llmc CPU emulator)>"


class RawModule:
    """A CUDA C source with several kernels: `get_function(name)`, `get_global(name)`."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if path is not None:
            raise ValueError("RawModule(path=...) loads a compiled cubin/PTX file, which the CPU emulator cannot "
                             "run; pass the CUDA C source instead: RawModule(code=open(path).read())")
        if code is None:
            raise ValueError("RawModule needs code= (CUDA C source)")
        if backend not in ("nvrtc", "nvcc"):
            raise ValueError(f"backend={backend!r}: expected 'nvrtc' or 'nvcc'")
        self.code, self.options, self.backend = code, tuple(options), backend
        self.name_expressions = tuple(name_expressions or ())
        self.enable_cooperative_groups = enable_cooperative_groups
        self._module = emulator.load_module(code, self.options, self.name_expressions)

    def compile(self, log_stream=None):
        pass

    def get_function(self, name):
        index, expr, _ = self._module.target(name)
        k = RawKernel(self.code, expr, self.options, self.backend)
        k._module, k._index, k._name_expressions = self._module, index, self.name_expressions
        return k

    def get_global(self, name):
        addr, size = self._module.global_address(name)
        return MemoryPointer(addr, size, self._module)

    def __repr__(self):
        names = ", ".join(e for e, _ in self._module.targets)
        return f"<RawModule ({names}) (llmc CPU emulator)>"


_CUPY_ONLY = {"ElementwiseKernel", "ReductionKernel", "fuse", "RawElementwiseKernel", "memoize", "cutensor",
              "cublas", "cusparse", "fft"}


def __getattr__(name):
    if name in _CUPY_ONLY:
        raise AttributeError(f"cp.{name} is CuPy-only and not in the CPU backend's shim; the course writes "
                             "kernels with cp.RawKernel / cp.RawModule, which both backends have")
    try:
        return getattr(np, name)
    except AttributeError:
        raise AttributeError(f"cp.{name}: neither the CPU shim nor numpy has it") from None
