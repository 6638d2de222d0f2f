"""The course map: which notebooks exist, in which order, and where their files live."""
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lesson:
    notebook: str  # file stem in solutions/ and lessons/, e.g. "01_micrograd"
    prefix: str    # exercise ids start with this and a slash: "micrograd/backward"
    title: str
    # Later lessons build on this lesson's solution: `llmc build` writes its code cells as a module of
    # the package (`reference_module`), which llmc_core.numpy_gpt2 (lesson 02), llmc_core.bpe (lesson 04)
    # or llmc_core.kernels (lesson 06) imports, so it works wherever the package does.
    reference: bool = False

    @property
    def filename(self):
        return self.notebook + ".ipynb"

    @property
    def reference_module(self):
        """The module `llmc build` generates from the solution: "llmc_core.references.gpt2_numpy_forward"."""
        return "llmc_core.references." + self.notebook.split("_", 1)[1]

    @property
    def reference_path(self):
        """The file of `reference_module` in this package (llmc_core/references/gpt2_numpy_forward.py)."""
        return REFERENCE_DIR / (self.reference_module.rsplit(".", 1)[1] + ".py")

    @property
    def probe_module(self):
        return f"llmc_core.probes.{self.prefix}"


LESSONS = (
    Lesson("00_setup", "setup", "Setup, exercises and check()"),
    Lesson("01_micrograd", "micrograd", "A scalar autograd engine and a tiny neural net"),
    Lesson("02_gpt2_numpy_forward", "gpt2_forward", "GPT-2 in numpy: the forward pass", reference=True),
    Lesson("03_gpt2_numpy_backward", "gpt2_backward", "GPT-2 in numpy: backward pass and training"),
    Lesson("04_bpe_tokenizer", "bpe", "A byte-level BPE tokenizer, exact to GPT-2 and GPT-4", reference=True),
    Lesson("05_torch_explicit_backward", "torch_backward", "PyTorch layers with explicit backward passes"),
    Lesson("06_cuda_kernels", "cuda", "CUDA kernels: the programming model, elementwise kernels, reductions",
           reference=True),
    Lesson("07_cuda_kernels_fast", "cuda_fast", "Fast CUDA kernels: matmul, attention, GPT-2 on your kernels"),
    Lesson("08_fast_trainer", "trainer", "A fast, scalable GPT-2 trainer"),
    Lesson("09_beyond_gpt2", "modern", "Beyond GPT-2: the modern recipe"),
    Lesson("10_inference", "inference", "Inference: a KV cache, sampling, a bounded loop"),
)

# Exercises that moved to another lesson when lesson 06 was split in two: old id -> new id.
# Old ids met anywhere (check() in an old notebook, an instructor's hidden probe file) are read as the new ones.
MOVED_EXERCISES = {f"cuda/{name}": f"cuda_fast/{name}" for name in (
    "matmul_naive", "matmul_tiled", "matmul_blocked", "attention_forward", "attention_fused", "attention_backward",
    "classifier_fused", "adamw", "encoder_forward", "encoder_backward", "encoder_backward_deterministic", "gpt2")}
# AdamW's step later took one name in every lesson, the name of the function learners write: adamw_update.
MOVED_EXERCISES |= {"cuda/adamw": "cuda_fast/adamw_update", "cuda_fast/adamw": "cuda_fast/adamw_update",
                    "gpt2_backward/adamw": "gpt2_backward/adamw_update"}
# Notebooks that took a new name then: old stem -> new stem (lesson 07's exercises, unchanged, are now lesson 08's).
RENAMED_NOTEBOOKS = {"07_fast_trainer": "08_fast_trainer"}
# Lesson 05's forward/backward pairs that became one autograd.Function each, once it reused lesson 03's gradients.
MOVED_EXERCISES.update({f"torch_backward/{layer}_{step}": f"torch_backward/{function}" for layer, function in (
    ("gelu", "gelu_function"), ("linear", "linear_function"), ("layernorm", "layernorm_function"),
    ("attention", "attention_recompute")) for step in ("forward", "backward")})

PACKAGE_DIR = Path(__file__).resolve().parent
SNAPSHOT_DIR = PACKAGE_DIR / "snapshots"
REFERENCE_DIR = PACKAGE_DIR / "references"
# In a source checkout the notebooks sit beside the package.
REPO_DIR = PACKAGE_DIR.parent
SOLUTIONS_DIR = REPO_DIR / "solutions"
LESSONS_DIR = REPO_DIR / "lessons"


def lesson_by_notebook(name):
    """The lesson whose notebook is `name` ("01_micrograd" or a path ending in 01_micrograd.ipynb)."""
    stem = Path(name).stem
    for lesson in LESSONS:
        if lesson.notebook == stem:
            return lesson
    if stem in RENAMED_NOTEBOOKS:
        raise ValueError(f"{Path(name).name!r} is now {RENAMED_NOTEBOOKS[stem]}.ipynb (lesson 06 was split in two and "
                         f"the lessons after it moved up one); rename the file to {RENAMED_NOTEBOOKS[stem]}.ipynb")
    known = ", ".join(lesson.filename for lesson in LESSONS)
    raise ValueError(f"{Path(name).name!r} is not a lesson notebook of this course; "
                     f"lesson files keep their names: {known}")


def lesson_by_prefix(prefix):
    """The lesson owning exercise ids that start with `prefix/`."""
    for lesson in LESSONS:
        if lesson.prefix == prefix:
            return lesson
    known = ", ".join(lesson.prefix for lesson in LESSONS)
    raise ValueError(f"no lesson has exercises named {prefix!r}/...; lesson prefixes are {known}")


def current_exercise_id(exercise_id):
    """The id an exercise has now: `exercise_id` itself, or where it moved
    ("cuda/matmul_naive" -> "cuda_fast/matmul_naive")."""
    return MOVED_EXERCISES.get(exercise_id, exercise_id)


def solution_path(notebook):
    return SOLUTIONS_DIR / (Path(notebook).stem + ".ipynb")


def lesson_path(notebook):
    return LESSONS_DIR / (Path(notebook).stem + ".ipynb")
