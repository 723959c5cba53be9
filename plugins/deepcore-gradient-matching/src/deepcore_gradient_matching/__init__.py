"""Gradient matching: weighted coresets whose gradients stand in for the full data's."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from deepcore_core import (
    LossBatchOptions,
    Need,
    Pick,
    SelectionContext,
    Selector,
    hookimpl,
    original_rule,
)

if TYPE_CHECKING:
    from deepcore_core import CosineBlocks

# torch, scipy and the core's submodular machinery are imported where used, so that listing
# methods (which imports every plugin) does not wait for them.


@dataclasses.dataclass(frozen=True)
class CraigOptions(LossBatchOptions):
    """Options of ``craig``."""

    similarity: Literal["euclidean", "cosine"] = "euclidean"
    optimizer: Literal["naive", "lazy", "stochastic", "lazier-than-lazy"] = "lazy"
    epsilon: float = 0.01
    dense_limit: int = 20000  #: pools larger than this use a k-NN graph
    knn: int = 50
    weights: Literal["cluster-size", "cluster-size-plus-one"] = original_rule(
        "cluster-size", "cluster-size-plus-one", "each weight is its cluster size + 1"
    )  #: a pick's weight: how many pool samples it represents (+1 as in the original)

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {self.epsilon}")
        if self.dense_limit < 1 or self.knn < 1:
            raise ValueError("dense_limit and knn must be positive")
        super().__post_init__()


class Craig(Selector):
    """Craig: facility location on gradient similarity, weighted by the points each pick covers.

    Mirzasoleiman, Bilmes & Leskovec, ICML 2020 (arXiv 1906.01827). Similarity is
    max_distance - ||g_i - g_j|| over last-layer gradients (closed form; or their cosine).
    Each pick's weight is the number of pool samples whose most similar pick it is, so the
    weights sum to the pool size. Uses the core's facility location and greedy; O(n^2) memory
    per pool up to ``dense_limit``, a k-NN graph beyond. Needs the gradient embedding.
    """

    name = "craig"
    family = "gradient-matching"
    needs = frozenset({Need.GRADIENTS})
    Options = CraigOptions

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Greedy facility location, then assign every sample to its most similar pick."""
        import scipy.sparse as sp

        from deepcore_core import CosineBlocks, FacilityLocation, blockwise_topk, maximize

        o = self.options
        blocks = CosineBlocks(ctx, pool, "gradients", o.loss_batch)
        n = pool.size
        if o.similarity == "cosine":
            sim = blocks.dense_tensor(reuse=True) if n <= o.dense_limit else blocks.knn(o.knn)
        elif n <= o.dense_limit:
            d = blocks.distances(reuse=True)
            far = d.max()
            sim = d.neg_().add_(far)  # max distance - d, in place on the run's device
        else:
            vals, idx = blockwise_topk(lambda lo, hi: -blocks.distance(lo, hi), n, o.knn)
            dist = -vals
            sim = sp.csr_matrix(
                (
                    (dist.max() - dist).ravel().astype(np.float32),
                    (np.repeat(np.arange(n), idx.shape[1]), idx.ravel()),
                ),
                shape=(n, n),
            )
        order = maximize(FacilityLocation(sim), k, o.optimizer, rng, o.epsilon)
        return Pick(pool[order], self.weights(blocks, order))

    def weights(self, blocks: CosineBlocks, order: np.ndarray) -> np.ndarray:
        """How many pool samples have each pick as their most similar (exact, blockwise)."""
        import torch

        cols = torch.as_tensor(order, device=blocks.h.device)
        nearest = []
        for lo in range(0, blocks.n, 4096):
            hi = min(blocks.n, lo + 4096)
            if self.options.similarity == "cosine":
                c = blocks.inner(lo, hi, cols) * blocks.inv[lo:hi, None] * blocks.inv[cols][None]
                nearest.append(torch.argmax(c, 1))
            else:
                nearest.append(torch.argmin(blocks.distance(lo, hi, cols), 1))
        assign = torch.cat(nearest).cpu().numpy()
        w = np.bincount(assign, minlength=order.size).astype(np.float64)
        return w + 1.0 if self.options.weights == "cluster-size-plus-one" else w


@dataclasses.dataclass(frozen=True)
class GradMatchOptions(LossBatchOptions):
    """Options of ``gradmatch``."""

    lam: float = original_rule(
        0.5, 1.0, "lam is ignored: the regularisation is always 1"
    )  #: L2 regularisation of the weights
    fill: Literal["alignment", "random"] = "alignment"

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        super().__post_init__()


class GradMatch(Selector):
    """GradMatch: non-negative OMP whose weighted gradient sum matches the pool's gradient sum.

    Killamsetty et al., ICML 2021 (arXiv 2103.00123): minimise
    ||sum_{j in S} w_j g_j - sum_i g_i||^2 + lam ||w||^2 over w >= 0, picking the atom most
    aligned with the residual each step and extending the inverse of a Cholesky factor (no
    re-solve per step). If OMP stops early (no positively aligned atom left, or the rest is in
    the span), the budget is filled with the unpicked samples most aligned with the target
    gradient (``fill=alignment``; or at random), and every weight is refit on the final
    support (non-negative, from the OMP weights), so the match never gets worse with the
    budget; a fill pick may get weight 0. Returns exactly the budget. Needs the gradient embedding.
    """

    name = "gradmatch"
    family = "gradient-matching"
    needs = frozenset({Need.GRADIENTS})
    Options = GradMatchOptions

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """OMP on the pool, then the documented fill rule."""
        from deepcore_gradient_matching.omp import omp_select, refit_weights

        g = ctx.grad_embedding().rows(pool, self.options.loss_batch)
        e, h = g.residual, g.features
        sel, w, _ = omp_select(e, h, k, self.options.lam, device=ctx.device)
        if sel.size < k:
            rest = np.setdiff1d(np.arange(pool.size), sel)
            if self.options.fill == "random":
                extra = rng.choice(rest, size=k - sel.size, replace=False)
            else:
                hb = np.concatenate([np.ones((len(h), 1)), h], axis=1).astype(np.float64)
                align = ((e @ (e.T.astype(np.float64) @ hb)) * hb).sum(1)
                extra = rest[np.lexsort((rest, -align[rest]))[: k - sel.size]]
            sel = np.concatenate([sel, extra])
            # refit every weight on the final support, starting from the OMP weights (the
            # fill picks at 0), so the filled coreset never matches worse than OMP's picks
            w = refit_weights(e, h, sel, self.options.lam, np.append(w, np.zeros(extra.size)))
            if not w.sum() > 0:  # nothing aligned at all: equal weights, as uniform would
                w = np.ones(k)
        return Pick(pool[sel], w)


METHODS = (Craig, GradMatch)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register craig and gradmatch."""
    for cls in METHODS:
        register(cls)
