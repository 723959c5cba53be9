"""Training-engine throughput versus a bare hand-written PyTorch loop (the ceiling).

LeNet on Fashion-MNIST held in memory, batch 128, SGD Nesterov with the per-iteration cosine,
no augmentation. Runs are interleaved (bare, engine, engine+dynamics) to share the noise of a
busy machine; prints images/s of each and the ratios.

Usage: python benchmarks/engine_throughput.py [--data-root DIR] [--rounds 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost


def bare_loop(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    mean: float,
    std: float,
    cfg: TrainConfig,
) -> float:
    """The ceiling: the simplest correct loop over the same in-memory tensors."""
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4, nesterov=True
    )
    n = len(images)
    iters = math.ceil(n / cfg.batch_size)
    total = iters * cfg.epochs
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(iters):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = (images[idx].float() / 255.0 - mean) / std
            for g in opt.param_groups:
                g["lr"] = cfg.lr_at(epoch * iters + i, total)
            loss = nn.functional.cross_entropy(model(x), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return n * cfg.epochs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", args.data_root)
    cfg = TrainConfig(epochs=args.epochs, augment=False)
    mean, std = float(data.train.mean.flatten()[0]), float(data.train.std.flatten()[0])

    def net() -> nn.Module:
        torch.manual_seed(0)
        return host.networks.build("lenet", 1, 10, 28)

    results: dict[str, list[float]] = {"bare": [], "engine": [], "engine+dynamics": []}
    cpu = torch.device("cpu")
    for _ in range(args.rounds):
        results["bare"].append(
            bare_loop(net(), data.train.images, data.train.targets, mean, std, cfg)
        )
        results["engine"].append(train_model(net(), data.train, cfg, cpu).images_per_second)
        results["engine+dynamics"].append(
            train_model(net(), data.train, cfg, cpu, record_dynamics=True).images_per_second
        )
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"LeNet / Fashion-MNIST, {args.rounds} interleaved rounds of {args.epochs} epoch(s), "
        f"{torch.get_num_threads()} threads"
    )
    for k, v in med.items():
        print(f"  {k:16s} {v:9.0f} images/s  (runs: {', '.join(f'{x:.0f}' for x in results[k])})")
    print(f"ratio engine / bare:          {med['engine'] / med['bare']:.3f}")
    print(f"ratio engine+dynamics / bare: {med['engine+dynamics'] / med['bare']:.3f}")


if __name__ == "__main__":
    main()
