"""Benchmark: how fast the command line answers (contract v2's start-up targets).

Each command runs as a whole process ``--runs`` times after one warm-up; the table gives
the median and the spread of wall-clock seconds, and which heavy libraries the command
imported. Targets (2 CPU cores): ``ptheta --help`` and ``ptheta datasets`` ≤ 0.5 s;
``import ptheta`` imports neither torch nor scikit-learn.

    .venv/bin/python bench/startup.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "pandas")
PROBE = "import json, sys; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
COMMANDS = {
    "import ptheta": "import ptheta",
    "ptheta --help": "from ptheta.cli import cli; cli(['--help'], standalone_mode=False)",
    "ptheta datasets": "from ptheta.cli import cli; cli(['datasets'], standalone_mode=False)",
    "ptheta models": "from ptheta.cli import cli; cli(['models'], standalone_mode=False)",
}
TARGETS = {"ptheta --help": 0.5, "ptheta datasets": 0.5}


def _time(code: str, runs: int) -> tuple[list[float], list[str]]:
    script = f"{code}\n{PROBE.format(heavy=HEAVY)}"
    argv = [sys.executable, "-c", script]
    subprocess.run(argv, capture_output=True, check=True)  # warm-up (file cache)
    times, heavy = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return times, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    table = Table(title="ptheta start-up (wall seconds per process)")
    for column in ("command", "median", "min", "max", "target", "heavy imports"):
        table.add_column(column)
    for name, code in COMMANDS.items():
        times, heavy = _time(code, args.runs)
        target = TARGETS.get(name)
        median = statistics.median(times)
        mark = "" if target is None else (" ✓" if median <= target else " ✗")
        table.add_row(
            name, f"{median:.3f}{mark}", f"{min(times):.3f}", f"{max(times):.3f}",
            "" if target is None else f"≤ {target}", ", ".join(heavy) or "none",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
