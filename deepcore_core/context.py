"""The context object passed to every stage hook: inputs, settings and seeded randomness."""

from __future__ import annotations

import dataclasses
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from deepcore_core.gradients import GradEmbedding
from deepcore_core.selector import Need

if TYPE_CHECKING:
    from deepcore_core.selector import Selector


@dataclasses.dataclass
class SelectionContext:
    """Everything a stage hook may read or fill in for one selection.

    Fields are only ever added, never removed, so hookimpls keep working across releases.

    :ivar n: number of samples in the dataset.
    :ivar labels: int64 labels (N,), or None.
    :ivar features: float32 features (N x D): given, or penultimate features from ``embed``.
    :ivar probs: float32 class probabilities (N x C): given (or from logits), or from ``embed``.
    :ivar scores: float64 per-sample scores: given by the user, then the ``score`` stage's.
    :ivar seed: the run's seed; use :meth:`rng` for every random choice.
    :ivar balance: per-class (True) or global (False) selection.
    :ivar total: the coreset size.
    :ivar device: torch device string for work on tensors.
    :ivar selector: the method being run.
    :ivar dataset: the training dataset, when selecting from data rather than arrays.
    :ivar model: the trained selection model, when there is one.
    :ivar dynamics: per-sample training dynamics recorded during pretraining, if any.
    :ivar pretrain: how to train the selection model (a ``PretrainSpec``), with a dataset.
    :ivar extras: free space for plugins (caches, intermediate results).
    """

    n: int
    labels: np.ndarray | None = None
    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    scores: np.ndarray | None = None
    seed: int = 0
    balance: bool = True
    total: int = 0
    device: str = "cpu"
    selector: Selector | None = None
    dataset: Any = None
    model: Any = None
    dynamics: Any = None
    pretrain: Any = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def rng(self, *stream: str | int) -> np.random.Generator:
        """Return a generator seeded by the run's seed and a stream name (e.g. a class label).

        Different streams give independent generators, so per-class draws never share a seed.
        """
        key = [zlib.crc32(str(s).encode()) for s in stream]
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def has(self, need: Need) -> bool:
        """Whether the input for ``need`` is present now."""
        present = {
            Need.LABELS: self.labels is not None,
            Need.FEATURES: self.features is not None,
            Need.PROBABILITIES: self.probs is not None,
            Need.MODEL: self.model is not None,
            Need.DYNAMICS: self.dynamics is not None,
            Need.SCORES: self.scores is not None,
        }
        if need is Need.GRADIENTS:
            return all(present[x] for x in (Need.LABELS, Need.FEATURES, Need.PROBABILITIES))
        return present[need]

    def grad_embedding(self) -> GradEmbedding:
        """Return the closed-form last-layer gradient embedding (needs labels, features, probs)."""
        cached = self.extras.get("grad_embedding")
        if cached is None:
            if not self.has(Need.GRADIENTS):
                raise RuntimeError("gradients need labels, features and probabilities")
            assert self.probs is not None and self.labels is not None
            assert self.features is not None
            cached = GradEmbedding.from_outputs(self.probs, self.labels, self.features)
            self.extras["grad_embedding"] = cached
        return cached
