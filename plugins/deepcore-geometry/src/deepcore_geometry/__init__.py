"""Geometry-based selection: k-center greedy, kernel herding and contextual diversity."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from deepcore_core import (
    DeepcoreError,
    GreediSelector,
    Need,
    Pick,
    SelectionContext,
    Selector,
    hookimpl,
    load_indices,
    original_rule,
)

if TYPE_CHECKING:
    import torch


def _tensor(a: np.ndarray, ctx: SelectionContext) -> torch.Tensor:
    import torch  # imported on use: listing methods must not wait for torch

    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=ctx.device)


@dataclasses.dataclass(frozen=True)
class KCenterOptions:
    """Options of ``kcenter``."""

    metric: Literal["euclidean", "cosine"] = "euclidean"
    initial: str | None = None  #: .npy of indices (or a selection .npz) already selected
    #: exact: farthest-first over the whole pool; greedi: the two-round distributed greedy
    #: (a 4-approximation of the radius, Malkomes et al. 2015; under torchrun each process
    #: solves its parts)
    distributed: Literal["exact", "greedi"] = "exact"
    parts: int | None = None  #: GreeDi's parts (None: one per process, at least 2)

    def __post_init__(self) -> None:
        if self.parts is not None and self.parts < 1:
            raise ValueError(f"parts must be >= 1, got {self.parts}")
        if self.distributed == "greedi" and self.initial:
            raise ValueError("initial and distributed=greedi do not combine")


class KCenter(GreediSelector):
    """Greedy k-center (farthest-first) on features: each pick is the farthest point from all picks.

    Sener & Savarese, ICLR 2018 (arXiv 1708.00489); Gonzalez 1985. The first centre is drawn
    at random from the pool, unless ``initial`` names already-selected samples: then they act
    as centres and the k picks are new samples. Cost O(k N D) time, O(N) extra memory.
    Needs features (the selection model's, or given).
    """

    name = "kcenter"
    family = "geometry"
    needs = frozenset({Need.FEATURES})
    Options = KCenterOptions

    def ground_value(self, ctx: SelectionContext) -> Callable[[np.ndarray, np.ndarray], float]:
        """Minus the covering radius of a ground set by chosen centres (higher is better)."""
        from deepcore_geometry.greedy import min_distance_to_set

        def value(ground: np.ndarray, chosen: np.ndarray) -> float:
            assert ctx.features is not None
            x = _tensor(ctx.features[ground], ctx)
            c = _tensor(ctx.features[chosen], ctx)
            return -float(min_distance_to_set(x, c, self.options.metric == "cosine").max())

        return value

    def greedy(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The farthest-first picks of ``pool`` (dataset indices, in pick order)."""
        import torch

        from deepcore_geometry.greedy import (
            euclidean_distance_fn,
            farthest_first,
            min_distance_to_set,
        )

        assert ctx.features is not None  # the method's needs
        x = _tensor(ctx.features[pool], ctx)
        dist = euclidean_distance_fn(x, cosine=self.options.metric == "cosine")
        initial_min = None
        if self.options.initial:
            init = np.intersect1d(load_indices(self.options.initial, ctx.n, "initial set"), pool)
            if init.size:
                if k > pool.size - init.size:
                    raise DeepcoreError(
                        f"kcenter: a budget of {k} exceeds the {pool.size - init.size} samples "
                        "outside the initial set"
                    )
                pos = np.searchsorted(pool, init)
                initial_min = min_distance_to_set(
                    x, x[torch.as_tensor(pos)], self.options.metric == "cosine"
                )
                initial_min[torch.as_tensor(pos)] = -1.0
        first = None if initial_min is not None else int(rng.integers(pool.size))
        return pool[farthest_first(pool.size, k, dist, first, initial_min)]


@dataclasses.dataclass(frozen=True)
class HerdingOptions:
    """Options of ``herding``."""

    rule: Literal["argmin", "argmax"] = original_rule(
        "argmin", "argmax", "picks the point farthest from the herding target (outliers)"
    )  #: argmin tracks the mean (herding); argmax is the original code's rule


class Herding(Selector):
    """Kernel herding: each pick brings the mean of the picks closest to the pool's mean.

    Welling, ICML 2009; Chen, Welling & Smola, UAI 2010. Deterministic; picks the argmin
    (the original DeepCore code picked the argmax, selecting outliers). Running sums, one
    mat-vec per pick: O(k N D) time, O(N + D) extra memory. Needs features.
    """

    name = "herding"
    family = "geometry"
    needs = frozenset({Need.FEATURES})
    Options = HerdingOptions

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Herd ``k`` points of ``pool``."""
        from deepcore_geometry.greedy import herding

        assert ctx.features is not None  # the method's needs
        x = _tensor(ctx.features[pool], ctx)
        return Pick(pool[herding(x, k, farthest=self.options.rule == "argmax")])


class ContextualDiversity(Selector):
    """Contextual diversity: k-center greedy under the symmetric KL of predicted probabilities.

    Agarwal et al., ECCV 2020 (arXiv 2008.05723), in DeepCore's per-image form: the distance
    between two samples is 0.5 * sum_c (p_c - q_c)(log p_c - log q_c), with probabilities
    clamped at 1e-12 inside the log so it is always finite. First centre random. Cost
    O(k N C) time, O(N) extra memory. Needs class probabilities.
    """

    name = "contextual-diversity"
    family = "geometry"
    needs = frozenset({Need.PROBABILITIES})

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Farthest-first traversal of ``pool`` under symmetric KL."""
        from deepcore_geometry.greedy import farthest_first, symmetric_kl_distance_fn

        assert ctx.probs is not None  # the method's needs
        dist = symmetric_kl_distance_fn(_tensor(ctx.probs[pool], ctx))
        return Pick(pool[farthest_first(pool.size, k, dist, int(rng.integers(pool.size)))])


METHODS = (KCenter, Herding, ContextualDiversity)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register kcenter, herding and contextual-diversity."""
    for cls in METHODS:
        register(cls)
