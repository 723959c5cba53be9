from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import DeepcoreError, select
from deepcore_core.context import SelectionContext
from deepcore_core.testing import (
    check_end_to_end,
    check_selector,
    dataset_context,
    host_with,
    synthetic_dataset,
)
from deepcore_core.workflow import make_selection
from deepcore_labelfree import (
    Elfs,
    ElfsOptions,
    Prototype,
    SemDeDup,
    double_end,
    pick_cutoff,
    search_grid,
)


def blobs(n=120, seed=0):
    """Three far-apart blobs: k-means with k = 3 finds them exactly."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [40, 0, 0], [0, 40, 0]], np.float64)
    lab = np.arange(n) % 3
    return (centres[lab] + rng.normal(size=(n, 3))).astype(np.float32), lab


def test_prototype_scores_are_distances_to_the_blob_means():
    x, lab = blobs()
    sel = select("prototype", features=x, budget=30, options={"clusters": 3}, seed=1)
    means = np.stack([x[lab == c].astype(np.float64).mean(0) for c in range(3)])
    want = np.linalg.norm(x - means[lab], axis=1)
    np.testing.assert_allclose(sel.scores, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("keep", "budget", "hard"), [
    ("hard", 10, True), ("easy", 100, False), ("auto", 36, True), ("auto", 35, False),
])  # fmt: skip
def test_prototype_keeps_the_end_its_rule_says(keep, budget, hard):
    x, _ = blobs()
    sel = select("prototype", features=x, budget=budget, options={"clusters": 3, "keep": keep})
    order = np.argsort(-sel.scores if hard else sel.scores, kind="stable")
    assert sorted(sel.indices.tolist()) == sorted(order[:budget].tolist())
    assert sel.meta["prototype"]["keep"] == ("hard" if hard else "easy")


def test_double_end_by_hand():
    order = np.arange(10)  # hardest first
    assert double_end(order, 0.2, 3).tolist() == [2, 3, 4]
    assert double_end(order, 0.0, 3).tolist() == [0, 1, 2]
    assert double_end(order, 0.9, 3).tolist() == [7, 8, 9]  # moved back so three remain
    assert double_end(order, 0.25, 10).tolist() == list(range(10))


def test_search_grid_and_pick():
    o = ElfsOptions()
    assert search_grid(o, 100, 10) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert search_grid(o, 100, 70) == [0.0, 0.1, 0.2, 0.3]  # leaves 70
    assert search_grid(ElfsOptions(search_step=0.25, search_max=0.6), 100, 10) == [0, 0.25, 0.5]
    acc = {0.0: 0.5, 0.1: 0.8, 0.2: 0.8, 0.3: 0.6}
    best, seen = pick_cutoff(acc.__getitem__, [0.0, 0.1, 0.2, 0.3])
    assert best == 0.1 and seen == acc  # a tie goes to the smaller share


def elfs_context(host, seed=0):
    data = synthetic_dataset((30, 30, 30), size=8, seed=1)
    ctx = dataset_context(data, host, seed=seed, balance=False)
    ctx.features = np.asarray(data.train.images.float().flatten(1).numpy(), np.float32)
    ctx.labels, ctx.no_labels = None, True
    return ctx


def test_elfs_picks_the_double_end_band_of_pseudo_label_aum():
    from deepcore_core import kmeans, pretrain_on_labels

    host = host_with(Elfs)
    opts = {"clusters": 3, "hard_cutoff": 0.2}
    ctx = elfs_context(host)
    sel = make_selection(host, host.create_selector("elfs", opts), ctx, budget=20).selection
    # by hand: the same clusters, the same (cached) pseudo-label model, AUM, the band
    ref = elfs_context(host)
    pseudo = kmeans(ref.features, 3, ref.rng("elfs", "pseudo-labels")).assign
    aum = pretrain_on_labels(ref, pseudo, "pseudo-labels").dynamics.margin.mean(0)
    np.testing.assert_allclose(sel.scores, aum, rtol=1e-6)
    rng = ref.rng("select", "all")
    order = np.lexsort((rng.permutation(90), aum))
    assert sel.indices.tolist() == sorted(order[18:38].tolist())
    assert sel.meta["elfs"]["hard_cutoff"] == 0.2


def test_elfs_searches_the_cutoff_on_pseudo_labels():
    host = host_with(Elfs)
    opts = {"clusters": 3, "search_iterations": 15, "search_step": 0.2, "search_max": 0.4}
    sel = make_selection(host, host.create_selector("elfs", opts), elfs_context(host),
                         budget=30).selection  # fmt: skip
    record = sel.meta["elfs"]
    assert set(record["search"]) == {"0.0", "0.2", "0.4"}
    best = max(record["search"].items(), key=lambda kv: (kv[1], -float(kv[0])))
    assert record["hard_cutoff"] == float(best[0])


def test_elfs_needs_a_dataset():
    with pytest.raises(DeepcoreError, match="method .elfs. needs dataset; select from a dataset"):
        select("elfs", features=blobs()[0], budget=10)


def test_semdedup_draws_from_what_the_rule_keeps():
    from deepcore_core import Deduplicator

    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 6)).astype(np.float32)
    x = np.concatenate([base, base[:20] + 1e-3 * rng.normal(size=(20, 6)).astype(np.float32)])
    sel = select("semdedup", features=x, budget=40, seed=5, options={"eps": 0.01})
    pool_rng = SelectionContext(n=70, seed=5).rng("select", "all")
    kept = Deduplicator(x, pool_rng, clusters=None).kept(0.01)
    assert kept.size == 50
    assert set(sel.indices.tolist()) <= set(kept.tolist())
    assert sel.meta["semdedup"]["pools"] == [{"eps": 0.01, "kept": 50, "size": 70}]
    auto = select("semdedup", features=x, budget=50, seed=5)
    assert auto.meta["semdedup"]["pools"][0]["kept"] >= 50
    with pytest.raises(DeepcoreError, match="keeps 50 of 70 samples, fewer than the 60"):
        select("semdedup", features=x, budget=60, seed=5, options={"eps": 0.01})


def test_conformance_prototype_and_semdedup():
    check_selector(Prototype, options={"clusters": 3})
    check_selector(SemDeDup)


def test_conformance_elfs():
    check_selector(Elfs, {"dataset": synthetic_dataset()},
                   options={"clusters": 2, "search_iterations": 5})  # fmt: skip


def test_end_to_end(tmp_path):
    check_end_to_end("prototype", tmp_path)
