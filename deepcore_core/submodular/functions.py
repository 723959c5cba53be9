"""Submodular objectives with incremental state, over a dense or a sparse similarity matrix.

Each objective exposes ``gains(candidates)`` (exact marginal gains given the picks so far)
and ``add(e)``. Definitions follow submodlib, so results can be checked against it:

* facility location  f(A) = sum_i max_{j in A} s_ij
* graph cut          f(A) = sum_{i in V, j in A} s_ij - lam * sum_{i, j in A} s_ij
* log-determinant    f(A) = log det(S_A + reg * I)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


class FacilityLocation:
    """Facility location on a symmetric dense kernel or a sparse one (column e = who e covers)."""

    cheap = False  # gains of every candidate cost O(N^2): use lazy evaluation

    def __init__(self, kernel: Any) -> None:
        self.sparse = sp.issparse(kernel)
        self.k: Any = kernel.tocsc() if self.sparse else kernel
        self.n = kernel.shape[0]
        self.curmax = np.zeros(self.n, dtype=np.float32)

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """sum_i max(0, s_ie - curmax_i) for each candidate e."""
        if not self.sparse:
            return np.maximum(self.k[cand] - self.curmax, 0.0).sum(1, dtype=np.float64)
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
            np.maximum(self.curmax, self.k[e], out=self.curmax)
            return
        lo, hi = self.k.indptr[e], self.k.indptr[e + 1]
        rows = self.k.indices[lo:hi]
        self.curmax[rows] = np.maximum(self.curmax[rows], self.k.data[lo:hi])


class GraphCut:
    """Graph cut with redundancy weight ``lam``; gains updated in O(N) (or O(degree)) per pick."""

    cheap = True

    def __init__(self, kernel: Any, lam: float) -> None:
        self.sparse = sp.issparse(kernel)
        if self.sparse:
            kernel = kernel.maximum(kernel.T).tocsr()  # symmetric coverage of the kNN graph
            self.diag = kernel.diagonal().astype(np.float64)
            self.rowsum = np.asarray(kernel.sum(0)).ravel().astype(np.float64)
        else:
            self.diag = np.diag(kernel).astype(np.float64)
            self.rowsum = kernel.sum(0, dtype=np.float64)
        self.k: Any = kernel
        self.lam = lam
        self.n = kernel.shape[0]
        self.acc = np.zeros(self.n)

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """sum_i s_ie - lam * (2 sum_{j in A} s_je + s_ee)."""
        return self.rowsum[cand] - self.lam * (2.0 * self.acc[cand] + self.diag[cand])

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
    """

    cheap = True

    def __init__(self, kernel: np.ndarray, reg: float, budget: int) -> None:
        if sp.issparse(kernel):
            raise ValueError("log-determinant needs a dense kernel")
        self.k = kernel
        self.reg = reg
        self.n = kernel.shape[0]
        self.d2 = np.diag(kernel).astype(np.float64) + reg
        self.c = np.zeros((self.n, budget))
        self.t = 0

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """log of the Schur complement of each candidate."""
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(self.d2[cand], 0.0))

    def add(self, e: int) -> None:
        """Extend the Cholesky factor by ``e``."""
        row = self.k[e].astype(np.float64)
        row[e] += self.reg
        d = np.sqrt(max(self.d2[e], 1e-300))
        col = (row - self.c[:, : self.t] @ self.c[e, : self.t]) / d
        self.c[:, self.t] = col
        self.d2 -= col * col
        self.d2[e] = 0.0
        self.t += 1
