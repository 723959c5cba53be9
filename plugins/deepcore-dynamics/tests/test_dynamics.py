from __future__ import annotations

import math

import numpy as np
import pytest

from deepcore_core import DeepcoreError, PluginHost, select
from deepcore_core.testing import check_end_to_end, check_selector
from deepcore_dynamics import METHODS, scores

RNG = np.random.default_rng


def scripted(epochs=12, n=9, seed=0):
    """A scripted dynamics matrix: loss, margin, max_other, change (epochs x n)."""
    rng = RNG(seed)
    loss = rng.uniform(0.01, 3.0, size=(epochs, n)).astype(np.float32)
    p = np.exp(-loss.astype(np.float64))
    max_other = (rng.uniform(size=(epochs, n)) * (1 - p)).astype(np.float32)
    change = rng.uniform(size=(epochs, n)).astype(np.float32)
    change[0] = 0
    return {
        "correct": rng.random((epochs, n)) < 0.6,
        "loss": loss,
        "margin": rng.normal(size=(epochs, n)).astype(np.float32),
        "max_other": max_other,
        "change": change,
    }


def test_aum_is_the_mean_margin_by_hand():
    d = scripted()
    for j in range(9):
        by_hand = sum(float(d["margin"][t, j]) for t in range(12)) / 12
        assert scores.aum(d["margin"])[j] == pytest.approx(by_hand)
    sel = select("aum", training_dynamics=d, budget=3, balance=False)
    assert sorted(sel.indices.tolist()) == sorted(np.argsort(d["margin"].mean(0))[:3].tolist())
    prob = select(
        "aum", training_dynamics=d, budget=3, balance=False, options={"margin": "probability"}
    )
    want = (np.exp(-d["loss"].astype(np.float64)) - d["max_other"]).mean(0)
    np.testing.assert_allclose(prob.scores, want, rtol=1e-6)


def hand_windows(column, size):
    size = min(size, len(column))
    return [column[k : k + size] for k in range(len(column) - size + 1)]


def test_dyn_unc_and_dual_by_hand():
    d = scripted(epochs=14)
    p = np.exp(-d["loss"].astype(np.float64))
    for j in range(9):
        ws = hand_windows(list(p[:, j]), 10)
        dyn = sum(float(np.std(w)) for w in ws) / len(ws)
        assert scores.dyn_unc(p, 10)[j] == pytest.approx(dyn)
        ws = hand_windows(list(p[:12, j]), 5)
        du = sum(float(np.std(w)) * (1 - float(np.mean(w))) for w in ws) / len(ws)
        assert scores.dual(p, 5, 12)[j] == pytest.approx(du)
    short = scores.dyn_unc(p[:4], 10)  # fewer epochs than the window: one window
    np.testing.assert_allclose(short, p[:4].std(0))


def test_tdds_by_hand():
    d = scripted(epochs=16)
    ch = d["change"].astype(np.float64)
    got = scores.tdds(ch, window=4, epochs=12, decay=0.9)
    for j in range(9):
        col = list(ch[1:12, j])  # changes of epochs 1..11
        ws = hand_windows(col, 3)  # a window of 4 epochs holds 3 changes
        k = len(ws)
        total = 0.0
        for i, w in enumerate(ws):
            m = sum(w) / len(w)
            total += 0.9 * 0.1 ** (k - 1 - i) * math.sqrt(sum((v - m) ** 2 for v in w))
        assert got[j] == pytest.approx(total)


def test_tdds_windows_count_epochs_as_the_paper_does():
    """From softmax outputs of T = 30 epochs: windows of J = 10 epochs, each holding the
    changes between its consecutive epochs (9), weighted by beta (1 - beta)^(last - k)."""
    rng = RNG(3)
    epochs, n, c, window, beta = 30, 7, 5, 10, 0.9
    logits = rng.normal(size=(epochs, n, c)).cumsum(0)
    p = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    change = np.zeros((epochs, n))
    for t in range(1, epochs):
        change[t] = np.abs(p[t] * np.log(p[t] / p[t - 1])).sum(1)
    starts = range(epochs - window + 1)  # a window per first epoch: epochs s .. s + 9
    want = np.zeros(n)
    for k in starts:
        d = np.array([change[t] for t in range(k + 1, k + window)])  # 9 changes
        weight = beta * (1 - beta) ** (len(starts) - 1 - k)
        want += weight * np.sqrt(((d - d.mean(0)) ** 2).sum(0))
    np.testing.assert_allclose(scores.tdds(change, window, epochs, beta), want, rtol=1e-12)


def test_moderate_by_hand_and_its_band():
    rng = RNG(1)
    x = rng.normal(size=(30, 3))
    y = np.repeat([0, 1], 15)
    got = scores.distance_to_class_median(x, y)
    for i in range(30):
        med = np.median(x[y == y[i]], axis=0)
        assert got[i] == pytest.approx(float(np.sqrt(((x[i] - med) ** 2).sum())))
    sel = select("moderate", features=x, labels=y, budget=6, balance=False)
    assert sel.meta["sampler"]["name"] == "band"
    ranks = np.empty(30, int)
    ranks[np.argsort(-got)] = np.arange(30)
    assert sorted(ranks[sel.indices].tolist()) == list(range(12, 18))


def test_moderate_without_labels_measures_from_the_dataset_or_cluster_median():
    rng = RNG(2)
    x = rng.normal(size=(40, 3)) + np.repeat([[0, 0, 0], [30, 0, 0]], 20, axis=0)
    sel = select("moderate", features=x, budget=10, options={"median": "all"}, no_labels=True)
    x32 = x.astype(np.float32).astype(np.float64)  # features are read as float32
    want = np.linalg.norm(x32 - np.median(x32, axis=0), axis=1)
    np.testing.assert_allclose(sel.scores, want, rtol=1e-12)
    by_cluster = select("moderate", features=x, budget=10, options={"median": "cluster"},
                        no_labels=True, clusters=2)  # fmt: skip
    blob = np.repeat([0, 1], 20)  # k-means finds the two far-apart blobs
    np.testing.assert_allclose(by_cluster.scores, scores.distance_to_class_median(x32, blob))
    with pytest.raises(DeepcoreError, match="median: cluster needs --clusters"):
        select("moderate", features=x, budget=10, options={"median": "cluster"}, no_labels=True)
    with pytest.raises(DeepcoreError, match="method 'moderate' needs labels"):
        select("moderate", features=x, budget=10, no_labels=True)


def test_default_samplers_and_overrides():
    d = scripted(epochs=12, n=200, seed=2)
    labels = RNG(3).integers(0, 2, 200)
    ccs = select("ccs", training_dynamics=d, labels=labels, fraction=0.1)
    assert ccs.meta["sampler"] == {"name": "stratified", "options": {"bins": 50, "drop": None}}
    top = select("ccs", training_dynamics=d, labels=labels, fraction=0.1, sampler="top")
    assert top.meta["sampler"]["name"] == "top"
    assert set(top.indices.tolist()) != set(ccs.indices.tolist())
    dual = select("dual", training_dynamics=d, labels=labels, fraction=0.1)
    assert dual.meta["sampler"]["name"] == "beta"
    assert dual.meta["options"] == {"window": 10, "epochs": 30}


def test_dual_beta_sampler_sees_mean_p_true_and_the_score():
    from deepcore_core.workflow import context_for_arrays
    from deepcore_dynamics import Dual

    d = scripted(epochs=12, n=50, seed=4)
    ctx = context_for_arrays(dynamics=d)
    sel = Dual()
    ctx.scores = sel.compute_scores(ctx)
    pool = np.arange(10, 40)
    extras = sel.sampler_extras(ctx, pool)
    p = np.exp(-d["loss"].astype(np.float64))
    np.testing.assert_allclose(extras["beta_x"], p[:, pool].mean(0))
    np.testing.assert_allclose(extras["beta_weight"], ctx.scores[pool])


def test_missing_dynamics_arrays_are_named():
    from deepcore_core import DeepcoreError

    d = {"correct": np.ones((5, 8), bool)}
    with pytest.raises(DeepcoreError, match="'tdds' needs the dynamics' 'change'"):
        select("tdds", training_dynamics=d, budget=2, balance=False)


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
def test_conformance(cls):
    check_selector(cls)


def test_registered():
    host = PluginHost(load_entrypoints=True, strict=True)
    for cls in METHODS:
        assert host.method(cls.name).distribution == "deepcore-dynamics"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ccs", "tdds", "dual"])
def test_end_to_end_run_on_digits(method, tmp_path):
    check_end_to_end(method, tmp_path)


def brute_d2(score, x, k, knn, gamma, gamma_forward, undirected=True):
    """D2 written out with a dense distance matrix, neighbour sets and explicit loops."""
    n = len(score)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    nbrs = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (d[i, j], j))
        nbrs.append(set(others[:knn]))
    if undirected:  # i ~ j when either counts the other among its neighbours
        nbrs = [{j for j in range(n) if j in nbrs[i] or i in nbrs[j]} for i in range(n)]
    msg = [
        score[i] + sum(math.exp(-gamma_forward * d[i, j]) * score[j] for j in nbrs[i])
        for i in range(n)
    ]
    picks = []
    for _ in range(k):
        best = max((i for i in range(n) if i not in picks), key=lambda i: (msg[i], -i))
        picks.append(best)
        for j in nbrs[best]:
            msg[j] -= math.exp(-gamma * d[best, j]) * msg[best]
    return picks


@pytest.mark.parametrize("graph", ["undirected", "directed"])
def test_d2_matches_a_brute_force_greedy_on_a_small_graph(graph):
    from deepcore_core import knn
    from deepcore_dynamics.d2 import d2_select, knn_graph

    rng = RNG(7)
    x = rng.normal(size=(25, 3))
    s = rng.uniform(size=25)
    dist, nbr = knn(x, 4, "euclidean", exclude_self=True)
    g = knn_graph(dist, nbr, undirected=graph == "undirected")
    got = d2_select(s, g, 8, gamma=0.5, gamma_forward=1.0)
    assert got.tolist() == brute_d2(s, x, 8, 4, 0.5, 1.0, undirected=graph == "undirected")
    if graph == "undirected":  # some sample is a neighbour of more than its own 4
        assert np.diff(g.start).max() > 4


def brute_forgetting(correct):
    """Correct-to-wrong transitions; never-learned samples score the number of epochs."""
    e = len(correct)
    events = sum((correct[t - 1] & ~correct[t]).astype(int) for t in range(1, e))
    return np.where(correct.any(0), events, e).astype(float)


@pytest.mark.parametrize("balance", [False, True])
def test_d2_is_the_papers_recipe_by_brute_force(balance):
    """The paper's CIFAR recipe: drop the 40% lowest-AUM samples of the whole dataset, then
    spread the forgetting score (scaled to [0, 1] per pool) over the undirected 5-NN graph
    of each pool (a class when balanced) and pick greedily."""
    n = 90
    d = scripted(epochs=10, n=n, seed=11)
    x = RNG(12).normal(size=(n, 3))
    labels = RNG(13).integers(0, 3, n)
    sel = select(
        "d2", training_dynamics=d, features=x, labels=labels, fraction=0.2, balance=balance
    )
    assert sel.meta["options"]["score"] == "forgetting" and sel.meta["options"]["drop"] == 0.4
    aum = d["margin"].astype(np.float64).mean(0)
    kept = np.sort(np.argsort(aum)[int(0.4 * n) :])
    forgetting = brute_forgetting(d["correct"])
    pools = [(kept, len(sel))]
    if balance:
        per = sel.meta["per_class"]
        pools = [(kept[labels[kept] == c], per[str(c)]) for c in range(3)]
    want = []
    for pool, k in pools:
        v = forgetting[pool]
        v = (v - v.min()) / (v.max() - v.min())
        want += pool[brute_d2(v, x[pool], k, 5, 0.1, 1.0)].tolist()
    assert sorted(sel.indices.tolist()) == sorted(want)
    assert sel.meta["pool"]["rule"] == ("per class" if balance else "whole dataset")


def test_d2_spreads_any_score_method_through_select():
    d = scripted(epochs=8, n=120, seed=5)
    x = RNG(6).normal(size=(120, 4))
    labels = RNG(8).integers(0, 3, 120)
    kw = {"training_dynamics": d, "features": x, "labels": labels, "fraction": 0.2}
    a = select("d2", options={"score": "aum"}, **kw)
    assert len(a) == 24 and a.meta["options"]["score"] == "aum"
    # the AUM front (lowest) is spread: message passing changes the pure top-k set
    top = select("aum", **kw)
    assert set(a.indices.tolist()) != set(top.indices.tolist())
    from deepcore_core import DeepcoreError

    with pytest.raises(DeepcoreError, match="does not score samples"):
        select("d2", options={"score": "uniform"}, **kw)


@pytest.mark.parametrize(
    ("method", "options", "spec"),
    [
        ("aum", {}, {}),
        ("aum", {"margin": "probability"}, {}),
        ("ccs", {}, {}),
        ("dyn-unc", {"window": 4}, {"window": 4}),
        ("dual", {"window": 3, "epochs": 8}, {"window": 3, "horizon": 8}),
        (
            "tdds",
            {"window": 3, "epochs": 9, "decay": 0.6},
            {"window": 3, "horizon": 9, "decay": 0.6},
        ),
        ("d2", {"knn": 3}, {}),
    ],
)
def test_running_statistics_score_as_the_full_history(method, options, spec):
    from deepcore_core import Dynamics, RunningSpec
    from deepcore_core import scores as score_of
    from deepcore_core.engine.recording import summarize

    d = scripted(epochs=12, n=60, seed=5)
    running = summarize(Dynamics(**d), RunningSpec(**spec))
    features = RNG(6).normal(size=(60, 3))
    kw = {"features": features} if method == "d2" else {}
    if method == "d2":
        a = select(method, training_dynamics=d, budget=10, balance=False, options=options, **kw)
        b = select(
            method, training_dynamics=running, budget=10, balance=False, options=options, **kw
        )
        assert a.indices.tolist() == b.indices.tolist()
        return
    full = score_of(method, training_dynamics=d, options=options)
    np.testing.assert_allclose(
        score_of(method, training_dynamics=running, options=options), full, 1e-9
    )


def test_dual_beta_sampler_and_window_checks_with_running_statistics():
    from deepcore_core import DeepcoreError, Dynamics, RunningSpec
    from deepcore_core.engine.recording import summarize
    from deepcore_core.workflow import context_for_arrays
    from deepcore_dynamics import Dual

    d = scripted(epochs=12, n=50, seed=4)
    ctx = context_for_arrays(dynamics=summarize(Dynamics(**d), RunningSpec(window=10, horizon=30)))
    sel = Dual()
    ctx.scores = sel.compute_scores(ctx)
    pool = np.arange(10, 40)
    p = np.exp(-d["loss"].astype(np.float64))
    np.testing.assert_allclose(sel.sampler_extras(ctx, pool)["beta_x"], p[:, pool].mean(0))
    with pytest.raises(DeepcoreError, match="record with dynamics_options"):
        select(
            "dyn-unc",
            training_dynamics=ctx.dynamics,
            budget=3,
            balance=False,
            options={"window": 3},
        )


@pytest.mark.parametrize(
    ("method", "epochs", "warned"),
    [("dual", 12, True), ("tdds", 12, True), ("dyn-unc", 10, True), ("dyn-unc", 12, False),
     ("dual", 30, False)],
)  # fmt: skip
def test_a_recording_shorter_than_the_methods_windows_warns(method, epochs, warned, caplog):
    """DUAL and TDDS read the first 30 epochs, Dyn-Unc windows of 10: a shorter recording
    collapses them into one window, which is said once, with the numbers."""
    import logging

    d = scripted(epochs=epochs)
    with caplog.at_level(logging.WARNING, logger="deepcore"):
        select(method, training_dynamics=d, budget=3, balance=False)
    short = [r.getMessage() for r in caplog.records if "recorded" in r.getMessage()]
    assert bool(short) == warned
    if warned:
        assert len(short) == 1 and f"recorded {epochs}" in short[0]


def test_aum_can_skip_the_first_epoch_and_dyn_unc_the_last_window():
    from deepcore_core import DeepcoreError, Dynamics, RunningSpec
    from deepcore_core import scores as score_of
    from deepcore_core.engine.recording import summarize

    d = scripted(epochs=14, n=9)
    got = score_of("aum", training_dynamics=d, options={"skip_first_epoch": True})
    np.testing.assert_allclose(got, d["margin"][1:].astype(np.float64).mean(0))
    p = np.exp(-d["loss"].astype(np.float64))
    got = score_of("dyn-unc", training_dynamics=d, options={"window": 5, "last_window": False})
    want = np.mean([p[s : s + 5].std(0) for s in range(14 - 5)], axis=0)  # none ends at 13
    np.testing.assert_allclose(got, want)
    running = summarize(Dynamics(**d), RunningSpec())
    with pytest.raises(DeepcoreError, match="skip_first_epoch needs every epoch"):
        score_of("aum", training_dynamics=running, options={"skip_first_epoch": True})


def test_d2_gives_a_class_short_after_the_cut_off_its_least_hard_dropped_samples():
    """Class 0 holds the 20 hardest samples by AUM: the 40% cut-off drops all of them, so
    its budget comes back from the least hard of them."""
    n = 50
    d = scripted(epochs=6, n=n, seed=2)
    labels = np.r_[np.zeros(20, int), np.ones(30, int)]
    d["margin"][:, :20] -= 100 + np.arange(20)  # lowest AUM hardest: sample 0 the least hard
    x = RNG(3).normal(size=(n, 2))
    sel = select("d2", training_dynamics=d, features=x, labels=labels, budget=10)
    ones = sel.indices[labels[sel.indices] == 0]
    assert sorted(ones.tolist()) == [0, 1, 2, 3]
