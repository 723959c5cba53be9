"""Why Craig's weighted coresets collapse at lr 0.1: its weight distribution, and the same
coreset trained with and without weights, at lr 0.1 and 0.01.

Reads the selections a benchmark grid wrote (run the grid first), so the coresets are exactly
the ones in docs/results/fashion-mnist/:

    python benchmarks/craig_weights.py --config docs/results/fashion-mnist/grid-more.yaml \
        --fraction 0.05 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from deepcore_core.config import load_yaml
from deepcore_core.engine.devices import seed_everything
from deepcore_core.engine.training import train_model
from deepcore_core.errors import TrainingDiverged
from deepcore_core.experiment import Experiment, make_config
from deepcore_core.plugins import PluginHost
from deepcore_core.selection import Selection


def load_selection(out: Path, method: str, fraction: float, seed: int) -> Selection:
    found = sorted((out / "selections").glob(f"{method}-f{fraction:g}-s{seed}-*.npz"))
    if not found:
        raise SystemExit(f"no {method} selection at {fraction:g}, seed {seed} under {out}")
    return Selection.load(found[0])


def weight_summary(w: np.ndarray) -> str:
    top = np.sort(w)[-max(1, len(w) // 100) :].sum() / w.sum()
    return (
        f"{len(w)} picks, median {np.median(w):.3g}, max {w.max():.4g}, "
        f"top 1% of picks hold {100 * top:.1f}% of the weight"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="docs/results/fashion-mnist/grid-more.yaml")
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = make_config(load_yaml(args.config))
    exp = Experiment(cfg, PluginHost(), log=lambda m: None)
    out = Path(cfg.output)
    for method in ("craig", "gradmatch"):
        sel = load_selection(out, method, args.fraction, args.seed)
        where = f"{args.fraction:g}, seed {args.seed}"
        print(f"{method} weights at {where}: {weight_summary(sel.weights)}")
    sel = load_selection(out, "craig", args.fraction, args.seed)
    train = exp.data.train.subset(sel.indices)
    print(f"craig coreset, LeNet {cfg.epochs} epochs, test accuracy after the last epoch:")
    for label, weights, lr in (
        ("weighted, lr 0.1", sel.weights, 0.1),
        ("unweighted, lr 0.1", None, 0.1),
        ("weighted, lr 0.01", sel.weights, 0.01),
    ):
        config = dataclasses.replace(cfg.train_config(args.seed), lr=lr, min_lr=min(cfg.min_lr, lr))
        seed_everything(args.seed)
        net = exp.host.networks.build(
            "lenet", exp.data.channels, exp.data.num_classes, exp.data.image_size
        )
        try:
            r = train_model(net, train, config, exp.device, weights=weights, test=exp.data.test)
            print(f"  {label}: {100 * r.final_accuracy:.2f}%")
        except TrainingDiverged:
            print(f"  {label}: diverged")


if __name__ == "__main__":
    main()
