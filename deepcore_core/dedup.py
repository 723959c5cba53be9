"""SemDeDup (Abbas et al. 2023): drop semantic near-duplicates before anything else.

The embeddings are clustered (spherical k-means); within each cluster the samples are
visited from the farthest from the centroid to the nearest (the paper keeps the least
prototypical sample of a duplicate group), and a sample is dropped when its cosine
similarity to a sample already **kept** exceeds ``1 - eps``. That is the paper's rule; the
reference code compares with every earlier sample, removed ones included, and so drops more
(facebookresearch/SemDeDup#8).

Used by ``--dedup EPS`` (a filter before any method, the number removed recorded) and by
the ``semdedup`` method of the ``deepcore-labelfree`` plugin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from deepcore_core.clustering import Clustering, kmeans
from deepcore_core.errors import DeepcoreError

#: samples per cluster when the number of clusters is not given (pairs are compared
#: within a cluster only, so larger clusters find more duplicates and cost more)
CLUSTER_SIZE = 500


def default_clusters(n: int) -> int:
    """``ceil(n / CLUSTER_SIZE)`` clusters."""
    return max(1, math.ceil(n / CLUSTER_SIZE))


def check_eps(eps: Any) -> float:
    """``eps`` as a float in (0, 1), or a one-line error."""
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
        raise DeepcoreError(f"dedup eps must be a number in (0, 1), got {eps!r}")
    return float(eps)


class Deduplicator:
    """The clustering of a set of embeddings, ready to deduplicate at any ``eps``.

    :param features: N x D embeddings (any float array, memory-mapped allowed).
    :param rows: the dataset indices of those rows (default 0..N-1), returned by :meth:`kept`.
    """

    def __init__(
        self,
        features: Any,
        seed: int | np.random.Generator,
        *,
        clusters: int | None = None,
        device: str = "cpu",
        rows: np.ndarray | None = None,
    ) -> None:
        n = len(features)
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.device = torch.device(device)
        k = min(n, clusters or default_clusters(n))
        self.clustering: Clustering = kmeans(features, k, seed, cosine=True, device=device)
        self._groups = []
        for c in range(self.clustering.k):
            members = np.flatnonzero(self.clustering.assign == c)
            if members.size == 0:
                continue
            # farthest from the centroid first; ties by position
            order = members[np.lexsort((members, -self.clustering.distance[members]))]
            x = torch.as_tensor(np.asarray(features[order], np.float32), device=self.device)
            self._groups.append((order, torch.nn.functional.normalize(x, dim=1)))

    def kept(self, eps: float) -> np.ndarray:
        """The dataset indices kept at ``eps`` (ascending)."""
        limit = 1.0 - check_eps(eps)
        out = []
        for order, x in self._groups:
            blocked = torch.full((len(order),), -2.0, device=self.device)
            keep = np.zeros(len(order), bool)
            similar = (blocked > limit).cpu().numpy()
            for i in range(len(order)):
                if similar[i]:
                    continue
                keep[i] = True
                blocked = torch.maximum(blocked, x @ x[i])
                similar = (blocked > limit).cpu().numpy()
            out.append(order[keep])
        kept = np.sort(np.concatenate(out)) if out else np.empty(0, np.int64)
        return self.rows[kept]

    def eps_for(self, k: int, steps: int = 20) -> float:
        """The largest ``eps`` (most duplicates dropped) that keeps at least ``k`` samples,
        by bisection over (0, 1)."""
        lo, hi = 0.0, 1.0  # kept(lo -> 0) keeps all but exact duplicates
        for _ in range(steps):
            mid = (lo + hi) / 2
            if self.kept(mid).size >= k:
                lo = mid
            else:
                hi = mid
        return max(lo, 1e-9)


def semdedup(
    features: Any,
    eps: float,
    seed: int | np.random.Generator,
    *,
    clusters: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """The indices SemDeDup keeps at ``eps`` (ascending)."""
    check_eps(eps)
    return Deduplicator(features, seed, clusters=clusters, device=device).kept(eps)
