"""The CPU emulator's errors, and the codes by which its runtime reports them.

`ErrorCode` mirrors `enum Error` in include/llmc_cuemu_abi.h (the C side of the boundary);
tests/test_cuda_errors.py checks that the two agree.  `raise_for(code, message)` turns a code
returned by `cuemu_launch` into the matching exception.
"""
from __future__ import annotations

import enum


class CudaEmulatorError(RuntimeError):
    """A kernel failed in the CPU emulator in a way that a GPU would fail (or misbehave)."""


class KernelDeadlockError(CudaEmulatorError):
    """No thread of a block can continue: a GPU would hang."""


class DivergentBarrierError(CudaEmulatorError):
    """Threads of one block wait at different __syncthreads() calls."""


class IllegalAddressError(CudaEmulatorError):
    """The kernel touched memory it does not own (cudaErrorIllegalAddress on a GPU)."""


class CompileError(RuntimeError):
    """The kernel source does not compile; the message quotes the compiler at the learner's lines."""


class ErrorCode(enum.IntEnum):
    """What `cuemu_launch` returns; the values are those of `cuemu::Error` in llmc_cuemu_abi.h."""
    OK = 0
    DEADLOCK = 1            # no thread of a block can continue
    DIVERGENT_BARRIER = 2   # threads at different __syncthreads(), or lanes at different warp operations
    ILLEGAL_ADDRESS = 3     # a fault on memory the kernel does not own
    TRAP = 4                # __trap(), a failed assert(), a warp operation used wrongly
    RESOURCE = 5            # too much shared memory, no address space for fiber stacks
    STACK_OVERFLOW = 6      # a thread's local variables outgrew its stack


EXCEPTIONS = {ErrorCode.DEADLOCK: KernelDeadlockError, ErrorCode.DIVERGENT_BARRIER: DivergentBarrierError,
              ErrorCode.ILLEGAL_ADDRESS: IllegalAddressError}


def raise_for(code: int, message: str) -> None:
    """Raise the exception for a nonzero runtime error code (a code this module does not know is a
    CudaEmulatorError too, so a newer runtime never goes unreported)."""
    if code == ErrorCode.OK:
        return
    try:
        cls = EXCEPTIONS.get(ErrorCode(code), CudaEmulatorError)
    except ValueError:
        cls = CudaEmulatorError
    raise cls(message)
