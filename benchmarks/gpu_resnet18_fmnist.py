"""GPU check: train ResNet-18 on Fashion-MNIST for a few epochs on CUDA and report images/s.

The data live on the GPU as one uint8 tensor (no loader in the loop); AMP and channels_last
are on. Copy the four Fashion-MNIST .gz files into a folder and pass it as --data-root.

Usage: python benchmarks/gpu_resnet18_fmnist.py --data-root data/fashion-mnist [--epochs 3]
"""

from __future__ import annotations

import argparse

import torch

from deepcore_core.engine.devices import resolve_device, seed_everything
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="data/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    dev = resolve_device("cuda")
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", args.data_root)
    train, test = data.train.to(dev), data.test.to(dev)
    seed_everything(0)
    net = host.networks.build("resnet18", data.channels, data.num_classes, data.image_size)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, augment=False)
    res = train_model(net, train, cfg, dev, test=test, desc="resnet18 fmnist cuda")
    print(
        f"{torch.cuda.get_device_name(dev)}: ResNet-18 on Fashion-MNIST, {args.epochs} epochs, "
        f"batch {args.batch_size}: {res.images_per_second:.0f} images/s, "
        f"test accuracy {100 * (res.final_accuracy or 0):.2f}%"
    )


if __name__ == "__main__":
    main()
