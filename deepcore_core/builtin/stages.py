"""The core's fallback implementations of the stage hooks (registered ``trylast``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepcore_core import distributed
from deepcore_core.budget import plan_pools
from deepcore_core.context import SelectionContext
from deepcore_core.errors import PluginError
from deepcore_core.hookspecs import hookimpl
from deepcore_core.progress import Progress
from deepcore_core.selection import Selection
from deepcore_core.selector import Pick, ScoreSelector, Selector


@hookimpl(trylast=True)
def train(ctx: SelectionContext) -> Any:
    """Train the selection model with the core's engine (with a dataset and a ``pretrain`` spec;
    without one, the model is the user's and nothing is trained)."""
    if ctx.dataset is None or ctx.pretrain is None:
        return None
    from deepcore_core.engine.pretrain import pretrain_selection_model

    return pretrain_selection_model(ctx)


@hookimpl(trylast=True)
def embed(ctx: SelectionContext) -> Any:
    """Compute features and probabilities with the core's embedding engine."""
    if ctx.dataset is None or ctx.model is None:
        return None
    from deepcore_core.engine.embedding import embed_dataset

    return embed_dataset(ctx)


@hookimpl(trylast=True)
def score(selector: Selector, ctx: SelectionContext) -> np.ndarray | None:
    """Use the user's scores if given, else the method's own, for score-based methods."""
    if not isinstance(selector, ScoreSelector):
        return None
    if ctx.scores is not None:
        return ctx.scores
    return selector.compute_scores(ctx)


@hookimpl(trylast=True)
def select(selector: Selector, ctx: SelectionContext) -> Selection:
    """Split the budget into pools and let the method pick from each.

    Under torchrun the pools (classes) are spread over the ranks, largest first, and every
    rank gets every pick: the same selection as one process, since each pool's random
    stream depends only on the seed and the pool. A ``collective`` method picks every pool
    on every rank together (rank 0's picks count).
    """
    balance = selector.default_balance if ctx.balance is None else ctx.balance
    groups = ctx.labels if ctx.pools is None else ctx.pools
    pools = plan_pools(groups, ctx.n, ctx.total, balance, ctx.candidates)
    owners = distributed.owners([pool.indices.size for pool in pools])
    mine: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    with Progress(len(pools), f"{selector.name}: picking", unit="picks") as bar:
        for j, pool in enumerate(pools):
            if owners[j] != distributed.rank() and not selector.collective:
                continue
            rng = ctx.rng("select", "all" if pool.label is None else pool.label)
            pick = selector.pick(ctx, pool.indices, pool.k, rng)
            idx = _check_pick(selector, pick, pool.indices, pool.k)
            w = None if pick.weights is None else np.asarray(pick.weights, dtype=np.float64)
            if owners[j] == distributed.rank():
                mine[j] = (idx, w)
            bar.update(1, counted=pool.k)
    picks: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for part in distributed.gather_objects(mine):
        picks.update(part)
    ordered = [picks[j] for j in range(len(pools))]
    weighted = any(w is not None for _, w in ordered)
    indices = np.concatenate([i for i, _ in ordered]) if ordered else np.empty(0, np.int64)
    weights = None
    if weighted:
        weights = np.concatenate([np.ones(i.size) if w is None else w for i, w in ordered])
    return Selection(indices, weights, ctx.scores)


def _check_pick(selector: Selector, pick: Pick, pool: np.ndarray, k: int) -> np.ndarray:
    where = f"method '{selector.name}' ({type(selector).__module__})"
    if not isinstance(pick, Pick):
        raise PluginError(f"{where} returned {type(pick).__name__} from pick(); expected Pick")
    idx = np.asarray(pick.indices)
    if idx.ndim != 1 or idx.size != k:
        raise PluginError(f"{where} picked {idx.size} samples for a budget of {k}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise PluginError(f"{where} picked non-integer indices ({idx.dtype})")
    idx = idx.astype(np.int64)
    if np.unique(idx).size != k:
        raise PluginError(f"{where} picked the same sample twice")
    if not np.isin(idx, pool).all():
        raise PluginError(f"{where} picked samples outside its pool")
    if pick.weights is not None:
        w = np.asarray(pick.weights)
        if w.shape != (k,):
            raise PluginError(f"{where} returned {w.shape} weights for {k} samples")
        if not np.issubdtype(w.dtype, np.number) or not np.isfinite(w).all() or (w < 0).any():
            bad = (
                w[~(np.isfinite(w) & (w >= 0))][:3] if np.issubdtype(w.dtype, np.number) else w[:3]
            )
            raise PluginError(
                f"{where} returned weights that are not finite and non-negative "
                f"(e.g. {', '.join(map(str, bad))})"
            )
    return idx
