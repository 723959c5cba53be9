"""Four choices of the selection stage, each measured side by side with its alternative.

1. The embedding pass's batch on a CPU: ``compute_embedding`` at batch 128 and at 512,
   interleaved ``--rounds`` times, over the 60,000 Fashion-MNIST training images for LeNet
   (trained one epoch) and over 4,096 of them for ResNet-20 (random weights: the
   arithmetic, not the values, sets the time). Prints the medians, the ratio, whether the
   outputs are equal bit for bit and which batch is the network's CPU default
   (``Network.cpu_batch``).
2. Pool kernels in fresh memory or in the selection's scratch matrix: ten 6,000 x 6,000
   cosine kernels over random features, built by ``CosineBlocks.dense_tensor()`` and by
   ``dense_tensor(reuse=True)``, interleaved; prints the medians, the ratio and whether the
   kernels are equal.
3. LeNet's first convolution, ReLU and pooling through its four phases (``PhasedConvPool``)
   or through the plain modules: ``compute_embedding`` over the 60,000 Fashion-MNIST
   training images (LeNet trained one epoch) and over 20,000 random 3 x 32 x 32 images
   (a random LeNet for colour images), interleaved; prints the medians, the ratio and
   whether the outputs are equal bit for bit.
4. Freed memory kept in the process (``keep_freed_memory``, as every command sets it) or
   glibc's default allocator (``DEEPCORE_KEEP_FREED_MEMORY=0``), as ``deepcore select``
   runs without a cached model: LeNet trained one epoch on 10,000 Fashion-MNIST images, then
   the embedding pass over the 60,000; each variant in a fresh interpreter (the setting is
   the process's), the two alternating. Prints each stage's median and slowest seconds,
   page faults and ratio, and whether the outputs are equal.

Usage: python benchmarks/memory_and_batch.py [--data-root DIR] [--rounds 5] [--threads 2]
       [--parts 1,2,3,4]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepcore_core import CosineBlocks
from deepcore_core.context import SelectionContext
from deepcore_core.data.sources import Source, TensorSource
from deepcore_core.engine.embedding import compute_embedding, default_batch_size
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost

CPU = torch.device("cpu")


def interleaved(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list]:
    """Seconds and the last result of each variant, the variants alternating."""
    out: dict[str, list] = {k: [[], None] for k in variants}
    for _ in range(rounds):
        for k, f in variants.items():
            t0 = time.perf_counter()
            out[k][1] = f()
            out[k][0].append(time.perf_counter() - t0)
    return out


def show(label: str, res: dict[str, list], same: bool) -> None:
    """One line: medians, ratio first / second, and equality."""
    (a, ra), (b, rb) = ((k, statistics.median(v[0])) for k, v in res.items())
    print(f"{label}: {a} {ra:.2f} s, {b} {rb:.2f} s, ratio {ra / rb:.2f}x, equal: {same}")


@functools.cache
def fashion_lenet(data_root: str) -> tuple[PluginHost, Any, torch.nn.Module]:
    """The host, Fashion-MNIST and a LeNet trained one epoch on it (seed 0), built once."""
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", data_root)
    torch.manual_seed(0)
    lenet = host.networks.build("lenet", 1, 10, 28)
    lenet = train_model(lenet, data.train, TrainConfig(epochs=1, augment=False), CPU).model
    return host, data, lenet


def same_embedding(res: dict[str, list]) -> bool:
    """Whether the last results of the two variants are equal bit for bit."""
    (_, x), (_, y) = res.values()
    return np.array_equal(x.features, y.features) and np.array_equal(x.logits, y.logits)


def batch_part(data_root: str, rounds: int) -> None:
    """Embedding pass at batch 128 against 512, for a small and a large network."""
    host, data, lenet = fashion_lenet(data_root)
    torch.manual_seed(0)
    resnet = host.networks.build("resnet20", 1, 10, 28)
    cases: list[tuple[str, torch.nn.Module, Source]] = [
        ("lenet, 60,000 images", lenet, data.train),
        ("resnet20, 4,096 images", resnet, data.train.subset(np.arange(4096))),
    ]
    for label, net, source in cases:
        res = interleaved(
            {
                f"batch {b}": lambda n=net, s=source, b=b: compute_embedding(n, s, CPU, b)
                for b in (128, 512)
            },
            rounds,
        )
        show(f"{label} (CPU default {default_batch_size(CPU, net)})", res, same_embedding(res))


def kernel_part(rounds: int, n: int = 6000, classes: int = 10) -> None:
    """Ten pool kernels in fresh memory against the selection's scratch matrix."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n * classes, 84)).astype(np.float32) + 1.0
    ctx = SelectionContext(n=n * classes, features=feats)
    pools = [np.arange(c * n, (c + 1) * n) for c in range(classes)]

    def build(reuse: bool) -> float:
        total = 0.0
        for pool in pools:  # each kernel dropped before the next, as the greedy does
            total += float(CosineBlocks(ctx, pool, "features").dense_tensor(reuse=reuse)[0, 1])
        return total

    res = interleaved({"fresh": lambda: build(False), "reused": lambda: build(True)}, rounds)
    last = CosineBlocks(ctx, pools[-1], "features")
    same = torch.equal(last.dense_tensor(), last.dense_tensor(reuse=True))
    show(f"{classes} kernels of {n} x {n}", res, same)


def phases_part(data_root: str, rounds: int) -> None:
    """The embedding pass with LeNet's first stage plain against through column phases."""
    host, data, gray = fashion_lenet(data_root)
    torch.manual_seed(0)
    colour = host.networks.build("lenet", 3, 10, 32)
    images = (torch.rand(20000, 3, 32, 32) * 255).to(torch.uint8)
    rgb = TensorSource(images, torch.zeros(20000, dtype=torch.int64), (0.5, 0.5, 0.5), (0.25,) * 3)
    cases: list[tuple[str, torch.nn.Module, Source]] = [
        ("lenet, 60,000 images 1 x 28 x 28", gray, data.train),
        ("lenet, 20,000 images 3 x 32 x 32", colour, rgb),
    ]
    for label, net, source in cases:
        feats = net.body[0]
        stage = feats.first_stage

        def run(n: torch.nn.Module = net, s: Source = source, first: int = 0) -> object:
            n.body[0].first_stage = first
            return compute_embedding(n, s, CPU)

        res = interleaved({"plain": run, "phases": lambda r=run, k=stage: r(first=k)}, rounds)
        feats.first_stage = stage
        show(label, res, same_embedding(res))


def allocator_child(data_root: str, threads: int) -> None:
    """In a fresh interpreter, as ``deepcore select`` without a cached model: LeNet trained
    one epoch on 10,000 images (seed 0), then one embedding pass over the 60,000; prints one
    JSON line (each stage's seconds and page faults, whether memory is kept, an output hash)."""
    from deepcore_core.engine.devices import setup_cpu

    setup_cpu(threads)  # the threads and the allocator, as every command sets them
    from deepcore_core.engine.allocator import keep_freed_memory

    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", data_root)
    torch.manual_seed(0)
    net = host.networks.build("lenet", 1, 10, 28)
    subset = data.train.subset(np.arange(10000))
    out: dict[str, Any] = {"kept": keep_freed_memory()}

    def stage(name: str, f: Callable[[], Any]) -> Any:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        result = f()
        out[name] = time.perf_counter() - t0
        out[f"{name} faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        return result

    cfg = TrainConfig(epochs=1, augment=False)
    net = stage("train", lambda: train_model(net, subset, cfg, CPU).model)
    emb = stage("embed", lambda: compute_embedding(net, data.train, CPU))
    out["hash"] = hashlib.sha256(emb.features.tobytes() + emb.logits.tobytes()).hexdigest()
    print(json.dumps(out))


def allocator_part(data_root: str, rounds: int, threads: int) -> None:
    """Training then the embedding pass, freed memory kept against glibc's default, each in
    fresh interpreters, alternating."""
    cmd = [sys.executable, __file__, "--allocator-child", "--data-root", data_root]
    cmd += ["--threads", str(threads)]
    res: dict[str, list[dict]] = {"glibc default": [], "kept": []}
    for _ in range(rounds):
        for k in res:
            env = {**os.environ, "DEEPCORE_KEEP_FREED_MEMORY": "1" if k == "kept" else "0"}
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            res[k].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for name in ("train", "embed"):
        line = []
        for k, v in res.items():
            secs = sorted(r[name] for r in v)
            faults = statistics.median(r[f"{name} faults"] for r in v)
            slowest = max(v, key=lambda r: r[name])
            line.append(
                f"{k} median {statistics.median(secs):.2f} s ({faults:.0f} page faults), "
                f"slowest {secs[-1]:.2f} s ({slowest[f'{name} faults']} page faults)"
            )
        ratio = statistics.median(r[name] for r in res["glibc default"]) / statistics.median(
            r[name] for r in res["kept"]
        )
        print(f"lenet, {name}: " + "; ".join(line) + f"; ratio of medians {ratio:.2f}x")
    same = len({r["hash"] for v in res.values() for r in v}) == 1
    print(f"kept in the children: {all(r['kept'] for r in res['kept'])}; outputs equal: {same}")


def main() -> None:
    """Run the chosen parts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="1,2,3,4")
    ap.add_argument("--allocator-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.allocator_child:
        allocator_child(args.data_root, args.threads)
        return
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    print(f"{args.threads} thread(s), {args.rounds} interleaved rounds")
    if "1" in parts:
        batch_part(args.data_root, args.rounds)
    if "2" in parts:
        kernel_part(args.rounds)
    if "3" in parts:
        phases_part(args.data_root, args.rounds)
    if "4" in parts:
        allocator_part(args.data_root, args.rounds, args.threads)


if __name__ == "__main__":
    main()
