"""An example deepcore plugin: distance of each sample to its class prototype."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from deepcore_core import Need, ScoreSelector, SelectionContext, hookimpl


@dataclasses.dataclass(frozen=True)
class PrototypeOptions:
    """Options of ``prototype-distance``."""

    keep: Literal["hard", "easy"] = "hard"


class PrototypeDistance(ScoreSelector):
    """Distance to the class mean in feature space; keeps the farthest ('hard') by default.

    The supervised-prototype score of Sorscher et al. (NeurIPS 2022, arXiv 2206.14486):
    the score of a sample is the Euclidean distance from its features to the mean feature
    vector of its class. ``keep="easy"`` keeps the closest instead. Cost O(N D).
    Needs features and labels.
    """

    name = "prototype-distance"
    family = "example"
    needs = frozenset({Need.FEATURES, Need.LABELS})
    Options = PrototypeOptions

    @property
    def descending(self) -> bool:  # type: ignore[override]
        """Highest distance first when keeping the hard samples."""
        return self.options.keep == "hard"

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Distance of every sample to the mean of its class."""
        x = np.asarray(ctx.features, dtype=np.float64)
        y = np.asarray(ctx.labels)
        scores = np.empty(len(y))
        for c in np.unique(y):
            members = y == c
            scores[members] = np.linalg.norm(x[members] - x[members].mean(axis=0), axis=1)
        return scores


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register the example method."""
    register(PrototypeDistance)
