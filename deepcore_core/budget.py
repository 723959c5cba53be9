"""From a fraction or an absolute budget to per-pool selection sizes.

Rounding rule: the total is ``round_half_up(fraction * N)``, at least 1. Balanced
selection splits that total over the classes in proportion to their sizes by the
largest-remainder (Hamilton) method, so the per-class sizes add up to the total exactly.
When the total is at least the number of classes, every class gets at least one sample;
no class gets more than it has. Remainder ties go to the larger class, then the lower label.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from deepcore_core.errors import DeepcoreError
from deepcore_core.rules import FRACTION, check_range, describe


@dataclasses.dataclass(frozen=True)
class Pool:
    """One selection pool: a class (or the whole set), its indices and how many to pick."""

    label: int | None
    indices: np.ndarray
    k: int


def check_size(fraction: object, budget: object, required: bool = True) -> None:
    """The one rule on how a coreset's size is given: ``fraction`` or ``budget``, not both
    (and, when ``required``, one of them)."""
    if fraction is not None and budget is not None:
        raise DeepcoreError("give the size as fraction (--fraction) or budget (--budget), not both")
    if required and fraction is None and budget is None:
        raise DeepcoreError("give the coreset size as fraction (--fraction) or budget (--budget)")


def check_fraction(fraction: object) -> float:
    """Return ``fraction`` as a float in (0, 1] or raise :class:`DeepcoreError`."""
    message = f"fraction must be a number {describe(FRACTION)}, got {fraction!r}"
    try:
        f = float(fraction)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DeepcoreError(message) from None
    if isinstance(fraction, bool) or math.isnan(f):
        raise DeepcoreError(message)
    try:
        check_range("fraction", f, FRACTION)
    except DeepcoreError:
        raise DeepcoreError(message) from None
    return f


def total_budget(n: int, fraction: float | None = None, budget: int | None = None) -> int:
    """Return the coreset size for ``n`` samples from exactly one of ``fraction``/``budget``."""
    if n < 1:
        raise DeepcoreError("the dataset is empty: nothing to select from")
    check_size(fraction, budget)
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int | np.integer):
            raise DeepcoreError(f"budget must be a whole number in [1, {n}], got {budget!r}")
        if not 1 <= budget <= n:
            raise DeepcoreError(f"budget must be in [1, N={n}], got {budget}")
        return int(budget)
    f = check_fraction(fraction)
    return max(1, min(n, math.floor(f * n + 0.5)))


def allocate(class_sizes: dict[int, int], total: int) -> dict[int, int]:
    """Split ``total`` over classes by largest remainder (see the module docstring)."""
    n = sum(class_sizes.values())
    if not 0 <= total <= n:
        raise DeepcoreError(f"budget {total} is outside [0, {n}]")
    minimum = 1 if total >= len(class_sizes) else 0
    alloc: dict[int, int] = {}
    free = dict(class_sizes)
    remaining = total
    # Pin classes whose proportional share is below the minimum, then re-share the rest.
    while True:
        n_free = sum(free.values())
        pinned = {c for c, s in free.items() if n_free and remaining * s / n_free < minimum}
        if not pinned:
            break
        for c in pinned:
            alloc[c] = minimum
            remaining -= minimum
            del free[c]
    n_free = sum(free.values())
    if free:
        quotas = {c: remaining * s / n_free for c, s in free.items()}
        floors = {c: math.floor(q) for c, q in quotas.items()}
        left = remaining - sum(floors.values())
        order = sorted(free, key=lambda c: (-(quotas[c] - floors[c]), -free[c], c))
        for c in order[:left]:
            floors[c] += 1
        alloc.update(floors)
    return {c: alloc[c] for c in sorted(class_sizes)}


def plan_pools(
    labels: np.ndarray | None,
    n: int,
    total: int,
    balance: bool,
    among: np.ndarray | None = None,
) -> list[Pool]:
    """Return the pools to select from: one per class (or group: ``labels`` may be cluster
    ids) when ``balance``, else one global pool; ``among`` limits them to those indices."""
    rows = np.arange(n, dtype=np.int64) if among is None else np.asarray(among, np.int64)
    if total > rows.size:
        raise DeepcoreError(f"cannot pick {total} of the {rows.size} samples left to pick from")
    if not balance:
        return [Pool(None, rows, total)]
    if labels is None:
        raise DeepcoreError("balanced selection needs labels; give labels or use --no-balance")
    classes, counts = np.unique(labels[rows], return_counts=True)
    sizes = {int(c): int(k) for c, k in zip(classes, counts, strict=True)}
    alloc = allocate(sizes, total)
    pools = []
    for c in sizes:
        if alloc[c] > 0:
            idx = rows[labels[rows] == c]
            pools.append(Pool(c, idx, alloc[c]))
    return pools
