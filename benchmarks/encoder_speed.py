"""The label-free stages' speed on the CPU and on CUDA, side by side in one run.

Over the 60,000 Fashion-MNIST training images held in memory: the encoder pass through
the embedding store (LeNet-BN's penultimate features, and torchvision's ResNet-18 at 28 x 28
with the grey channel repeated; random weights: the speed does not depend on them) and
k-means (k = 10 and 100, at most 20 Lloyd iterations from the same k-means++ start) on the
84-d LeNet-BN embeddings. Each measurement is the median of ``--rounds`` runs; prints images
(or rows) per second per device and the ratio CUDA / CPU where a GPU is present.

Usage: python benchmarks/encoder_speed.py [--data-root DIR] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepcore_core.clustering import kmeans, plusplus
from deepcore_core.context import SelectionContext
from deepcore_core.encoders import encode
from deepcore_core.plugins import PluginHost


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Any, device: str, rounds: int) -> float:
    """The median seconds of ``rounds`` calls (after one untimed call on CUDA)."""
    if device.startswith("cuda"):
        fn()
    times = []
    for _ in range(rounds):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class _Fixed:
    """An encoder around a built network (random weights), for the speed of the pass."""

    def __init__(self, name: str, module: torch.nn.Module, prepare: Any = None) -> None:
        from deepcore_core.encoders import PoolingOptions

        self.label, self._module, self._prepare = name, module, prepare
        self.options = PoolingOptions()

    def module(self, ctx: Any) -> torch.nn.Module:
        return self._module.eval().to(ctx.device)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x if self._prepare is None else self._prepare(x)

    def identity(self, ctx: Any) -> dict[str, Any]:
        return {"encoder": self.label, "nonce": time.perf_counter_ns()}  # never cached

    def transform(self, ctx: Any) -> str:
        return "dataset"

    def describe(self) -> dict[str, Any]:
        return {"name": self.label}


def encoders(host: PluginHost) -> dict[str, _Fixed]:
    """LeNet-BN's features and ResNet-18 without its head."""
    import torchvision

    from deepcore_core.encoders import drop_head

    lenet = host.networks.build("lenet-bn", 1, 10, 28)

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = lenet

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.forward_with_features(x)[1]

    resnet = drop_head(torchvision.models.resnet18(weights=None))
    return {
        "lenet-bn": _Fixed("lenet-bn", Features()),
        "resnet18": _Fixed("resnet18", resnet, lambda x: x.expand(-1, 3, -1, -1)),
    }


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", args.data_root)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    rows: dict[str, dict[str, float]] = {}
    feats: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, enc in encoders(host).items():
            for dev in devices:
                ctx = SelectionContext(n=len(data.train), seed=0, device=dev, dataset=data,
                                       cache_dir=Path(cache))  # fmt: skip
                ctx.encoder = enc
                seconds = timed(functools.partial(_encode, ctx, feats, name), dev, args.rounds)
                rows.setdefault(f"encode {name} (images/s)", {})[dev] = len(data.train) / seconds
    x = feats["lenet-bn"]
    for k in (10, 100):
        start = plusplus(x, k, np.random.default_rng(0))
        for dev in devices:
            run = functools.partial(kmeans, x, k, 0, iters=20, init=start, device=dev)
            label = f"k-means k={k}, <= 20 iterations (rows/s)"
            rows.setdefault(label, {})[dev] = len(x) / timed(run, dev, args.rounds)
    cuda = len(devices) > 1
    print(f"{'stage':<44} " + " ".join(f"{d:>12}" for d in devices) + ("  cuda/cpu" * cuda))
    for stage, by in rows.items():
        line = f"{stage:<44} " + " ".join(f"{by[d]:>12.0f}" for d in devices)
        print(line + (f"  {by['cuda'] / by['cpu']:8.1f}x" if cuda else ""))
    if not cuda:
        print("(no CUDA device: CPU only)")


def _encode(ctx: SelectionContext, out: dict[str, np.ndarray], name: str) -> None:
    out[name] = np.asarray(encode(ctx), np.float32)


if __name__ == "__main__":
    main()
