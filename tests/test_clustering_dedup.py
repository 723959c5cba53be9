"""k-means and SemDeDup against textbook computations on small scripted embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import DeepcoreError
from deepcore_core.clustering import kmeans, plusplus
from deepcore_core.dedup import Deduplicator, check_eps, semdedup


def blobs(n=300, dim=4, centres=5, seed=0, spread=8.0):
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=spread, size=(centres, dim))
    lab = rng.integers(0, centres, n)
    return (c[lab] + rng.normal(size=(n, dim))).astype(np.float32), lab


def textbook_lloyd(x, init, iters=100):
    """Lloyd's algorithm in float64 numpy from the given centroids."""
    c = init.astype(np.float64).copy()
    x = x.astype(np.float64)
    assign = None
    for _ in range(iters):
        d = ((x[:, None] - c[None]) ** 2).sum(-1)
        new = d.argmin(1)
        if assign is not None and (new == assign).all():
            break
        assign = new
        for j in range(len(c)):
            if (assign == j).any():
                c[j] = x[assign == j].mean(0)
    d = ((x[:, None] - c[None]) ** 2).sum(-1)
    return c, d.argmin(1), np.sqrt(d.min(1))


def test_kmeans_equals_textbook_lloyd_from_the_same_start():
    x, _ = blobs()
    init = x[[0, 50, 100, 150, 200]]
    got = kmeans(x, 5, 0, init=init)
    c, assign, dist = textbook_lloyd(x, init)
    assert (got.assign == assign).all()
    np.testing.assert_allclose(got.centroids, c, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.distance, dist, rtol=1e-4, atol=1e-4)


def test_kmeans_finds_separated_blobs_and_is_seeded():
    x, lab = blobs(spread=30.0)
    a = kmeans(x, 5, 7)
    b = kmeans(x, 5, 7)
    assert (a.assign == b.assign).all()
    # each found cluster is one true blob (a relabelling of the truth)
    pairs = {(int(p), int(t)) for p, t in zip(a.assign, lab, strict=True)}
    assert len(pairs) == 5


def test_kmeans_reads_a_float16_memory_map_in_blocks(tmp_path, monkeypatch):
    import deepcore_core.blocks as blocks

    x, _ = blobs()
    np.save(tmp_path / "x.npy", x.astype(np.float16))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    monkeypatch.setattr(blocks, "CELLS", 40)  # 10 rows a block
    init = np.asarray(mm[[0, 50, 100, 150, 200]], np.float32)
    got = kmeans(mm, 5, 0, init=init)
    _, assign, _ = textbook_lloyd(np.asarray(mm, np.float32), init)
    assert (got.assign == assign).all()


def test_plusplus_draws_distinct_far_apart_seeds():
    x = np.array([[0, 0], [0, 0.1], [10, 10], [10, 10.1], [-10, 5]], np.float32)
    seeds = plusplus(x, 3, np.random.default_rng(0))
    near = {tuple(np.round(s)) for s in seeds}
    assert len(near) == 3  # one from each far-apart group


def test_kmeans_refuses_more_clusters_than_samples():
    with pytest.raises(DeepcoreError, match="cannot make 11 clusters of 10 samples"):
        kmeans(np.zeros((10, 2), np.float32), 11)


def brute_semdedup(x, assign, centroid_distance, eps):
    """The paper's rule, pair by pair: within a cluster, farthest from the centroid first,
    keep a sample unless its cosine similarity to a kept one exceeds 1 - eps."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    kept = []
    for c in np.unique(assign):
        members = np.flatnonzero(assign == c)
        members = sorted(members, key=lambda i: (-centroid_distance[i], i))
        mine: list[int] = []
        for i in members:
            if all(float(u[i] @ u[j]) <= 1 - eps for j in mine):
                mine.append(i)
        kept += mine
    return np.sort(np.array(kept))


def with_duplicates(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(60, 8)).astype(np.float32)
    near = base[:25] + 0.01 * rng.normal(size=(25, 8)).astype(np.float32)
    return np.concatenate([base, near])


@pytest.mark.parametrize("eps", [0.001, 0.05, 0.3])
def test_semdedup_equals_the_pairwise_rule(eps):
    x = with_duplicates()
    dedup = Deduplicator(x, 3, clusters=4)
    got = dedup.kept(eps)
    c = dedup.clustering
    assert (got == brute_semdedup(x, c.assign, c.distance, eps)).all()


def test_semdedup_drops_planted_near_duplicates():
    x = with_duplicates()
    kept = semdedup(x, 0.01, 0, clusters=1)
    assert kept.size == 60  # of each pair (base, near copy) one stays
    for i in range(25):
        assert (i in kept) != (60 + i in kept)


def test_eps_for_keeps_at_least_the_budget_and_no_more_than_needed():
    x = with_duplicates()
    dedup = Deduplicator(x, 0, clusters=2)
    eps = dedup.eps_for(70)
    assert dedup.kept(eps).size >= 70
    assert dedup.kept(min(eps * 1.05 + 1e-3, 0.999)).size < 70


@pytest.mark.parametrize("bad", [0, 1, -0.1, "x", True])
def test_eps_out_of_range_is_one_line(bad):
    with pytest.raises(DeepcoreError, match=r"dedup eps must be a number in \(0, 1\)"):
        check_eps(bad)
