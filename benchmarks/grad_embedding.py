"""Closed-form last-layer gradient embedding versus autograd per-sample gradients.

The same trained LeNet and the same Fashion-MNIST samples. Three ways to get the per-sample
gradients of the cross-entropy with respect to the last layer (bias and weight):
  * autograd loop: one backward pass per sample (the straightforward way);
  * torch.func: vmap(grad) over the last layer, given the penultimate features;
  * closed form: [e ; vec(e h^T)] from residuals e = p - onehot(y) and features h.
Each includes the forward pass it needs (one batched pass for the last two). Prints the
times, the ratios and the largest difference between the results.

Usage: python benchmarks/grad_embedding.py [--data-root DIR] [--n 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from deepcore_core import GradEmbedding
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", args.data_root)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = host.networks.build("lenet", 1, 10, 28)
    model = train_model(
        model, data.train.subset(np.arange(10000)), TrainConfig(epochs=1, augment=False), cpu
    ).model.eval()
    sub = data.train.subset(np.arange(args.n))
    x, y, _ = next(sub.batches(torch.arange(args.n), args.n))

    t0 = time.perf_counter()
    rows = []
    for i in range(args.n):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([model.head.bias.grad, model.head.weight.grad.flatten()]))
    loop = torch.stack(rows).numpy()
    t_loop = time.perf_counter() - t0

    from torch.func import functional_call, grad, vmap

    t0 = time.perf_counter()
    with torch.no_grad():
        logits, h = model.forward_with_features(x)
    t_forward = time.perf_counter() - t0
    params = {k: v.detach() for k, v in model.head.named_parameters()}

    def loss(p, hi, yi):
        out = functional_call(model.head, p, (hi[None],))
        return torch.nn.functional.cross_entropy(out, yi[None])

    t0 = time.perf_counter()
    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, h, y)
    func = torch.cat([g["bias"], g["weight"].flatten(1)], 1).numpy()
    t_func = t_forward + time.perf_counter() - t0

    t0 = time.perf_counter()
    probs = torch.softmax(logits, 1).numpy()
    emb = GradEmbedding.from_outputs(probs, y.numpy(), h.numpy())
    closed = emb.materialize()
    t_closed = t_forward + time.perf_counter() - t0

    t0 = time.perf_counter()
    norms = emb.norms()
    t_norms = t_forward + time.perf_counter() - t0
    print(
        f"per-sample last-layer gradients of LeNet on {args.n} Fashion-MNIST images "
        f"(dimension {closed.shape[1]})"
    )
    print(f"  autograd loop  {t_loop:8.3f} s")
    print(f"  torch.func     {t_func:8.3f} s")
    print(f"  closed form    {t_closed:8.3f} s  (norms only, no matrix: {t_norms:.3f} s)")
    print(f"ratio autograd loop / closed form: {t_loop / t_closed:.1f}x")
    print(f"ratio torch.func / closed form:    {t_func / t_closed:.1f}x")
    print(f"ratio autograd loop / closed-form norms: {t_loop / t_norms:.1f}x")
    print(
        f"max |norm difference| vs autograd: "
        f"{np.abs(norms - np.linalg.norm(loop, axis=1)).max():.2e}"
    )
    print(
        f"max |difference| vs autograd: {np.abs(closed - loop).max():.2e} "
        f"(vs torch.func {np.abs(closed - func).max():.2e})"
    )


if __name__ == "__main__":
    main()
