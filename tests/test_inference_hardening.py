"""The engine's hardening rules (docs/hardening.md), each checked: statically on the source, or by running it.

The static checks read the engine's modules with `ast` and take a folder, so that the tests
at the end can plant a recursive helper or an unbounded loop in a copy and see them fail.
"""
import ast
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import llmc_core.inference
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.inference import Engine, SamplingParams
from llmc_core.modern import GPT, Recipe

ENGINE_DIR = Path(llmc_core.inference.__file__).parent
TESTS_DIR = Path(__file__).parent
HARDENING_DOC = TESTS_DIR.parent / "docs" / "hardening.md"
MAX_FUNCTION_LINES = 50  # signature, docstring and blank lines included
UNBOUNDED_ITERATORS = {"count", "cycle", "repeat", "iter"}  # itertools' endless ones, iter(f, sentinel)
DYNAMIC_CODE = {"exec", "eval", "compile", "__import__", "globals", "setattr", "delattr"}


def modules(folder):
    """(module name, parsed tree) of every .py file in folder."""
    return [(path.stem, ast.parse(path.read_text(), str(path))) for path in sorted(Path(folder).glob("*.py"))]


def functions(tree, module):
    """(qualified name, class name or None, def node) of every function and method, nested ones too."""
    found, todo = [], [(node, module, None) for node in tree.body]
    for _ in range(10_000):  # a bound far above any module's number of definitions
        if not todo:
            return found
        node, prefix, cls = todo.pop()
        if isinstance(node, ast.ClassDef):
            todo += [(child, f"{prefix}.{node.name}", node.name) for child in node.body]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((f"{prefix}.{node.name}", cls, node))
            todo += [(child, f"{prefix}.{node.name}", None) for child in ast.walk(node) if child is not node
                     and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))]
    raise RuntimeError("too many definitions")


def call_graph(folder):
    """name -> set of names it calls, for every function of the modules in folder.

    Resolves what can recur: calls by name to a function of the same module, to one imported
    from a sibling module, or to a nested def; `self.m(...)` and `Class.m(...)` to that class's method.
    """
    defs, graph = {}, {}
    for module, tree in modules(folder):
        imported = {a.asname or a.name: f"{n.module.rsplit('.', 1)[-1]}.{a.name}" for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("llmc_core.inference")
                    for a in n.names}
        for name, cls, node in functions(tree, module):
            defs[name] = (module, cls, node, imported)
    for name, (module, cls, node, imported) in defs.items():
        graph[name] = set()
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            f = call.func
            targets = []
            if isinstance(f, ast.Name):
                targets = [f"{name}.{f.id}", f"{module}.{f.id}", imported.get(f.id, "")]
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                owner = cls if f.value.id == "self" else f.value.id
                targets = [f"{module}.{owner}.{f.attr}", f"{imported.get(owner, '')}.{f.attr}"]
            graph[name] |= {t for t in targets if t in defs}
    return graph


def cycles(graph):
    """Every function that can reach itself through the call graph (an iterative depth-first search)."""
    on_cycle = set()
    for start in graph:
        seen, stack = set(), list(graph[start])
        for _ in range(len(graph) ** 2 + 1):  # each function is pushed at most once per caller
            if not stack:
                break
            name = stack.pop()
            if name == start:
                on_cycle.add(start)
                break
            if name not in seen:
                seen.add(name)
                stack += graph[name]
    return sorted(on_cycle)


def unbounded_loops(folder):
    """Every `while` loop, and every `for` over an endless iterator, as 'module:line'."""
    found = []
    for module, tree in modules(folder):
        for node in ast.walk(tree):
            endless = (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                       and getattr(node.iter.func, "id", getattr(node.iter.func, "attr", "")) in UNBOUNDED_ITERATORS)
            if isinstance(node, ast.While) or endless:
                found.append(f"{module}:{node.lineno}")
    return found


def long_functions(folder, limit=MAX_FUNCTION_LINES):
    return [f"{name} ({node.end_lineno - node.lineno + 1} lines)" for module, tree in modules(folder)
            for name, _, node in functions(tree, module) if node.end_lineno - node.lineno + 1 > limit]


def asserts_and_dynamic_code(folder):
    """assert statements (python -O removes them), global state, and code made at run time."""
    found = []
    for module, tree in modules(folder):
        for node in tree.body:  # module level: constants only (UPPER_CASE names, and __all__)
            names = [t.id for n in [node] if isinstance(n, (ast.Assign, ast.AnnAssign))
                     for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)]
            found += [f"{module}:{node.lineno} variable {n}" for n in names if not (n.isupper() or n == "__all__")]
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assert, ast.Global, ast.Nonlocal)):
                found.append(f"{module}:{node.lineno} {type(node).__name__}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in DYNAMIC_CODE:
                found.append(f"{module}:{node.lineno} {node.func.id}()")
    return found


def unused_imports(folder):
    """Imported names never used in their module (an __init__ re-exports through __all__)."""
    found = []
    for module, tree in modules(folder):
        imported = {(a.asname or a.name).split(".")[0]: n.lineno for n in ast.walk(tree)
                    if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        exported = {c.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                    for c in [n]} if module == "__init__" else set()
        found += [f"{module}:{line} {name}" for name, line in imported.items() if name not in used | exported]
    return found


# ---------------------------------------------------------------------------------------------
# The rules on the engine as it is


def test_no_recursion_in_the_engine():
    graph = call_graph(ENGINE_DIR)
    assert "engine.Engine.decode_step" in graph and "engine.Engine.attention_step" in graph["engine.Engine.decode_step"]
    assert cycles(graph) == []


def test_every_loop_is_bounded():
    assert unbounded_loops(ENGINE_DIR) == []


def test_functions_are_short():
    assert long_functions(ENGINE_DIR) == [], f"functions over {MAX_FUNCTION_LINES} lines"


def test_no_asserts_no_global_state_no_code_made_at_run_time():
    assert asserts_and_dynamic_code(ENGINE_DIR) == []


def test_compiles_without_warnings_and_imports_only_what_it_uses():
    for path in sorted(ENGINE_DIR.glob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # SyntaxWarning (bad escapes, `is` with a literal) becomes an error
            compile(path.read_text(), str(path), "exec")
    assert unused_imports(ENGINE_DIR) == []


# ---------------------------------------------------------------------------------------------
# The static checks catch what they should: plant violations in a copy of the engine

PLANTS = {
    "self recursion": ("engine.py", """
        def countdown(n):
            return 0 if n == 0 else countdown(n - 1)
        """),
    "mutual recursion through methods": ("sampling.py", """
        class Planted:
            def ping(self, n):
                return self.pong(n)

            def pong(self, n):
                return self.ping(n - 1)
        """),
    "recursion across modules": ("checks.py", """
        def loop_back(n):
            from llmc_core.inference.load import check_weights
            return check_weights(n, None, "")
        """),
}


@pytest.fixture
def engine_copy(tmp_path):
    copy = tmp_path / "inference"
    shutil.copytree(ENGINE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def plant(folder, module, code):
    with open(folder / module, "a") as f:
        f.write("\n\n" + textwrap.dedent(code))


@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_recursion_is_caught(engine_copy, name):
    module, code = PLANTS[name]
    assert cycles(call_graph(engine_copy)) == []
    plant(engine_copy, module, code)
    if name == "recursion across modules":  # close the loop: check_weights calls the planted helper back
        text = (engine_copy / "load.py").read_text()
        check_weights = next(n for n in ast.parse(text).body if getattr(n, "name", "") == "check_weights")
        lines = text.splitlines(keepends=True)
        lines.insert(check_weights.body[1].lineno - 1, "    loop_back(state)\n")  # after its docstring
        (engine_copy / "load.py").write_text("".join(lines).replace(
            "from llmc_core.inference.checks import require",
            "from llmc_core.inference.checks import loop_back, require"))
    assert cycles(call_graph(engine_copy)) != []


@pytest.mark.parametrize("loop", ["while True:\n    pass", "while n > 0:\n    n -= 1",
                                  "for i in itertools.count():\n    pass", "for x in iter(int, 1):\n    pass"])
def test_planted_unbounded_loop_is_caught(engine_copy, loop):
    plant(engine_copy, "engine.py", "def spin(n):\n" + textwrap.indent(loop, "    ") + "\n")
    assert unbounded_loops(engine_copy) == [f"engine:{len((engine_copy / 'engine.py').read_text().splitlines()) - 1}"]


def test_planted_long_function_and_assert_are_caught(engine_copy):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    plant(engine_copy, "checks.py", f"def long_one():\n{body}    assert x0 == 0\n\ncache = {{}}\n")
    assert long_functions(engine_copy) == [f"checks.long_one ({MAX_FUNCTION_LINES + 2} lines)"]
    found = asserts_and_dynamic_code(engine_copy)
    assert [s for s in found if "Assert" in s] and [s for s in found if "variable cache" in s]


# ---------------------------------------------------------------------------------------------
# Memory: allocated at load, never in the loop

LONG = GPT2Config(block_size=1024 + 8, vocab_size=64, n_layer=1, n_head=2, n_embd=16)
MODERN = Recipe(rope=True, norm="rms", qk_norm=True, mlp="relu2", softcap=15.0, untie_head=True)  # every option on


@pytest.fixture(scope="module")
def long_models():
    return {"gpt2": GPT2(LONG, seed=4).eval(), "modern": GPT(LONG, MODERN, seed=4).eval()}


@pytest.fixture(scope="module")
def long_model(long_models):
    return long_models["gpt2"]


def allocations_after_the_first_token(engine, n, sampling):
    """(steps taken, allocations seen) over a generation of n tokens, after its first one.

    The profiler records every allocation of PyTorch's CPU allocator, also those inside an op's kernel.
    """
    steps = engine.stream([[1, 2, 3]] * engine.B, n, sampling)  # no stop token, so all n steps run
    next(steps)  # the prefill and the first token may allocate
    taken, allocations = 0, []
    for _ in range(n // 100 + 1):  # short profiles: the profiler's bookkeeping grows faster than its events
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            taken += sum(1 for _, _ in zip(range(100), steps))
        allocations += [(e.name, e.cpu_memory_usage) for e in prof.events() if e.cpu_memory_usage > 0]
    return taken, allocations


# 1,000 greedy tokens take attention to 1,003 positions; the sampler's ops and the modern recipe's
# (norms, rotations read from a table row, ReLU², the cap) have the same shapes at every step, so
# 200 tokens cover them at a fifth of the profiler's cost (the resident-memory test runs 1,000)
@pytest.mark.parametrize("recipe,sampling,n", [
    ("gpt2", SamplingParams(temperature=0), 1000),
    ("gpt2", SamplingParams(temperature=0.9, top_k=40, top_p=0.9, seed=1), 200),
    ("modern", SamplingParams(temperature=0), 200)], ids=["greedy", "sampled", "modern-greedy"])
def test_no_tensor_allocated_after_the_first_token(long_models, recipe, sampling, n):
    engine = Engine.from_model(long_models[recipe], batch_size=2)
    taken, allocations = allocations_after_the_first_token(engine, n, sampling)
    assert taken == n - 1
    assert allocations == [], f"{len(allocations)} allocations in {taken} steps, e.g. {allocations[:5]}"


def test_the_allocation_watch_sees_an_allocating_step(long_model, monkeypatch):
    engine = Engine.from_model(long_model)
    step = engine.decode_step
    monkeypatch.setattr(engine, "decode_step", lambda pos: step(pos) or engine.logits.mul_(engine.logits * 1.0))
    taken, allocations = allocations_after_the_first_token(engine, 10, SamplingParams(temperature=0))
    assert taken == 9 and len(allocations) >= 9


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
@pytest.mark.parametrize("recipe", ["gpt2", "modern"])
def test_resident_memory_is_flat_over_1000_tokens(long_models, recipe):
    engine = Engine.from_model(long_models[recipe], batch_size=1)
    steps = engine.stream([[1, 2, 3]], 1001, SamplingParams(temperature=1.0, top_k=30, top_p=0.95, seed=2))
    next(steps)
    after_first = resident_bytes()
    taken = sum(1 for _ in steps)
    after_all = resident_bytes()
    assert taken == 1000
    assert abs(after_all - after_first) < 0.01 * after_first, (after_first, after_all)


# ---------------------------------------------------------------------------------------------
# Checks at the boundaries survive python -O

def test_checks_still_raise_under_python_O():  # noqa: N802 (the name spells Python's -O flag)
    code = textwrap.dedent("""
        import torch
        from llmc_core.gpt2 import GPT2, GPT2Config
        from llmc_core.inference import Engine, InvariantError, SamplingParams
        from llmc_core.inference.checks import check_tensor
        assert False, "this line is skipped under -O"
        caught = []
        for attempt in (lambda: SamplingParams(top_p=2.0),
                        lambda: Engine.from_model(GPT2(GPT2Config.preset("tiny"))).stream([[64]], 2),
                        lambda: check_tensor(torch.zeros(2), "x", (3,), torch.float32)):
            try:
                attempt()
            except (ValueError, InvariantError) as e:
                caught.append(type(e).__name__)
        print(caught)
    """)
    result = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['ValueError', 'ValueError', 'InvariantError']"


def test_invariant_checks_guard_the_buffers(long_model):
    engine = Engine.from_model(long_model)
    engine.logits = torch.empty(2, 3)  # a bug that breaks the engine's own state
    with pytest.raises(llmc_core.inference.InvariantError, match="logits has shape"):
        engine.stream([[1]], 2)


# ---------------------------------------------------------------------------------------------
# docs/hardening.md names a test for every rule, and every test it names exists

def unresolved_test_names(doc: str, tests_dir=TESTS_DIR):
    """The `test_file.py` and `test_name` references in doc that are not a test file / test function in tests_dir."""
    defined = {n.name for path in tests_dir.glob("test_*.py") for n in ast.walk(ast.parse(path.read_text()))
               if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    files = re.findall(r"`(test_\w+\.py)(?:::\w+)?`", doc)
    names = re.findall(r"`(?:test_\w+\.py::)?(test_\w+)`", doc)
    return [f for f in files if not (tests_dir / f).is_file()] + [n for n in names if n not in defined]


def rules_without_a_test(doc: str):
    """Rule numbers of the doc's table whose last column names no test (rule 9 points at rule 3's)."""
    rows = {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \|.*\|([^|]*)\|\s*$", doc, re.MULTILINE)}
    assert sorted(rows) == list(range(1, 11)), f"the table should list rules 1 to 10, found {sorted(rows)}"
    return [n for n, cell in rows.items() if "`test_" not in cell and "rule 3's tests" not in cell]


def test_hardening_doc_names_only_tests_that_exist():
    doc = HARDENING_DOC.read_text()
    assert len(re.findall(r"`(?:test_\w+\.py::)?(test_\w+)`", doc)) >= 10
    assert unresolved_test_names(doc) == []
    assert rules_without_a_test(doc) == []


def test_a_misnamed_test_in_the_doc_is_caught():
    doc = HARDENING_DOC.read_text()
    renamed = doc.replace("`test_every_loop_is_bounded`", "`test_every_loop_is_bound`", 1)
    assert unresolved_test_names(renamed) == ["test_every_loop_is_bound"]
    assert unresolved_test_names(doc + " `test_no_such_file.py`") == ["test_no_such_file.py"]
    no_test = re.sub(r"^(\| 4 \|.*\|)[^|]*\|\s*$", r"\1 (none) |", doc, count=1, flags=re.MULTILINE)
    assert rules_without_a_test(no_test) == [4]
