"""Bilevel selection: Glister."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from deepcore_core import (
    LossBatchOptions,
    Need,
    Pick,
    SelectionContext,
    Selector,
    hookimpl,
    load_indices,
    loader_batch_scale,
    original_rule,
)


@dataclasses.dataclass(frozen=True)
class GlisterOptions(LossBatchOptions):
    """Options of ``glister``."""

    eta: float = 0.1  #: step size of the one-step Taylor update
    per_step: int = 1  #: picks between two updates of the model state
    val_fraction: float = original_rule(
        0.1, 0.0, "validates on the training pool itself (no validation set falls back to it)"
    )  #: held-out share of each pool used as validation (0: the pool)
    val_indices: str | None = None  #: a .npy of dataset indices to use as validation instead
    update: bool = original_rule(
        True, False, "the state update never runs (a misspelt keyword): static top-k alignment"
    )  #: update the model state between picks (False: rank once by the initial gains)

    def __post_init__(self) -> None:
        if self.eta <= 0 or self.per_step < 1:
            raise ValueError("eta must be > 0 and per_step >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        super().__post_init__()


class Glister(Selector):
    """Glister: greedily pick what most raises validation likelihood after a one-step update.

    Killamsetty et al., AAAI 2021 (arXiv 2012.10630), GLISTER-ONLINE style: the gain of a
    sample is the first-order (Taylor) increase in validation log-likelihood from a gradient
    step on it, and after every ``per_step`` picks the model state (validation logits under
    theta_0 - eta * mean gradient of the picks, last layer, closed form) is updated, so later
    gains change (the original never ran this update). Validation: a held-out share of each
    pool, or given indices. Cost O((n + n_val) C D) per update. Needs the gradient embedding.
    """

    name = "glister"
    family = "bilevel"
    needs = frozenset({Need.GRADIENTS})
    Options = GlisterOptions

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Split validation from the pool, then the greedy with updates."""
        o = self.options
        if o.val_indices:
            val = self._given_validation(ctx, pool)
            cand = np.setdiff1d(pool, val)
            if cand.size < k:
                val, cand = pool, pool  # too few candidates outside the given validation set
        else:
            n_val = min(max(1, round(o.val_fraction * pool.size)), pool.size - k)
            if o.val_fraction == 0 or n_val < 1:
                val, cand = pool, pool  # validate on the pool itself
            else:
                val = np.sort(rng.choice(pool, size=n_val, replace=False))
                cand = np.setdiff1d(pool, val)
        from deepcore_bilevel.taylor import TaylorState, glister_greedy

        g = ctx.grad_embedding().rows(cand, o.loss_batch)
        assert ctx.labels is not None  # the method's needs
        logp = np.log(np.clip(np.asarray(ctx.probs, dtype=np.float64), 1e-30, None))
        state = TaylorState(
            g.residual,
            g.features,
            logp[val],
            ctx.grad_embedding().features[val],
            ctx.labels[val],
            o.eta,
            ctx.device,
            None if o.loss_batch is None else loader_batch_scale(val.size, o.loss_batch),
        )
        per_step = o.per_step if o.update else k  # without updates: one ranking, k picks
        order = glister_greedy(state, np.arange(cand.size), k, per_step)
        return Pick(cand[order])

    def _given_validation(self, ctx: SelectionContext, pool: np.ndarray) -> np.ndarray:
        idx = load_indices(self.options.val_indices or "", ctx.n, "glister: validation index")
        val = np.intersect1d(idx, pool)
        return val if val.size else pool


METHODS = (Glister,)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register glister."""
    register(Glister)
