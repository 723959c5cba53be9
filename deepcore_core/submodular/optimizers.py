"""Greedy maximisers. Naive and lazy return exactly the naive-greedy set (ties: lowest index);
stochastic and lazier-than-lazy sample candidates with the run's generator, so a seed fixes
the result."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np


class Objective(Protocol):
    """What the optimisers need from an objective."""

    n: int
    cheap: bool

    def gains(self, cand: np.ndarray) -> np.ndarray: ...

    def add(self, e: int) -> None: ...


OPTIMIZERS = ("naive", "lazy", "stochastic", "lazier-than-lazy")


def maximize(
    obj: Objective, k: int, optimizer: str, rng: np.random.Generator, epsilon: float = 0.01
) -> np.ndarray:
    """Pick ``k`` elements greedily; returns positions in pick order."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    n = obj.n
    taken = np.zeros(n, dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    ub = None
    sample_size = max(1, math.ceil(n / k * math.log(1.0 / epsilon)))
    for t in range(k):
        free = np.flatnonzero(~taken)
        if optimizer in ("stochastic", "lazier-than-lazy"):
            if sample_size < free.size:
                free = np.sort(rng.choice(free, size=sample_size, replace=False))
            lazy = optimizer == "lazier-than-lazy" and not obj.cheap
        else:
            lazy = optimizer == "lazy" and not obj.cheap
        if lazy:
            if ub is None:
                ub = np.full(n, np.inf)
            e = _lazy_pick(obj, ub, free)
        else:
            g = obj.gains(free)
            e = int(free[int(np.argmax(g))])  # the first maximum: lowest index
        picks[t] = e
        taken[e] = True
        obj.add(e)
        if ub is not None:
            ub[e] = -np.inf
    return picks


def _lazy_pick(obj: Objective, ub: np.ndarray, free: np.ndarray, batch: int = 32) -> int:
    """The exact best of ``free`` using stale upper bounds ``ub`` (gains only decrease).

    Evaluates the highest bounds in batches until no unevaluated bound reaches the best
    fresh gain; ties go to the lowest index, as in naive greedy.
    """
    bounds = ub[free]
    fresh = np.zeros(free.size, dtype=bool)
    best = -np.inf
    first = True
    while True:
        if first:
            m = min(batch, free.size)
            pos = np.argpartition(-bounds, m - 1)[:m] if m < free.size else np.arange(free.size)
            first = False
        else:
            pos = np.flatnonzero(~fresh & (bounds >= best))
            if pos.size == 0:
                break
        g = obj.gains(free[pos])
        bounds[pos] = g
        ub[free[pos]] = g
        fresh[pos] = True
        best = bounds[fresh].max()
    return int(free[np.flatnonzero(fresh & (bounds == best))[0]])
