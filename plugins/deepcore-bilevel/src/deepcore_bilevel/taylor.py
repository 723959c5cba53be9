"""Glister's model state under a one-step Taylor update, and its greedy (imports torch)."""

from __future__ import annotations

import numpy as np
import torch


class TaylorState:
    """Validation logits under the last-layer step theta_S = theta_0 - eta * mean_{j in S} g_j.

    Only the change of the logits is needed: for a validation sample v,
    z_v(S) = z_v - (eta / |S|) * sum_{j in S} e_j (1 + <h_j, h_v>), so neither the layer's
    weights nor any gradient vector is formed. Training gradients stay at theta_0. The
    arithmetic runs in float64 on ``device``; gains come back as NumPy arrays.
    """

    def __init__(
        self,
        e_train: np.ndarray,
        h_train: np.ndarray,
        z_val: np.ndarray,
        h_val: np.ndarray,
        y_val: np.ndarray,
        eta: float,
        device: str | torch.device = "cpu",
        val_scale: np.ndarray | None = None,
    ) -> None:
        """``val_scale``: a factor on each validation sample's gradient (the original's
        batch-mean loss, :func:`deepcore_core.loader_batch_scale`; None: 1)."""

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)

        def hb(h: np.ndarray) -> torch.Tensor:
            return torch.cat([torch.ones(len(h), 1, dtype=torch.float64, device=device), t(h)], 1)

        self.e = t(e_train)
        self.hb = hb(h_train)
        self.z0 = t(z_val)
        self.hb_val = hb(h_val)
        self.y_val = torch.as_tensor(np.asarray(y_val, dtype=np.int64), device=device)
        self.val_scale = None if val_scale is None else t(val_scale)[:, None]
        self.eta = eta
        self.acc = torch.zeros(  # sum of e_j [1, h_j]
            (self.e.shape[1], self.hb.shape[1]), dtype=torch.float64, device=device
        )
        self.count = 0

    def val_logits(self) -> torch.Tensor:
        """Validation logits at the current parameters."""
        if self.count == 0:
            return self.z0
        return self.z0 - (self.eta / self.count) * self.hb_val @ self.acc.T

    def val_gradient(self) -> torch.Tensor:
        """Mean validation-loss gradient as a C x (D+1) matrix [bias | weight] (each sample's
        times its ``val_scale``)."""
        r = torch.softmax(self.val_logits(), dim=1)
        r[torch.arange(len(self.y_val), device=r.device), self.y_val] -= 1.0
        if self.val_scale is not None:
            r *= self.val_scale
        return r.T @ self.hb_val / len(self.y_val)

    def gains(self) -> np.ndarray:
        """Taylor gain of every training candidate: <g_i, mean validation gradient>.

        A step -eta * g_i lowers the validation loss by eta * gain_i to first order, i.e.
        raises the validation log-likelihood by that much.
        """
        # e_i^T (G [1, h_i]): the N x C product, not the N x (D+1) one (a tenth of the traffic)
        return ((self.hb @ self.val_gradient().T) * self.e).sum(1).cpu().numpy()

    def add(self, picks: np.ndarray) -> None:
        """Take picks into the step."""
        i = torch.as_tensor(np.asarray(picks, dtype=np.int64), device=self.e.device)
        self.acc += self.e[i].T @ self.hb[i]
        self.count += len(picks)


def glister_greedy(state: TaylorState, candidates: np.ndarray, k: int, per_step: int) -> np.ndarray:
    """Pick ``k`` of ``candidates`` (positions), ``per_step`` at a time, updating in between."""
    free = np.zeros(len(state.e), dtype=bool)
    free[candidates] = True
    picks: list[int] = []
    while len(picks) < k:
        g = state.gains()
        m = min(per_step, k - len(picks))
        masked = np.where(free, g, -np.inf)
        top = int(np.argmax(masked))  # the first maximum: the lower index
        if m == 1 and free[top] and not np.isnan(masked).any():
            best = np.array([top])
        else:
            pos = np.flatnonzero(free)
            best = pos[np.lexsort((pos, -g[pos]))[:m]]  # highest gain, ties to the lower index
        picks += best.tolist()
        free[best] = False
        state.add(best)
    return np.array(picks, dtype=np.int64)
