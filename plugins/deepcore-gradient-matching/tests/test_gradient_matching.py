from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepcore_core import GradEmbedding, OptionError, PluginHost, select
from deepcore_core.testing import check_end_to_end, check_selector, synthetic_inputs
from deepcore_gradient_matching import METHODS
from deepcore_gradient_matching.omp import omp_reference, omp_select


def outputs(n=60, c=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    p = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    return p, rng.integers(0, c, n), rng.normal(size=(n, d)).astype(np.float32)


def brute_fl(s, k):
    chosen = []
    cur = np.zeros(len(s))
    for _ in range(k):
        gains = np.maximum(s - cur[:, None], 0).sum(0)
        gains[chosen] = -np.inf
        j = int(np.argmax(gains))
        chosen.append(j)
        cur = np.maximum(cur, s[:, j])
    return chosen


def test_craig_is_facility_location_and_weights_count_assignments():
    p, y, h = outputs()
    sel = select("craig", probs=p, labels=y, features=h, budget=8, balance=False)
    g = GradEmbedding.from_outputs(p, y, h).materialize().astype(np.float64)
    d = np.sqrt(((g[:, None] - g[None]) ** 2).sum(-1))
    s = d.max() - d
    assert sel.indices.tolist() == brute_fl(s, 8)
    nearest = np.argmin(d[:, sel.indices], axis=1)
    assert sel.weights.tolist() == np.bincount(nearest, minlength=8).astype(float).tolist()
    assert sel.weights.sum() == 60


def test_original_variant_craig_weights_and_gradmatch_lambda():
    p, y, h = outputs()
    kw = {"probs": p, "labels": y, "features": h, "budget": 8, "balance": False}
    ours = select("craig", **kw)
    orig = select("craig", variant="original", **kw)
    assert orig.indices.tolist() == ours.indices.tolist()  # the same picks
    assert (orig.weights == ours.weights + 1).all()  # cluster size + 1
    gm = select("gradmatch", variant="original", **kw)
    assert gm.meta["options"]["lam"] == 1.0
    assert gm.meta["options"]["loss_batch"] == 256
    lam1 = select("gradmatch", options={"lam": 1.0, "loss_batch": 256}, **kw)
    assert gm.indices.tolist() == lam1.indices.tolist()
    assert (
        select("gradmatch", variant="original", options={"lam": 0.2}, **kw).meta["options"]["lam"]
        == 0.2
    )  # a given option beats the variant


def batch_mean_gradients(p, y, h, pools, batch):
    """Explicit gradients of a batch-mean loss: each pool read in order in batches of ``batch``."""
    g = GradEmbedding.from_outputs(p, y, h).materialize().astype(np.float64)
    for pool in pools:
        sizes = [min(batch, pool.size - lo) for lo in range(0, pool.size, batch)]
        g[pool] /= np.repeat(sizes, sizes)[:, None]
    return g


def test_craig_loss_batch_is_facility_location_on_batch_mean_gradients():
    p, y, h = outputs()  # 60 samples: batches of 16, 16, 16 and 12
    kw = {"probs": p, "labels": y, "features": h, "budget": 8, "balance": False}
    sel = select("craig", options={"loss_batch": 16}, **kw)
    g = batch_mean_gradients(p, y, h, [np.arange(60)], 16)
    d = np.sqrt(((g[:, None] - g[None]) ** 2).sum(-1))
    assert sel.indices.tolist() == brute_fl(d.max() - d, 8)
    assert sel.indices.tolist() != select("craig", **kw).indices.tolist()  # it matters here
    np.testing.assert_array_equal(
        sel.weights, np.bincount(np.argmin(d[:, sel.indices], 1), minlength=8)
    )


def test_gradmatch_loss_batch_is_omp_on_batch_mean_gradients_of_each_class():
    p, y, h = outputs(n=90, seed=3)
    kw = {"probs": p, "labels": y, "features": h, "fraction": 0.2}
    sel = select("gradmatch", options={"loss_batch": 8, "lam": 0.01}, **kw)
    pools = [np.flatnonzero(y == c) for c in range(4)]
    g = batch_mean_gradients(p, y, h, pools, 8)
    for pool in pools:
        k = int(np.isin(sel.indices, pool).sum())
        ref, _ = omp_reference(g[pool], k, 0.01)
        assert np.isin(sel.indices, pool[ref]).sum() == len(ref) == k
    plain = select("gradmatch", options={"lam": 0.01}, **kw)
    assert sorted(sel.indices.tolist()) != sorted(plain.indices.tolist())


def test_loss_batch_is_checked():
    p, y, h = outputs()
    with pytest.raises(OptionError, match="loss_batch must be >= 1 or None, got 0"):
        select("craig", probs=p, labels=y, features=h, budget=8, options={"loss_batch": 0})


def test_craig_balanced_weights_sum_to_class_sizes():
    d = synthetic_inputs()
    sel = select(
        "craig", features=d["features"], labels=d["labels"], logits=d["logits"], fraction=0.3
    )
    for c in np.unique(d["labels"]):
        mask = d["labels"][sel.indices] == c
        assert sel.weights[mask].sum() == (d["labels"] == c).sum()


def test_omp_recovers_a_planted_sparse_combination():
    rng = np.random.default_rng(1)
    n, c, dim = 120, 10, 30
    e = rng.normal(size=(n, c))
    h = rng.normal(size=(n, dim))
    support = np.array([7, 19, 55, 80, 101])
    w_true = np.array([2.0, 0.5, 1.5, 3.0, 1.0])
    hb = np.concatenate([np.ones((n, 1)), h], axis=1)
    target = (e[support] * w_true[:, None]).T @ hb[support]
    sel, w, picked = omp_select(e, h, 5, lam=1e-10, target=target)
    assert sorted(sel.tolist()) == support.tolist() and picked == 5
    np.testing.assert_allclose(w[np.argsort(sel)], w_true, rtol=1e-6)


def test_incremental_omp_equals_straightforward_resolve():
    p, y, h = outputs(n=80, seed=2)
    g = GradEmbedding.from_outputs(p, y, h)
    sel, w, _ = omp_select(g.residual, g.features, 15, lam=0.3)
    ref_sel, ref_w = omp_reference(g.materialize().astype(np.float64), 15, 0.3)
    assert sel.tolist() == ref_sel.tolist()
    np.testing.assert_allclose(w, ref_w, rtol=1e-6, atol=1e-9)


def test_incremental_omp_equals_straightforward_resolve_through_active_set_steps():
    # more picks than gradient dimensions: weights hit zero, so most steps go through the
    # active-set solve with the inverse factor's Lagrange correction
    from deepcore_gradient_matching import omp

    p, y, h = outputs(n=300, seed=4)
    g = GradEmbedding.from_outputs(p, y, h)
    calls = []
    real = omp.active_set_qp
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(omp, "active_set_qp", lambda *a, **kw: calls.append(1) or real(*a, **kw))
        sel, w, _ = omp_select(g.residual, g.features, 120, lam=0.3)
    ref_sel, ref_w = omp_reference(g.materialize().astype(np.float64), 120, 0.3)
    assert len(calls) > 50 and (w == 0).any()
    assert sel.tolist() == ref_sel.tolist()
    np.testing.assert_allclose(w, ref_w, rtol=1e-6, atol=1e-6)


def test_lambda_changes_the_result():
    p, y, h = outputs(n=80, seed=3)
    kw = {"probs": p, "labels": y, "features": h, "budget": 10, "balance": False}
    a = select("gradmatch", **kw, options={"lam": 0.01})
    b = select("gradmatch", **kw, options={"lam": 100.0})
    assert not np.allclose(a.weights, b.weights)
    assert a.weights.sum() > b.weights.sum()  # stronger shrinkage


def test_exact_budget_with_fill_when_omp_stops_early():
    p, y, h = outputs(n=20, seed=4)
    p = np.repeat(p[:2], 10, axis=0)  # only two distinct gradients: OMP stops after 2
    h = np.repeat(h[:2], 10, axis=0)
    y = np.repeat(y[:2], 10)
    sel = select("gradmatch", probs=p, labels=y, features=h, budget=6, balance=False)
    assert len(sel) == 6 and np.isfinite(sel.weights).all() and (sel.weights >= 0).all()


@pytest.mark.parametrize("cls", METHODS)
def test_conformance(cls):
    check_selector(cls)


def test_registered():
    host = PluginHost(load_entrypoints=True, strict=True)
    for name in ("craig", "gradmatch"):
        info = host.registry.get(name)
        assert (info.family, info.distribution) == (
            "gradient-matching",
            "deepcore-gradient-matching",
        )


@pytest.mark.parametrize("method", ["craig", "gradmatch"])
def test_end_to_end_weighted_run_on_digits(method, tmp_path):
    from deepcore_core import Selection

    check_end_to_end(method, tmp_path)
    sel_file = next((tmp_path / "out" / "selections").glob(f"{method}-*.npz"))
    assert Selection.load(sel_file).weights is not None


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_gradmatch_residual_never_grows_with_the_budget(lam):
    p, y, h = outputs(n=400, c=4, d=6, seed=5)
    e = p.copy()
    e[np.arange(len(y)), y] -= 1.0
    hb = np.concatenate([np.ones((len(h), 1)), h], axis=1)
    g = (e[:, :, None] * hb[:, None, :]).reshape(len(y), -1)  # explicit gradients, 28 dims
    target = g.sum(0)
    residuals = []
    for k in (5, 10, 20, 25, 30, 50, 100, 200, 300):  # OMP stops near 28: fills beyond
        sel = select("gradmatch", probs=p, labels=y, features=h, budget=k, balance=False,
                     options={"lam": lam})  # fmt: skip
        assert len(sel) == k and (sel.weights >= 0).all()
        r = np.linalg.norm(g[sel.indices].T @ sel.weights - target)
        objective = r**2 + lam * float(sel.weights @ sel.weights)
        residuals.append((r, objective))
    for (r0, j0), (r1, j1) in itertools.pairwise(residuals):
        assert j1 <= j0 * (1 + 1e-6) + 1e-9  # the regularised objective never grows
        if lam == 0:
            assert r1 <= r0 * (1 + 1e-6) + 1e-9
    assert residuals[-1][0] < 0.5 * residuals[0][0]


def test_active_set_with_a_known_factor_equals_fresh_solves():
    # the Lagrange correction from the whole factor must give the fresh solve's answer
    from scipy.optimize import nnls

    from deepcore_gradient_matching.omp import active_set_qp

    rng = np.random.default_rng(5)
    for s in (3, 12, 40):
        a = rng.normal(size=(2 * s, s))
        q = a.T @ a + 0.5 * np.eye(s)
        b = rng.normal(size=s) * 3  # many weights end at zero
        chol = np.linalg.cholesky(q)
        fresh = active_set_qp(q, b, np.zeros(s))
        m = np.linalg.inv(chol)
        columns = lambda a, m=m: m.T @ m[:, a]  # noqa: E731
        with_factor = active_set_qp(q, b, np.zeros(s), columns, np.linalg.solve(q, b))
        np.testing.assert_allclose(with_factor, fresh, atol=1e-9)
        # and both are the NNLS optimum of 0.5 w'qw - b'w (as least squares with q = L L')
        ref = nnls(chol.T, np.linalg.solve(chol, b))[0]
        np.testing.assert_allclose(fresh, ref, atol=1e-7)


def test_passive_solve_by_lagrange_correction_equals_the_sub_solve():
    from deepcore_gradient_matching.omp import _passive_solve

    rng = np.random.default_rng(6)
    s = 64
    a = rng.normal(size=(2 * s, s))
    q = a.T @ a + 0.5 * np.eye(s)
    b = rng.normal(size=s)
    for out in (0, 1, 5, 8):  # atoms outside the passive set: the corrected path (<= s/8)
        passive = np.ones(s, dtype=bool)
        passive[rng.choice(s, out, replace=False)] = False
        qinv = np.linalg.inv(q)
        z = _passive_solve(q, b, passive, lambda a, qinv=qinv: qinv[:, a], np.linalg.solve(q, b))
        p = np.flatnonzero(passive)
        np.testing.assert_allclose(z[p], np.linalg.solve(q[np.ix_(p, p)], b[p]), rtol=1e-9)
        assert (z[~passive] == 0).all()
        np.testing.assert_allclose(z, _passive_solve(q, b, passive, None, None), atol=1e-10)


def test_inverse_factor_grows_to_the_inverse_and_keeps_cached_columns_exact():
    from deepcore_gradient_matching.omp import InverseFactor

    rng = np.random.default_rng(7)
    s = 30
    a = rng.normal(size=(2 * s, s))
    q = a.T @ a + 0.1 * np.eye(s)
    f = InverseFactor(s + 1)
    for i in range(s):
        u, d2 = f.grow(q[:i, i], q[i, i])
        np.testing.assert_allclose(u, np.linalg.solve(q[:i, :i], q[:i, i]) if i else u)
        np.testing.assert_allclose(d2, q[i, i] - q[:i, i] @ u)
        if i == 10:  # cached now, then extended by every later growth step
            f.columns(np.array([2, 7]))
    inv = np.linalg.inv(q)
    np.testing.assert_allclose(f.columns(np.array([2, 7, 29])), inv[:, [2, 7, 29]], atol=1e-9)
    assert set(f.cached) == {2, 7, 29}
    f.keep_cached(np.array([7]))
    assert set(f.cached) == {7}
    m = np.zeros((s, s))
    for j in range(s):  # unpack: row j of M at j(j+1)/2
        m[j, : j + 1] = f.packed[j * (j + 1) // 2 : (j + 1) * (j + 2) // 2]
    np.testing.assert_allclose(m.T @ m, inv, atol=1e-9)
    x = rng.normal(size=s)
    np.testing.assert_allclose(f.times(x), m @ x)
    np.testing.assert_allclose(f.transpose_times(x), m.T @ x)
    assert f.grow(q[:, 0], q[0, 0]) is None  # a copy of atom 0 is in the span
