"""The embedding pass versus a bare ``torch.inference_mode()`` forward loop (the ceiling).

LeNet (trained one epoch, seed 0) over the 60,000 Fashion-MNIST training images held in
memory, features and logits kept, one thread; the bare loop at batch ``--batch`` (512, as
the performance issue measured it), the engine at its own default (128 on a CPU). The two
run alternately ``--rounds`` times (a busy machine's noise hits both); prints the medians
and the ratio bare / engine (1.0: the engine costs nothing over the bare loop).

With ``--device cuda`` both run on the GPU over the images already in its memory (the
source moved there once, as the bare loop's tensor), after one untimed pass of each (CUDA's
and cuDNN's start-up), each timed pass ending with a synchronisation.

Usage: python benchmarks/embedding_pass.py [--data-root DIR] [--rounds 5] [--threads 1]
       [--batch 512] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deepcore_core.engine.embedding import compute_embedding
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(net: torch.nn.Module, images: torch.Tensor, mean: float, std: float, batch: int) -> float:
    """Seconds for the simplest loop that keeps the same outputs (on the images' device)."""
    _sync(images.device)
    t0 = time.perf_counter()
    feats, logits = [], []
    with torch.inference_mode():
        for lo in range(0, len(images), batch):
            x = (images[lo : lo + batch].float() / 255.0 - mean) / std
            out, h = net.forward_with_features(x)
            feats.append(h)
            logits.append(out)
        torch.cat(feats).cpu().numpy(), torch.cat(logits).cpu().numpy()
    return time.perf_counter() - t0


def main() -> None:
    """Print the medians and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=512, help="the bare loop's batch size")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", args.data_root)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    net = host.networks.build("lenet", 1, 10, 28)
    net = train_model(net, data.train, TrainConfig(epochs=1, augment=False), cpu).model.eval()
    mean, std = float(data.train.mean.flatten()[0]), float(data.train.std.flatten()[0])
    device = torch.device(args.device)
    net, source = net.to(device), data.train.to(device)
    times: dict[str, list[float]] = {"bare": [], "engine": []}
    warm = device.type == "cuda"
    for r in range(args.rounds + warm):
        t_bare = bare(net, source.images, mean, std, args.batch)
        _sync(device)
        t0 = time.perf_counter()
        compute_embedding(net, source, device)
        _sync(device)
        if r >= warm:  # on CUDA the first pass of each is start-up, not timed
            times["bare"].append(t_bare)
            times["engine"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"bare loop {med['bare']:.2f} s, embedding pass {med['engine']:.2f} s, "
        f"ratio {med['bare'] / med['engine']:.2f} ({args.threads} thread(s), {args.rounds} rounds, "
        f"bare batch {args.batch}, {device})"
    )


if __name__ == "__main__":
    main()
