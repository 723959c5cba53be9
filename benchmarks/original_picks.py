"""Where deepcore's picks differ from the original DeepCore code's under the same rules.

Runs, like ``selection_speed.py --original-code DIR --variant original`` (same cached
selection model, data and protocol; ``benchmarks/_original.py`` says how the original runs),
three checks of the differences that remain:

- k-center: the original draws each class's first centre with ``np.random.seed(seed)`` and
  ``randint(0, class size)``; deepcore's k-center, given those centres as ``initial``, should
  pick the original's other picks.
- GraNd and Glister: the original's per-sample gradients carry a 1/batch factor (its loss is
  a batch mean), which inflates its loaders' last, partial batch of 256 (GraNd: one loader
  over the dataset; Glister: one per class). With ``loss_batch`` off, prints how many of the
  picks only one side makes lie in those batches; then with the variant's ``loss_batch=256``
  (the same factor), how many picks the two share.

Usage: python benchmarks/original_picks.py --original-code DIR [--cache-dir DIR]
       [--data-root DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from selection_speed import METHODS, ROOT, measure, measure_original

#: the original's selection batch (``benchmarks/_original.py``)
BATCH = 256


def last_batch(order: np.ndarray) -> np.ndarray:
    """The samples of a loader over ``order`` that fall in its last, partial batch."""
    rest = len(order) % BATCH
    return order[len(order) - rest :] if rest else order[:0]


def compare(name: str, ours: list[int], orig: list[int], inflated: set[int]) -> None:
    """Print the picks in common and where the others lie."""
    a, b = set(ours), set(orig)
    only_o, only_us = b - a, a - b
    print(
        f"{name:37s} | shared {len(a & b)} of {len(b)} | only the original's "
        f"{len(only_o)}, in an inflated batch {len(only_o & inflated)} | only deepcore's "
        f"{len(only_us)}, in an inflated batch {len(only_us & inflated)}",
        flush=True,
    )


def main() -> None:
    """Run the checks and print one line each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--original-code", required=True)
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    args.cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="deepcore-picks-cache-")
    args.fraction, args.device, args.variant, args.original_workers = 0.1, "cpu", "original", 2
    from deepcore_core.plugins import PluginHost

    labels = np.asarray(PluginHost().datasets.load("fashion-mnist", args.data_root).train.labels)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    measure(ROOT, "margin", args, embed=False)  # trains and caches the selection model

    rng = np.random.RandomState(0)  # the original's seed 0, re-seeded for every class
    first = []
    for members in classes:
        rng.seed(0)
        first.append(members[rng.randint(0, len(members))])
    init = Path(args.cache_dir) / "original-first-centres.npy"
    np.save(init, np.array(first))
    ours = measure(ROOT, "kcenter", args, embed=False, options={"initial": str(init)})
    orig = measure_original("kcenter", args)
    compare("kcenter from its centres", ours["picks"] + first, orig["picks"], set())

    dataset_tail = set(last_batch(np.arange(len(labels))).tolist())
    class_tails = set(np.concatenate([last_batch(m) for m in classes]).tolist())
    for method, inflated in (("grand", dataset_tail), ("glister:update=false", class_tails)):
        orig = measure_original(method, args)["picks"]
        plain = {**METHODS.get(method, {}), "loss_batch": None}
        ours = measure(ROOT, method, args, embed=False, options=plain)
        compare(f"{method}, loss_batch off", ours["picks"], orig, inflated)
        ours = measure(ROOT, method, args, embed=False)
        compare(f"{method}, loss_batch=256", ours["picks"], orig, inflated)


if __name__ == "__main__":
    main()
