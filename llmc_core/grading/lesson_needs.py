"""What a lesson's grading child needs beyond the package and Python: earlier solutions, a CUDA runtime.

- Lessons build on earlier ones through the package: `llmc_core.numpy_gpt2` hands lesson 03 (and
  later lessons) the layers of lesson 02's solution, which `llmc build` writes as a module in
  `llmc_core/references/`. The grader hides that folder like the snapshots; the child grading a
  lesson that uses such a module (in its probes or its notebook) may read the modules of earlier
  lessons' solutions that it imports; never its own lesson's or a later one's.
- Lessons that compile CUDA kernels on the CPU emulator (`llmc_core.cuda`) link every kernel against
  the emulator's runtime library (~1.4 s of g++ to build). The grader builds it once, in a cache
  folder of its own that holds nothing else, and lets every child load it read-only
  (`LLMC_CUDA_READONLY_CACHE`). Kernels are never shared: a child compiles its learner's kernels into
  its private /tmp, and no compiled solution kernel is ever in the children's reach.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from llmc_core.course import LESSONS, solution_path
from llmc_core.grading.sandbox import scrubbed_env

# Course modules that import an earlier lesson's generated reference module (Lesson.reference_module),
# and that lesson. A lesson may also import the reference module itself.
SOLUTION_USERS = {
    "llmc_core.numpy_gpt2": "02_gpt2_numpy_forward",
    "llmc_core.bpe": "04_bpe_tokenizer",
    "llmc_core.tokenizer": "04_bpe_tokenizer",  # train_tokenizer runs lesson 04's fast trainer (llmc_core.bpe)
    "llmc_core.kernels": "06_cuda_kernels",
}
BUILD_TIMEOUT = 300  # seconds for g++ to build the emulator runtime


def earlier_solutions(lesson):
    """The reference modules of earlier lessons' solutions that `lesson` uses (existing paths)."""
    paths, order = [], [entry.notebook for entry in LESSONS]
    for earlier in LESSONS[:order.index(lesson.notebook)]:
        users = [earlier.reference_module] + [name for name, notebook in SOLUTION_USERS.items()
                                              if notebook == earlier.notebook]
        if earlier.reference and earlier.reference_path.exists() and any(uses_module(lesson, n) for n in users):
            paths.append(earlier.reference_path)
    return paths


def uses_module(lesson, name):
    """True when the lesson's probe module holds something from module `name`, or its solution names it."""
    probes = sys.modules.get(lesson.probe_module)
    if probes is not None and any(_comes_from(value, name) for value in vars(probes).values()):
        return True
    path = solution_path(lesson.notebook)
    return path.exists() and name in path.read_text(encoding="utf-8")


def uses_cuda(lesson):
    return uses_module(lesson, "llmc_core.cuda")


def _comes_from(value, name):
    origin = getattr(value, "__name__", None) if isinstance(value, type(sys)) else getattr(value, "__module__", None)
    return isinstance(origin, str) and (origin == name or origin.startswith(name + "."))


def grading_cache_dir():
    """The grader's own cache folder (~/.cache/llmc/grading): built runtimes only, readable by the children."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "llmc" / "grading"


def cuda_runtime_cache(folder=None):
    """A folder holding the CPU emulator's runtime library as the children would build it, or None.

    None where it cannot be built here (no compiler, an unwritable home): each child then builds
    its own, which costs time but not correctness.
    """
    if not (os.environ.get("CXX") or shutil.which("g++", path=scrubbed_env()["PATH"])):
        return None
    folder = Path(folder or grading_cache_dir())
    package_parent = str(Path(__file__).resolve().parents[2])
    # The child's environment, so that the library's name (a hash of compiler, flags and headers) matches.
    env = dict(scrubbed_env(), LLMC_CACHE_DIR=str(folder), LLMC_CUDA_BACKEND="cpu", HOME=str(folder))
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from llmc_core.cuda import emulator; emulator.runtime_library()")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-I", "-c", code], env=env, cwd=folder, check=True, timeout=BUILD_TIMEOUT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.SubprocessError):
        return None
    runtime = folder / "cuda"
    # Readable (not writable) by the children's private uids.
    for path in (folder, runtime, *runtime.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return runtime
