"""Exact blockwise k-nearest neighbours against a brute-force sort, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepcore_core.neighbors import blockwise_topk, knn


def brute(x: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]  # ties: the lower index first
    return np.sqrt(np.take_along_axis(d2, order, 1)), order


@pytest.mark.parametrize("exclude_self", [True, False])
def test_knn_equals_brute_force_with_duplicates(exclude_self):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(90, 3)).astype(np.float64)  # many exact ties and duplicates
    dist, idx = knn(x, 7, exclude_self=exclude_self)
    ref_d, ref_i = brute(x, 7, exclude_self)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, atol=1e-7)


def test_knn_on_continuous_data_and_cosine():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    dist, idx = knn(x, 5)
    ref_d, ref_i = brute(x, 5, True)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-9)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cd, ci = knn(x, 5, metric="cosine")
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    np.testing.assert_array_equal(ci, np.argsort(-sim, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(cd, 1 - np.take_along_axis(sim, ci, 1), atol=1e-12)


def test_blockwise_topk_breaks_ties_by_column_in_every_block():
    m = torch.tensor(np.random.default_rng(2).integers(0, 4, size=(37, 23)).astype(np.float32))
    vals, idx = blockwise_topk(lambda lo, hi: m[lo:hi].clone(), 37, 6, block_rows=5)
    ref = np.argsort(-m.numpy(), axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(vals, np.take_along_axis(m.numpy(), ref, 1))
