"""Selection at large N without labels: the sparse k-NN path and k-center, time and memory.

Clustered float32 features (``--n`` points around ``--n // 100`` centres, ``--dim``
dimensions), unbalanced selection of ``--fraction`` through the Python API, each method in
its own process (peak resident memory is that process's, the features included). The
submodular methods use ``similarity=features`` and the sparse k-NN path (``--knn``
neighbours, found by ``--backend``); k-center runs at most ``--kcenter-picks`` picks and
extrapolates to the full budget (each pick costs the same one pass over the features).
The submodular methods report the k-NN graph stage (its time and the peak memory after it)
and the rest (kernel rows and the lazy greedy) apart. Each finished method is appended to
``--out`` as a JSON line, so an interrupted run keeps what it measured.

Usage: python benchmarks/large_n.py [--n 1000000] [--dim 128] [--fraction 0.1]
       [--methods facility-location,graph-cut,kcenter] [--backend faiss-hnsw]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _child import report, run_child


def features(n: int, dim: int) -> np.ndarray:
    """Clustered random features, seed 0."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(max(1, n // 100), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)]
    x += 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return x


def child(args: argparse.Namespace) -> None:
    """One method in this process; prints its JSON line."""
    import torch
    from threadpoolctl import threadpool_limits

    import deepcore_core as dc

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    x = features(args.n, args.dim)
    budget = round(args.fraction * args.n)
    t0 = time.perf_counter()
    if args.method == "kcenter":
        picks = min(budget, args.kcenter_picks)
        sel = dc.select("kcenter", features=x, budget=picks, balance=False)
        secs = time.perf_counter() - t0
        report(method="kcenter", picks=picks, seconds=secs, estimated_full=secs * budget / picks)
        return
    import resource

    import deepcore_core.neighbors as neighbors

    stage: dict[str, float] = {}
    search = neighbors.knn

    def timed_knn(*a: object, **kw: object) -> object:  # the k-NN graph stage, timed
        t = time.perf_counter()
        out = search(*a, **kw)  # type: ignore[arg-type]
        stage["knn_seconds"] = stage.get("knn_seconds", 0.0) + time.perf_counter() - t
        stage["peak_rss_gb_after_knn"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return out

    neighbors.knn = timed_knn  # type: ignore[assignment]
    opts = {"similarity": "features", "knn": args.knn, "knn_backend": args.backend}
    sel = dc.select(args.method, features=x, budget=budget, balance=False, options=opts)
    secs = time.perf_counter() - t0
    rest = secs - stage.get("knn_seconds", 0.0)
    report(method=args.method, picks=len(sel), seconds=secs, greedy_seconds=rest, **stage)


def main() -> None:
    """Run each method in a child process and print/append its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--methods", default="facility-location,graph-cut,kcenter")
    ap.add_argument("--knn", type=int, default=20)
    ap.add_argument("--backend", default="faiss-hnsw")
    ap.add_argument("--kcenter-picks", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="large_n.jsonl")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    size = args.n * args.dim * 4 / 2**30
    print(f"{args.n:,} x {args.dim} float32 ({size:.2f} GiB), fraction {args.fraction}")
    for m in args.methods.split(","):
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()]
        flags = [f for f in flags if not f.startswith(("--child", "--method", "--methods"))]
        res = run_child(__file__, "--child", f"--method={m}", *flags)
        res.update(n=args.n, dim=args.dim, fraction=args.fraction, backend=args.backend)
        print(json.dumps(res), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
