"""Nearest-neighbour backends side by side: time and recall@k of FAISS against exact search.

Clustered float32 features (``--n`` points around ``--n // 50`` centres, ``--dim``
dimensions), k nearest neighbours of every point, Euclidean, each row's own index
excluded. Recall@k is the share of the exact neighbours that a backend returns.

Usage: python benchmarks/knn_backends.py [--n 50000] [--dim 128] [--k 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from deepcore_core.neighbors import knn


def main() -> None:
    """Print one line per backend."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(max(1, args.n // 50), args.dim))
    x = centres[rng.integers(0, len(centres), args.n)] + 0.5 * rng.normal(size=(args.n, args.dim))
    x = x.astype(np.float32)
    print(f"{args.n:,} x {args.dim} float32, k = {args.k}, {args.threads} thread(s)")
    exact = None
    for backend in ("exact", "faiss", "faiss-hnsw"):
        t0 = time.perf_counter()
        _, idx = knn(x, args.k, backend=backend)
        secs = time.perf_counter() - t0
        if exact is None:
            exact = idx
        hits = sum(len(set(a) & set(b)) for a, b in zip(exact, idx, strict=True))
        print(f"{backend:11s} {secs:8.1f} s  recall@{args.k} {hits / exact.size:.4f}", flush=True)


if __name__ == "__main__":
    main()
