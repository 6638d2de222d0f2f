"""The emulator's error codes: one list on each side of the C++/Python boundary, and they agree."""
import re
import subprocess
import sys

import pytest

from llmc_core.cuda import errors
from llmc_core.cuda.emulator import INCLUDE_DIR


def header_codes() -> dict[str, int]:
    text = (INCLUDE_DIR / "llmc_cuemu_abi.h").read_text()
    body = re.search(r"enum Error \{(.*?)\};", text, re.S).group(1)
    return {name: int(value) for name, value in re.findall(r"\bERR_(\w+)\s*=\s*(\d+)", body)}


def test_header_and_python_codes_agree():
    assert header_codes() == {code.name: code.value for code in errors.ErrorCode}


def test_runtime_uses_only_named_codes():
    text = (INCLUDE_DIR.parent / "runtime.cpp").read_text()
    assert not re.search(r"(?:abort_block\(b, [^,]+|fail)\(?\s*\d+\s*,", text)


@pytest.mark.parametrize("code, cls", [(1, errors.KernelDeadlockError), (2, errors.DivergentBarrierError),
                                       (3, errors.IllegalAddressError), (4, errors.CudaEmulatorError),
                                       (6, errors.CudaEmulatorError), (99, errors.CudaEmulatorError)])
def test_codes_raise_their_exception(code, cls):
    with pytest.raises(cls, match="boom") as info:
        errors.raise_for(code, "boom")
    assert type(info.value) is cls
    errors.raise_for(0, "no error")   # OK raises nothing


def test_memory_and_emulator_import_without_a_cycle():
    # each module imports on its own in a fresh interpreter (a cycle shows up as an ImportError
    # or a module that needs the other one imported first)
    for mod in ("llmc_core.cuda.memory", "llmc_core.cuda.errors", "llmc_core.cuda.emulator"):
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    memory_src = (INCLUDE_DIR.parent / "memory.py").read_text()
    assert "emulator" not in re.findall(r"^\s*from \.(\w+) import", memory_src, re.M)
