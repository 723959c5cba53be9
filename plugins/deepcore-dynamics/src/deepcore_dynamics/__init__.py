"""Scores from training dynamics (AUM, CCS, Dyn-Unc, DUAL, TDDS), Moderate-DS and D2.

Every method here is a score method, so any sampler can pick from its ranking
(``--sampler top|stratified|beta|band``); CCS, DUAL and Moderate default to the sampler their
papers pair them with. The dynamics are the ones the engine records while it trains the
selection model (one row per epoch), so these scores cost nothing beyond that training.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from deepcore_core import (
    DeepcoreError,
    Dynamics,
    Need,
    Pick,
    RunningDynamics,
    ScoreSelector,
    SelectionContext,
    Selector,
    hookimpl,
)
from deepcore_dynamics import scores

log = logging.getLogger("deepcore")


def warn_if_short(method: str, dynamics: Any, needed: int, what: str) -> None:
    """Warn when the recorded run is shorter than what ``method`` reads (``needed`` epochs):
    its windows then collapse into one and the option has no effect past the recording."""
    have = dynamics.epochs if isinstance(dynamics, RunningDynamics) else len(dynamics.loss)
    if have < needed:
        log.warning(
            "method '%s' reads %s, but the selection model recorded %d epochs: the scores "
            "see fewer windows than the method's rule; train it longer "
            "(--selection-epochs %d or more)",
            method, what, have, needed,
        )  # fmt: skip


def full_history(method: str, dynamics: Any, option: str) -> Dynamics:
    """The epochs x N history, or a clear error when only running statistics were kept."""
    if isinstance(dynamics, RunningDynamics):
        raise DeepcoreError(
            f"method '{method}' with {option} needs every epoch's values; the selection model "
            "kept running statistics (use dynamics: full)"
        )
    return dynamics


@dataclasses.dataclass(frozen=True)
class AumOptions:
    """Options of ``aum``."""

    margin: Literal["logit", "probability"] = "logit"  #: logit (Pleiss) or probability (CCS)
    #: leave out the first epoch, as the AUM authors' replication code does
    skip_first_epoch: bool = False


class Aum(ScoreSelector):
    """Area under the margin: the mean over epochs of the true-class margin; lowest first.

    Pleiss et al., NeurIPS 2020 (arXiv 2001.10528): the margin is the true-class logit minus
    the largest other logit (``margin=probability``: the same with probabilities, as the CCS
    code does). Low AUM marks hard or mislabelled samples; ``top`` keeps those. Cost O(E N).
    Needs training dynamics.
    """

    name = "aum"
    family = "dynamics"
    needs = frozenset({Need.DYNAMICS})
    default_balance = False  # the whole dataset, as in the paper
    Options = AumOptions
    descending = False

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Mean margin over the recorded epochs."""
        d, o = ctx.dynamics, self.options
        if o.skip_first_epoch:
            d = full_history(self.name, d, "skip_first_epoch")
        if isinstance(d, RunningDynamics):
            name = "aum" if o.margin == "logit" else "aum_probability"
            return d.value(name, self.name)
        if o.margin == "logit":
            margin = d.need("margin", self.name)
        else:
            margin = d.need("p_true", self.name) - d.need("max_other", self.name)
        return scores.aum(margin[1:] if o.skip_first_epoch and len(margin) > 1 else margin)


@dataclasses.dataclass(frozen=True)
class CcsOptions(AumOptions):
    """Options of ``ccs``."""

    margin: Literal["logit", "probability"] = "probability"  #: the AUM margin (CCS: probability)


class Ccs(Aum):
    """Coverage-centric coreset selection: AUM ranked, then stratified sampling by default.

    Zheng et al., ICLR 2023 (arXiv 2210.15809): drop the hardest share (by pruning rate),
    split the AUM range into 50 equal-width strata and spread the budget over them, smallest
    first. The score is the probability-margin AUM of the CCS code. Needs training dynamics.
    """

    name = "ccs"
    Options = CcsOptions
    default_sampler = "stratified"


@dataclasses.dataclass(frozen=True)
class WindowOptions:
    """Options of the windowed scores."""

    window: int = 10  #: epochs per sliding window (the papers: 10)

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")


@dataclasses.dataclass(frozen=True)
class DynUncOptions(WindowOptions):
    """Options of ``dyn-unc``."""

    #: count the window that ends at the last epoch (BAAI's code stops one window short)
    last_window: bool = True


class DynUnc(ScoreSelector):
    """Dynamic uncertainty: the mean over sliding windows of the std of p_y; highest first.

    He et al., CVPR-W 2024 (arXiv 2306.05175): samples whose true-class probability keeps
    moving during training are the informative ones. With fewer epochs than ``window`` the
    one window spans all of them. Cost O(E N). Needs training dynamics.
    """

    name = "dyn-unc"
    family = "dynamics"
    needs = frozenset({Need.DYNAMICS})
    default_balance = False  # the whole dataset, as in the paper
    Options = DynUncOptions
    descending = True

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Windowed std of p_y = exp(-loss)."""
        w, d = self.options.window, ctx.dynamics
        warn_if_short(self.name, d, w + 1, f"more than one window of {w} epochs")
        if not self.options.last_window:
            p = full_history(self.name, d, "last_window=false").need("p_true", self.name)
            return scores.dyn_unc(p[:-1] if len(p) > w else p, w)
        if isinstance(d, RunningDynamics):
            return d.value("dyn_unc", self.name, window=w)
        return scores.dyn_unc(d.need("p_true", self.name), w)


@dataclasses.dataclass(frozen=True)
class DualOptions(WindowOptions):
    """Options of ``dual``."""

    epochs: int = 30  #: only the first epochs count (DUAL: 30 on CIFAR, 60 on ImageNet)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 2:
            raise ValueError(f"epochs must be >= 2, got {self.epochs}")


class Dual(ScoreSelector):
    """DUAL: windowed std(p_y) x (1 - mean p_y) over early epochs, Beta sampling by default.

    Cho et al., ICML 2025 (arXiv 2502.06905): uncertain samples that are not yet learned score
    high. The ``beta`` sampler draws with probability proportional to the Beta density at each
    sample's mean p_y over the first ``epochs`` epochs, times its score, the density moving to
    easier samples as the pruning rate grows. Cost O(E N). Needs training dynamics.
    """

    name = "dual"
    family = "dynamics"
    needs = frozenset({Need.DYNAMICS})
    default_balance = False  # the whole dataset, as in the paper
    Options = DualOptions
    descending = True
    default_sampler = "beta"

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """The DUAL score over the first ``epochs`` epochs."""
        o = self.options
        warn_if_short(self.name, ctx.dynamics, o.epochs, f"its first {o.epochs} epochs")
        if isinstance(ctx.dynamics, RunningDynamics):
            return ctx.dynamics.value("dual", self.name, window=o.window, horizon=o.epochs)
        return scores.dual(ctx.dynamics.need("p_true", self.name), o.window, o.epochs)

    def sampler_extras(self, ctx: SelectionContext, pool: np.ndarray) -> dict[str, np.ndarray]:
        """The Beta variable (mean p_y over the early epochs) and weights (the score)."""
        assert ctx.scores is not None
        d, epochs = ctx.dynamics, self.options.epochs
        if isinstance(d, RunningDynamics):
            x = d.value("early_p_true", self.name, horizon=epochs)[pool]
        else:  # p_y of this pool only (exp(-loss) over all of E x N per pool would repeat)
            loss = d.need("loss", self.name)[:epochs, pool]
            x = np.exp(-loss.astype(np.float64)).mean(0)
        return {"beta_x": x, "beta_weight": ctx.scores[pool]}


@dataclasses.dataclass(frozen=True)
class TddsOptions(DualOptions):
    """Options of ``tdds``."""

    decay: float = 0.9  #: weight of the latest window; earlier ones decay by (1 - decay)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 3:  # a window of 2 epochs holds one change: no deviation to measure
            raise ValueError(f"window must be >= 3 (epochs, so >= 2 changes), got {self.window}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")


class Tdds(ScoreSelector):
    """TDDS: how much the per-epoch prediction change varies within windows; highest first.

    Zhang et al., CVPR 2024 (arXiv 2311.13613). The engine computes each epoch's change
    sum_c |p_t,c log(p_t,c / p_t-1,c)| online (no per-epoch probability vectors are kept);
    windows of ``window`` epochs (``window - 1`` changes, as the paper and its code count)
    over the first ``epochs`` epochs, weighted by ``decay``.
    Cost O(E N) (O(N C) memory while training). Needs training dynamics.
    """

    name = "tdds"
    family = "dynamics"
    needs = frozenset({Need.DYNAMICS})
    default_balance = False  # the whole dataset, as in the paper
    revision = 1  # 1: windows count epochs
    Options = TddsOptions
    descending = True

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Decay-weighted windowed variability of the prediction change."""
        o = self.options
        warn_if_short(self.name, ctx.dynamics, o.epochs, f"its first {o.epochs} epochs")
        if isinstance(ctx.dynamics, RunningDynamics):
            return ctx.dynamics.value(
                "tdds", self.name, window=o.window, horizon=o.epochs, decay=o.decay
            )
        change = ctx.dynamics.need("change", self.name)
        return scores.tdds(change, o.window, o.epochs, o.decay)


@dataclasses.dataclass(frozen=True)
class ModerateOptions:
    """Options of ``moderate``."""

    #: whose median a sample is measured from: its class's (the paper), its k-means
    #: cluster's (--clusters; no labels needed) or the whole dataset's (no labels needed)
    median: Literal["class", "cluster", "all"] = "class"


class Moderate(ScoreSelector):
    """Moderate-DS: distance to the class-median feature, the middle band kept by default.

    Xia et al., ICLR 2023: neither the easiest (closest to the median) nor the hardest
    samples, the ones of moderate distance (the ``band`` sampler around the median rank).
    Without labels the median is the cluster's (``median: cluster`` with ``--clusters``) or
    the whole dataset's (``median: all``). Cost O(N D). Needs features (and labels for the
    class median).
    """

    name = "moderate"
    family = "dynamics"
    needs = frozenset({Need.FEATURES, Need.LABELS})
    Options = ModerateOptions
    default_balance = False  # the whole dataset, as in the paper
    descending = True
    default_sampler = "band"

    def required(self) -> frozenset[Need]:
        """Features, and labels for the class median."""
        return self.needs if self.options.median == "class" else frozenset({Need.FEATURES})

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Distance of each sample's features to its group's per-dimension median."""
        assert ctx.features is not None  # the method's needs
        median = self.options.median
        if median == "class":
            groups = ctx.labels
        elif median == "cluster":
            if ctx.pools is None:
                raise DeepcoreError("moderate with median: cluster needs --clusters K")
            groups = ctx.pools
        else:
            groups = np.zeros(ctx.n, dtype=np.int64)
        assert groups is not None
        return scores.distance_to_class_median(ctx.features, groups)


@dataclasses.dataclass(frozen=True)
class D2Options:
    """Options of ``d2``."""

    score: str = "forgetting"  #: the score method spread over the graph (D2 on CIFAR: forgetting)
    knn: int = 5  #: neighbours per sample (D2: 5)
    gamma: float = 0.1  #: down-weighting of a pick's neighbours, exp(-gamma d) (D2: 0.1)
    gamma_forward: float = 1.0  #: the forward message weight, exp(-gamma_forward d)
    #: the k-NN graph: undirected as in the paper, or directed (each sample's own k only)
    graph: Literal["undirected", "directed"] = "undirected"
    drop: float = 0.4  #: share of the whole dataset dropped first, the hardest (D2: 0.4 on CIFAR)
    #: the score method whose front (hardest end) is dropped: aum as in the paper (the
    #: authors' code drops by the probability-margin AUM: ccs)
    drop_score: str = "aum"
    #: neighbour search: exact, FAISS's exact index, FAISS HNSW, or auto (HNSW above 100,000)
    knn_backend: Literal["auto", "exact", "faiss", "faiss-hnsw"] = "auto"

    def __post_init__(self) -> None:
        if self.knn < 1 or self.gamma < 0 or self.gamma_forward < 0:
            raise ValueError("knn must be >= 1 and the gammas >= 0")
        if not 0.0 <= self.drop < 1.0:
            raise ValueError(f"drop must be in [0, 1), got {self.drop}")


class D2(Selector):
    """D2 pruning: a score spread by message passing over the feature k-NN graph, then a greedy.

    Maharana et al., ICLR 2024 (arXiv 2310.07931), with the paper's CIFAR recipe: first the
    hardest ``drop`` share of the whole dataset by ``drop_score`` (AUM) is dropped; then
    ``score``'s ranking (forgetting; oriented so its front is high, scaled to [0, 1] per pool)
    is smoothed over each sample's neighbours in the undirected ``knn``-NN graph of the
    features, and picks alternate with down-weighting the pick's neighbours. Per class by
    default, as in the paper. A class left with fewer samples than its budget takes back its
    least hard dropped ones. Neighbours by blockwise exact top-k on the run's device:
    O(n knn) memory per pool. Needs features plus the score methods' inputs.
    """

    name = "d2"
    family = "dynamics"
    needs = frozenset({Need.FEATURES, Need.DYNAMICS})  # with the default scores
    Options = D2Options
    revision = 1  # 1: undirected graph, whole-dataset cut-off, the paper's defaults

    def scorer(self, method: str) -> ScoreSelector:
        """A score method, from the host that made this selector (else the default one)."""
        from deepcore_core import get_host

        sel = (self.host or get_host()).create_selector(method)
        if not isinstance(sel, ScoreSelector):
            raise DeepcoreError(f"d2: score method '{method}' does not score samples")
        return sel

    def required(self) -> frozenset[Need]:
        """Features and whatever the score methods need."""
        o = self.options
        out = frozenset({Need.FEATURES}) | self.scorer(o.score).required()
        if o.drop:
            out |= self.scorer(o.drop_score).required()
        return out

    def front_scores(self, ctx: SelectionContext, method: str) -> np.ndarray:
        """``method``'s scores oriented so that its front is high (once per selection)."""
        key = f"d2:{method}"
        if key not in ctx.extras:  # every pool shares them
            sel = self.scorer(method)
            s = np.asarray(sel.compute_scores(ctx), dtype=np.float64)
            ctx.extras[key] = s if sel.front_is_high(ctx) else -s
        return np.asarray(ctx.extras[key])

    def hardness_rank(self, ctx: SelectionContext) -> np.ndarray:
        """Each sample's place in the whole dataset's ``drop_score`` ranking, 0 the hardest
        (ties broken by a seeded permutation)."""
        key = f"d2:rank:{self.options.drop_score}"
        if key not in ctx.extras:
            s = self.front_scores(ctx, self.options.drop_score)
            order = np.lexsort((ctx.rng("d2-drop").permutation(ctx.n), -s))
            rank = np.empty(ctx.n, dtype=np.int64)
            rank[order] = np.arange(ctx.n)
            ctx.extras[key] = rank
        return np.asarray(ctx.extras[key])

    def kept(self, ctx: SelectionContext, pool: np.ndarray, k: int) -> np.ndarray:
        """The pool without the whole dataset's hardest ``drop`` share (at least ``k``)."""
        if not self.options.drop:
            return pool
        rank = self.hardness_rank(ctx)[pool]
        keep = rank >= int(self.options.drop * ctx.n)
        if keep.sum() < k:  # the least hard k of the pool
            keep = np.zeros(pool.size, dtype=bool)
            keep[np.argsort(rank)[pool.size - k :]] = True
        return pool[keep]

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Drop the hardest, then message passing and the greedy within the pool."""
        from deepcore_core import knn
        from deepcore_dynamics.d2 import d2_select, knn_graph

        o = self.options
        assert ctx.features is not None
        pool = self.kept(ctx, pool, k)
        v = self.front_scores(ctx, o.score)[pool]
        span = v.max() - v.min()
        v = (v - v.min()) / span if span > 0 else np.ones_like(v)
        m = min(o.knn, pool.size - 1)
        if m < 1:
            return Pick(pool[:k])
        dist, nbr = knn(ctx.features[pool], m, "euclidean", True, ctx.device, backend=o.knn_backend)
        graph = knn_graph(dist, nbr, undirected=o.graph == "undirected")
        return Pick(pool[d2_select(v, graph, k, o.gamma, o.gamma_forward)])


METHODS = (Aum, Ccs, DynUnc, Dual, Tdds, Moderate, D2)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register aum, ccs, dyn-unc, dual, tdds, moderate and d2."""
    for cls in METHODS:
        register(cls)
