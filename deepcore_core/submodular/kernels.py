"""Similarity kernels s = (1 + cos) / 2 in [0, 1], dense or as a k-nearest-neighbour graph.

The cosine is over the last-layer gradient embedding (the default, as in the DeepCore paper)
or over features. Gradient cosines come from the closed form
``<g_i, g_j> = <e_i, e_j> (1 + <h_i, h_j>)``: two matrix products per block, never the
N x C(D+1) gradient matrix. A zero vector has cosine 0 with everything.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from deepcore_core.context import SelectionContext
from deepcore_core.errors import DeepcoreError
from deepcore_core.neighbors import blockwise_topk


class CosineBlocks:
    """Blocks of the cosine-similarity (and Euclidean-distance) matrices of a pool."""

    def __init__(
        self, ctx: SelectionContext, pool: np.ndarray, source: str, loss_batch: int | None = None
    ) -> None:
        """``loss_batch``: gradients of a batch-mean loss (:meth:`GradEmbedding.rows`)."""
        self.ctx = ctx
        dev = torch.device(ctx.device)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=dev)

        self.e: torch.Tensor | None
        if source == "gradients":
            g = ctx.grad_embedding().rows(pool, loss_batch)
            self.e, self.h = t(g.residual), t(g.features)
            norms = torch.as_tensor(g.norms(), dtype=torch.float32, device=dev)
        else:
            if ctx.features is None:
                raise DeepcoreError("a features kernel needs features")
            self.e, self.h = None, t(ctx.features[pool])
            norms = self.h.norm(dim=1)
        self.inv = torch.where(norms > 0, 1.0 / norms.clamp_min(1e-30), torch.zeros_like(norms))
        self.sq = norms * norms
        self.n = len(pool)
        # unit-norm factors: cosines are plain products of these (no per-element scaling)
        if self.e is None:
            self.unit_e, self.unit_h = None, self.h * self.inv[:, None]
        else:
            self.unit_e, self.unit_h = self.e * self.inv[:, None], self.h

    def inner(
        self, lo: int, hi: int, cols: torch.Tensor | None = None, start: int = 0
    ) -> torch.Tensor:
        """Inner products of rows lo:hi with the pool from ``start`` (or the positions ``cols``)."""
        e = self.e if self.e is None else self.e[start:] if cols is None else self.e[cols]
        h = self.h[start:] if cols is None else self.h[cols]
        if self.e is None or e is None:
            return self.h[lo:hi] @ h.T
        return (self.h[lo:hi] @ h.T).add_(1.0).mul_(self.e[lo:hi] @ e.T)

    def block(self, lo: int, hi: int, start: int = 0) -> torch.Tensor:
        """Cosine similarities of rows lo:hi against the pool (its columns from ``start``)."""
        c = self.unit_h[lo:hi] @ self.unit_h[start:].T
        if self.unit_e is not None:
            c.add_(1.0).mul_(self.unit_e[lo:hi] @ self.unit_e[start:].T)
        return c.clamp_(-1.0, 1.0)

    def distance(
        self, lo: int, hi: int, cols: torch.Tensor | None = None, start: int = 0
    ) -> torch.Tensor:
        """Euclidean distances of rows lo:hi to the pool from ``start`` (or to ``cols``)."""
        sq = self.sq[start:] if cols is None else self.sq[cols]
        twice = self.inner(lo, hi, cols, start).mul_(2.0)
        d2 = torch.add(self.sq[lo:hi, None], sq[None]).sub_(twice)
        return d2.clamp_(min=0.0).sqrt_()

    def symmetric(
        self, rows: Callable[[int, int, int], torch.Tensor], block: int = 1024, reuse: bool = False
    ) -> torch.Tensor:
        """The N x N matrix whose rows lo:hi from column ``start`` are ``rows(lo, hi, start)``,
        built from the upper triangle of blocks and mirrored: exactly symmetric, and about
        half the products of the full square. ``reuse``: in the selection's scratch matrix
        (:meth:`SelectionContext.scratch_matrix`), for a kernel dropped before the next pool's."""
        if reuse:
            out = self.ctx.scratch_matrix(self.n, self.n, self.h.device)
        else:
            out = torch.empty((self.n, self.n), dtype=torch.float32, device=self.h.device)
        for lo in range(0, self.n, block):
            hi = min(self.n, lo + block)
            b = rows(lo, hi, lo)
            out[lo:hi, lo:] = b
            out[hi:, lo:hi] = b[:, hi - lo :].T
        return out

    def dense_tensor(self, block: int = 1024, reuse: bool = False) -> torch.Tensor:
        """The full kernel (1 + cos) / 2 as a float32 tensor on the run's device (``reuse``:
        see :meth:`symmetric`)."""
        return self.symmetric(
            lambda lo, hi, at: self.block(lo, hi, at).add_(1.0).mul_(0.5), block, reuse
        )

    def distances(self, block: int = 1024, reuse: bool = False) -> torch.Tensor:
        """The full Euclidean distance matrix as a float32 tensor on the run's device
        (``reuse``: see :meth:`symmetric`)."""
        return self.symmetric(lambda lo, hi, at: self.distance(lo, hi, start=at), block, reuse)

    def dense(self, block: int = 2048) -> np.ndarray:
        """The full kernel (1 + cos) / 2 as a float32 array."""
        return self.dense_tensor(block).cpu().numpy()

    def knn(self, k: int, block: int = 1024, backend: str = "exact") -> sp.csr_matrix:
        """Each row keeps its ``k`` most similar samples (itself included): exactly and
        blockwise, or on a features kernel through a FAISS ``backend`` (see
        :func:`deepcore_core.neighbors.knn`; gradient kernels are always exact)."""
        from deepcore_core.neighbors import choose_backend, knn

        if self.e is None and choose_backend(backend, self.n) != "exact":
            dist, idx = knn(self.unit_h.cpu().numpy(), k, "cosine", False, backend=backend)
            vals = 1.0 - dist  # the cosine
        else:
            vals, idx = blockwise_topk(self.block, self.n, k, largest=True, block_rows=block)
        k = idx.shape[1]
        rows = np.repeat(np.arange(self.n), k)
        return sp.csr_matrix(
            ((vals.ravel() + 1.0) * 0.5, (rows, idx.ravel())), shape=(self.n, self.n)
        )
