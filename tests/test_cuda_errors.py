"""The emulator's error codes: one list on each side of the C++/Python boundary, and they agree."""
import ast
import re

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


def cuda_import_graph() -> dict[str, set[str]]:
    """Which modules of llmc_core.cuda each one imports (at module level or inside functions)."""
    package = INCLUDE_DIR.parent
    graph = {}
    for path in package.glob("*.py"):
        if path.stem == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                deps.update(n.split(".")[0] for n in names)
        graph[path.stem] = deps
    return graph


def test_no_import_cycles_in_the_cuda_package():
    graph = cuda_import_graph()
    assert "errors" in graph["memory"] and "emulator" not in graph["memory"]

    def visit(node, path):
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node):], node]))
        for dep in graph.get(node, ()):
            visit(dep, [*path, node])

    for module in graph:
        visit(module, [])

