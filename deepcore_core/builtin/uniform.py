"""The ``uniform`` (random) baseline, registered like any plugin's method."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepcore_core.hookspecs import hookimpl
from deepcore_core.selector import Pick, Selector


class Uniform(Selector):
    """Uniform random sampling without replacement: the baseline every method must beat.

    Each pool (a class when balanced) is sampled with its own generator derived from the
    seed and the pool, so classes never share random draws. Cost O(N). Needs nothing
    (labels only for balanced selection).
    """

    name = "uniform"
    family = "baseline"

    def pick(self, ctx: object, pool: np.ndarray, k: int, rng: np.random.Generator) -> Pick:
        """Draw ``k`` of ``pool`` uniformly without replacement."""
        return Pick(rng.choice(pool, size=k, replace=False))


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register the uniform baseline."""
    register(Uniform)
