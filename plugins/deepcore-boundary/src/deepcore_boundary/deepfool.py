"""Batched DeepFool (Moosavi-Dezfooli et al., CVPR 2016) restricted to top-k candidate classes."""

from __future__ import annotations

import torch
from torch import nn


def deepfool_batch(
    model: nn.Module,
    x: torch.Tensor,
    max_iter: int = 50,
    overshoot: float = 0.02,
    top_k: int | None = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest DeepFool perturbation that changes each sample's prediction.

    The candidate classes of a sample are its ``top_k`` highest logits at the start (the
    predicted class first; None: every class). Each iteration costs one forward pass and
    ``top_k`` backward passes for the whole batch (input gradients of each candidate logit;
    samples are independent in eval mode). The step towards the nearest linearised boundary is
    ``(|f_l - f_k| + 1e-4) / ||w_l||^2 * w_l``, accumulated in ``r``; the tested point is
    ``x + (1 + overshoot) r``. Samples stop as soon as their prediction changes.

    :returns: ``(distance, flipped)``: the L2 norm of ``(1 + overshoot) r`` in input space per
        sample, and whether the prediction changed within ``max_iter`` iterations.
    """
    model.eval()
    n = x.shape[0]
    with torch.no_grad():
        logits = model(x)
    k = logits.shape[1] if top_k is None else min(top_k, logits.shape[1])
    cand = torch.topk(logits, k, dim=1).indices  # cand[:, 0] is the predicted class
    orig = cand[:, 0]
    r = torch.zeros_like(x)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    flat = x[0].numel()
    for _ in range(max_iter):
        idx = torch.nonzero(active).squeeze(1)
        if idx.numel() == 0:
            break
        xa = (x[idx] + (1 + overshoot) * r[idx]).detach().requires_grad_(True)
        out = model(xa)
        f = out.gather(1, cand[idx])  # B x k
        changed = out.argmax(1) != orig[idx]  # over all classes, not only the candidates
        active[idx[changed]] = False
        if changed.all():
            break
        grads = []
        for j in range(k):
            (g,) = torch.autograd.grad(f[:, j].sum(), xa, retain_graph=j + 1 < k)
            grads.append(g.reshape(len(idx), flat))
        with torch.no_grad():
            grad = torch.stack(grads, 1)  # B x k x flat
            w = grad[:, 1:] - grad[:, :1]
            df = (f[:, 1:] - f[:, :1]).abs()
            wn = w.norm(dim=2).clamp_min(1e-12)
            best = (df / wn).argmin(1)
            rows = torch.arange(len(idx), device=x.device)
            wl, dfl, wnl = w[rows, best], df[rows, best], wn[rows, best]
            step = ((dfl + 1e-4) / wnl**2)[:, None] * wl
            keep = ~changed
            r[idx[keep]] += step[keep].view(-1, *x.shape[1:])
    with torch.no_grad():
        final = model(x + (1 + overshoot) * r).argmax(1)
        flipped = final != orig
        dist = ((1 + overshoot) * r).reshape(n, -1).norm(dim=1)
    return dist, flipped
