"""Decision-boundary methods: DeepFool distance and contrastive active learning (Cal)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from deepcore_core import Need, ScoreSelector, SelectionContext, hookimpl


@dataclasses.dataclass(frozen=True)
class DeepFoolOptions:
    """Options of ``deepfool``."""

    max_iter: int = 50
    overshoot: float = 0.02
    top_k: int = 10  #: candidate classes per sample (the predicted class included)
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.max_iter < 1 or self.top_k < 2 or self.batch_size < 1:
            raise ValueError("max_iter and batch_size must be >= 1 and top_k >= 2")
        if self.overshoot < 0:
            raise ValueError(f"overshoot must be >= 0, got {self.overshoot}")


class DeepFool(ScoreSelector):
    """DeepFool distance: the smallest perturbation that changes the prediction; smallest kept.

    Ducoffe & Precioso 2018 (arXiv 1802.09841), with DeepFool of Moosavi-Dezfooli et al.,
    CVPR 2016. Batched on the CPU or GPU, over the ``top_k`` likeliest classes only; a
    sample costs at most ``max_iter`` x (1 forward + ``top_k`` backward) passes. Samples whose
    prediction never changes rank after all others. Needs the trained selection model.
    """

    name = "deepfool"
    family = "boundary"
    needs = frozenset({Need.MODEL})
    Options = DeepFoolOptions
    descending = False

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """DeepFool distances of every training sample (normalised input space)."""
        import torch

        from deepcore_boundary.deepfool import deepfool_batch

        o = self.options
        source = ctx.dataset.train
        dev = torch.device(ctx.device)
        model = ctx.model.to(dev).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        dist = np.empty(ctx.n)
        flipped = np.empty(ctx.n, dtype=bool)
        try:
            for x, _, idx in source.batches(torch.arange(ctx.n), o.batch_size, device=dev):
                d, f = deepfool_batch(model, x, o.max_iter, o.overshoot, o.top_k)
                dist[idx.numpy()] = d.double().cpu().numpy()
                flipped[idx.numpy()] = f.cpu().numpy()
        finally:
            for p in model.parameters():
                p.requires_grad_(True)
        if (~flipped).any():
            dist[~flipped] += (dist[flipped].max() if flipped.any() else 0.0) + 1.0
        return dist


@dataclasses.dataclass(frozen=True)
class CalOptions:
    """Options of ``cal``."""

    neighbors: int = 10
    metric: Literal["euclidean", "cosine"] = "euclidean"

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ValueError(f"neighbors must be >= 1, got {self.neighbors}")


def symmetric_kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """0.5 * sum_c (p_c - q_c)(log p_c - log q_c) along the last axis, never NaN."""
    lp, lq = np.log(np.maximum(p, eps)), np.log(np.maximum(q, eps))
    return 0.5 * ((p - q) * (lp - lq)).sum(-1)


class Cal(ScoreSelector):
    """Contrastive active learning: mean divergence from the k nearest neighbours; highest kept.

    Margatina et al., EMNLP 2021 (arXiv 2109.03764): the score of a sample is the mean
    symmetric KL divergence between its predicted distribution and those of its ``neighbors``
    nearest samples in feature space (within its class when balanced), so the most
    *contrastive* samples are kept (the original DeepCore kept the least). Neighbours by
    blockwise exact top-k: O(N k) memory. Needs features and probabilities.
    """

    name = "cal"
    family = "boundary"
    needs = frozenset({Need.FEATURES, Need.PROBABILITIES})
    Options = CalOptions
    descending = True

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Mean symmetric KL to the nearest neighbours, per class when balanced."""
        from deepcore_core import knn

        assert ctx.features is not None  # the method's needs
        p = np.asarray(ctx.probs, dtype=np.float64)
        groups = [np.arange(ctx.n)]
        if ctx.balance and ctx.labels is not None:
            groups = [np.flatnonzero(ctx.labels == c) for c in np.unique(ctx.labels)]
        scores = np.zeros(ctx.n)
        for g in groups:
            if g.size < 2:
                continue
            _, nb = knn(
                ctx.features[g],
                self.options.neighbors,
                self.options.metric,
                exclude_self=True,
                device=ctx.device,
            )
            scores[g] = symmetric_kl(p[g][:, None, :], p[g][nb]).mean(1)
        return scores


METHODS = (DeepFool, Cal)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register deepfool and cal."""
    for cls in METHODS:
        register(cls)
