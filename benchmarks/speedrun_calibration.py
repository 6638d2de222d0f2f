"""How steady `llmc speedrun`'s calibration is on this machine, on its CPU clock and on the wall clock.

    python benchmarks/speedrun_calibration.py [--repeats 6] [--threads 1 2]

For each thread count, `repeats` calibrations in a row, alternating the clock: CPU time (what
`llmc speedrun` uses on a CPU) and wall time (the named peer: what a budget in plain seconds
would see). Prints each calibration's seconds per reference step, then per clock the median and
the spread (max / min - 1): the spread is how far two speedruns' budgets can differ on one machine.
The load average is printed first and last: other programs move the wall clock, not the CPU clock.
"""
import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmc_core.speedrun import CALIBRATION_STEPS, calibrate  # noqa: E402 (after the path is set)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="calibrations per clock and thread count")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}; {CALIBRATION_STEPS} timed reference steps per calibration")
    for threads in args.threads:
        seconds = {"cpu": [], "wall": []}
        for _ in range(args.repeats):
            for clock in seconds:
                seconds[clock].append(calibrate(threads=threads, clock=clock).seconds_per_step)
        for clock, values in seconds.items():
            print(f"threads {threads}, {clock:>4} clock: " + " ".join(f"{v:.4f}" for v in values)
                  + f" s per reference step; median {statistics.median(values):.4f}, "
                    f"spread {100 * (max(values) / min(values) - 1):.1f}%")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
