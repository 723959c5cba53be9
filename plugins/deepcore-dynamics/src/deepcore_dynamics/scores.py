"""Scores from an epochs x N training-dynamics matrix (plain NumPy, one column per sample)."""

from __future__ import annotations

import numpy as np


def windows(a: np.ndarray, size: int) -> np.ndarray:
    """Every run of ``size`` consecutive rows of ``a`` (E x N), as (E - size + 1) x size x N.

    With fewer than ``size`` rows the one window holds them all.
    """
    size = min(size, a.shape[0])
    return np.lib.stride_tricks.sliding_window_view(a, size, axis=0).transpose(0, 2, 1)


def aum(margin: np.ndarray) -> np.ndarray:
    """Area under the margin: the mean over epochs of a per-epoch margin (Pleiss et al. 2020)."""
    return np.asarray(margin, dtype=np.float64).mean(0)


def dyn_unc(p_true: np.ndarray, window: int) -> np.ndarray:
    """Dynamic uncertainty (He et al. 2024): the mean over sliding windows of std(p_y)."""
    w = windows(np.asarray(p_true, dtype=np.float64), window)
    return w.std(axis=1).mean(0)


def dual(p_true: np.ndarray, window: int, epochs: int) -> np.ndarray:
    """DUAL (Cho et al. 2025): over the first ``epochs`` epochs, the mean over sliding windows
    of std(p_y) x (1 - mean(p_y))."""
    w = windows(np.asarray(p_true, dtype=np.float64)[:epochs], window)
    return (w.std(axis=1) * (1.0 - w.mean(axis=1))).mean(0)


def tdds(change: np.ndarray, window: int, epochs: int, decay: float) -> np.ndarray:
    """TDDS (Zhang et al. 2024): the decay-weighted sum over sliding windows of the L2 norm of
    each window's deviation of the per-epoch prediction change from its window mean.

    ``change[t]`` is sum_c |p_t,c log(p_t,c / p_t-1,c)| (row 0, with no previous epoch, is
    not used). A window spans ``window`` epochs, so ``window - 1`` changes, as in the paper
    and its code. Over the first ``epochs`` epochs, window k gets the weight
    decay (1 - decay)^(K - 1 - k), K windows in all, so later windows weigh more.
    """
    d = np.asarray(change, dtype=np.float64)[1:epochs]
    if d.shape[0] == 0:
        return np.zeros(d.shape[1])
    w = windows(d, window - 1)
    dev = np.sqrt(((w - w.mean(axis=1, keepdims=True)) ** 2).sum(axis=1))
    k = dev.shape[0]
    weights = decay * (1.0 - decay) ** (k - 1 - np.arange(k))
    return (weights[:, None] * dev).sum(0)


def distance_to_class_median(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Moderate-DS (Xia et al. 2023): the distance of each feature vector to the per-dimension
    median of its class."""
    x = np.asarray(features, dtype=np.float64)
    out = np.empty(len(x))
    for c in np.unique(labels):
        rows = labels == c
        out[rows] = np.linalg.norm(x[rows] - np.median(x[rows], axis=0), axis=1)
    return out
