from __future__ import annotations

import math

import numpy as np
import pytest

from deepcore_core import PluginHost, SelectionContext, select
from deepcore_core.submodular.functions import FacilityLocation, GraphCut, LogDeterminant
from deepcore_core.submodular.kernels import CosineBlocks
from deepcore_core.submodular.optimizers import maximize
from deepcore_core.testing import check_end_to_end, check_selector, synthetic_inputs
from deepcore_core.workflow import context_for_arrays
from deepcore_submodular import METHODS


def data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) * 2
    return {"features": x, "labels": y, "logits": logits}


def sel(method, d, **options):
    return select(method, **d, budget=12, balance=False, seed=1, options=options).indices


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["graph-cut", "facility-location"])
@pytest.mark.parametrize("similarity", ["gradients", "features"])
def test_naive_and_lazy_equal_submodlib_naive(method, similarity, seed):
    d = data(seed)
    ref = sel(method, d, similarity=similarity, backend="submodlib", optimizer="naive")
    for opt in ("naive", "lazy"):
        assert sel(method, d, similarity=similarity, optimizer=opt).tolist() == ref.tolist()


def random_psd(n=40, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 8))
    k = a @ a.T / 8 + np.diag(rng.uniform(0.1, 0.5, n))
    return k.astype(np.float32)


@pytest.mark.parametrize("opt", ["naive", "lazy"])
def test_log_determinant_equals_submodlib_naive(opt):
    from submodlib import LogDeterminantFunction

    k = random_psd()
    fn = LogDeterminantFunction(n=40, mode="dense", lambdaVal=0.5, sijs=k)
    ref = [
        i
        for i, _ in fn.maximize(
            budget=10,
            optimizer="NaiveGreedy",
            stopIfZeroGain=False,
            stopIfNegativeGain=False,
            show_progress=False,
        )
    ]
    ours = maximize(LogDeterminant(k, 0.5, 10), 10, opt, np.random.default_rng(0))
    assert ours.tolist() == ref


def brute_greedy(f, n, k):
    chosen: list[int] = []
    for _ in range(k):
        base = f(chosen)
        gains = [f([*chosen, e]) - base if e not in chosen else -np.inf for e in range(n)]
        chosen.append(int(np.argmax(gains)))
    return chosen


def test_objectives_against_brute_force_definitions():
    k = CosineBlocks(context_for_arrays(**data(3), seed=0), np.arange(60), "gradients").dense()
    k64 = k.astype(np.float64)
    n = 60

    def gc(a):
        return k64[:, a].sum() - 0.7 * k64[np.ix_(a, a)].sum() if a else 0.0

    def fl(a):
        return k64[:, a].max(1).sum() if a else 0.0

    def ld(a):
        return np.linalg.slogdet(k64[np.ix_(a, a)] + 0.3 * np.eye(len(a)))[1] if a else 0.0

    rng = np.random.default_rng(0)
    assert maximize(GraphCut(k, 0.7), 8, "naive", rng).tolist() == brute_greedy(gc, n, 8)
    assert maximize(FacilityLocation(k), 8, "lazy", rng).tolist() == brute_greedy(fl, n, 8)
    assert maximize(LogDeterminant(k, 0.3, 8), 8, "naive", rng).tolist() == brute_greedy(ld, n, 8)
    # the graph-cut gain formula itself
    obj = GraphCut(k, 0.7)
    for e in (3, 17):
        obj.add(e)
    cand = np.array([0, 5, 40])
    np.testing.assert_allclose(
        obj.gains(cand), [gc([3, 17, c]) - gc([3, 17]) for c in cand], rtol=1e-5
    )


def test_facility_location_kept_gains_equal_fresh_sums():
    # the dense objective updates its gains pick by pick; they must equal the definition
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    k = (x @ x.T / 5).astype(np.float32)  # symmetric, with negative entries
    obj = FacilityLocation(k)
    k64 = k.astype(np.float64)
    cover = np.zeros(300)
    for e in rng.permutation(300)[:40]:
        obj.add(int(e))
        cover = np.maximum(cover, k64[:, e])
        fresh = np.maximum(k64 - cover[:, None], 0.0).sum(0)
        np.testing.assert_allclose(obj.gains(np.arange(300)), fresh, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("method", ["graph-cut", "facility-location", "log-determinant"])
def test_stochastic_within_guarantee_and_seeded(method):
    d = data(4, n=200)
    naive = select(method, **d, budget=20, balance=False, options={"optimizer": "naive"})
    ctx = context_for_arrays(**d, seed=0)
    k = CosineBlocks(ctx, np.arange(200), "gradients").dense().astype(np.float64)

    def value(idx):
        if method == "graph-cut":
            return k[:, idx].sum() - k[np.ix_(idx, idx)].sum()
        if method == "facility-location":
            return k[:, idx].max(1).sum()
        return np.linalg.slogdet(k[np.ix_(idx, idx)] + np.eye(len(idx)))[1]

    eps = 0.1
    for opt in ("stochastic", "lazier-than-lazy"):
        for seed in range(3):
            s = select(
                method,
                **d,
                budget=20,
                balance=False,
                seed=seed,
                options={"optimizer": opt, "epsilon": eps},
            )
            assert value(s.indices) >= (1 - 1 / math.e - eps) * value(naive.indices)
    a, b, c = (
        select(
            method,
            **d,
            budget=20,
            balance=False,
            seed=s,
            options={"optimizer": "stochastic", "epsilon": eps},
        ).indices
        for s in (5, 5, 6)
    )
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    ltl = select(
        method,
        **d,
        budget=20,
        balance=False,
        seed=5,
        options={"optimizer": "lazier-than-lazy", "epsilon": eps},
    ).indices
    assert ltl.tolist() == a.tolist()  # lazy evaluation within the same samples


def test_log_determinant_never_picks_a_duplicate_while_distinct_points_remain():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 20)).astype(np.float32)
    x = np.concatenate([base, base[:4], base[:4]])  # points 0-3 appear three times
    s = select(
        "log-determinant",
        features=x,
        budget=10,
        balance=False,
        options={"similarity": "features", "reg": 0.01},
    )
    rows = {tuple(np.round(x[i], 5)) for i in s.indices}
    assert len(rows) == 10  # ten distinct points, no copy of one already chosen


def test_sparse_path_equals_dense_when_k_is_n():
    d = data(5, n=80)
    for method in ("graph-cut", "facility-location"):
        dense = sel(method, d, optimizer="lazy")
        sparse = sel(method, d, optimizer="lazy", dense_limit=10, knn=80)
        assert dense.tolist() == sparse.tolist()


def test_sparse_path_is_good_with_few_neighbours():
    d = data(6, n=300)
    ctx = context_for_arrays(**d, seed=0)
    k = CosineBlocks(ctx, np.arange(300), "gradients").dense().astype(np.float64)
    dense = select("facility-location", **d, budget=30, balance=False).indices
    sparse = select(
        "facility-location", **d, budget=30, balance=False, options={"dense_limit": 10, "knn": 30}
    ).indices
    fl = k[:, sparse].max(1).sum() / k[:, dense].max(1).sum()
    assert fl > 0.97


def test_log_determinant_refuses_huge_unbalanced_pools():
    from deepcore_core import DeepcoreError

    with pytest.raises(DeepcoreError, match="needs a dense kernel"):
        sel("log-determinant", data(0), dense_limit=10)


def test_zero_gradients_are_safe():
    d = data(7)
    p = np.full((60, 3), 1e-9)
    p[np.arange(60), d["labels"]] = 1.0
    ctx = SelectionContext(
        n=60,
        labels=d["labels"],
        features=d["features"],
        probs=(p / p.sum(1, keepdims=True)).astype(np.float32),
    )
    ctx.probs[0] = np.eye(3)[d["labels"][0]]  # an exact one-hot: zero gradient
    k = CosineBlocks(ctx, np.arange(60), "gradients").dense()
    assert np.isfinite(k).all() and k[0, 1] == pytest.approx(0.5)


@pytest.mark.parametrize("cls", METHODS)
def test_conformance(cls):
    check_selector(cls)
    check_selector(
        cls,
        inputs={k: v for k, v in synthetic_inputs().items() if k in ("features", "labels")},
        options={"similarity": "features"},
    )


def test_registered():
    host = PluginHost(load_entrypoints=True, strict=True)
    for name in ("graph-cut", "facility-location", "log-determinant"):
        info = host.registry.get(name)
        assert (info.family, info.distribution, info.needs) == (
            "submodular",
            "deepcore-submodular",
            ["gradients"],
        )


@pytest.mark.parametrize("method", ["graph-cut", "facility-location", "log-determinant"])
def test_end_to_end_run_on_digits(method, tmp_path):
    check_end_to_end(method, tmp_path)


def test_original_log_determinant_gain_is_the_explained_variance():
    k = random_psd()
    reg = 0.5

    def explained(chosen, e):  # s_e^T (S_A + reg I)^-1 s_e, the original's gain
        if not chosen:
            return 0.0
        a = k[np.ix_(chosen, chosen)] + reg * np.eye(len(chosen))
        s = k[chosen, e]
        return float(s @ np.linalg.solve(a, s))

    chosen: list[int] = []
    for _ in range(8):
        gains = [explained(chosen, e) if e not in chosen else -np.inf for e in range(40)]
        chosen.append(int(np.argmax(gains)))
    ours = maximize(LogDeterminant(k, reg, 8, explained=True), 8, "naive", np.random.default_rng(0))
    assert ours.tolist() == chosen
    volume = maximize(LogDeterminant(k, reg, 8), 8, "naive", np.random.default_rng(0))
    assert ours.tolist() != volume.tolist()


def test_original_variant_sets_the_explained_gain_and_rejects_submodlib():
    host = PluginHost()
    assert host.create_selector("log-determinant", {}, "original").options.gain == "explained"
    with pytest.raises(Exception, match="explained"):
        host.create_selector("log-determinant", {"backend": "submodlib"}, "original")


def test_graph_cut_rejects_a_negative_or_infinite_lam():
    from deepcore_core import OptionError

    host = PluginHost()
    for lam, why in [(-1, "lam must be >= 0, got -1"), ("inf", "must be a finite number")]:
        with pytest.raises(OptionError, match=why):
            host.create_selector("graph-cut", {"lam": lam}, "default")
    assert host.create_selector("graph-cut", {"lam": 0}, "default").options.lam == 0.0


def test_heap_lazy_greedy_equals_naive_on_sparse_kernels_with_ties():
    import scipy.sparse as sp

    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, size=(150, 3)).astype(np.float32)  # duplicates: tied gains
    blocks = CosineBlocks(context_for_arrays(features=x), np.arange(150), "features")
    k = blocks.knn(12)
    assert sp.issparse(k)
    naive = maximize(FacilityLocation(k), 30, "naive", np.random.default_rng(0))
    lazy = maximize(FacilityLocation(k), 30, "lazy", np.random.default_rng(0))
    assert lazy.tolist() == naive.tolist()
    dense = blocks.dense()
    for obj in (lambda: GraphCut(dense, 0.4), lambda: LogDeterminant(dense, 0.1, 30)):
        via_vector = maximize(obj(), 30, "naive", np.random.default_rng(0))
        o, taken, picks = obj(), np.zeros(150, bool), []
        for _ in range(30):  # the definition: the first maximum among the free elements
            free = np.flatnonzero(~taken)
            e = int(free[np.argmax(o.gains(free))])
            picks.append(e)
            taken[e] = True
            o.add(e)
        assert via_vector.tolist() == picks


@pytest.mark.parametrize("method", ["facility-location", "graph-cut", "log-determinant"])
def test_greedi_value_is_within_its_bound_of_the_exact_greedy(method):
    from deepcore_submodular import METHODS as CLASSES

    rng = np.random.default_rng(7)
    centres = rng.normal(scale=3, size=(8, 6))
    x = (np.repeat(centres, 40, axis=0) + rng.normal(size=(320, 6))).astype(np.float32)
    k, parts = 12, 4
    sel = {c.name: c for c in CLASSES}[method]
    exact = select(method, features=x, budget=k, balance=False, options={"similarity": "features"})
    opts = {"similarity": "features", "distributed": "greedi", "parts": parts}
    twice = [select(method, features=x, budget=k, balance=False, options=opts) for _ in range(2)]
    np.testing.assert_array_equal(twice[0].indices, twice[1].indices)
    assert twice[0].meta["options"]["distributed"] == "greedi"
    ctx = context_for_arrays(features=x)
    value = sel(similarity="features").ground_value(ctx)
    pool = np.arange(len(x))
    ratio = value(pool, twice[0].indices) / value(pool, exact.indices)
    assert ratio >= (1 - 1 / math.e) ** 2 / min(parts, k)
    assert ratio > 0.9  # on clustered data GreeDi is close to the centralised greedy
