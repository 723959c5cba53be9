"""Uncertainty sampling: keep the samples the selection model is least sure about.

All three methods score every sample from its predicted class probabilities ``p`` and keep
the most uncertain ones: per class when balanced, over the whole set otherwise, with ties
broken by a seeded random order. Unlike the original DeepCore code, the unbalanced mode does
not keep the most confident samples (``unbalanced_keep=certain`` does, as the original), and
least confidence uses probabilities, not raw logits (``score=logit`` does, as the original;
it needs the logits: given, or from the selection model, not probabilities alone).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from deepcore_core import (
    DeepcoreError,
    Need,
    ScoreSelector,
    SelectionContext,
    hookimpl,
    map_rows,
    original_rule,
)


@dataclasses.dataclass(frozen=True)
class UncertaintyOptions:
    """Options of the uncertainty methods."""

    unbalanced_keep: Literal["uncertain", "certain"] = original_rule(
        "uncertain", "certain", "without balance, the most confident samples are kept"
    )  #: which end of the ranking an unbalanced selection keeps


@dataclasses.dataclass(frozen=True)
class LeastConfidenceOptions(UncertaintyOptions):
    """Options of ``least-confidence``."""

    score: Literal["probability", "logit"] = original_rule(
        "probability", "logit", "scores the largest raw logit, no softmax"
    )  #: the confidence: the largest probability, or the largest raw logit


class _Uncertainty(ScoreSelector):
    family = "uncertainty"
    needs = frozenset({Need.PROBABILITIES})
    Options = UncertaintyOptions

    def front_is_high(self, ctx: SelectionContext) -> bool:
        """The most uncertain first (the most certain, unbalanced, with the original rule)."""
        flip = not ctx.balance and self.options.unbalanced_keep == "certain"
        return self.descending != flip

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Score every sample from ``ctx.probs``."""
        assert ctx.probs is not None
        return map_rows(self.from_probs, ctx.probs)  # blockwise: a memory map stays one

    @staticmethod
    @abc.abstractmethod
    def from_probs(p: np.ndarray) -> np.ndarray:
        """The score of each row of probabilities."""


class LeastConfidence(_Uncertainty):
    """Least confidence: 1 - max_c p(c|x); keeps the highest.

    Lewis & Gale (1994); Settles (2009) survey. Cost O(N C). Needs class probabilities
    (from the selection model, or given as logits/probabilities).
    """

    name = "least-confidence"
    descending = True
    Options = LeastConfidenceOptions

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """``1 - max_c p_c``, or ``-max_c z_c`` from the logits with ``score=logit``."""
        if self.options.score == "probability":
            return super().compute_scores(ctx)
        if ctx.logits is None:
            raise DeepcoreError(
                "least-confidence: score=logit needs the logits (give --logits, or select "
                "from a dataset); probabilities cannot be turned back into them"
            )
        return map_rows(lambda z: -z.max(axis=1), ctx.logits)  # float64 blocks

    @staticmethod
    def from_probs(p: np.ndarray) -> np.ndarray:
        """``1 - max_c p_c``."""
        return 1.0 - p.max(axis=1)


class Entropy(_Uncertainty):
    """Predictive entropy: -sum_c p log p (0 log 0 = 0); keeps the highest.

    Shannon entropy of the predicted distribution (Settles 2009). Cost O(N C). Needs class
    probabilities.
    """

    name = "entropy"
    descending = True

    @staticmethod
    def from_probs(p: np.ndarray) -> np.ndarray:
        """``-sum p log p`` with exact zeros contributing nothing."""
        logp = np.log(np.where(p > 0, p, 1.0))
        return -(p * logp).sum(axis=1)


class Margin(_Uncertainty):
    """Margin: p(top-1) - p(top-2), the gap between the two likeliest classes; keeps the smallest.

    Scheffer et al. (2001). The score is the paper's formula itself, the difference of the
    two largest probabilities; a small gap means uncertain, so the smallest scores are kept
    (equivalently, the largest ``1 - margin``). Cost O(N C). Needs class probabilities.
    """

    name = "margin"
    descending = False

    @staticmethod
    def from_probs(p: np.ndarray) -> np.ndarray:
        """``p_(1) - p_(2)`` (0 with a single class)."""
        if p.shape[1] < 2:
            return np.zeros(p.shape[0])
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]


METHODS = (LeastConfidence, Entropy, Margin)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register least-confidence, entropy and margin."""
    for cls in METHODS:
        register(cls)
