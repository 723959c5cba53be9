"""What a weighted method's weights do: their distribution, and the same coresets trained with
and without them (and, optionally, at a tenth of the learning rate).

Reads the selections a benchmark grid wrote (run the grid first), so the coresets are exactly
the ones in docs/results/fashion-mnist/, and trains them as the grid does (its network, its
training settings, the run's seed). The weighted rows reproduce the grid's accuracies when
``--threads`` is the thread count the grid's runs had (torch's sums depend on it).

    python benchmarks/coreset_weights.py --config docs/results/fashion-mnist/grid.yaml \
        --method gradmatch --fractions 0.005,0.01,0.05,0.1,0.3,0.5,0.7 --seed 0
    python benchmarks/coreset_weights.py \
        --config docs/results/fashion-mnist/lenet-40-epochs/grid-more.yaml \
        --method craig --fractions 0.05 --lower-lr
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from deepcore_core.engine.devices import seed_everything
from deepcore_core.engine.training import train_model
from deepcore_core.errors import TrainingDiverged
from deepcore_core.experiment import Experiment, make_config
from deepcore_core.plugins import PluginHost
from deepcore_core.selection import Selection
from deepcore_core.settings import RunSettings, load_yaml, resolve_paths


def load_selection(out: Path, method: str, fraction: float, seed: int) -> Selection:
    found = sorted((out / "selections").glob(f"{method}-f{fraction:g}-s{seed}-*.npz"))
    if not found:
        raise SystemExit(f"no {method} selection at {fraction:g}, seed {seed} under {out}")
    return Selection.load(found[0])


def weight_summary(w: np.ndarray) -> str:
    top = np.sort(w)[-max(1, len(w) // 100) :].sum() / w.sum()
    ess = w.sum() ** 2 / (w**2).sum() / len(w)
    return (
        f"median {np.median(w):.3g}, max {w.max():.4g}, top 1% of picks hold "
        f"{100 * top:.1f}% of the weight, effective size {100 * ess:.0f}% of the picks"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="docs/results/fashion-mnist/grid.yaml")
    ap.add_argument("--method", default="gradmatch", help="a method whose picks carry weights")
    ap.add_argument("--fractions", default="0.05", help="comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lower-lr", action="store_true", help="also weighted at lr / 10")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    values = resolve_paths(RunSettings, load_yaml(args.config), Path(args.config).parent)
    cfg = make_config(values)
    exp = Experiment(cfg, PluginHost(), log=lambda m: None)
    network = cfg.networks[0]
    base = cfg.train_config(args.seed)
    variants = [("weighted", True, base), ("unweighted", False, base)]
    if args.lower_lr:
        lr = base.lr / 10
        low = dataclasses.replace(base, lr=lr, min_lr=min(base.min_lr, lr))
        variants.append((f"weighted, lr {lr:g}", True, low))
    print(f"{args.method}, seed {args.seed}, {network}, test accuracy after training:")
    for fraction in (float(f) for f in args.fractions.split(",")):
        sel = load_selection(Path(cfg.output), args.method, fraction, args.seed)
        print(f"{fraction:g}: {len(sel.indices)} picks, {weight_summary(sel.weights)}")
        train = exp.data.train.subset(sel.indices)
        for label, weighted, config in variants:
            seed_everything(args.seed)
            net = exp.host.networks.build(
                network, exp.data.channels, exp.data.num_classes, exp.data.image_size
            )
            weights = sel.weights if weighted else None
            try:
                r = train_model(net, train, config, exp.device, weights=weights, test=exp.data.test)
                print(f"  {label}: {100 * (r.final_accuracy or 0.0):.2f}%", flush=True)
            except TrainingDiverged:
                print(f"  {label}: diverged", flush=True)


if __name__ == "__main__":
    main()
