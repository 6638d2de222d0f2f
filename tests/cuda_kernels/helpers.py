"""Shared helpers for the CUDA backend tests: the kernel fixtures and the two backends."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

KERNEL_DIR = Path(__file__).parent


def kernel_source(name: str) -> str:
    return (KERNEL_DIR / name).read_text()


def name_expressions(source: str) -> list[str]:
    """Template instances a fixture asks for, from its `// name_expressions: a<1>, a<2>` line."""
    m = re.search(r"//\s*name_expressions:\s*(.+)", source)
    return [e.strip() for e in m.group(1).split(", ")] if m else []


def kernel_files() -> list[Path]:
    return sorted(KERNEL_DIR.glob("*.cu"))


def cupy_or_skip():
    try:
        import cupy
    except Exception as e:
        pytest.skip(f"cupy backend: CuPy is not importable here ({type(e).__name__}); runs on a GPU machine")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("cupy backend: CuPy finds no GPU")
    except Exception as e:
        pytest.skip(f"cupy backend: CuPy finds no GPU ({type(e).__name__})")
    return cupy


def backend_module(name: str):
    if name == "cupy":
        return cupy_or_skip()
    from llmc_core.cuda import shim
    return shim
