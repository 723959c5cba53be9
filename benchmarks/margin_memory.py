"""Peak memory of ``deepcore select --method margin`` on large precomputed probabilities.

Writes N x C float32 probabilities (random Dirichlet-like rows) and N labels as ``.npy``
files, then runs ``deepcore select --method margin --probs ... --labels ... --fraction 0.1``
in a fresh process and reads its peak resident memory (``ru_maxrss`` of the child). The same
command on a 1,000-row input gives the interpreter's and libraries' own footprint, which is
subtracted: the printed ratio is (peak - footprint) / input size. With ``--baseline REF`` the
same runs use the core and plugins of git revision REF (a temporary worktree first on
``PYTHONPATH``), for a side-by-side figure.

Usage: python benchmarks/margin_memory.py [--n 1000000] [--classes 100] [--baseline REF]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _trees import compared_trees, pythonpath  # noqa: E402


def write_inputs(folder: Path, n: int, c: int) -> tuple[Path, Path]:
    """Random probabilities (float32, rows sum to 1) and labels, written block by block."""
    rng = np.random.default_rng(0)
    probs = np.lib.format.open_memmap(folder / "probs.npy", "w+", np.float32, (n, c))
    for lo in range(0, n, 65536):
        hi = min(n, lo + 65536)
        x = rng.exponential(size=(hi - lo, c)).astype(np.float32)
        probs[lo:hi] = x / x.sum(1, keepdims=True)
    probs.flush()
    del probs
    np.save(folder / "labels.npy", rng.integers(0, c, n))
    return folder / "probs.npy", folder / "labels.npy"


def peak_of(tree: Path, probs: Path, labels: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in GiB, seconds) of one ``deepcore select`` run in a child process."""
    env = {**os.environ, "PYTHONPATH": pythonpath(tree), "DEEPCORE_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "deepcore_core", "select", "--method", "margin"]
    cmd += ["--probs", str(probs), "--labels", str(labels), "--fraction", "0.1"]
    cmd += ["--output", str(out), "--device", "cpu"]
    t0 = time.perf_counter()
    pid = subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir()).pid
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise SystemExit(f"deepcore select failed on {tree} (status {status})")
    return usage.ru_maxrss / 2**20, time.perf_counter() - t0


def main() -> None:
    """Print peak memory per tree, as GiB and as a multiple of the input."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--baseline", help="git revision to compare against")
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="deepcore-margin-") as d,
        compared_trees(args.baseline) as trees,
    ):
        folder = Path(d)
        (folder / "small").mkdir()
        big = write_inputs(folder, args.n, args.classes)
        small = write_inputs(folder / "small", 1000, args.classes)
        size = args.n * args.classes * 4 / 2**30
        print(f"input: {args.n:,} x {args.classes} float32 = {size:.3f} GiB")
        for name, tree in trees.items():
            base, _ = peak_of(tree, *small, folder / "small.npz")
            peak, secs = peak_of(tree, *big, folder / "sel.npz")
            print(
                f"{name:8s} peak {peak:.3f} GiB, footprint {base:.3f} GiB, "
                f"(peak - footprint) / input = {(peak - base) / size:.2f}x, {secs:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
