"""Selection without labels: self-supervised prototypes, ELFS and SemDeDup.

Every method here needs only features: with ``--no-labels`` they are an encoder's embeddings
(``simclr`` by default, or a pretrained one: ``--encoder``), so nothing reads a label. Each
picks from the whole dataset unless ``--clusters K`` (or ``--balance`` with labels) splits it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from deepcore_core import (
    DeepcoreError,
    Need,
    Pick,
    ScoreSelector,
    SelectionContext,
    Selector,
    hookimpl,
)


def _record(ctx: SelectionContext, method: str, values: dict[str, Any]) -> None:
    """Add ``values`` to what the selection's record says of ``method``."""
    ctx.extras.setdefault("meta", {}).setdefault(method, {}).update(values)


@dataclasses.dataclass(frozen=True)
class PrototypeOptions:
    """Options of ``prototype``."""

    clusters: int = 10  #: k of the k-means on the embeddings
    #: hard (far from their centroid), easy (near it), or auto: hard when keeping at least
    #: ``easy_below`` of the data, easy below it
    keep: Literal["auto", "hard", "easy"] = "auto"
    easy_below: float = 0.3  #: the kept share under which auto keeps the easy samples

    def __post_init__(self) -> None:
        if self.clusters < 1:
            raise ValueError(f"clusters must be >= 1, got {self.clusters}")
        if not 0.0 <= self.easy_below <= 1.0:
            raise ValueError(f"easy_below must be in [0, 1], got {self.easy_below}")


class Prototype(ScoreSelector):
    """Self-supervised prototypes: distance of each embedding to its nearest k-means centroid.

    Sorscher, Geirhos et al., "Beyond neural scaling laws", NeurIPS 2022 (arXiv 2206.14486).
    k-means (k-means++ seeding, Lloyd) on the whole dataset's embeddings; the score is the
    Euclidean distance to the nearest centroid. The paper's rule keeps the hard samples (far)
    when much data is kept and the easy ones (near) when little is; ``keep=auto`` switches at
    ``easy_below`` of the data kept (30%: our choice; the paper derives the switch from the
    data size, not a fixed share). Needs features only.
    """

    name = "prototype"
    family = "label-free"
    needs = frozenset({Need.FEATURES})
    Options = PrototypeOptions
    default_balance = False

    def keeps_hard(self, ctx: SelectionContext) -> bool:
        """Whether the far (hard) end is kept, as ``keep`` says for this budget."""
        if self.options.keep != "auto":
            return self.options.keep == "hard"
        return ctx.total >= math.floor(self.options.easy_below * ctx.n)

    def front_is_high(self, ctx: SelectionContext) -> bool:
        """Hard first: the largest distances; easy first: the smallest."""
        hard = self.keeps_hard(ctx)
        _record(ctx, self.name, {"keep": "hard" if hard else "easy"})
        return hard

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Distance to the nearest centroid."""
        from deepcore_core import kmeans

        assert ctx.features is not None
        found = kmeans(ctx.features, self.options.clusters, ctx.rng("prototype"),
                       device=ctx.device)  # fmt: skip
        return found.distance.astype(np.float64)


@dataclasses.dataclass(frozen=True)
class ElfsOptions:
    """Options of ``elfs``."""

    clusters: int = 10  #: pseudo-label classes: k-means clusters of the embeddings
    #: the share of the hardest (lowest-AUM) samples dropped before the kept band (beta);
    #: None: searched over 0, search_step, ... up to search_max
    hard_cutoff: float | None = None
    search_step: float = 0.1  #: the search grid's step
    search_max: float = 0.5  #: the largest share searched
    search_iterations: int = 300  #: proxy training steps per candidate share

    def __post_init__(self) -> None:
        if self.clusters < 2:
            raise ValueError(f"clusters must be >= 2, got {self.clusters}")
        if self.hard_cutoff is not None and not 0.0 <= self.hard_cutoff < 1.0:
            raise ValueError(f"hard_cutoff must be in [0, 1), got {self.hard_cutoff}")
        if not 0.0 < self.search_step <= 1.0 or not 0.0 <= self.search_max < 1.0:
            raise ValueError("search_step must be in (0, 1] and search_max in [0, 1)")
        if self.search_iterations < 1:
            raise ValueError(f"search_iterations must be >= 1, got {self.search_iterations}")


def double_end(order: np.ndarray, beta: float, k: int) -> np.ndarray:
    """ELFS's double-end pruning of a hard-first ``order``: drop the first ``floor(beta *
    n)`` (the hardest; moved back so that ``k`` remain), keep the next ``k``, drop the rest
    (the easiest)."""
    start = min(int(np.floor(beta * len(order))), len(order) - k)
    return order[start : start + k]


def search_grid(options: ElfsOptions, n: int, k: int) -> list[float]:
    """The hard-cutoff shares searched: 0, step, ... up to ``search_max``, and no further
    than leaves ``k`` of ``n``."""
    top = min(options.search_max, (n - k) / n)
    count = int(np.floor(top / options.search_step + 1e-9))
    return [round(i * options.search_step, 10) for i in range(count + 1)]


def pick_cutoff(accuracy: Callable[[float], float], grid: list[float]) -> tuple[float, dict]:
    """The share of ``grid`` whose coreset scores the best ``accuracy`` (the smaller share
    on a tie), and every share's accuracy."""
    seen = {beta: float(accuracy(beta)) for beta in grid}
    best = max(grid, key=lambda b: (seen[b], -b))
    return best, seen


class Elfs(Selector):
    """ELFS: AUM from a model trained on cluster pseudo-labels, then double-end pruning.

    Zheng, Tsai et al., ICLR 2025 (arXiv 2406.04273). Pseudo-labels are k-means clusters of
    the embeddings (the paper trains deep-clustering heads, TEMI, on them; k-means is our
    stand-in), the selection network is trained on them (cached like any selection model)
    and each sample's AUM (mean logit margin over the recorded epochs) is its difficulty. The
    hardest ``hard_cutoff`` share is dropped, the next k kept. Without ``hard_cutoff`` the
    share is searched without labels, as the paper requires (its own search is not ours): for
    each share a fresh network trains ``search_iterations`` steps on that coreset, and the
    share whose network predicts the pseudo-labels of the whole dataset best wins. Needs
    features and a dataset.
    """

    name = "elfs"
    family = "label-free"
    needs = frozenset({Need.FEATURES, Need.DATASET})
    Options = ElfsOptions
    default_balance = False

    def _prepare(self, ctx: SelectionContext) -> dict[str, Any]:
        """Pseudo-labels, AUM and the cutoff, once per selection."""
        if "elfs" in ctx.extras:
            return ctx.extras["elfs"]
        from deepcore_core import RunningDynamics, kmeans, pretrain_on_labels, proxy_accuracy

        assert ctx.features is not None and ctx.dataset is not None  # the method's needs
        o = self.options
        clusters = kmeans(ctx.features, o.clusters, ctx.rng("elfs", "pseudo-labels"),
                          device=ctx.device)  # fmt: skip
        pseudo = clusters.assign
        dynamics = pretrain_on_labels(ctx, pseudo, "pseudo-labels").dynamics
        if isinstance(dynamics, RunningDynamics):
            raise DeepcoreError("method 'elfs' reads every epoch's margin: use dynamics: full")
        aum = np.asarray(dynamics.margin, np.float64).mean(0)
        order = np.lexsort((ctx.rng("elfs", "ties").permutation(ctx.n), aum))  # hard first
        searched: dict[float, float] = {}
        beta = o.hard_cutoff
        if beta is None:
            from deepcore_core import Progress

            grid = search_grid(o, ctx.n, ctx.total)
            with Progress(len(grid), "elfs: hard-cutoff search", unit="shares") as bar:

                def accuracy(b: float) -> float:
                    subset = np.sort(double_end(order, b, ctx.total))
                    found = proxy_accuracy(ctx, pseudo, subset, o.search_iterations)
                    bar.update(1, f"share {b:g}: {100 * found:.1f}%", counted=1)
                    return found

                beta, searched = pick_cutoff(accuracy, grid)
        ctx.scores = aum
        state = {"aum": aum, "beta": float(beta)}
        ctx.extras["elfs"] = state
        _record(ctx, self.name, {
            "hard_cutoff": float(beta),
            "search": {str(b): a for b, a in searched.items()},
            "pseudo_label_sizes": np.bincount(pseudo, minlength=o.clusters).tolist(),
        })  # fmt: skip
        return state

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """The pool's samples hard first by AUM (seeded ties), double-end pruned."""
        state = self._prepare(ctx)
        aum = state["aum"][pool]
        order = np.lexsort((rng.permutation(pool.size), aum))
        return Pick(np.sort(pool[double_end(order, state["beta"], k)]))


@dataclasses.dataclass(frozen=True)
class SemDeDupOptions:
    """Options of ``semdedup``."""

    #: drop samples with cosine similarity above 1 - eps to a kept one; None: the largest
    #: eps that keeps at least the budget (found by bisection)
    eps: float | None = None
    clusters: int | None = None  #: k-means clusters (None: one per 500 samples)

    def __post_init__(self) -> None:
        if self.eps is not None and not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.clusters is not None and self.clusters < 1:
            raise ValueError(f"clusters must be >= 1, got {self.clusters}")


class SemDeDup(Selector):
    """SemDeDup: drop semantic near-duplicates, then a uniform draw of what is left.

    Abbas et al., "SemDeDup", 2023 (arXiv 2303.09540). Spherical k-means on the embeddings;
    within each cluster, from the farthest from the centroid to the nearest, a sample is
    dropped when its cosine similarity to a kept one exceeds 1 - eps. The budget is drawn
    uniformly (seeded) from the samples kept; without ``eps`` the largest eps that keeps at
    least the budget is found by bisection, so the draw removes as few as it can. The same
    filter runs before any method with ``--dedup EPS``. Needs features only.
    """

    name = "semdedup"
    family = "label-free"
    needs = frozenset({Need.FEATURES})
    Options = SemDeDupOptions
    default_balance = False

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Deduplicate the pool, then draw ``k`` of the samples kept."""
        from deepcore_core import Deduplicator

        assert ctx.features is not None
        dedup = Deduplicator(ctx.features[pool], rng, clusters=self.options.clusters,
                             device=ctx.device, rows=pool)  # fmt: skip
        eps = self.options.eps if self.options.eps is not None else dedup.eps_for(k)
        kept = dedup.kept(eps)
        if kept.size < k:
            raise DeepcoreError(
                f"method 'semdedup' with eps {eps} keeps {kept.size} of {pool.size} samples, "
                f"fewer than the {k} asked for: lower eps"
            )
        record = ctx.extras.setdefault("meta", {}).setdefault(self.name, {"pools": []})
        record["pools"].append({"eps": eps, "kept": int(kept.size), "size": int(pool.size)})
        return Pick(np.sort(rng.choice(kept, size=k, replace=False)))


METHODS = (Prototype, Elfs, SemDeDup)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register prototype, elfs and semdedup."""
    for cls in METHODS:
        register(cls)
