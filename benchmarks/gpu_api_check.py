"""Every installed method through the Python API on CUDA and on the CPU: same results?

The dataset and model are ones deepcore never saw (``deepcore_core.testing.ImageBlobs`` and
``OddNet``); forgetting-style methods get an engine-trained selection model. For each method
it prints whether the picks are identical and, for score methods, the largest score
difference relative to the score range. Needs a CUDA GPU; exits 2 without one.

Usage: python benchmarks/gpu_api_check.py [--n 600] [--fraction 0.1] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
import torch

import deepcore_core as dc
from deepcore_core import Need, PluginHost
from deepcore_core.testing import ImageBlobs, OddNet


def run(method: str, device: str, ds: ImageBlobs, host: PluginHost, cache: str, f: float):
    info = host.method(method)
    kw = {"fraction": f, "device": device, "host": host, "seed": 0}
    if Need.DYNAMICS in info.cls.needs:
        return dc.select(
            method, dataset=ds, selection_network="mlp", selection_epochs=3, cache_dir=cache, **kw
        )
    return dc.select(method, dataset=ds, model=OddNet(), **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--device", default="cuda", help="compared with the CPU (cpu: a dry run)")
    args = ap.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to compare", file=sys.stderr)
        return 2
    host = PluginHost(load_entrypoints=True, strict=True)
    ds = ImageBlobs(n=args.n)
    failed = 0
    for method in host.registry.names():
        with tempfile.TemporaryDirectory() as cpu_cache, tempfile.TemporaryDirectory() as gpu_cache:
            cpu = run(method, "cpu", ds, host, cpu_cache, args.fraction)
            gpu = run(method, args.device, ds, host, gpu_cache, args.fraction)
        same = np.array_equal(np.sort(cpu.indices), np.sort(gpu.indices))
        note = ""
        if cpu.scores is not None and gpu.scores is not None:
            span = float(np.ptp(cpu.scores)) or 1.0
            note = f" max score diff {np.abs(cpu.scores - gpu.scores).max() / span:.2e} of range"
        overlap = len(np.intersect1d(cpu.indices, gpu.indices)) / max(1, len(cpu))
        print(f"{method:22s} picks identical: {same}  overlap {overlap:.3f}{note}", flush=True)
        failed += overlap < 0.9
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
