"""The embedding and scoring stages with one process versus several under torchrun.

Fashion-MNIST, LeNet trained one epoch and cached (seed 0), one thread per process (gloo
on the CPU; with ``--device cuda`` one GPU per process, NCCL). Each
stage is timed inside the processes (rank 0's wall time between two barriers), so process
start-up and data loading are left out: the embedding pass over the 60,000 training
images, and DeepFool's scores (``max_iter=10``) over the first ``--deepfool`` images. The
process counts (``--procs``, default 1,2) run alternately ``--rounds`` times; prints the
medians, images per second and the speed-up over the first count. Two CPU processes need
two idle cores to show one.

Usage: python benchmarks/distributed_scoring.py [--data-root DIR] [--rounds 3]
       [--deepfool 6000] [--cache DIR] [--device cpu|cuda] [--procs 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stage_times(args: argparse.Namespace) -> dict[str, float]:
    """In each process: time the two stages (rank 0 prints them as JSON)."""
    import numpy as np
    import torch

    from deepcore_core import SelectionContext, distributed
    from deepcore_core.engine.config import PretrainSpec, TrainConfig
    from deepcore_core.engine.embedding import compute_embedding
    from deepcore_core.engine.pretrain import pretrain
    from deepcore_core.plugins import PluginHost

    torch.set_num_threads(1)
    distributed.start(args.device)
    host = PluginHost()
    data = host.datasets.load("fashion-mnist", args.data_root)
    spec = PretrainSpec("lenet", 1, TrainConfig(augment=False), cache_dir=Path(args.cache))
    dev = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else None
    device = str(dev or "cpu")
    model = pretrain(data, spec, 0, device, host.networks).model
    cpu = torch.device(device)
    out: dict[str, float] = {}
    distributed.barrier()
    t0 = time.perf_counter()
    emb = compute_embedding(model, data.train, cpu)
    distributed.barrier()
    out["embedding"] = time.perf_counter() - t0
    subset = data.train.subset(np.arange(args.deepfool))
    sub = type(data)(**{**vars(data), "train": subset})
    ctx = SelectionContext(n=len(subset), labels=subset.labels, seed=0, device=device, dataset=sub)
    ctx.model = model
    deepfool = host.create_selector("deepfool", {"max_iter": 10})
    distributed.barrier()
    t0 = time.perf_counter()
    scores = deepfool.compute_scores(ctx)
    distributed.barrier()
    out["deepfool"] = time.perf_counter() - t0
    out["checksum"] = float(emb.logits.sum()) + float(scores.sum())
    return out


def main() -> None:
    """Alternate one and two processes; print the medians and the speed-ups."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deepfool", type=int, default=6000)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--procs", default="1,2", help="process counts, comma-separated")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        from deepcore_core import distributed

        times = stage_times(args)
        if distributed.is_main():
            sys.__stdout__.write("RESULT " + json.dumps(times) + "\n")
        distributed.stop()
        return
    cache = args.cache or tempfile.mkdtemp(prefix="deepcore-dist-bench-")
    child = [__file__, "--child", "--data-root", args.data_root, "--cache", cache]
    child += ["--deepfool", str(args.deepfool), "--device", args.device]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEEPCORE_PROGRESS": "0"}
    launch = {}
    for count in (int(c) for c in args.procs.split(",")):
        run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        name = f"{count} process" + ("es" if count > 1 else "")
        launch[name] = [*run, "--nproc-per-node", str(count), *child] if count > 1 else [
            sys.executable, *child,
        ]  # fmt: skip
    first = next(iter(launch))
    subprocess.run(launch[first], env=env, check=True, capture_output=True)  # the cache
    results: dict[str, list[dict[str, float]]] = {k: [] for k in launch}
    for _ in range(args.rounds):
        for name, cmd in launch.items():
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
            results[name].append(json.loads(line.removeprefix("RESULT ")))
    sums = {round(r["checksum"], 3) for rs in results.values() for r in rs}
    print(f"outputs agree across runs and process counts: {len(sums) == 1}")
    images = {"embedding": 60000, "deepfool": args.deepfool}
    print(f"device {args.device}")
    print("| stage | processes | s | images/s | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for stage in ("embedding", "deepfool"):
        base = statistics.median(r[stage] for r in results[first])
        for name, rs in results.items():
            t = statistics.median(r[stage] for r in rs)
            rate = images[stage] / t
            print(f"| {stage} | {name} | {t:.2f} | {rate:,.0f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
