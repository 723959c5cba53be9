"""Greedy maximisers. Naive and lazy return exactly the naive-greedy set (ties: lowest index);
stochastic and lazier-than-lazy sample candidates with the run's generator, so a seed fixes
the result."""

from __future__ import annotations

import heapq
import math
from typing import Any, Protocol

import numpy as np
import torch


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
    if optimizer in ("naive", "lazy") and getattr(obj, "vector", False):
        return _vector_greedy(obj, k)  # every gain at hand: lazy bounds would not save work
    if optimizer == "lazy" and not obj.cheap:
        return _heap_greedy(obj, k)
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


def _vector_greedy(obj: Any, k: int) -> np.ndarray:
    """Naive greedy over an objective that gives every element's gain at once (``vector``
    true; ``gain_vector()``: a NumPy array or a tensor on the kernel's device): one masked argmax
    per pick, the first maximum (lowest index) as everywhere."""
    n = obj.n
    picks = np.empty(k, dtype=np.int64)
    taken: Any = None
    for t in range(k):
        g = obj.gain_vector()
        if isinstance(g, np.ndarray):
            if taken is None:
                taken = np.zeros(n, dtype=bool)
            masked = np.where(taken, -np.inf, g)
            e = int(np.argmax(masked))
            stuck = masked[e] == -np.inf
        else:
            if taken is None:
                taken = torch.zeros(n, dtype=torch.bool, device=g.device)
            best, at = torch.max(g.masked_fill(taken, -math.inf), 0)  # the first maximum
            e = int(at)
            stuck = float(best) == -math.inf
        if stuck:  # every free gain is -inf (log det of a singular set): the lowest free index
            free = ~taken
            e = int(np.argmax(free) if isinstance(free, np.ndarray) else torch.argmax(free.byte()))
        picks[t] = e
        taken[e] = True
        obj.add(e)
    return picks


def _heap_greedy(obj: Objective, k: int) -> np.ndarray:
    """Lazy greedy with a heap of stale upper bounds (gains only decrease): each pick
    re-evaluates only the top of the heap until a fresh gain leads. The heap orders by
    (-gain, index), so the result is the naive greedy's, ties to the lowest index."""
    n = obj.n
    gains = np.concatenate(
        [obj.gains(np.arange(lo, min(n, lo + 65536))) for lo in range(0, n, 65536)]
    )
    heap = list(zip((-gains).tolist(), range(n), strict=True))
    heapq.heapify(heap)
    fresh = np.zeros(n, dtype=np.int64)  # the pick number at which each bound was computed
    picks = np.empty(k, dtype=np.int64)
    for t in range(k):
        while True:
            _, i = heap[0]
            if fresh[i] == t:
                heapq.heappop(heap)
                break
            g = float(obj.gains(np.array([i]))[0])
            fresh[i] = t
            heapq.heapreplace(heap, (-g, i))
        picks[t] = i
        obj.add(i)
    return picks
