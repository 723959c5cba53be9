"""Start-up time of the CLI: ``deepcore --help``, ``list-methods`` and ``plugins``.

Each command runs in a fresh interpreter (``python -m deepcore_core ...``), wall time, median
of ``--rounds``. With ``--baseline REF`` the same commands also run against the core and
plugins of git revision REF (checked out into a temporary worktree and put first on
``PYTHONPATH``; the installed entry points are the same), interleaved with the working tree's
so both see the same machine noise, and the ratio is printed.

Usage: python benchmarks/startup.py [--rounds 7] [--baseline REF]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _trees import compared_trees, pythonpath

COMMANDS = (["--help"], ["list-methods"], ["plugins"])


def wall(args: list[str], env: dict[str, str]) -> float:
    """Seconds for one ``python -m deepcore_core ARGS`` (output discarded).

    Runs in a neutral folder: ``-m`` puts the current folder first on ``sys.path``, which
    would shadow the ``PYTHONPATH`` tree with the working tree's core.
    """
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "deepcore_core", *args],
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def main() -> None:
    """Measure and print one line per command."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", help="git revision to compare against")
    args = ap.parse_args()
    with compared_trees(args.baseline) as trees:
        envs = {k: {**os.environ, "PYTHONPATH": pythonpath(t)} for k, t in trees.items()}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        print(f"bare interpreter: {time.perf_counter() - t0:.3f} s")
        for cmd in COMMANDS:
            for env in envs.values():
                wall(cmd, env)  # warm the file cache
            times: dict[str, list[float]] = {k: [] for k in envs}
            for _ in range(args.rounds):
                for k, env in envs.items():
                    times[k].append(wall(cmd, env))
            med = {k: statistics.median(v) for k, v in times.items()}
            line = f"deepcore {' '.join(cmd):13s}" + "".join(
                f"  {k} {v:.3f} s" for k, v in med.items()
            )
            if "baseline" in med:
                line += f"  ratio {med['baseline'] / med['now']:.1f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
