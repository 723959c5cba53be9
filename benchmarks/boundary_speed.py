"""DeepFool and Cal on Fashion-MNIST with LeNet.

DeepFool: our batched top-k version on all 60,000 training images (images/s), and, on a
subset, versus a per-sample reference that takes one backward pass per class per iteration
(the original's cost model), as a time ratio on the same subset with the distances compared.
Cal: the k-nearest-neighbour search over all 60,000 samples (unbalanced, k=10), time and
peak memory, in a fresh process.

Usage: python benchmarks/boundary_speed.py [--data-root DIR] [--subset 300] [--skip-full]
"""

from __future__ import annotations

import argparse
import time

import torch
from _child import report, run_child
from _fmnist import fmnist_lenet

from deepcore_boundary.deepfool import deepfool_batch


def reference_deepfool(
    model: torch.nn.Module, x: torch.Tensor, max_iter: int = 50, overshoot: float = 0.02
) -> torch.Tensor:
    """One sample at a time, one backward pass per class per iteration, all classes."""
    out = []
    for i in range(len(x)):
        xi = x[i : i + 1]
        with torch.no_grad():
            k0 = int(model(xi).argmax())
        r = torch.zeros_like(xi)
        for _ in range(max_iter):
            xa = (xi + (1 + overshoot) * r).requires_grad_(True)
            f = model(xa)[0]
            if int(f.argmax()) != k0:
                break
            grads = [torch.autograd.grad(f[c], xa, retain_graph=True)[0] for c in range(len(f))]
            best, step = None, None
            for c in range(len(f)):
                if c == k0:
                    continue
                w = grads[c] - grads[k0]
                d = (f[c] - f[k0]).abs().item()
                dist = d / (w.norm().item() + 1e-12)
                if best is None or dist < best:
                    best, step = dist, (d + 1e-4) / (w.norm() ** 2 + 1e-24) * w
            r = r + step.detach()
        out.append(((1 + overshoot) * r).norm().item())
    return torch.tensor(out)


def cal_child(data_root: str) -> None:
    from deepcore_core.neighbors import knn

    s = fmnist_lenet(data_root, epochs=1)
    t0 = time.perf_counter()
    knn(s["features"], 10)
    report(seconds=time.perf_counter() - t0, n=len(s["features"]), d=s["features"].shape[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--subset", type=int, default=300)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--cal-child", action="store_true")
    args = ap.parse_args()
    if args.cal_child:
        cal_child(args.data_root)
        return
    s = fmnist_lenet(args.data_root)
    model, data = s["model"], s["data"]
    for p in model.parameters():
        p.requires_grad_(False)
    x, _, _ = next(data.train.batches(torch.arange(args.subset), args.subset))
    t0 = time.perf_counter()
    ours = torch.cat([deepfool_batch(model, x[i : i + 256])[0] for i in range(0, len(x), 256)])
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference_deepfool(model, x)
    t_ref = time.perf_counter() - t0
    print(
        f"DeepFool on {args.subset} images: batched top-10 {t_ours:.2f} s | per-sample "
        f"all-class reference {t_ref:.2f} s | ratio {t_ref / t_ours:.1f}x | median relative "
        f"distance difference {float(((ours - ref).abs() / ref.clamp_min(1e-12)).median()):.2e}"
    )
    if not args.skip_full:
        t0 = time.perf_counter()
        n = 0
        for xb, _, _ in data.train.batches(torch.arange(len(data.train)), 256):
            deepfool_batch(model, xb)
            n += len(xb)
        secs = time.perf_counter() - t0
        print(f"DeepFool on all {n} training images: {secs:.1f} s, {n / secs:.0f} images/s")
    r = run_child(__file__, "--cal-child", "--data-root", args.data_root)
    print(
        f"Cal neighbour search, N={r['n']} x {r['d']}, k=10, unbalanced: {r['seconds']:.1f} s, "
        f"peak {r['peak_rss_gb']:.2f} GB (process total)"
    )


if __name__ == "__main__":
    main()
