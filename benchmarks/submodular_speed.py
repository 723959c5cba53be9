"""Submodular selection: our closed-form kernels and greedy versus submodlib.

Part 1 (one Fashion-MNIST class of 6,000 images, LeNet last-layer gradient embeddings of a
selection model trained 3 epochs, 10% = 600 picks), for graph cut and facility location:
  * ours end to end: cosine kernel from the closed form (residuals x features), then greedy;
  * submodlib from the data: the explicit 6,000 x 850 gradient matrix passed as ``data=``
    with ``metric='cosine'``, LazyGreedy (its kernel construction included);
  * submodlib given our precomputed kernel, LazyGreedy, versus our greedy on the same kernel.
Prints times, ratios and how many picks the selections share. Graph cut's ranking is the same
under cos and (1 + cos)/2, so its sets must agree; facility location's is not (submodlib's
cosine kernel from data is cos itself). On the same kernel, facility location can differ
only at exact ties (duplicate images give identical gains; we take the lower index).

Part 2: unbalanced facility location on N=200,000 x 128 random features through the sparse
k-NN path (in a fresh process for its peak memory), and on a 20,000 subset the objective of
the sparse path relative to dense greedy.

Usage: python benchmarks/submodular_speed.py [--parts 1,2] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _child import report, run_child

from deepcore_core import GradEmbedding, select
from deepcore_core.workflow import context_for_arrays


def part1(data_root: str) -> None:
    from submodlib import FacilityLocationFunction, GraphCutFunction

    from deepcore_core.engine.embedding import compute_embedding
    from deepcore_core.engine.training import TrainConfig, train_model
    from deepcore_core.plugins import PluginHost
    from deepcore_core.submodular.functions import FacilityLocation, GraphCut
    from deepcore_core.submodular.kernels import CosineBlocks
    from deepcore_core.submodular.optimizers import maximize

    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", data_root)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    net = host.networks.build("lenet", 1, 10, 28)
    net = train_model(net, data.train, TrainConfig(epochs=3, augment=False), cpu).model
    cls = np.flatnonzero(data.train.labels == 0)
    sub = data.train.subset(cls)
    emb = compute_embedding(net, sub, cpu)
    probs, feats, labels = emb.probs, emb.features, sub.labels
    n, k = len(cls), round(0.1 * len(cls))
    kw = {
        "stopIfZeroGain": False,
        "stopIfNegativeGain": False,
        "verbose": False,
        "show_progress": False,
    }
    print(
        f"one Fashion-MNIST class: N={n}, budget {k}, gradient dimension "
        f"{probs.shape[1] * (feats.shape[1] + 1)}"
    )
    for name in ("graph-cut", "facility-location"):
        t0 = time.perf_counter()
        ours = select(
            name,
            features=feats,
            logits=np.log(np.clip(probs, 1e-30, None)),
            labels=labels,
            budget=k,
            balance=False,
        ).indices
        t_ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        g = GradEmbedding.from_outputs(probs, labels, feats).materialize()
        if name == "graph-cut":
            fn = GraphCutFunction(
                n=n, mode="dense", lambdaVal=1.0, data=g, metric="cosine", separate_rep=False
            )
        else:
            fn = FacilityLocationFunction(
                n=n, mode="dense", data=g, metric="cosine", separate_rep=False
            )
        lib_data = np.array([i for i, _ in fn.maximize(budget=k, optimizer="LazyGreedy", **kw)])
        t_lib_data = time.perf_counter() - t0

        ctx = context_for_arrays(features=feats, probs=probs, labels=labels)
        kernel = CosineBlocks(ctx, np.arange(n), "gradients").dense()
        t0 = time.perf_counter()
        if name == "graph-cut":
            fn = GraphCutFunction(
                n=n, mode="dense", lambdaVal=1.0, ggsijs=kernel, separate_rep=False
            )
        else:
            fn = FacilityLocationFunction(n=n, mode="dense", sijs=kernel, separate_rep=False)
        lib_kernel = np.array([i for i, _ in fn.maximize(budget=k, optimizer="LazyGreedy", **kw)])
        t_lib_kernel = time.perf_counter() - t0
        t0 = time.perf_counter()
        obj = GraphCut(kernel, 1.0) if name == "graph-cut" else FacilityLocation(kernel)
        greedy = maximize(obj, k, "lazy", np.random.default_rng(0))
        t_greedy = time.perf_counter() - t0
        print(
            f"{name}: ours end-to-end {t_ours:.2f} s | submodlib from data {t_lib_data:.2f} s "
            f"(ratio {t_lib_data / t_ours:.1f}x, same set: "
            f"{set(ours.tolist()) == set(lib_data.tolist())}) | same kernel: ours greedy "
            f"{t_greedy:.2f} s vs submodlib {t_lib_kernel:.2f} s "
            f"(ratio {t_lib_kernel / t_greedy:.1f}x, same set: "
            f"{set(greedy.tolist()) == set(lib_kernel.tolist())})"
        )


def child_sparse(n: int, d: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(n, d).numpy()
    t0 = time.perf_counter()
    s = select(
        "facility-location",
        features=x,
        budget=n // 10,
        balance=False,
        options={"similarity": "features", "knn": 50, "dense_limit": 20000},
    )
    seconds = time.perf_counter() - t0
    report(n=n, seconds=seconds, selected=len(s))


def part2() -> None:
    r = run_child(__file__, "--child-sparse", "200000", "128")
    print(
        f"facility location, N=200,000 x 128, 10% ({r['selected']} picks), sparse 50-NN path: "
        f"{r['seconds']:.1f} s, peak {r['peak_rss_gb']:.2f} GB"
    )
    torch.manual_seed(0)
    x = torch.randn(200_000, 128).numpy()[:20000]
    opts = {"similarity": "features"}
    dense = select(
        "facility-location",
        features=x,
        budget=2000,
        balance=False,
        options={**opts, "dense_limit": 20000},
    ).indices
    sparse = select(
        "facility-location",
        features=x,
        budget=2000,
        balance=False,
        options={**opts, "dense_limit": 1000, "knn": 50},
    ).indices
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)

    def objective(idx: np.ndarray) -> float:
        total = 0.0
        for lo in range(0, len(x), 4096):
            total += float(((1 + xn[lo : lo + 4096] @ xn[idx].T) / 2).max(1).sum())
        return total

    print(
        f"20,000 subset, 2,000 picks: sparse-path objective / dense greedy objective = "
        f"{objective(sparse) / objective(dense):.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="1,2")
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--child-sparse", nargs=2, type=int)
    args = ap.parse_args()
    if args.child_sparse:
        child_sparse(*args.child_sparse)
        return
    print(f"{torch.get_num_threads()} threads")
    if "1" in args.parts:
        part1(args.data_root)
    if "2" in args.parts:
        part2()


if __name__ == "__main__":
    main()
