"""Sampling rules: how a score-based method turns its ranking of a pool into k picks.

Every :class:`~deepcore_core.selector.ScoreSelector` ranks its pool by score; a sampler
decides which k samples of that ranking are kept. The method's own end of the ranking (its
``descending`` direction: the hardest samples for hardness scores, the most uncertain for
uncertainty scores) is called the *front* below.

* ``top``: the k samples at the front (the default, and DeepCore's rule).
* ``stratified``: coverage-centric sampling (Zheng et al., ICLR 2023, arXiv 2210.15809):
  drop the ``drop`` share of the pool at the front (hard or mislabelled samples), split the
  remaining score range into ``bins`` equal-width strata, give the budget to the strata from
  the smallest up (each at most an equal share of what is left), and sample uniformly inside
  each stratum.
* ``beta``: Beta-density sampling (DUAL, Cho et al., ICML 2025, arXiv 2502.06905): samples are
  drawn without replacement with probability proportional to a Beta(alpha, beta) density at
  their position x in [0, 1] (0 at the front), with beta = 15 (1 - x_anchor)(1 - r^c_d),
  alpha = 16 - beta, r the pruning rate and x_anchor the mean position of the 10 front
  samples; so high pruning rates move the mass away from the front. A method can supply its
  own x and weights (DUAL: the mean true-class probability and its score).
* ``band``: the middle band of the ranking (Moderate-DS, Xia et al., ICLR 2023): the k
  samples around the median score.

Plugins add samplers with the ``register_samplers`` hook. All of them draw from the pool's
seeded generator only, so a seed fixes the result, and ties in scores are broken by a seeded
permutation.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from deepcore_core.options import NoOptions, parse_options


@dataclasses.dataclass
class Ranking:
    """What a sampler sees of one pool.

    :ivar scores: the pool's scores (float64, aligned with the pool).
    :ivar high_first: whether the front is the high end of the scores.
    :ivar extras: pool-aligned arrays a method offers to samplers (``beta_x``: the Beta
        variable in [0, 1] with 0 at the front; ``beta_weight``: non-negative weights).
    """

    scores: np.ndarray
    high_first: bool
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def order(self, rng: np.random.Generator) -> np.ndarray:
        """Pool positions from the front to the back; ties in a seeded random order."""
        key = -self.scores if self.high_first else self.scores
        return np.lexsort((rng.permutation(len(key)), key))


class Sampler(abc.ABC):
    """Base class of a sampling rule: set ``name`` and ``Options``, implement :meth:`sample`."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        if options is None or isinstance(options, dict):
            options = parse_options(self.Options, options or {}, self.name, kind="sampler")
        self.options = options

    @abc.abstractmethod
    def sample(self, ranking: Ranking, k: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``k`` distinct pool positions."""

    def describe(self) -> dict[str, Any]:
        """Name and options, for a selection's metadata."""
        return {"name": self.name, "options": dataclasses.asdict(self.options)}


class Top(Sampler):
    """The k samples at the method's own end of the ranking."""

    name = "top"

    def sample(self, ranking: Ranking, k: int, rng: np.random.Generator) -> np.ndarray:
        """The first k of the ranking."""
        return ranking.order(rng)[:k]


def ccs_drop(pruning_rate: float) -> float:
    """The share of hard samples CCS drops at a pruning rate.

    0.3 at 90% and 0.2 at 80% pruning are the CCS repository's commands (CIFAR-10 and
    ImageNet); 0.1 at 70% and 0 below are our interpolation.
    """
    for rate, drop in ((0.9, 0.3), (0.8, 0.2), (0.7, 0.1)):
        if pruning_rate >= rate - 1e-9:
            return drop
    return 0.0


@dataclasses.dataclass(frozen=True)
class StratifiedOptions:
    """Options of the ``stratified`` sampler."""

    bins: int = 50  #: equal-width strata of the score range (CCS: 50)
    drop: float | None = None  #: share dropped at the front (None: by pruning rate, as CCS)

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if self.drop is not None and not 0.0 <= self.drop < 1.0:
            raise ValueError(f"drop must be in [0, 1), got {self.drop}")


def water_fill(sizes: np.ndarray, k: int) -> np.ndarray:
    """Budget per stratum: strata from the smallest up, each at most an equal share of the
    rest (rounded up), so small strata are taken whole and the total is exactly ``k``."""
    take = np.zeros(len(sizes), dtype=np.int64)
    left = k
    order = np.argsort(sizes, kind="stable")
    for pos, s in enumerate(order):
        if left == 0:
            break
        share = math.ceil(left / (len(order) - pos))
        take[s] = min(int(sizes[s]), share)
        left -= int(take[s])
    return take


class Stratified(Sampler):
    """Coverage-centric sampling: equal-width score strata, small strata first (CCS)."""

    name = "stratified"
    Options = StratifiedOptions

    def sample(self, ranking: Ranking, k: int, rng: np.random.Generator) -> np.ndarray:
        """Drop the front share, then water-fill the budget over score strata."""
        n = len(ranking.scores)
        o = self.options
        drop = ccs_drop(1.0 - k / n) if o.drop is None else o.drop
        order = ranking.order(rng)
        rest = order[min(math.floor(drop * n), n - k) :]
        s = ranking.scores[rest]
        lo, hi = float(s.min()), float(s.max())
        width = (hi - lo) / o.bins
        if width == 0:
            strata = np.zeros(len(s), dtype=np.int64)
        else:
            strata = np.minimum(((s - lo) / width).astype(np.int64), o.bins - 1)
        take = water_fill(np.bincount(strata, minlength=o.bins), k)
        picks = [
            rng.choice(rest[strata == b], size=int(t), replace=False)
            for b, t in enumerate(take)
            if t
        ]
        return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class BetaOptions:
    """Options of the ``beta`` sampler."""

    c_d: float = 4.0  #: how fast the density moves with the pruning rate (DUAL: 4)
    anchor: int = 10  #: front samples whose mean position is the anchor (DUAL: 10)

    def __post_init__(self) -> None:
        if self.c_d <= 0 or self.anchor < 1:
            raise ValueError("c_d must be > 0 and anchor >= 1")


def beta_parameters(x_anchor: float, pruning_rate: float, c_d: float) -> tuple[float, float]:
    """DUAL's (alpha, beta): beta = 15 (1 - x_anchor)(1 - r^c_d), alpha = 16 - beta."""
    b = 15.0 * (1.0 - x_anchor) * (1.0 - pruning_rate**c_d)
    return 16.0 - b, b


def beta_density(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """The Beta(a, b) density at ``x`` (clipped into the open interval)."""
    x = np.clip(x, 1e-6, 1 - 1e-6)
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return np.exp(log_norm + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x))


class Beta(Sampler):
    """Sampling without replacement by a Beta density over the ranking (DUAL)."""

    name = "beta"
    Options = BetaOptions

    def probabilities(self, ranking: Ranking, k: int, rng: np.random.Generator) -> np.ndarray:
        """The sampling probability of every pool position."""
        n = len(ranking.scores)
        order = ranking.order(rng)
        if "beta_x" in ranking.extras:
            x = np.asarray(ranking.extras["beta_x"], dtype=np.float64)
        else:  # the position in the ranking: 0 at the front, 1 at the back
            x = np.empty(n)
            x[order] = (np.arange(n) + 0.5) / n
        x_anchor = float(x[order[: self.options.anchor]].mean())
        a, b = beta_parameters(x_anchor, 1.0 - k / n, self.options.c_d)
        p = beta_density(x, a, b)
        if "beta_weight" in ranking.extras:
            p = p * np.clip(ranking.extras["beta_weight"], 0.0, None)
        p = p + 1e-12 * p.max() + 1e-300  # every sample stays possible
        return p / p.sum()

    def sample(self, ranking: Ranking, k: int, rng: np.random.Generator) -> np.ndarray:
        """Draw k positions without replacement."""
        p = self.probabilities(ranking, k, rng)
        return rng.choice(len(p), size=k, replace=False, p=p)


class Band(Sampler):
    """The middle band of the ranking: the k samples around the median (Moderate-DS)."""

    name = "band"

    def sample(self, ranking: Ranking, k: int, rng: np.random.Generator) -> np.ndarray:
        """Ranks from (n - k) // 2 on."""
        start = (len(ranking.scores) - k) // 2
        return ranking.order(rng)[start : start + k]


BUILTIN_SAMPLERS: tuple[type[Sampler], ...] = (Top, Stratified, Beta, Band)
