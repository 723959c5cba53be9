"""GradMatch: incremental OMP on implicit gradients versus a straightforward OMP.

One Fashion-MNIST class (6,000 images), LeNet last-layer gradients (C(D+1) = 850) of a model
trained 3 epochs, 10% = 600 picks, lam = 0.5. The straightforward OMP holds the explicit
gradient matrix and solves a fresh regularised NNLS at every step. Prints both times, the
ratio, and whether the selections and weights agree.

Usage: python benchmarks/gradmatch_speed.py [--data-root DIR] [--k 600]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _fmnist import fmnist_lenet, one_class

from deepcore_core import GradEmbedding
from deepcore_gradient_matching.omp import omp_reference, omp_select


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--k", type=int, default=600)
    args = ap.parse_args()
    c = one_class(fmnist_lenet(args.data_root))
    g = GradEmbedding.from_outputs(c["probs"], c["labels"], c["features"])
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
