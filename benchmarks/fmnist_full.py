"""Train LeNet on all of Fashion-MNIST with the default protocol shortened to 20 epochs.

Usage: python benchmarks/fmnist_full.py [--data-root DIR] [--epochs 20] [--out FILE]
Prints the test accuracy and time; writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from deepcore_core.engine.devices import resolve_device, seed_everything
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="docs/results/fmnist-lenet-full.json")
    args = ap.parse_args()
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", args.data_root)
    dev = resolve_device(args.device)
    seed_everything(args.seed)
    net = host.networks.build("lenet", data.channels, data.num_classes, data.image_size)
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, eval_every=5)
    t0 = time.perf_counter()
    res = train_model(net, data.train, cfg, dev, test=data.test, desc="lenet fmnist")
    out = {
        "dataset": "fashion-mnist",
        "network": "lenet",
        "train": cfg.__dict__,
        "test_accuracy": res.final_accuracy,
        "best_accuracy": res.best_accuracy,
        "seconds": time.perf_counter() - t0,
        "images_per_second": res.images_per_second,
        "history": res.history,
        "device": str(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    print(
        f"test accuracy {100 * res.final_accuracy:.2f}% after {args.epochs} epochs, "
        f"{out['seconds']:.0f} s, {res.images_per_second:.0f} images/s"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
