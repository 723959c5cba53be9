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


@pytest.fixture
def faiss():
    return pytest.importorskip("faiss", reason="the FAISS backends need faiss-cpu")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_faiss_exact_index_equals_exact_search(metric, faiss):
    x = np.random.default_rng(3).normal(size=(400, 8))
    d0, i0 = knn(x, 6, metric=metric)
    d1, i1 = knn(x, 6, metric=metric, backend="faiss")
    np.testing.assert_array_equal(i1, i0)  # continuous data: no ties
    np.testing.assert_allclose(d1, d0, rtol=1e-4, atol=1e-5)


def test_faiss_hnsw_recall_on_clustered_data(faiss):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 16))[rng.integers(0, 20, 3000)] + rng.normal(size=(3000, 16)) * 0.3
    _, exact = knn(x, 10)
    _, approx = knn(x, 10, backend="faiss-hnsw")
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert recall > 0.95
    assert not (approx == np.arange(3000)[:, None]).any()  # never a row itself


def test_backend_choice(monkeypatch):
    from deepcore_core import DeepcoreError, neighbors

    monkeypatch.setattr(neighbors, "faiss_available", lambda: True)
    assert neighbors.choose_backend("auto", 10) == "exact"
    assert neighbors.choose_backend("auto", neighbors.AUTO_FAISS_ABOVE + 1) == "faiss-hnsw"
    with pytest.raises(DeepcoreError, match="must be one of auto, exact, faiss, faiss-hnsw"):
        neighbors.choose_backend("annoy", 10)
    monkeypatch.setattr(neighbors, "faiss_available", lambda: False)
    assert neighbors.choose_backend("auto", 10**7) == "exact"
    with pytest.raises(DeepcoreError, match="pip install faiss-cpu"):
        neighbors.choose_backend("faiss", 10)


def test_float32_screen_falls_back_where_rounding_could_decide():
    # far from the origin and close together: float32 cannot rank these neighbours, so
    # every row must come from the float64 fallback, and still equal the brute force
    rng = np.random.default_rng(8)
    x = 100.0 + rng.normal(size=(120, 3)) * 1e-2
    dist, idx = knn(x, 4)
    ref_d, ref_i = brute(x, 4, True)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, atol=1e-7)  # |a|^2 + |b|^2 - 2ab cancels


def test_float32_screen_equals_the_float64_search():
    from deepcore_core.neighbors import blockwise_topk

    x = np.random.default_rng(9).normal(size=(1500, 20)) * 3
    t = torch.as_tensor(x)
    sq = (t * t).sum(1)
    _, ref = blockwise_topk(
        lambda lo, hi: torch.addmm(-sq[None], t[lo:hi], t.T, alpha=2.0), 1500, 10, True, True
    )
    _, idx = knn(x, 10)
    np.testing.assert_array_equal(idx, ref)
