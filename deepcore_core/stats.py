"""Significance of a method's gap to a baseline over seeds: paired t intervals and the
Benjamini-Hochberg false-discovery-rate correction across a table.

A method and the baseline trained with the same seed share the seed's network initialisation
and data order, so the gap is taken seed by seed (paired) and the seeds' gaps are tested
against zero with Student's t. A table of many cells tests many gaps; the Benjamini-Hochberg
step-up rule keeps the expected share of false discoveries among the marked cells at
``alpha``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

#: the false-discovery rate a marked cell is held to, and the interval's coverage
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Gap:
    """The paired gap of a method to the baseline over the seeds both have.

    :ivar mean: the mean gap; ``low``/``high``: its two-sided 95% Student-t interval (NaN with
        fewer than two seeds); ``p``: the two-sided p-value of a zero mean gap (NaN likewise);
        ``seeds``: how many seeds were paired.
    """

    mean: float
    low: float
    high: float
    p: float
    seeds: int


def paired_gap(values: Mapping[int, float], baseline: Mapping[int, float]) -> Gap | None:
    """The gap of ``values`` to ``baseline`` (seed -> accuracy), paired by seed; None when
    they share no seed. Non-finite values (diverged runs) are left out."""
    from scipy import stats

    finite = {s for s, v in values.items() if math.isfinite(v)}
    seeds = sorted(s for s in finite if s in baseline and math.isfinite(baseline[s]))
    if not seeds:
        return None
    d = np.array([values[s] - baseline[s] for s in seeds], dtype=np.float64)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return Gap(mean, math.nan, math.nan, math.nan, n)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:  # every seed the same gap: no spread to test against
        return Gap(mean, mean, mean, 0.0 if mean != 0.0 else 1.0, n)
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return Gap(mean, mean - half, mean + half, p, n)


def fdr_adjust(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given; NaN stays NaN
    and does not count as a test. A cell is a discovery at level ``alpha`` when q <= alpha."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]  # step-up: the smallest over larger ranks
    out[order] = np.minimum(q, 1.0)
    return out.tolist()


def gaps_with_q(
    pairs: Mapping[K, tuple[Mapping[int, float], Mapping[int, float]]],
) -> dict[K, tuple[Gap | None, float]]:
    """For each cell of a table (values, baseline; seed -> accuracy): its paired gap and its
    Benjamini-Hochberg q over every cell with a p-value (NaN where there is none)."""
    gaps = {k: paired_gap(v, b) for k, (v, b) in pairs.items()}
    tested = [k for k, g in gaps.items() if g is not None and math.isfinite(g.p)]
    q = dict(zip(tested, fdr_adjust([gaps[k].p for k in tested]), strict=True))  # type: ignore[union-attr]
    return {k: (g, q.get(k, math.nan)) for k, g in gaps.items()}
