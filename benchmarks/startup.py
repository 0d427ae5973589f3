"""Start-up cost of a zoo run against importing Lightning alone (whole processes, median of N).

    python benchmarks/startup.py [--repeat 5]

Prints the median wall time of ``python -c "import lightning"`` and of
``zoo train -c mlp_digits -c trainer/debug`` (a run of 10 tiny steps, so nearly all of it is
start-up and teardown), and the difference: what the zoo adds to Lightning's own import. The zoo
command sets Python's cyclic garbage collector aside while it imports (see ``zoo.cli.main``), so
the import is also timed that way (``gc.disable()`` first), and the difference from that is what
the zoo's own work costs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    zoo = str(Path(sys.executable).parent / "zoo")
    commands = {
        "import lightning": [sys.executable, "-c", "import lightning"],
        "import lightning, collector off": [
            sys.executable,
            "-c",
            "import gc; gc.disable(); import lightning",
        ],
        "zoo train -c mlp_digits -c trainer/debug": [zoo, "train", "-c", "mlp_digits", "-c", "trainer/debug"],
    }
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # interleaved, so a slow moment of the machine hits both
            for name, command in commands.items():
                medians.setdefault(name, []).append(wall(command, tmp))
    for name, times in medians.items():
        print(
            f"{name:45s} median {statistics.median(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})"
        )
    lightning, lightning_no_gc, run = (statistics.median(t) for t in medians.values())
    print(f"{'difference (what the zoo adds)':45s}        {run - lightning:6.2f} s")
    print(f"{'difference, both collecting nothing at import':45s}        {run - lightning_no_gc:6.2f} s")


if __name__ == "__main__":
    main()
