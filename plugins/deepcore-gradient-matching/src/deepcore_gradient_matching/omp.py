"""Regularised non-negative orthogonal matching pursuit on implicit gradient vectors.

Atoms are the per-sample last-layer gradients g_i = [e_i ; vec(e_i h_i^T)], never formed:
<g_i, r> for a residual r held as a C x (D+1) matrix R is rowsum((E R) * [1, H]), and the
Gram entries are <e_i, e_j>(1 + <h_i, h_j>). Each step extends a Cholesky factor of
K_SS + lam I by one row (O(|S|^2)), so no least-squares problem is solved from scratch.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import nnls


def _hb(h: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((h.shape[0], 1)), h], axis=1)


def omp_select(
    e: np.ndarray, h: np.ndarray, k: int, lam: float, target: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pick up to ``k`` atoms whose non-negative combination matches ``target``.

    :param e: residuals p - onehot(y), n x C.  ``h``: features, n x D.
    :param target: the gradient to match as a C x (D+1) matrix (default: the sum of all
        n gradients, so weights are on the scale of "samples represented").
    :returns: (positions in pick order, weights, number picked by OMP before it stopped).
    """
    e = np.asarray(e, dtype=np.float64)
    hb = _hb(np.asarray(h, dtype=np.float64))
    t = e.T @ hb if target is None else np.asarray(target, dtype=np.float64)
    n = e.shape[0]
    b_all = ((e @ t) * hb).sum(1)  # <g_i, target>
    sel: list[int] = []
    chol = np.zeros((k, k))
    w = np.zeros(0)
    taken = np.zeros(n, dtype=bool)
    for s in range(k):
        r = t - e[sel].T @ (w[:, None] * hb[sel]) if sel else t
        corr = ((e @ r) * hb).sum(1)
        corr[taken] = -np.inf
        j = int(np.argmax(corr))
        if not corr[j] > 1e-12 * max(1.0, abs(b_all).max()):
            break  # no atom is positively aligned with the residual any more
        kj = (e[sel] @ e[j]) * (1.0 + hb[sel, 1:] @ hb[j, 1:]) if sel else np.zeros(0)
        kjj = float(e[j] @ e[j]) * (1.0 + float(hb[j, 1:] @ hb[j, 1:])) + lam
        if s:
            row = solve_triangular(chol[:s, :s], kj, lower=True)
            d2 = kjj - row @ row
        else:
            row, d2 = np.zeros(0), kjj
        if d2 <= 1e-12 * kjj:
            break  # the new atom is (numerically) in the span of the picked ones
        chol[s, :s] = row
        chol[s, s] = np.sqrt(d2)
        sel.append(j)
        taken[j] = True
        w = _weights(chol[: s + 1, : s + 1], b_all[sel])
    return np.array(sel, dtype=np.int64), w, len(sel)


def _weights(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin_{w >= 0} w^T (K + lam I) w - 2 b^T w, with K + lam I = L L^T."""
    z = solve_triangular(chol, b, lower=True)
    w = solve_triangular(chol.T, z, lower=False)
    if (w >= 0).all():
        return w
    # ||L^T w - z||^2 has the same minimiser; solve it under w >= 0 (active set)
    return nnls(chol.T, z)[0]


def omp_reference(g: np.ndarray, k: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward version: explicit gradients, a fresh regularised NNLS per step."""
    target = g.sum(0)
    sel: list[int] = []
    w = np.zeros(0)
    for _ in range(k):
        r = target - g[sel].T @ w if sel else target
        corr = g @ r
        corr[sel] = -np.inf
        j = int(np.argmax(corr))
        if not corr[j] > 1e-12 * max(1.0, abs(g @ target).max()):
            break
        sel.append(j)
        a = np.concatenate([g[sel].T, np.sqrt(lam) * np.eye(len(sel))])
        w = nnls(a, np.concatenate([target, np.zeros(len(sel))]))[0]
    return np.array(sel, dtype=np.int64), w
