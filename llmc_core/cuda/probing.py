"""Profiling a kernel on the CPU emulator from any backend: what a performance probe calls."""
from __future__ import annotations

import numpy as np

from . import shim


def profile_launch(code: str, name: str, grid, block, args, shared_mem: int = 0, options=(),
                   name_expressions=None) -> dict:
    """Profile one launch of kernel `name` of `code` on the CPU emulator, whatever the backend:
    CuPy arrays among `args` are copied to the host first (the launch's results are discarded).
    This is what a probe calls to judge a learner's kernel on any machine."""

    def host(a):
        if hasattr(a, "get") and hasattr(a, "__cuda_array_interface__"):   # a CuPy array
            return shim.asarray(a.get())
        if isinstance(a, np.ndarray):
            return shim.asarray(a)
        return a

    exprs = list(name_expressions or ())
    module = shim.RawModule(code=code, options=tuple(options), name_expressions=exprs or None)
    kernel = module.get_function(name)
    return kernel(grid, block, tuple(host(a) for a in args), shared_mem=shared_mem, profile=True)
