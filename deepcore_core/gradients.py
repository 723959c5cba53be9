"""The last-layer gradient embedding in closed form.

For cross-entropy on logits ``z = W h + b``, the per-sample gradient with respect to
``(b, W)`` is ``g = [e ; vec(e h^T)]`` with residual ``e = p - onehot(y)``. Hence

* ``||g|| = ||e|| * sqrt(1 + ||h||^2)``
* ``<g_i, g_j> = <e_i, e_j> * (1 + <h_i, h_j>)``

so norms, Gram matrices and cosine similarities come from an N x C and an N x D matrix,
never from the N x C(D+1) gradient matrix (which :meth:`GradEmbedding.materialize` builds
only when asked). No batch-size scaling is applied unless asked for: :func:`loader_batch_scale`
gives the factors a batch-mean loss puts on each sample's gradient (the original DeepCore
code's gradients, an original-rule option of the gradient methods).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably in float64 and returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)


def residuals(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return ``p - onehot(y)``: the gradient of cross-entropy with respect to the logits."""
    e = np.array(probs, dtype=np.float32, copy=True)
    e[np.arange(e.shape[0]), np.asarray(labels, dtype=np.int64)] -= 1.0
    return e


def loader_batch_scale(n: int, batch: int) -> np.ndarray:
    """The factor ``1 / (size of its batch)`` of each of ``n`` samples read in order in batches
    of ``batch``: the gradient of a batch's mean loss is each sample's own gradient times this,
    so the last, partial batch's samples weigh more (float32)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    sizes = np.full(n, float(batch))
    tail = n % batch
    if tail:
        sizes[n - tail :] = tail
    return (1.0 / sizes).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class GradEmbedding:
    """Per-sample last-layer gradients, kept as residuals (N x C) and features (N x D)."""

    residual: np.ndarray
    features: np.ndarray

    @classmethod
    def from_outputs(
        cls, probs: np.ndarray, labels: np.ndarray, features: np.ndarray
    ) -> GradEmbedding:
        """Build from predicted probabilities, labels and penultimate features."""
        return cls(residuals(probs, labels), np.asarray(features, dtype=np.float32))

    def rows(self, idx: np.ndarray, loss_batch: int | None = None) -> GradEmbedding:
        """The rows ``idx``, in that order; with ``loss_batch``, the gradients of a batch-mean
        loss over ``idx`` read in batches of that many (each residual times
        :func:`loader_batch_scale`)."""
        e = self.residual[idx]
        if loss_batch is not None:
            e *= loader_batch_scale(len(e), loss_batch)[:, None]
        return GradEmbedding(e, self.features[idx])

    @property
    def dim(self) -> int:
        """The gradient dimension ``C * (D + 1)``."""
        return self.residual.shape[1] * (self.features.shape[1] + 1)

    def norms(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Return ``||g_i||`` for the rows ``idx`` (all rows when None)."""
        e = self.residual if idx is None else self.residual[idx]
        h = self.features if idx is None else self.features[idx]
        e64 = np.linalg.norm(e.astype(np.float64), axis=1)
        return e64 * np.sqrt(1.0 + np.einsum("ij,ij->i", h, h, dtype=np.float64))

    def gram(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Return the inner products ``<g_i, g_j>`` for ``i`` in rows and ``j`` in cols."""
        cols = rows if cols is None else cols
        er, ec = self.residual[rows], self.residual[cols]
        hr, hc = self.features[rows], self.features[cols]
        g = hr @ hc.T
        g += 1.0
        g *= er @ ec.T
        return g

    def cosine(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Return the cosine similarities of the gradients (0 where a gradient is zero)."""
        cols = rows if cols is None else cols
        g = self.gram(rows, cols)
        nr, nc = self.norms(rows), self.norms(cols)
        denom = np.outer(nr, nc)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(denom > 0, g / denom, 0.0)
        return out.astype(np.float32)

    def materialize(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Build the explicit rows ``[e ; vec(e h^T)]`` (class-major). Costs N x C(D+1)."""
        e = self.residual if idx is None else self.residual[idx]
        h = self.features if idx is None else self.features[idx]
        outer = e[:, :, None] * h[:, None, :]
        return np.concatenate([e, outer.reshape(e.shape[0], -1)], axis=1)
