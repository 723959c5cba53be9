"""Farthest-first traversal (greedy k-center) and kernel herding, in O(N + D) extra memory.

Each greedy step needs the distance from every point to the one new centre: one
matrix-vector product over the feature matrix (on the GPU when the data are there), then an
in-place minimum with the running nearest-centre distances. The (picks x N) distance history
that the original DeepCore code kept is never formed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

#: a function returning the distances (or any monotone transform) from all points to point j
DistanceTo = Callable[[int], torch.Tensor]


def farthest_first(
    n: int,
    k: int,
    distance_to: DistanceTo,
    first: int | None,
    initial_min: torch.Tensor | None = None,
) -> np.ndarray:
    """Pick ``k`` points greedily, each the farthest from those already picked.

    :param distance_to: ``distance_to(j)`` gives a length-``n`` tensor of distances to point j.
    :param first: the first pick (ignored when ``initial_min`` is given).
    :param initial_min: distances to an already-selected set; the first pick is then its
        farthest point.
    :returns: the ``k`` picked positions in pick order. Ties go to the lowest position.
    """
    picks = np.empty(k, dtype=np.int64)
    if initial_min is None:
        if first is None:
            raise ValueError("give a first point or the distances to an initial set")
        mins = distance_to(first).clone()
        picks[0] = first
        start = 1
    else:
        mins = initial_min.clone()
        start = 0
    for t in range(start, k):
        if t > 0:
            mins[picks[t - 1]] = -1.0
        p = int(torch.argmax(mins))  # the first maximum: ties go to the lowest position
        picks[t] = p
        if t + 1 < k:
            torch.minimum(mins, distance_to(p), out=mins)
    return picks


def euclidean_distance_fn(x: torch.Tensor, cosine: bool = False) -> DistanceTo:
    """Squared Euclidean distance to row j (or 1 - cosine similarity), one mat-vec per call.

    Squared distances order points like distances, so the greedy picks are the same.
    """
    if cosine:
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return lambda j: 1.0 - x @ x[j]
    sq = (x * x).sum(1)

    def dist(j: int) -> torch.Tensor:
        # ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j in one fused matrix-vector call
        return torch.addmv(sq + sq[j], x, x[j], alpha=-2.0).clamp_(min=0.0)

    return dist


def min_distance_to_set(
    x: torch.Tensor, centres: torch.Tensor, cosine: bool = False, block: int = 4096
) -> torch.Tensor:
    """For every row of ``x``, the (squared) distance to its nearest row of ``centres``."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    if cosine:
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        centres = centres / centres.norm(dim=1, keepdim=True).clamp_min(1e-12)
    csq = (centres * centres).sum(1)
    for s in range(0, x.shape[0], block):
        xb = x[s : s + block]
        if cosine:
            out[s : s + block] = (1.0 - xb @ centres.T).min(1).values
        else:
            d = (xb * xb).sum(1, keepdim=True) + csq[None] - 2.0 * (xb @ centres.T)
            out[s : s + block] = d.min(1).values.clamp_(min=0.0)
    return out


def symmetric_kl_distance_fn(p: torch.Tensor, eps: float = 1e-12) -> DistanceTo:
    """Symmetric KL ``0.5 * sum_c (a_c - b_c)(log a_c - log b_c)`` to row j, one pass per call.

    Probabilities are clamped at ``eps`` inside the logarithm only, which keeps every
    distance finite and non-negative (the log stays monotone), so an exact zero in a softmax
    never produces NaN.
    """
    logp = p.clamp_min(eps).log()
    self_term = (p * logp).sum(1)

    def dist(j: int) -> torch.Tensor:
        d = self_term + self_term[j] - p @ logp[j] - logp @ p[j]
        return d.mul_(0.5).clamp_(min=0.0)

    return dist


def herding(x: torch.Tensor, k: int, farthest: bool = False) -> np.ndarray:
    """Kernel herding (Welling 2009; Chen et al. 2010) with a linear kernel.

    Step t picks the unselected point that brings the mean of the selected set closest to
    the mean of ``x``: argmin_i ||(t+1) mu - s_t - x_i||, with the running sum s_t of the
    picks (``farthest``: the argmax, the original DeepCore code's rule). Ties go to the
    lowest position.
    """
    n = x.shape[0]
    mu = x.mean(0)
    sq = (x * x).sum(1)
    running = torch.zeros_like(mu)
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    picks = np.empty(k, dtype=np.int64)
    for t in range(k):
        target = (t + 1) * mu - running
        # ||target - x_i||^2 up to the constant ||target||^2
        score = sq - 2.0 * (x @ target)
        if farthest:
            score.neg_()
        score.masked_fill_(taken, float("inf"))
        p = int(torch.argmin(score))
        picks[t] = p
        taken[p] = True
        running += x[p]
    return picks
