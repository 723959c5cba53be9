"""Importance scores from training: forgetting events, GraNd and EL2N."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from deepcore_core import (
    GradEmbedding,
    LossBatchOptions,
    Need,
    Pick,
    RunningDynamics,
    ScoreSelector,
    SelectionContext,
    hookimpl,
    loader_batch_scale,
    original_rule,
    top_k,
)

#: distance between the seeds of repeated models (run seed s uses s, s + STRIDE, ...)
SEED_STRIDE = 1000


@dataclasses.dataclass(frozen=True)
class HardnessOptions:
    """Which end of the score to keep."""

    keep: Literal["hardest", "easiest"] = "hardest"
    drop_hardest: float = 0.0  #: share of each pool's hardest samples removed first

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_hardest < 1.0:
            raise ValueError(f"drop_hardest must be in [0, 1), got {self.drop_hardest}")


class _Hardness(ScoreSelector):
    """Higher score = harder. Keeps the hardest by default; see :class:`HardnessOptions`."""

    family = "importance"
    Options = HardnessOptions

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Drop the hardest share of the pool (never below k left), then let the sampler pick
        from the rest (``top``: the hardest, or the easiest with ``keep=easiest``).

        Equal scores are ordered by a seeded random permutation of the pool.
        """
        assert ctx.scores is not None
        drop = min(math.floor(self.options.drop_hardest * pool.size), pool.size - k)
        if drop:
            ranked = top_k(ctx.scores, pool, pool.size, descending=True, rng=rng)  # hardest first
            pool = np.sort(ranked[drop:])
        return super().pick(ctx, pool, k, rng)

    def front_is_high(self, ctx: SelectionContext) -> bool:
        """The hardest first (the easiest with ``keep=easiest``)."""
        return self.options.keep == "hardest"


@dataclasses.dataclass(frozen=True)
class ForgettingOptions(HardnessOptions):
    """Options of ``forgetting``."""

    never_learned: Literal["max", "zero"] = original_rule(
        "max", "zero", "never-learned samples score 0 (as unforgettable ones), not the maximum"
    )  #: score of samples never classified correctly: above any count, or 0


class Forgetting(_Hardness):
    """Forgetting events: how often a sample went from correct to wrong during training.

    Toneva et al., ICLR 2019 (arXiv 1812.05159). Counted from the per-sample correctness the
    engine records at each presentation during selection-model training (one per epoch).
    Samples never classified correctly score the number of epochs, above any possible count,
    so they rank as the most forgettable (as in the paper; ``never_learned=zero`` gives them
    0, as the original DeepCore did). Cost O(N E). Needs training dynamics.
    """

    name = "forgetting"
    needs = frozenset({Need.DYNAMICS})
    Options = ForgettingOptions

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Forgetting counts from the epochs x N correctness or the running statistics."""
        d = ctx.dynamics
        if isinstance(d, RunningDynamics):
            events = d.value("forgetting", self.name)
            return score_never_learned(events, d.ever_correct, d.epochs, self.options.never_learned)
        return forgetting_counts(np.asarray(d.correct, dtype=bool), self.options.never_learned)


def forgetting_counts(correct: np.ndarray, never_learned: str = "max") -> np.ndarray:
    """Correct-to-wrong transitions per column; never-correct columns get ``len(correct)``
    (``never_learned="max"``) or 0 (``"zero"``)."""
    correct = np.asarray(correct, dtype=bool)
    events = (correct[:-1] & ~correct[1:]).sum(0)
    learned = np.asarray(correct.any(0))
    return score_never_learned(events, learned, correct.shape[0], never_learned)


def score_never_learned(
    events: np.ndarray, ever_correct: np.ndarray, epochs: int, never_learned: str
) -> np.ndarray:
    """Forgetting ``events`` as float64 scores, never-correct samples set to ``epochs``
    (``never_learned="max"``) or 0 (``"zero"``)."""
    out = np.asarray(events, dtype=np.float64).copy()
    out[~np.asarray(ever_correct, dtype=bool)] = epochs if never_learned == "max" else 0.0
    return out


@dataclasses.dataclass(frozen=True)
class RepeatOptions(HardnessOptions):
    """Options of the scores averaged over independently initialised models."""

    repeats: int = 10  #: models averaged over (Paul et al. use 10)
    epochs: int | None = None  #: training epochs of each model (None: the selection model's)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


class _Repeated(_Hardness):
    """Average a per-model score over ``repeats`` selection models with distinct seeds.

    With a dataset, model r is trained with seed ``seed + 1000 r`` (r = 0 is the shared
    selection model, so it comes from the cache when the epochs match; every repeated model
    is cached too). With precomputed outputs or the user's own model, that model is the
    only one.
    """

    Options = RepeatOptions

    @abc.abstractmethod
    def per_model(
        self, probs: np.ndarray, labels: np.ndarray, features: np.ndarray | None
    ) -> np.ndarray:
        """The score under one model."""

    def seeds(self, seed: int) -> list[int]:
        """The seeds of the repeated models for a run seed."""
        return [seed + SEED_STRIDE * r for r in range(self.options.repeats)]

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """The mean score over the repeated models."""
        assert ctx.labels is not None
        if ctx.dataset is None or ctx.pretrain is None:  # outputs given, or the user's model
            assert ctx.probs is not None  # the method's needs
            return self.per_model(ctx.probs, ctx.labels, ctx.features)
        total = np.zeros(ctx.n)
        for s in self.seeds(ctx.seed):
            features, probs = ctx.outputs_for_seed(s, self.options.epochs)
            total += self.per_model(probs, ctx.labels, features)
        return total / self.options.repeats


@dataclasses.dataclass(frozen=True)
class GraNdOptions(LossBatchOptions, RepeatOptions):
    """Options of ``grand``."""


class GraNd(_Repeated):
    """GraNd: the expected norm of the per-sample loss gradient early in training.

    Paul, Ganguli & Dziugaite, NeurIPS 2021 (arXiv 2107.07075): ||g|| averaged over
    ``repeats`` independently initialised models trained ``epochs`` epochs. The gradient is
    the last layer's, in closed form ||p - onehot(y)|| * sqrt(1 + ||h||^2), without the
    original's 1/batch-size scaling unless ``loss_batch`` asks for it (the whole training set
    read in order, as the original's loader did). Cost: ``repeats`` trainings (cached) and
    O(N (C + D)). Needs the gradient embedding (features + probabilities + labels).
    """

    name = "grand"
    needs = frozenset({Need.GRADIENTS})
    Options = GraNdOptions

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """The mean norm over the repeated models (times the batch-mean factor)."""
        scores = super().compute_scores(ctx)
        if self.options.loss_batch is not None:
            scores = scores * loader_batch_scale(ctx.n, self.options.loss_batch)
        return scores

    def per_model(
        self, probs: np.ndarray, labels: np.ndarray, features: np.ndarray | None
    ) -> np.ndarray:
        """Closed-form last-layer gradient norms."""
        assert features is not None  # GraNd needs the gradient embedding
        return GradEmbedding.from_outputs(probs, labels, features).norms()


class EL2N(_Repeated):
    """EL2N: the expected L2 norm of the error vector p - onehot(y) early in training.

    Paul, Ganguli & Dziugaite, NeurIPS 2021 (arXiv 2107.07075), averaged over ``repeats``
    models like GraNd. Cost: ``repeats`` trainings (cached) and O(N C). Needs probabilities
    and labels.
    """

    name = "el2n"
    needs = frozenset({Need.PROBABILITIES, Need.LABELS})

    def per_model(
        self, probs: np.ndarray, labels: np.ndarray, features: np.ndarray | None
    ) -> np.ndarray:
        """||p - onehot(y)||_2."""
        e = np.asarray(probs, dtype=np.float64).copy()
        e[np.arange(len(labels)), labels] -= 1.0
        return np.linalg.norm(e, axis=1)


METHODS = (Forgetting, GraNd, EL2N)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register forgetting, grand and el2n."""
    for cls in METHODS:
        register(cls)
