from __future__ import annotations

import numpy as np
import pytest

from deepcore_bilevel import Glister
from deepcore_bilevel.taylor import TaylorState, glister_greedy
from deepcore_core import DeepcoreError, PluginHost, loader_batch_scale, select
from deepcore_core.testing import check_end_to_end, check_selector


def setup(n=50, n_val=30, c=4, d=5, seed=0):
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(c, d)), rng.normal(size=c)
    h, hv = rng.normal(size=(n, d)), rng.normal(size=(n_val, d))
    y, yv = rng.integers(0, c, n), rng.integers(0, c, n_val)
    return w, b, h, hv, y, yv


def softmax(z):
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def val_ll(w, b, hv, yv):
    p = softmax(hv @ w.T + b)
    return np.log(p[np.arange(len(yv)), yv]).mean()


def grads(w, b, h, y):
    e = softmax(h @ w.T + b)
    e[np.arange(len(y)), y] -= 1
    return e, e[:, :, None] * h[:, None, :]  # bias and weight gradients


def test_taylor_gain_is_the_first_order_change_in_validation_likelihood():
    w, b, h, hv, y, yv = setup()
    e, gw = grads(w, b, h, y)
    state = TaylorState(e, h, hv @ w.T + b, hv, yv, eta=0.1)
    gains = state.gains()
    eps = 1e-6
    base = val_ll(w, b, hv, yv)
    for i in range(0, 50, 7):
        fd = (val_ll(w - eps * gw[i], b - eps * e[i], hv, yv) - base) / eps
        assert fd == pytest.approx(gains[i], rel=1e-3, abs=1e-7)


def test_state_update_equals_an_explicit_last_layer_step():
    w, b, h, hv, y, yv = setup(seed=1)
    e, gw = grads(w, b, h, y)
    state = TaylorState(e, h, hv @ w.T + b, hv, yv, eta=0.3)
    picks = np.array([3, 17, 40])
    state.add(picks)
    w2 = w - 0.3 * gw[picks].mean(0)
    b2 = b - 0.3 * e[picks].mean(0)
    np.testing.assert_allclose(state.val_logits(), hv @ w2.T + b2, rtol=1e-10)


def brute_glister(w, b, h, hv, y, yv, k, eta, scale=None, val_scale=None):
    """Explicit weights: recompute the validation gradient after each pick (``scale``,
    ``val_scale``: factors on each training and validation gradient)."""
    e0, gw0 = grads(w, b, h, y)
    if scale is not None:
        e0, gw0 = e0 * scale[:, None], gw0 * scale[:, None, None]
    chosen = []
    for _ in range(k):
        if chosen:
            w_s = w - eta * gw0[chosen].mean(0)
            b_s = b - eta * e0[chosen].mean(0)
        else:
            w_s, b_s = w, b
        ev, gwv = grads(w_s, b_s, hv, yv)
        if val_scale is not None:
            ev, gwv = ev * val_scale[:, None], gwv * val_scale[:, None, None]
        gain = (e0 * ev.mean(0)).sum(1) + (gw0 * gwv.mean(0)).sum((1, 2))
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
    return chosen


def test_update_changes_later_picks_and_matches_brute_force():
    w, b, h, hv, y, yv = setup(n=80, seed=2)
    e, _ = grads(w, b, h, y)
    state = TaylorState(e, h, hv @ w.T + b, hv, yv, eta=2.0)
    static = np.argsort(-state.gains(), kind="stable")[:15].tolist()
    picks = glister_greedy(state, np.arange(80), 15, per_step=1).tolist()
    assert picks == brute_glister(w, b, h, hv, y, yv, 15, 2.0)
    assert picks != static  # fails if the update step is skipped


def test_scaled_gradients_with_updates_match_brute_force():
    """Batch-mean gradients (the original's): training rows scaled before the state, the
    validation gradient through ``val_scale``."""
    w, b, h, hv, y, yv = setup(n=80, seed=6)
    e, _ = grads(w, b, h, y)
    scale, val_scale = loader_batch_scale(80, 32), loader_batch_scale(30, 8)
    state = TaylorState(e * scale[:, None], h, hv @ w.T + b, hv, yv, 2.0, val_scale=val_scale)
    picks = glister_greedy(state, np.arange(80), 15, per_step=1).tolist()
    assert picks == brute_glister(w, b, h, hv, y, yv, 15, 2.0, scale, val_scale)
    assert picks != brute_glister(w, b, h, hv, y, yv, 15, 2.0)


def test_loss_batch_ranks_by_batch_mean_gradients_of_each_class():
    from deepcore_core import GradEmbedding, softmax

    rng = np.random.default_rng(7)
    x, y, logits = rng.normal(size=(90, 5)), rng.integers(0, 3, 90), rng.normal(size=(90, 3))
    kw = {"features": x, "labels": y, "logits": logits, "fraction": 0.2}
    opts = {"update": False, "val_fraction": 0.0, "loss_batch": 8}
    sel = select("glister", options=opts, **kw)
    g = GradEmbedding.from_outputs(softmax(logits), y, x).materialize().astype(np.float64)
    for c in range(3):
        pool = np.flatnonzero(y == c)
        gc = g[pool] * loader_batch_scale(pool.size, 8)[:, None]
        gains = gc @ gc.mean(0)  # each gradient against the pool's mean (validation = pool)
        k = int(np.isin(sel.indices, pool).sum())
        assert sorted(sel.indices[np.isin(sel.indices, pool)]) == sorted(
            pool[np.lexsort((np.arange(pool.size), -gains))[:k]]
        )
    plain = select("glister", options={**opts, "loss_batch": None}, **kw)
    assert sorted(plain.indices.tolist()) != sorted(sel.indices.tolist())


def test_per_step_batches_updates():
    w, b, h, hv, y, yv = setup(n=80, seed=3)
    e, _ = grads(w, b, h, y)
    one = glister_greedy(TaylorState(e, h, hv @ w.T + b, hv, yv, 2.0), np.arange(80), 20, 1)
    five = glister_greedy(TaylorState(e, h, hv @ w.T + b, hv, yv, 2.0), np.arange(80), 20, 5)
    assert len(set(five)) == 20 and one.tolist() != five.tolist()


def test_validation_is_held_out_and_given_indices(tmp_path):
    rng = np.random.default_rng(4)
    x, y, logits = rng.normal(size=(100, 5)), np.zeros(100, int), rng.normal(size=(100, 3))
    sel = select("glister", features=x, labels=y, logits=logits, budget=10, seed=1)
    val = np.arange(50)
    np.save(tmp_path / "val.npy", val)
    given = select(
        "glister",
        features=x,
        labels=y,
        logits=logits,
        budget=10,
        options={"val_indices": str(tmp_path / "val.npy")},
    )
    assert not set(given.indices) & set(val)
    assert len(sel) == 10
    (tmp_path / "junk.npy").write_text("0 1 2")
    for bad, why in [("junk.npy", "no .npy or .npz header"), ("none.npy", "does not exist")]:
        with pytest.raises(DeepcoreError, match=f"glister: validation index file .*{why}"):
            select(
                "glister",
                features=x,
                labels=y,
                logits=logits,
                budget=10,
                options={"val_indices": str(tmp_path / bad)},
            )


def test_conformance():
    check_selector(Glister)
    check_selector(Glister, options={"val_fraction": 0.0, "per_step": 3})


def test_registered():
    info = PluginHost(load_entrypoints=True, strict=True).registry.get("glister")
    assert (info.family, info.distribution, info.needs) == (
        "bilevel",
        "deepcore-bilevel",
        ["gradients"],
    )


def test_end_to_end_run_on_digits(tmp_path):
    check_end_to_end("glister", tmp_path)


def test_original_variant_ranks_once_by_the_initial_gains():
    from deepcore_core import GradEmbedding, softmax

    rng = np.random.default_rng(5)
    x, y, logits = rng.normal(size=(90, 5)), rng.integers(0, 3, 90), rng.normal(size=(90, 3))
    kw = {"features": x, "labels": y, "logits": logits, "budget": 12, "balance": False}
    # the original variant validates on the pool itself: no val_fraction needed
    orig = select("glister", variant="original", **kw)
    assert orig.meta["options"]["val_fraction"] == 0.0
    p = softmax(logits)
    g = GradEmbedding.from_outputs(p, y, x)
    x32 = x.astype(np.float32)
    state = TaylorState(g.residual, x32, np.log(p.astype(np.float64)), x32, y, eta=0.1)
    gains = state.gains()
    static = np.lexsort((np.arange(90), -gains))[:12]
    assert orig.indices.tolist() == static.tolist()
    ours = select("glister", options={"val_fraction": 0.0}, **kw)
    assert ours.indices.tolist() != orig.indices.tolist()  # the update changes later picks
