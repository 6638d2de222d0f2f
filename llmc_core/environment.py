"""What this machine offers the course: versions, a GPU or not, the CUDA backend lessons 06 and 07 will use."""
import importlib
import importlib.metadata
import importlib.util
import platform

PACKAGES = ("numpy", "torch", "matplotlib", "tiktoken", "jupyterlab", "nbformat", "cupy")


def package_version(name):
    """The installed version of a distribution (cupy ships as cupy-cuda12x etc.), or None."""
    candidates = [name] if name != "cupy" else ["cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"]
    for candidate in candidates:
        try:
            return importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def gpu_description():
    """'NVIDIA H100 80GB HBM3' when torch sees a CUDA GPU, else None."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def cuda_backend():
    """The backend `from llmc_core.cuda import cp` will use, with the reason."""
    if importlib.util.find_spec("llmc_core.cuda") is None:
        return "not available in this version of llmc_core"
    cuda = importlib.import_module("llmc_core.cuda")
    return f"{cuda.backend_name()}: {cuda.backend_reason()}"


def environment_report():
    """{item: value} describing this machine, for lesson 00 and bug reports."""
    report = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    for name in PACKAGES:
        report[name] = package_version(name) or "not installed"
    report["GPU"] = gpu_description() or "none (the course runs on the CPU)"
    report["CUDA backend"] = cuda_backend()
    return report
