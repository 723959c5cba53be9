"""k-means on embeddings: seeded k-means++ seeding, then Lloyd's iterations, block by block.

Shared by the balance over clusters (``--clusters K``), the SemDeDup filter (``--dedup``) and
the label-free methods (prototype, ELFS, SemDeDup). Rows are read in blocks of
:data:`~deepcore_core.blocks.CELLS` entries, so a memory-mapped N x D matrix (float16 or
float32) is never copied whole; the distances run on ``device`` (a GPU with ``--device cuda``).
``cosine`` is spherical k-means: rows and centroids on the unit sphere, distance 1 - cos.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from deepcore_core.blocks import row_blocks
from deepcore_core.errors import DeepcoreError

#: the rows k-means++ seeds from: a seeded sample of at most this many per centroid
SEED_ROWS_PER_CENTROID = 256


@dataclasses.dataclass(frozen=True)
class Clustering:
    """Centroids (k x D), each row's nearest centroid and its distance to it."""

    centroids: np.ndarray
    assign: np.ndarray  # int64 (N,)
    distance: np.ndarray  # float32 (N,): Euclidean, or 1 - cos with cosine
    iterations: int

    @property
    def k(self) -> int:
        """The number of clusters."""
        return len(self.centroids)


def _rows(block: np.ndarray, device: torch.device, cosine: bool) -> torch.Tensor:
    x = torch.as_tensor(
        np.array(block, dtype=np.float32), device=device
    )  # a copy: maps stay read-only
    return torch.nn.functional.normalize(x, dim=1) if cosine else x


def _nearest(
    x: Any, centroids: torch.Tensor, device: torch.device, cosine: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid and its distance (squared Euclidean, or 1 - cos)."""
    assign = np.empty(len(x), np.int64)
    dist = np.empty(len(x), np.float32)
    c_sq = (centroids * centroids).sum(1)
    for lo, block in row_blocks(x):
        rows = _rows(block, device, cosine)
        if cosine:
            d = 1.0 - rows @ centroids.T
        else:
            d = (rows * rows).sum(1, keepdim=True) - 2.0 * rows @ centroids.T + c_sq
        best, arg = d.min(1)
        assign[lo : lo + len(block)] = arg.cpu().numpy()
        dist[lo : lo + len(block)] = best.clamp_min(0).cpu().numpy()
    return assign, dist


def plusplus(x: Any, k: int, rng: np.random.Generator, cosine: bool = False) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) from a seeded sample of the rows:
    each next centroid drawn with probability proportional to its squared distance to the
    nearest one chosen so far."""
    n = len(x)
    rows = np.sort(rng.choice(n, size=min(n, SEED_ROWS_PER_CENTROID * k), replace=False))
    pts = np.asarray(x[rows], dtype=np.float64)
    if cosine:
        pts /= np.maximum(np.linalg.norm(pts, axis=1, keepdims=True), 1e-12)
    chosen = [int(rng.integers(len(pts)))]
    d2 = ((pts - pts[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # every sampled row equals a chosen centroid: take unused rows
            free = np.setdiff1d(np.arange(len(pts)), chosen)
            nxt = int(free[0])
        else:
            nxt = int(rng.choice(len(pts), p=d2 / total))
        chosen.append(nxt)
        d2 = np.minimum(d2, ((pts - pts[nxt]) ** 2).sum(1))
    return pts[chosen].astype(np.float32)


def kmeans(
    x: Any,
    k: int,
    seed: int | np.random.Generator = 0,
    *,
    iters: int = 100,
    tol: float = 1e-6,
    cosine: bool = False,
    device: str | torch.device = "cpu",
    init: np.ndarray | None = None,
) -> Clustering:
    """Cluster the rows of ``x`` (N x D, any float array, memory-mapped allowed) into ``k``.

    Lloyd's iterations stop when no row changes cluster or the centroids move less than
    ``tol`` (relative to their scale). A cluster left empty takes the row farthest from its
    centroid. The same seed gives the same clustering.

    :param init: starting centroids (k x D) instead of k-means++.
    """
    n = len(x)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise DeepcoreError(f"the number of clusters must be a positive integer, got {k!r}")
    if k > n:
        raise DeepcoreError(f"cannot make {k} clusters of {n} samples (k must be at most N)")
    if x.ndim != 2:
        raise DeepcoreError(f"k-means needs an N x D matrix, got shape {tuple(x.shape)}")
    dev = torch.device(device)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    start = plusplus(x, int(k), rng, cosine) if init is None else np.asarray(init, np.float32)
    centroids = torch.as_tensor(start, device=dev)
    if cosine:
        centroids = torch.nn.functional.normalize(centroids, dim=1)
    assign = np.full(n, -1, np.int64)
    done = 0
    while done < iters:
        done += 1
        new, dist = _nearest(x, centroids, dev, cosine)
        if np.array_equal(new, assign):
            break
        assign = new
        sums = torch.zeros_like(centroids, dtype=torch.float64)
        counts = np.bincount(assign, minlength=k)
        for lo, block in row_blocks(x):
            idx = torch.as_tensor(assign[lo : lo + len(block)], device=dev)
            sums.index_add_(0, idx, _rows(block, dev, cosine).double())
        empty = np.flatnonzero(counts == 0)
        moved = sums / torch.as_tensor(np.maximum(counts, 1), device=dev).double()[:, None]
        moved = moved.float()
        if empty.size:  # the farthest rows start the empty clusters
            far = np.argsort(-dist, kind="stable")[: empty.size]
            for c, row in zip(empty, far, strict=True):
                moved[int(c)] = _rows(x[int(row) : int(row) + 1], dev, cosine)[0]
        if cosine:
            moved = torch.nn.functional.normalize(moved, dim=1)
        shift = float((moved - centroids).norm())
        scale = float(centroids.norm()) or 1.0
        centroids = moved
        if shift <= tol * scale:
            assign, dist = _nearest(x, centroids, dev, cosine)
            break
    else:  # out of iterations: the last centroids' assignment
        assign, dist = _nearest(x, centroids, dev, cosine)
    distance = dist if cosine else np.sqrt(dist)
    return Clustering(centroids.cpu().numpy(), assign, distance.astype(np.float32), done)
