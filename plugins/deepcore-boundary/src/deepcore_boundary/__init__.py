"""Decision-boundary methods: DeepFool distance and contrastive active learning (Cal)."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from deepcore_core import (
    DeepcoreError,
    Need,
    ScoreSelector,
    SelectionContext,
    distributed,
    hookimpl,
    original_rule,
)

log = logging.getLogger("deepcore")


@dataclasses.dataclass(frozen=True)
class DeepFoolOptions:
    """Options of ``deepfool``."""

    max_iter: int = 50
    overshoot: float = original_rule(0.02, 0.0, "no overshoot")  #: step beyond the boundary
    top_k: int | None = original_rule(
        10, None, "every class is a candidate"
    )  #: candidate classes per sample (the predicted class included); None: all classes
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.max_iter < 1 or (self.top_k is not None and self.top_k < 2) or self.batch_size < 1:
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
        # a frozen channels-last copy: its input gradients (a backward pass per candidate
        # class and iteration) take less than half the time of the contiguous layout's
        model = copy.deepcopy(ctx.model).to(dev).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        model = model.to(memory_format=torch.channels_last)
        rows = distributed.shard(ctx.n)  # under torchrun each rank attacks its share
        first = rows.start
        dist = np.empty(rows.stop - rows.start)
        flipped = np.empty(rows.stop - rows.start, dtype=bool)
        order = torch.arange(rows.start, rows.stop)
        for x, _, idx in source.batches(order, o.batch_size, device=dev):
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            d, f = deepfool_batch(model, x, o.max_iter, o.overshoot, o.top_k)
            dist[idx.numpy() - first] = d.double().cpu().numpy()
            flipped[idx.numpy() - first] = f.cpu().numpy()
        dist = distributed.gather_rows(dist, ctx.n)
        flipped = distributed.gather_rows(flipped, ctx.n)
        if (~flipped).any():
            dist[~flipped] += (dist[flipped].max() if flipped.any() else 0.0) + 1.0
        return dist


@dataclasses.dataclass(frozen=True)
class CalOptions:
    """Options of ``cal``."""

    neighbors: int = 10
    metric: Literal["euclidean", "cosine"] = "euclidean"
    keep: Literal["most-contrastive", "least-contrastive"] = original_rule(
        "most-contrastive",
        "least-contrastive",
        "keeps the samples least divergent from their neighbours",
    )  #: which end of the divergence ranking is kept
    neighbor_features: Literal["model", "imagenet-resnet18", "auto"] = original_rule(
        "model", "auto", "neighbours from an ImageNet ResNet-18 at 224 px"
    )  #: model: the selection model's; auto: the ResNet-18 where its weights file exists
    weights_file: str | None = None  #: ResNet-18 weights (default: torch hub's cached file)
    image_size: int = 224  #: inputs are resized to this for the ResNet-18
    #: neighbour search: exact, FAISS's exact index, FAISS HNSW (approximate), or auto
    #: (HNSW for pools above 100,000 samples where FAISS is installed)
    knn_backend: Literal["auto", "exact", "faiss", "faiss-hnsw"] = "auto"

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ValueError(f"neighbors must be >= 1, got {self.neighbors}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")


def symmetric_kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """0.5 * sum_c (p_c - q_c)(log p_c - log q_c) along the last axis, never NaN."""
    lp, lq = np.log(np.maximum(p, eps)), np.log(np.maximum(q, eps))
    return 0.5 * ((p - q) * (lp - lq)).sum(-1)


class Cal(ScoreSelector):
    """Contrastive active learning: mean divergence from the k nearest neighbours; highest kept.

    Margatina et al., EMNLP 2021 (arXiv 2109.03764): the score of a sample is the mean
    symmetric KL divergence between its predicted distribution and those of its ``neighbors``
    nearest samples in feature space (within its class when balanced), so the most
    *contrastive* samples are kept (the original DeepCore kept the least: ``keep``).
    Neighbours by blockwise exact top-k, O(N k) memory, in the selection model's feature
    space or an ImageNet ResNet-18's (``neighbor_features``). Needs features and probabilities.
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
        feats = self._neighbor_space(ctx)
        p = np.asarray(ctx.probs, dtype=np.float64)
        groups = [np.arange(ctx.n)]
        if ctx.balance and ctx.labels is not None:
            groups = [np.flatnonzero(ctx.labels == c) for c in np.unique(ctx.labels)]
        scores = np.zeros(ctx.n)
        for g in groups:
            if g.size < 2:
                continue
            _, nb = knn(
                feats[g],
                self.options.neighbors,
                self.options.metric,
                exclude_self=True,
                device=ctx.device,
                backend=self.options.knn_backend,
            )
            scores[g] = symmetric_kl(p[g][:, None, :], p[g][nb]).mean(1)
        return scores

    def front_is_high(self, ctx: SelectionContext) -> bool:
        """The most divergent first (or, with ``keep=least-contrastive``, the least)."""
        return self.options.keep == "most-contrastive"

    def _neighbor_space(self, ctx: SelectionContext) -> np.ndarray:
        """The features neighbours are found in (see ``neighbor_features``)."""
        from deepcore_boundary.imagenet import default_weights, resnet18_features

        assert ctx.features is not None
        o = self.options
        if o.neighbor_features == "model":
            return ctx.features
        path = Path(o.weights_file) if o.weights_file else default_weights()
        if not path.is_file():
            if o.neighbor_features == "auto":
                log.warning("cal: no ResNet-18 weights at %s; neighbours from the model", path)
                return ctx.features
            raise DeepcoreError(
                f"cal: neighbor_features=imagenet-resnet18 needs the torchvision ResNet-18 "
                f"weights at '{path}' (download resnet18-f37072fd.pth from "
                "download.pytorch.org/models, or set weights_file)"
            )
        if ctx.dataset is None:
            raise DeepcoreError(
                "cal: neighbor_features=imagenet-resnet18 needs the dataset's images, not arrays"
            )
        return resnet18_features(ctx.dataset.train, ctx.n, path, o.image_size, ctx.device)


METHODS = (DeepFool, Cal)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register deepfool and cal."""
    for cls in METHODS:
        register(cls)
