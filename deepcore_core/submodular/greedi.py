"""GreeDi: the two-round distributed greedy (Mirzasoleiman et al., NeurIPS 2013).

Round 1 splits the pool into ``parts`` random parts and runs the method's greedy on each
(under torchrun, part j on rank j mod world size, in parallel); round 2 runs the greedy on
the union of the round-1 picks. The result is the best, by the objective over that union, of
the round-2 set and every full-size round-1 set.

Guarantee: for a monotone submodular f evaluated on the whole ground set, the result is at
least (1 - 1/e)^2 / min(parts, k) of the optimum (Mirzasoleiman et al. 2013), and at least
(1 - 1/e) / 2 in expectation over the random partition (Barbosa et al., ICML 2015). Here
each part's objective is built from that part's own data (the decomposable form the paper
analyses for facility location), so the bound is a target rather than a proof; the tests
measure the value on the whole pool against the centralised greedy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepcore_core import distributed

#: the method's greedy on a candidate set: ``solve(candidates, k)`` -> k of them
Solve = Callable[[np.ndarray, int], np.ndarray]
#: the objective over a ground set: ``value(ground, chosen)`` -> f_ground(chosen)
Value = Callable[[np.ndarray, np.ndarray], float]


def greedi(
    pool: np.ndarray, k: int, parts: int, rng: np.random.Generator, solve: Solve, value: Value
) -> np.ndarray:
    """Pick ``k`` of ``pool`` (dataset indices) by GreeDi with ``parts`` parts.

    Every rank returns the same picks: round-1 sets are gathered, round 2 is deterministic.
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    if parts == 1 or pool.size <= k:
        return solve(pool, k)
    split = [np.sort(p) for p in np.array_split(pool[rng.permutation(pool.size)], parts)]
    world, rank = distributed.world_size(), distributed.rank()
    mine = {j: solve(p, min(k, p.size)) for j, p in enumerate(split) if j % world == rank}
    local: dict[int, np.ndarray] = {}
    for share in distributed.gather_objects(mine):
        local.update(share)
    union = np.unique(np.concatenate([local[j] for j in range(parts)]))
    candidates = [solve(union, min(k, union.size))]
    candidates += [local[j] for j in range(parts) if local[j].size == k]
    values = [value(union, c) for c in candidates]
    return candidates[int(np.argmax(values))]  # the first best: round 2 wins ties


def parts_for(parts: int | None) -> int:
    """GreeDi's number of parts: ``parts``, else one per process (at least 2)."""
    return parts if parts is not None else max(2, distributed.world_size())


def seeded_solver(rng: np.random.Generator, solve: Callable[..., np.ndarray]) -> Solve:
    """``solve(candidates, k, rng)`` with a generator fixed by the candidates, so a part's
    picks do not depend on which rank (or in which order) it is solved."""
    base = int(rng.integers(2**62))

    def run(cands: np.ndarray, k: int) -> np.ndarray:
        key = [base, int(cands.size), int(cands[0]), int(cands[-1])]
        return solve(cands, k, np.random.default_rng(key))

    return run
