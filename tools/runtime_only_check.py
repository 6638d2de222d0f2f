"""Do the runtime dependencies alone (no extras: no JupyterLab, nbclient or test tools) run the lessons' solutions?

    python tools/runtime_only_check.py [--venv /tmp/llmc-runtime] [--extra ipython] 00_setup 01_micrograd ...

Makes a fresh virtual environment, installs this checkout with `pip install .` (torch pinned by
PIP_CONSTRAINT where CI sets it), then runs each named solution's code cells in order as one plain
Python script at LLMC_SMALL=1 (the way Colab's kernel would, minus IPython) and prints, per lesson,
the exit code, the time and how many checks printed ✓ and ✗. `--extra` installs more packages first.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def setup(venv, extras):
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [str(REPO)] + list(extras), check=True)


def run_solution(venv, path, workdir):
    """Run the solution's code cells as one script; return (exit code, seconds, output)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    script = workdir / f"{path.stem}.py"
    script.write_text("\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(LLMC_SMALL="1", MPLBACKEND="Agg")
    start = time.perf_counter()
    result = subprocess.run([str(venv / "bin" / "python"), str(script)], cwd=path.parent, env=env,
                            capture_output=True, text=True)
    return result.returncode, time.perf_counter() - start, result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="+", help="solution notebook names, e.g. 00_setup")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/llmc-runtime"), help="where to make the environment")
    parser.add_argument("--extra", action="append", default=[], help="another package to install (repeatable)")
    args = parser.parse_args()
    setup(args.venv, args.extra)
    failed = 0
    for name in args.lessons:
        code, seconds, output = run_solution(args.venv, REPO / "solutions" / f"{Path(name).stem}.ipynb", args.venv)
        print(f"{name}: exit {code} in {seconds:.0f} s; ✓ {output.count('✓')}, ✗ {output.count('✗')}")
        if code:
            failed += 1
            print("   " + output.strip().splitlines()[-1])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
