"""Regularised non-negative orthogonal matching pursuit on implicit gradient vectors.

Atoms are the per-sample last-layer gradients g_i = [e_i ; vec(e_i h_i^T)], never formed:
<g_i, r> for a residual r held as a C x (D+1) matrix R is rowsum((E R) * [1, H]), and the
Gram entries are <e_i, e_j>(1 + <h_i, h_j>). Each step extends the inverse M = L^-1 of
the Cholesky factor of K_SS + lam I by one row (:class:`InverseFactor`), so no least-squares
problem is solved from scratch: two packed triangular products of O(|S|^2) give the new row
and u = (K_SS + lam I)^-1 k_j, from which the unconstrained weights follow in O(|S|) by the
block-inverse formula. With lam > 0 the factor's condition number is at most
sqrt((lam + ||K||) / lam), so M is as accurate as triangular solves would be. The O(n C D)
correlation pass of each step runs in float64 on the given device; the |S| x |S| algebra
stays in NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dtpmv as tpmv
from scipy.optimize import nnls

from deepcore_core import serial_blas


def _hb(h: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((h.shape[0], 1)), h], axis=1)


class InverseFactor:
    """The inverse M = L^-1 of the Cholesky factor of a Gram matrix that grows by one atom.

    M is lower triangular; it is stored packed (its rows, one after another: the BLAS packed
    upper layout of M^T), so a new row is one contiguous write and M x, M^T x are packed
    triangular products (``tpmv``: half the memory traffic of a dense square view). Columns
    of the Gram matrix's inverse Q^-1 = M^T M that an active-set solve asks for are cached
    and extended by O(s) per growth step instead of being recomputed in O(s^2).
    """

    def __init__(self, capacity: int) -> None:
        self.packed = np.zeros(capacity * (capacity + 1) // 2)
        self.size = 0
        self.cached: dict[int, np.ndarray] = {}  # atom -> its column of Q^-1 (length capacity)
        self.capacity = capacity

    def times(self, x: np.ndarray) -> np.ndarray:
        """M x."""
        return tpmv(self.size, self.packed, x, lower=0, trans=1)

    def transpose_times(self, x: np.ndarray) -> np.ndarray:
        """M^T x."""
        return tpmv(self.size, self.packed, x, lower=0, trans=0)

    def grow(self, kj: np.ndarray, kjj: float) -> tuple[np.ndarray, float] | None:
        """Add an atom with Gram column ``kj`` and diagonal ``kjj``; None if it is in the span.

        Returns u = Q^-1 kj and the Schur complement d2 = kjj - kj^T Q^-1 kj (before the
        growth), from which the caller updates its own solutions.
        """
        s = self.size
        row = self.times(kj) if s else np.zeros(0)  # the new row of L: L_S row = kj
        d2 = kjj - float(row @ row)
        if d2 <= 1e-12 * kjj:
            return None
        u = self.transpose_times(row) if s else np.zeros(0)
        d = np.sqrt(d2)
        lo = s * (s + 1) // 2
        self.packed[lo : lo + s] = -u / d  # [[L, 0], [row, d]]^-1's last row
        self.packed[lo + s] = 1.0 / d
        for p, col in self.cached.items():  # Q^-1 e_p grows by the block-inverse formula
            col[:s] += u * (u[p] / d2)
            col[s] = -u[p] / d2
        self.size = s + 1
        return u, d2

    def columns(self, atoms: np.ndarray) -> np.ndarray:
        """Q^-1[:, atoms] (size x len(atoms)), from the cache or as M^T (M e_p)."""
        s = self.size
        out = np.empty((s, len(atoms)))
        for i, p in enumerate(atoms.tolist()):
            col = self.cached.get(p)
            if col is None:
                rows = np.arange(p, s)  # M[:, p] lives in rows p.. of M: packed at j(j+1)/2 + p
                m_col = np.zeros(s)
                m_col[p:] = self.packed[rows * (rows + 1) // 2 + p]
                col = np.zeros(self.capacity)
                col[:s] = self.transpose_times(m_col)
                self.cached[p] = col
            out[:, i] = col[:s]
        return out

    def keep_cached(self, atoms: np.ndarray) -> None:
        """Forget every cached column but these atoms'."""
        keep = set(atoms.tolist())
        self.cached = {p: c for p, c in self.cached.items() if p in keep}


def omp_select(
    e: np.ndarray,
    h: np.ndarray,
    k: int,
    lam: float,
    target: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pick up to ``k`` atoms whose non-negative combination matches ``target``.

    :param e: residuals p - onehot(y), n x C.  ``h``: features, n x D.
    :param target: the gradient to match as a C x (D+1) matrix (default: the sum of all
        n gradients, so weights are on the scale of "samples represented").
    :param device: where the per-step correlations <g_i, r> of all n atoms are computed.
    :returns: (positions in pick order, weights, number picked by OMP before it stopped).
    """
    e = np.asarray(e, dtype=np.float64)
    hb = _hb(np.asarray(h, dtype=np.float64))
    t = e.T @ hb if target is None else np.asarray(target, dtype=np.float64)
    n = e.shape[0]
    # both factors transposed, C x n and (D+1) x n: R [1, H]^T runs about twice as fast as
    # [1, H] R^T (n x (D+1) times (D+1) x C, a narrow product), and multiplying its C x n
    # result in place by E^T, then summing the C rows, reads both contiguously; the same
    # products, summed in another order (docs/benchmarks.md: the same picks on
    # Fashion-MNIST)
    e_t = torch.as_tensor(e, device=device).T.contiguous()
    hb_t = torch.as_tensor(hb, device=device).T.contiguous()

    def correlations(r: np.ndarray) -> np.ndarray:  # <g_i, r> = <e_i, r [1, h_i]>
        rh = torch.as_tensor(r, device=device) @ hb_t  # C x n
        return rh.mul_(e_t).sum(0).cpu().numpy()

    b_all = correlations(t)  # <g_i, target>
    c1 = e.shape[1]
    sel: list[int] = []
    factor = InverseFactor(k)
    gram = np.zeros((k, k))  # K_SS + lam I, filled one row per pick
    es = np.zeros((k, c1))  # the picked atoms' residuals and [1, h] rows, in pick order
    hs = np.zeros((k, hb.shape[1]))
    y = np.zeros(0)  # the unconstrained solution (K_SS + lam I)^-1 b_S
    w = np.zeros(0)
    taken = np.zeros(n, dtype=bool)
    with serial_blas():  # torch's threads for the correlations, the small algebra serial
        for s in range(k):
            r = t - es[:s].T @ (w[:, None] * hs[:s]) if s else t
            corr = correlations(r)
            corr[taken] = -np.inf
            j = int(np.argmax(corr))
            if not corr[j] > 1e-12 * max(1.0, abs(b_all).max()):
                break  # no atom is positively aligned with the residual any more
            kj = (es[:s] @ e[j]) * (1.0 + hs[:s, 1:] @ hb[j, 1:])
            kjj = float(e[j] @ e[j]) * (1.0 + float(hb[j, 1:] @ hb[j, 1:])) + lam
            grown = factor.grow(kj, kjj)
            if grown is None:
                break  # the new atom is (numerically) in the span of the picked ones
            u, d2 = grown
            gamma = (b_all[j] - u @ b_all[sel]) / d2  # block inverse of [[K, kj], [kj', kjj]]
            y = np.append(y - gamma * u, gamma)
            gram[s, :s] = gram[:s, s] = kj
            gram[s, s] = kjj
            es[s], hs[s] = e[j], hb[j]
            sel.append(j)
            taken[j] = True
            if (y >= 0).all():
                w = y
            else:  # an active-set solve, from the previous step's weights
                q = gram[: s + 1, : s + 1]
                w = active_set_qp(q, b_all[sel], np.append(w, 0.0), factor.columns, y)
                factor.keep_cached(np.flatnonzero(w == 0))
    return np.array(sel, dtype=np.int64), w, len(sel)


def refit_weights(
    e: np.ndarray, h: np.ndarray, sel: np.ndarray, lam: float, w0: np.ndarray
) -> np.ndarray:
    """The best non-negative weights on the support ``sel`` (positions into e, h).

    Minimises ||sum_s w_s g_s - sum_i g_i||^2 + lam ||w||^2 over w >= 0 by an active-set
    solve started from ``w0`` (feasible), so the match is never worse than ``w0``'s. A tiny
    ridge keeps the solve defined when ``lam`` is 0 and atoms are collinear.
    """
    e = np.asarray(e, dtype=np.float64)
    hb = _hb(np.asarray(h, dtype=np.float64))
    es, hs = e[sel], hb[sel]
    q = (es @ es.T) * (hs @ hs.T)  # K_SS: <e_s, e_t> <[1,h_s], [1,h_t]>
    b = ((es @ (e.T @ hb)) * hs).sum(1)  # <g_s, sum_i g_i>
    ridge = lam + 1e-12 * max(1.0, float(np.trace(q)) / max(1, len(sel)))
    q[np.diag_indices_from(q)] += ridge
    return active_set_qp(q, b, w0)


def _passive_solve(
    q: np.ndarray,
    b: np.ndarray,
    passive: np.ndarray,
    inverse_columns: Callable[[np.ndarray], np.ndarray] | None,
    unconstrained: np.ndarray | None,
) -> np.ndarray:
    """z with z_p = q_pp^-1 b_p on the passive set p and 0 elsewhere.

    Given the unconstrained solution y = q^-1 b and the columns of q^-1 (``inverse_columns``)
    with few atoms a outside p, the answer is a Lagrange correction z = y + Y mu with
    Y = q^-1 E_a and mu making z_a = 0: O(|a| s) from cached columns instead of a fresh
    O(|p|^3) factorisation.
    """
    z = np.zeros_like(b)
    p = np.flatnonzero(passive)
    a = np.flatnonzero(~passive)
    if inverse_columns is not None and unconstrained is not None and a.size <= max(1, b.size // 8):
        y = unconstrained.copy()
        if a.size:
            big_y = inverse_columns(a)  # q^-1 E_a
            y += big_y @ np.linalg.solve(big_y[a], -y[a])
        z[p] = y[p]
        return z
    factor = cho_factor(q[np.ix_(p, p)], lower=True, check_finite=False)
    z[p] = cho_solve(factor, b[p], check_finite=False)
    return z


def active_set_qp(
    q: np.ndarray,
    b: np.ndarray,
    w0: np.ndarray,
    inverse_columns: Callable[[np.ndarray], np.ndarray] | None = None,
    unconstrained: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> np.ndarray:
    """Minimise 0.5 w^T q w - b^T w over w >= 0 (q positive definite) from a feasible ``w0``.

    ``inverse_columns(a)`` returning q^-1[:, a] and ``unconstrained`` = q^-1 b, when both are
    known, make most solves O(s) corrections (see :func:`_passive_solve`).
    """
    w = np.maximum(np.asarray(w0, dtype=np.float64), 0.0)
    passive = w > 0
    scale = max(1.0, float(np.abs(b).max()))
    for _ in range(max_iter):
        out = np.flatnonzero(~passive)  # only these can enter: their negative gradient
        grad = b[out] - q[out] @ w
        if not (grad > tol * scale).any():
            break
        passive[out[np.argmax(grad)]] = True
        while True:
            z = _passive_solve(q, b, passive, inverse_columns, unconstrained)
            p = np.flatnonzero(passive)
            if (z[p] > 0).all():
                w = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(w[neg] / (w[neg] - z[neg]))
            w = w + alpha * (z - w)
            passive &= w > tol * scale
            w[~passive] = 0.0
    return w


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
