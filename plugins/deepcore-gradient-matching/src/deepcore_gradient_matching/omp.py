"""Regularised non-negative orthogonal matching pursuit on implicit gradient vectors.

Atoms are the per-sample last-layer gradients g_i = [e_i ; vec(e_i h_i^T)], never formed:
<g_i, r> for a residual r held as a C x (D+1) matrix R is rowsum((E R) * [1, H]), and the
Gram entries are <e_i, e_j>(1 + <h_i, h_j>). Each step extends the inverse M = L^-1 of
the Cholesky factor of K_SS + lam I by one row, so no least-squares problem is solved from
scratch: the weights are M^T (M b), three matrix-vector products of O(|S|^2) per step on
views of preallocated arrays (triangular solves on a growing factor copy it every call,
which cost more than the solve). With lam > 0 the factor's condition number is at most
sqrt((lam + ||K||) / lam), so M is as accurate as the solves. The O(n C D) correlation pass
of each step runs in float64 on the given device; the |S| x |S| algebra stays in NumPy.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import nnls


def _hb(h: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((h.shape[0], 1)), h], axis=1)


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
    e_dev = torch.as_tensor(e, device=device)
    hb_dev = torch.as_tensor(hb, device=device)

    def correlations(r: np.ndarray) -> np.ndarray:  # <g_i, r> = <e_i, r [1, h_i]>
        return (e_dev * (hb_dev @ torch.as_tensor(r, device=device).T)).sum(1).cpu().numpy()

    b_all = correlations(t)  # <g_i, target>
    c1 = e.shape[1]
    sel: list[int] = []
    minv = np.zeros((k, k))  # M = L^-1, filled one row per pick
    gram = np.zeros((k, k))  # K_SS + lam I, filled one row per pick
    es = np.zeros((k, c1))  # the picked atoms' residuals and [1, h] rows, in pick order
    hs = np.zeros((k, hb.shape[1]))
    z = np.zeros(k)  # M b_S: grows by one entry per pick
    w = np.zeros(0)
    taken = np.zeros(n, dtype=bool)
    for s in range(k):
        r = t - es[:s].T @ (w[:, None] * hs[:s]) if s else t
        corr = correlations(r)
        corr[taken] = -np.inf
        j = int(np.argmax(corr))
        if not corr[j] > 1e-12 * max(1.0, abs(b_all).max()):
            break  # no atom is positively aligned with the residual any more
        kj = (es[:s] @ e[j]) * (1.0 + hs[:s, 1:] @ hb[j, 1:])
        kjj = float(e[j] @ e[j]) * (1.0 + float(hb[j, 1:] @ hb[j, 1:])) + lam
        row = minv[:s, :s] @ kj  # the new row of L: L_S row = kj
        d2 = kjj - row @ row
        if d2 <= 1e-12 * kjj:
            break  # the new atom is (numerically) in the span of the picked ones
        d = np.sqrt(d2)
        minv[s, :s] = -(row @ minv[:s, :s]) / d  # [[L, 0], [row, d]]^-1's last row
        minv[s, s] = 1.0 / d
        gram[s, :s] = gram[:s, s] = kj
        gram[s, s] = kjj
        es[s], hs[s] = e[j], hb[j]
        sel.append(j)
        taken[j] = True
        z[s] = minv[s, : s + 1] @ b_all[sel]
        m = minv[: s + 1, : s + 1]
        w_new = m.T @ z[: s + 1]  # (K + lam I)^-1 b_S
        if not (w_new >= 0).all():  # an active-set solve, from the previous step's weights
            q = gram[: s + 1, : s + 1]
            w_new = active_set_qp(q, b_all[sel], np.append(w, 0.0), m, unconstrained=w_new)
        w = w_new
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
    minv: np.ndarray | None,
    unconstrained: np.ndarray | None,
) -> np.ndarray:
    """z with z_p = q_pp^-1 b_p on the passive set p and 0 elsewhere.

    With the inverse Cholesky factor M of the whole ``q`` (q^-1 = M^T M) and few atoms
    outside p, the answer comes from it by a Lagrange correction (z = y + Y mu with
    y = q^-1 b (``unconstrained``), Y = q^-1 E_a, mu making z_a = 0): O(|a| s^2) instead of
    a fresh O(|p|^3) factorisation.
    """
    z = np.zeros_like(b)
    p = np.flatnonzero(passive)
    a = np.flatnonzero(~passive)
    if minv is not None and unconstrained is not None and a.size <= max(1, b.size // 8):
        y = unconstrained.copy()
        if a.size:
            big_y = minv.T @ minv[:, a]  # q^-1 E_a
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
    minv: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    unconstrained: np.ndarray | None = None,
) -> np.ndarray:
    """Minimise 0.5 w^T q w - b^T w over w >= 0 (q positive definite) from a feasible ``w0``.

    ``minv``: the inverse of the lower Cholesky factor of ``q`` (``q^-1 = minv^T minv``), if
    known (it makes most solves cheaper); ``unconstrained``: ``q^-1 b``, if known.
    """
    if minv is not None and unconstrained is None:
        unconstrained = minv.T @ (minv @ b)
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
            z = _passive_solve(q, b, passive, minv, unconstrained)
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
