"""k-nearest neighbours: exact and blockwise (memory O(N k + block N), never a full N x N
sort), or through FAISS (``pip install faiss-cpu``) for large N: its exact flat index or an
approximate HNSW graph. ``backend="auto"`` is exact up to :data:`AUTO_FAISS_ABOVE` rows and
HNSW beyond, where FAISS is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepcore_core.errors import DeepcoreError


def blockwise_topk(
    block: Callable[[int, int], torch.Tensor],
    n: int,
    k: int,
    largest: bool = True,
    exclude_self: bool = False,
    block_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` entries of every row of an implicit N x N matrix.

    :param block: ``block(lo, hi)`` returns rows lo:hi of the matrix (as a tensor).
    :param exclude_self: never return a row's own column (by index, so exact duplicates are
        still found as neighbours).
    :returns: ``(values, indices)``, each N x k, best first; ties go to the lower index.
    """
    k = min(k, n - 1 if exclude_self else n)
    vals = np.empty((n, k), dtype=np.float64)
    idx = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, block_rows):
        hi = min(n, lo + block_rows)
        m = block(lo, hi)
        if not largest:
            m = -m
        if exclude_self:
            rows = torch.arange(hi - lo, device=m.device)
            m[rows, rows + lo] = float("-inf")
        order = _stable_topk(m, k)
        v = torch.gather(m, 1, order)
        vals[lo:hi] = (v if largest else -v).cpu().numpy()
        idx[lo:hi] = order.cpu().numpy()
    return vals, idx


def _stable_topk(m: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of the k largest entries per row, ties broken by the lower column."""
    if k == 0:
        return torch.empty(m.shape[0], 0, dtype=torch.long, device=m.device)
    top = torch.topk(m, min(k + 1, m.shape[1]), dim=1)
    kth = top.values[:, k - 1 : k]
    # rows whose (k+1)-th value equals the k-th have ties across the cut: which of the tied
    # entries are kept is decided by column order (topk's choice among ties is unspecified)
    if top.values.shape[1] > k:
        tied = torch.nonzero(top.values[:, k] == top.values[:, k - 1]).flatten()
    else:
        tied = torch.empty(0, dtype=torch.long, device=m.device)
    cols = torch.sort(top.indices[:, :k], dim=1).values
    if tied.numel():
        sub, kt = m[tied], kth[tied]
        equal = sub == kt
        need = k - (sub > kt).sum(1, keepdim=True)
        chosen = (sub > kt) | (equal & (torch.cumsum(equal, dim=1) <= need))
        cols[tied] = torch.nonzero(chosen)[:, 1].view(tied.numel(), k)  # column order
    order = torch.sort(torch.gather(m, 1, cols), dim=1, descending=True, stable=True).indices
    return torch.gather(cols, 1, order)


BACKENDS = ("auto", "exact", "faiss", "faiss-hnsw")
AUTO_FAISS_ABOVE = 100_000  #: rows from which ``auto`` uses FAISS HNSW (where installed)
HNSW_M = 32  #: HNSW graph degree
HNSW_EF = 128  #: HNSW search breadth (at least 2 k)


def faiss_available() -> bool:
    """Whether FAISS can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(backend: str, n: int) -> str:
    """The backend ``backend`` means for ``n`` rows (``auto``: exact below the threshold)."""
    if backend not in BACKENDS:
        allowed = ", ".join(BACKENDS)
        raise DeepcoreError(f"neighbour backend must be one of {allowed}, got {backend!r}")
    if backend == "auto":
        return "faiss-hnsw" if n > AUTO_FAISS_ABOVE and faiss_available() else "exact"
    if backend.startswith("faiss") and not faiss_available():
        raise DeepcoreError(
            f"neighbour backend '{backend}' needs FAISS: pip install faiss-cpu (or faiss-gpu)"
        )
    return backend


def knn(
    x: np.ndarray | torch.Tensor,
    k: int,
    metric: str = "euclidean",
    exclude_self: bool = True,
    device: str = "cpu",
    backend: str = "exact",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of every row of ``x``: (distances, indices), nearest first.

    ``metric`` is ``euclidean`` or ``cosine`` (distance 1 - cosine similarity). ``backend``
    (see :data:`BACKENDS`): ``exact`` breaks ties by the lower index; FAISS's exact index
    may order exact ties differently, and HNSW is approximate (recall in docs/benchmarks.md).
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be euclidean or cosine, got {metric!r}")
    chosen = choose_backend(backend, len(x))
    if chosen != "exact":
        return _faiss_knn(np.asarray(x, dtype=np.float32), k, metric, exclude_self, chosen)
    # float64: neighbour identity should not depend on rounding of ||a||^2 + ||b||^2 - 2ab
    t = torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)
    if metric == "cosine":
        t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
        vals, idx = blockwise_topk(lambda lo, hi: t[lo:hi] @ t.T, len(t), k, True, exclude_self)
        return 1.0 - vals, idx
    sq = (t * t).sum(1)
    minus_sq = -sq[None]

    def closeness(lo: int, hi: int) -> torch.Tensor:
        # 2<a, b> - |b|^2 ranks a row's neighbours as -|a - b|^2 does (|a|^2 is constant
        # along the row): one product accumulated onto one broadcast, no further passes
        return torch.addmm(minus_sq, t[lo:hi], t.T, alpha=2.0)

    k = min(k, len(t) - 1 if exclude_self else len(t))
    if k + SCREEN < len(t) - int(exclude_self):
        vals, idx = _screened_topk(t, sq, k, exclude_self, closeness)
    else:
        vals, idx = blockwise_topk(closeness, len(t), k, True, exclude_self)
    d2 = (sq.cpu().numpy()[:, None] - vals).clip(min=0.0)
    return np.sqrt(d2), idx


SCREEN = 16  #: extra float32 candidates per row that the float64 ranking then orders


def _screened_topk(
    t: torch.Tensor,
    sq: torch.Tensor,
    k: int,
    exclude_self: bool,
    closeness: Callable[[int, int], torch.Tensor],
    block_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 top-k of ``2<a, b> - |b|^2`` per row, found by a float32 screen.

    A float32 product (about twice as fast) proposes the best k + SCREEN columns of a row;
    their float64 values are ranked exactly (ties to the lower column). The answer is
    provably the float64 one when the k-th float64 value beats the best excluded float32
    value by more than a bound on float32 rounding; rows where it does not are recomputed
    in float64.
    """
    n, d = t.shape
    t32 = t.float()
    minus_sq32 = (-sq).float()[None]
    norms = sq.sqrt()
    big = float(norms.max())
    # |float32 - float64| of 2<a, b> - |b|^2, generously: (d + 2) roundings of each term
    slack = 4.0 * (d + 2) * 2.0**-24 * (2.0 * norms * big + big * big)
    m = k + SCREEN
    vals = np.empty((n, k), dtype=np.float64)
    idx = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, block_rows):
        hi = min(n, lo + block_rows)
        c32 = torch.addmm(minus_sq32, t32[lo:hi], t32.T, alpha=2.0)
        rows = torch.arange(hi - lo, device=t.device)
        if exclude_self:
            c32[rows, rows + lo] = float("-inf")
        top = torch.topk(c32, m, dim=1)
        cand = torch.sort(top.indices, dim=1).values  # column order: ties to the lower one
        exact = 2.0 * torch.einsum("bd,bmd->bm", t[lo:hi], t[cand]) - sq[cand]
        order = _stable_topk(exact, k)
        v = torch.gather(exact, 1, order)
        best_left_out = top.values[:, -1].double() + slack[lo:hi]
        unsure = torch.nonzero(v[:, -1] <= best_left_out).flatten()
        cols = torch.gather(cand, 1, order)
        for r in unsure.tolist():  # the screen cannot vouch for these: exact float64 rows
            row = closeness(lo + r, lo + r + 1)
            if exclude_self:
                row[0, lo + r] = float("-inf")
            cols[r] = _stable_topk(row, k)[0]
            v[r] = row[0, cols[r]]
        vals[lo:hi] = v.cpu().numpy()
        idx[lo:hi] = cols.cpu().numpy()
    return vals, idx


def _faiss_knn(
    x: np.ndarray, k: int, metric: str, exclude_self: bool, backend: str
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    x = np.ascontiguousarray(x)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d = x.shape[1]
    inner = metric == "cosine"
    index: Any
    if backend == "faiss":
        index = faiss.IndexFlatIP(d) if inner else faiss.IndexFlatL2(d)
    else:
        kind = faiss.METRIC_INNER_PRODUCT if inner else faiss.METRIC_L2
        index = faiss.IndexHNSWFlat(d, HNSW_M, kind)
        index.hnsw.efSearch = max(HNSW_EF, 2 * (k + 1))
    index.add(x)
    want = min(len(x), k + 1 if exclude_self else k)
    vals, idx = index.search(x, want)
    if (idx < 0).any():  # HNSW found fewer than asked for (tiny or degenerate data)
        raise DeepcoreError(
            f"{backend} found fewer than {want} neighbours for some rows; use the exact backend"
        )
    if exclude_self:  # drop each row's own index (or its last neighbour if self was missed)
        own = idx == np.arange(len(x))[:, None]
        own[~own.any(1), -1] = True
        keep = ~own
        vals = vals[keep].reshape(len(x), want - 1)
        idx = idx[keep].reshape(len(x), want - 1)
    vals = vals.astype(np.float64)
    dist = 1.0 - vals if inner else np.sqrt(np.maximum(vals, 0.0))
    return dist, idx.astype(np.int64)
