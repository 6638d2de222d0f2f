"""How long `llmc --help` takes, against the floor every Python command pays and against importing torch.

    python benchmarks/cli_startup.py [--rounds 10]

Three commands run alternately in fresh processes: `python -c pass` (the interpreter's start-up, the peer),
`llmc --help`, and `python -c "import torch"` (what --help cost before torch was imported lazily).
Prints the median wall and CPU (user + system) seconds of each and the ratios; the target for
`llmc --help` is under 0.5 s of wall time on an idle machine.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LLMC = Path(sys.executable).parent / "llmc"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "llmc --help": [str(LLMC), "--help"] if LLMC.exists() else [sys.executable, "-m", "llmc_core.cli", "--help"],
    "import torch": [sys.executable, "-c", "import torch"],
}


def timed(command):
    """(wall seconds, CPU seconds) of one run of `command` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="runs of each command (default: %(default)s)")
    args = parser.parse_args()
    runs = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            runs[name].append(timed(command))
    medians = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
               for name, r in runs.items()}
    print(f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds")
    for name, (wall, cpu) in medians.items():
        print(f"{name:16} wall {wall:.3f} s   cpu {cpu:.3f} s")
    floor, llmc, torch = medians["python -c pass"], medians["llmc --help"], medians["import torch"]
    print(f"llmc --help / python -c pass: wall {llmc[0] / floor[0]:.1f}x, cpu {llmc[1] / floor[1]:.1f}x")
    print(f"llmc --help / import torch:   wall {llmc[0] / torch[0]:.2f}x, cpu {llmc[1] / torch[1]:.2f}x")


if __name__ == "__main__":
    main()
