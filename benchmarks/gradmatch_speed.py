"""GradMatch: incremental OMP on implicit gradients versus a straightforward OMP, and versus
an earlier revision at larger budgets.

One Fashion-MNIST class (6,000 images), LeNet last-layer gradients (C(D+1) = 850) of a model
trained 3 epochs, lam = 0.5. By default: 10% = 600 picks, and the straightforward OMP holds
the explicit gradient matrix and solves a fresh regularised NNLS at every step. Prints both
times, the ratio, and whether the selections and weights agree.

With ``--baseline REF`` it instead times ``omp_select`` of that revision (a temporary
worktree) and of the working tree, alternately, each in a fresh process on the same saved
gradients, at every budget of ``--budgets``, and prints the ratios and whether the picks
agree.

Usage: python benchmarks/gradmatch_speed.py [--data-root DIR] [--k 600]
       python benchmarks/gradmatch_speed.py --baseline HEAD~1 [--budgets 600,1800,3000]
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
from _fmnist import fmnist_lenet, one_class
from _trees import compared_trees, pythonpath

from deepcore_core import GradEmbedding

CHILD = """
import sys, time, numpy as np
from deepcore_gradient_matching.omp import omp_select
d = np.load(sys.argv[1]); k = int(sys.argv[2])
t = time.perf_counter()
sel, w, _ = omp_select(d["e"], d["h"], k, 0.5)
print(time.perf_counter() - t)
np.savez(sys.argv[3], sel=sel, w=w)
"""


def against_baseline(g: GradEmbedding, baseline: str, budgets: list[int]) -> None:
    """Time both trees at each budget, alternately, in fresh single-thread processes."""
    tmp = Path(tempfile.mkdtemp(prefix="gradmatch-"))
    np.savez(tmp / "g.npz", e=g.residual, h=g.features)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with compared_trees(baseline) as trees:
        for k in budgets:
            secs: dict[str, float] = {}
            for name, tree in trees.items():
                out = tmp / f"{name}-{k}.npz"
                cmd = [sys.executable, "-c", CHILD, str(tmp / "g.npz"), str(k), str(out)]
                run = {**env, "PYTHONPATH": pythonpath(tree)}
                r = subprocess.run(cmd, env=run, capture_output=True, text=True, check=True)
                secs[name] = float(r.stdout.split()[-1])
            a, b = np.load(tmp / f"baseline-{k}.npz"), np.load(tmp / f"now-{k}.npz")
            same = a["sel"].tolist() == b["sel"].tolist()
            diff = np.abs(a["w"] - b["w"]).max() if same else float("nan")
            print(
                f"{k} picks: {baseline} {secs['baseline']:.2f} s | now {secs['now']:.2f} s | "
                f"ratio {secs['baseline'] / secs['now']:.2f}x | same picks: {same} | "
                f"max weight difference {diff:.1e}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--k", type=int, default=600)
    ap.add_argument("--baseline", help="a git revision to time against (fresh processes)")
    ap.add_argument("--budgets", default="600,1800,3000", help="picks per run, with --baseline")
    args = ap.parse_args()
    from deepcore_gradient_matching.omp import omp_reference, omp_select

    c = one_class(fmnist_lenet(args.data_root))
    g = GradEmbedding.from_outputs(c["probs"], c["labels"], c["features"])
    if args.baseline:
        against_baseline(g, args.baseline, [int(b) for b in args.budgets.split(",")])
        return
    t0 = time.perf_counter()
    sel, w, _ = omp_select(g.residual, g.features, args.k, 0.5)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_sel, ref_w = omp_reference(g.materialize().astype(np.float64), args.k, 0.5)
    t_ref = time.perf_counter() - t0
    same = sel.tolist() == ref_sel.tolist()
    print(
        f"GradMatch, one class N={len(c['labels'])}, {args.k} picks: incremental {t_ours:.2f} s"
        f" | straightforward {t_ref:.2f} s | ratio {t_ref / t_ours:.1f}x | same selection: "
        f"{same} | max weight difference "
        f"{np.abs(w - ref_w).max() if same else float('nan'):.2e}"
    )


if __name__ == "__main__":
    main()
