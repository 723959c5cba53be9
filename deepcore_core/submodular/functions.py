"""Submodular objectives with incremental state, over a dense or a sparse similarity matrix.

Each objective exposes ``gains(candidates)`` (exact marginal gains given the picks so far)
and ``add(e)``. Definitions follow submodlib, so results can be checked against it:

* facility location  f(A) = sum_i max_{j in A} s_ij
* graph cut          f(A) = sum_{i in V, j in A} s_ij - lam * sum_{i, j in A} s_ij
* log-determinant    f(A) = log det(S_A + reg * I)

A dense kernel may be a NumPy array or a torch tensor; it is used as a tensor on its own
device (a CUDA kernel keeps the greedy's arithmetic on the GPU; a NumPy array is wrapped
without a copy). Gains come back as float64 NumPy arrays, so the greedy loop and its
tie-breaking are the same on every device. A sparse (scipy) kernel is handled on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch


def _tensor(kernel: Any) -> torch.Tensor:
    return kernel if isinstance(kernel, torch.Tensor) else torch.from_numpy(np.asarray(kernel))


def _index(cand: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(cand, dtype=np.int64), device=device)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float64).cpu().numpy()


def _rows_per_block(n: int) -> int:
    return max(1, 2**20 // max(1, n))  # about 8 MB of float64 per block


def _column_sums(k: torch.Tensor, f: Any = None) -> torch.Tensor:
    """Column sums of ``f(k)`` in float64, block by block (one pass; summing a float32
    matrix's columns with ``dtype=float64`` in one call is ten times slower)."""
    acc = torch.zeros(k.shape[1], dtype=torch.float64, device=k.device)
    step = _rows_per_block(k.shape[1])
    for lo in range(0, k.shape[0], step):
        b = k[lo : lo + step]
        acc += (f(b) if f is not None else b).to(torch.float64).sum(0)
    return acc


class FacilityLocation:
    """Facility location on a symmetric dense kernel or a sparse one (column e = who e covers).

    On a dense kernel the gain of every candidate is kept up to date: a pick changes the
    coverage of only the rows it covers better than before, and only their terms of each
    gain are updated (O(changed rows x N) per pick, about N^2 log k in all), so the greedy
    needs no lazy bounds. The terms are selections of float32 kernel values summed in
    float64, so a kept gain differs from a fresh float64 sum by float64 rounding only. A
    sparse kernel is evaluated on demand, with lazy bounds in a heap.
    """

    def __init__(self, kernel: Any) -> None:
        self.sparse = sp.issparse(kernel)
        self.n = kernel.shape[0]
        self.cheap = self.vector = not self.sparse  # dense gains are kept; sparse: lazily
        if self.sparse:
            self.k: Any = kernel.tocsc()
            self.curmax: Any = np.zeros(self.n, dtype=np.float32)
        else:
            self.k = _tensor(kernel)
            self.curmax = torch.zeros(self.n, dtype=self.k.dtype, device=self.k.device)
            self.g = _column_sums(self.k, lambda b: b.clamp(min=0.0))  # nothing covered yet
            step = min(self.n, _rows_per_block(self.n))
            self.block32 = torch.empty((step, self.n), dtype=self.k.dtype, device=self.k.device)
            self.block64 = torch.empty((step, self.n), dtype=torch.float64, device=self.k.device)

    def gain_vector(self) -> torch.Tensor:
        """Every element's gain (dense kernels: kept up to date)."""
        return self.g

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """sum_i max(0, s_ie - curmax_i) for each candidate e."""
        if not self.sparse:
            return _numpy(self.g[_index(cand, self.k.device)])
        if len(cand) == 1:  # the lazy greedy's re-evaluation: straight from the CSC arrays
            lo, hi = self.k.indptr[cand[0]], self.k.indptr[cand[0] + 1]
            diff = self.k.data[lo:hi] - self.curmax[self.k.indices[lo:hi]]
            return np.array([np.maximum(diff, 0.0).astype(np.float64).sum()])
        cols = self.k[:, cand]
        diff = np.maximum(cols.data - self.curmax[cols.indices], 0.0).astype(np.float64)
        out = np.zeros(len(cand))
        nz = np.diff(cols.indptr) > 0
        if diff.size:
            out[nz] = np.add.reduceat(diff, cols.indptr[:-1][nz])
        return out

    def add(self, e: int) -> None:
        """Update the best coverage of every point with the new centre ``e``."""
        if not self.sparse:
            row = self.k[e]
            changed = torch.nonzero(row > self.curmax).flatten()
            old, new = self.curmax[changed], row[changed]
            step = self.block32.shape[0]  # at most n rows: the same blocks as before
            for lo in range(0, changed.numel(), step):
                # changed row i lowers the gain of e by clamp(s_ie, old_i, new_i) - old_i:
                # the clamp only selects float32 values, the sums are float64; the blocks
                # live in two buffers kept between picks (no fresh pages per block). The
                # clamp is a maximum and a minimum: the same values, twice as fast as
                # torch.clamp with per-row bounds
                rows = changed[lo : lo + step]
                floor, ceil = old[lo : lo + step, None], new[lo : lo + step, None]
                s = torch.index_select(self.k, 0, rows, out=self.block32[: rows.numel()])
                torch.minimum(torch.maximum(s, floor, out=s), ceil, out=s)
                s64 = self.block64[: rows.numel()].copy_(s)
                self.g -= s64.sum(0) - floor.to(torch.float64).sum()
            self.curmax[changed] = new
            return
        lo, hi = self.k.indptr[e], self.k.indptr[e + 1]
        rows = self.k.indices[lo:hi]
        self.curmax[rows] = np.maximum(self.curmax[rows], self.k.data[lo:hi])


class GraphCut:
    """Graph cut with redundancy weight ``lam``; gains updated in O(N) (or O(degree)) per pick.

    Dense: every gain at once per pick. Sparse (large N): a pick changes only its
    neighbours' gains, so the lazy greedy's heap re-evaluates a few of them per pick
    instead of an O(N) pass.
    """

    def __init__(self, kernel: Any, lam: float) -> None:
        self.sparse = sp.issparse(kernel)
        if self.sparse:
            kernel = kernel.maximum(kernel.T).tocsr()  # symmetric coverage of the kNN graph
            self.diag: Any = kernel.diagonal().astype(np.float64)
            self.rowsum: Any = np.asarray(kernel.sum(0)).ravel().astype(np.float64)
            self.acc: Any = np.zeros(kernel.shape[0])
            self.k: Any = kernel
        else:
            self.k = _tensor(kernel)
            self.rowsum = _column_sums(self.k)
            self.diag = torch.diagonal(self.k).to(torch.float64)
            self.acc = torch.zeros(self.k.shape[0], dtype=torch.float64, device=self.k.device)
        self.lam = lam
        self.n = kernel.shape[0]
        self.cheap = self.vector = not self.sparse

    def gain_vector(self) -> Any:
        """Every element's gain (as :meth:`gains` computes it)."""
        return self.rowsum - self.lam * (2.0 * self.acc + self.diag)

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """sum_i s_ie - lam * (2 sum_{j in A} s_je + s_ee)."""
        if self.sparse:
            return self.rowsum[cand] - self.lam * (2.0 * self.acc[cand] + self.diag[cand])
        i = _index(cand, self.k.device)
        return _numpy(self.rowsum[i] - self.lam * (2.0 * self.acc[i] + self.diag[i]))

    def add(self, e: int) -> None:
        """Add row ``e`` to the running similarity to the picks."""
        if self.sparse:
            lo, hi = self.k.indptr[e], self.k.indptr[e + 1]
            self.acc[self.k.indices[lo:hi]] += self.k.data[lo:hi]
        else:
            self.acc += self.k[e]


class LogDeterminant:
    """log det(S_A + reg I) by incremental Cholesky (the fast greedy MAP of Chen et al. 2018).

    The gain of e is log d_e^2, the squared Cholesky pivot of e given A: O(N |A|) per pick.
    ``explained=True`` ranks by the part of s_ee + reg that the picks explain instead,
    s_e^T (S_A + reg I)^-1 s_e = s_ee + reg - d_e^2 (the original DeepCore code's gain,
    which favours redundant samples).
    """

    cheap = True

    def __init__(self, kernel: Any, reg: float, budget: int, explained: bool = False) -> None:
        if sp.issparse(kernel):
            raise ValueError("log-determinant needs a dense kernel")
        self.k = _tensor(kernel)
        self.reg = reg
        self.n = kernel.shape[0]
        self.d2 = torch.diagonal(self.k).to(torch.float64) + reg
        self.full = self.d2.clone() if explained else None
        # row t holds the t-th Cholesky column over every element (contiguous rows: the
        # per-pick product reads them in order, twice as fast as strided columns)
        self.c = torch.zeros((budget, self.n), dtype=torch.float64, device=self.k.device)
        self.t = 0

    vector = True

    def gain_vector(self) -> torch.Tensor:
        """Every element's gain (as :meth:`gains` computes it)."""
        if self.full is not None:
            return self.full - self.d2
        return self.d2.clamp(min=0.0).log()

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """log of the Schur complement of each candidate (or the explained part)."""
        i = _index(cand, self.k.device)
        if self.full is not None:
            return _numpy(self.full[i] - self.d2[i])
        return _numpy(self.d2[i].clamp(min=0.0).log())

    def add(self, e: int) -> None:
        """Extend the Cholesky factor by ``e``."""
        row = self.k[e].to(torch.float64)
        row[e] += self.reg
        d = float(self.d2[e].clamp(min=1e-300).sqrt())
        col = (row - self.c[: self.t].T @ self.c[: self.t, e]) / d
        self.c[self.t] = col
        self.d2 -= col * col
        self.d2[e] = 0.0
        self.t += 1
