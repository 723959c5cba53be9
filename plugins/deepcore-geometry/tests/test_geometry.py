from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import DeepcoreError, PluginHost, select
from deepcore_core.testing import check_end_to_end, check_selector
from deepcore_geometry import METHODS


def brute_kcenter(d: np.ndarray, k: int, first: int) -> list[int]:
    """Textbook greedy k-center on a full distance matrix."""
    chosen = [first]
    while len(chosen) < k:
        cover = d[:, chosen].min(1)
        cover[chosen] = -1
        chosen.append(int(np.argmax(cover)))
    return chosen


def blobs(n=240, dim=5, centres=6, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=6, size=(centres, dim))
    lab = rng.integers(0, centres, n)
    return (c[lab] + rng.normal(size=(n, dim))).astype(np.float32), lab


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_kcenter_equals_brute_force(metric):
    x, _ = blobs()
    sel = select(
        "kcenter", features=x, budget=25, balance=False, seed=3, options={"metric": metric}
    )
    x64 = x.astype(np.float64)
    if metric == "cosine":
        u = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        d = 1 - u @ u.T
    else:
        d = np.sqrt(((x64[:, None] - x64[None]) ** 2).sum(-1))
    assert sel.indices.tolist() == brute_kcenter(d, 25, int(sel.indices[0]))


def covering_radius(x, idx):
    return np.sqrt(((x[:, None] - x[idx][None]) ** 2).sum(-1)).min(1).max()


def test_kcenter_covers_better_than_random():
    x, y = blobs(n=300)
    for seed in range(5):
        kc = select("kcenter", features=x, labels=y, fraction=0.05, seed=seed, balance=False)
        rnd = select("uniform", labels=y, fraction=0.05, seed=seed, balance=False)
        assert covering_radius(x, kc.indices) <= covering_radius(x, rnd.indices)
        # every blob is covered
        assert len(set(y[kc.indices])) == 6


def test_kcenter_initial_set(tmp_path):
    x, _ = blobs(n=100)
    init = np.array([3, 50, 77])
    np.save(tmp_path / "init.npy", init)
    sel = select(
        "kcenter",
        features=x,
        budget=10,
        balance=False,
        options={"initial": str(tmp_path / "init.npy")},
    )
    assert not set(sel.indices) & set(init)
    d = np.sqrt(((x[:, None].astype(float) - x[None]) ** 2).sum(-1))
    cover = d[:, init].min(1)
    cover[init] = -1
    assert sel.indices[0] == int(np.argmax(cover))
    with pytest.raises(DeepcoreError, match="initial set file .* does not exist"):
        select(
            "kcenter",
            features=x,
            budget=2,
            balance=False,
            options={"initial": str(tmp_path / "none.npy")},
        )
    np.save(tmp_path / "bad.npy", np.array([500]))
    with pytest.raises(DeepcoreError, match="outside"):
        select(
            "kcenter",
            features=x,
            budget=2,
            balance=False,
            options={"initial": str(tmp_path / "bad.npy")},
        )


def brute_herding(x: np.ndarray, k: int) -> list[int]:
    """Textbook herding: add the point whose inclusion brings the subset mean closest."""
    mu = x.mean(0)
    chosen: list[int] = []
    for _ in range(k):
        best, best_d = -1, np.inf
        for i in range(len(x)):
            if i in chosen:
                continue
            dist = np.linalg.norm(x[[*chosen, i]].mean(0) - mu)
            if dist < best_d - 1e-12:
                best, best_d = i, dist
        chosen.append(best)
    return chosen


def test_herding_equals_brute_force_and_tracks_the_mean():
    x, _ = blobs(n=80, dim=4, seed=2)
    x64 = x.astype(np.float64)
    sel = select("herding", features=x64, budget=15, balance=False)
    assert sel.indices.tolist() == brute_herding(x64, 15)
    mu = x64.mean(0)
    herd = [np.linalg.norm(x64[sel.indices[:t]].mean(0) - mu) for t in range(1, 16)]
    rand = np.mean(
        [
            [
                np.linalg.norm(x64[np.random.default_rng(s).permutation(80)[:t]].mean(0) - mu)
                for t in range(1, 16)
            ]
            for s in range(50)
        ],
        axis=0,
    )
    assert all(h < r for h, r in zip(herd[1:], rand[1:], strict=True))
    assert herd[-1] < 0.2 * rand[-1]


def test_original_herding_picks_the_argmax_and_moves_away_from_the_mean():
    x, _ = blobs(n=80, dim=4, seed=2)
    x64 = x.astype(np.float64)
    sel = select("herding", features=x64, budget=15, balance=False, variant="original")
    mu, taken, picks = x64.mean(0), set(), []
    for t in range(15):  # the original's rule, brute force: the farthest from the target
        target = (t + 1) * mu - x64[picks].sum(0)
        d = [np.linalg.norm(target - x64[i]) if i not in taken else -1 for i in range(80)]
        picks.append(int(np.argmax(d)))
        taken.add(picks[-1])
    assert sel.indices.tolist() == picks
    default = select("herding", features=x64, budget=15, balance=False)
    gap = np.linalg.norm(x64[sel.indices].mean(0) - mu)
    assert gap > 5 * np.linalg.norm(x64[default.indices].mean(0) - mu)


def test_herding_balanced_tracks_each_class_mean():
    x, y = blobs(n=200, seed=4)
    sel = select("herding", features=x, labels=y, fraction=0.1)
    for c in np.unique(y):
        members = x[y == c].astype(float)
        picked = x[sel.indices[y[sel.indices] == c]].astype(float)
        assert np.linalg.norm(picked.mean(0) - members.mean(0)) < 0.5


def sym_kl(p, eps=1e-12):
    lp = np.log(np.clip(p, eps, None))
    return 0.5 * ((p[:, None] - p[None]) * (lp[:, None] - lp[None])).sum(-1)


def test_contextual_diversity_equals_brute_force_and_is_safe():
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3, size=(120, 4))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p[:10] = np.eye(4)[rng.integers(0, 4, 10)]  # exact zeros, as a saturated softmax gives
    sel = select("contextual-diversity", probs=p, budget=12, balance=False, seed=1)
    assert sel.indices.tolist() == brute_kcenter(sym_kl(p), 12, int(sel.indices[0]))


@pytest.mark.parametrize("cls", METHODS)
def test_conformance(cls):
    check_selector(cls)


def test_registered():
    host = PluginHost(load_entrypoints=True, strict=True)
    for name in ("kcenter", "herding", "contextual-diversity"):
        info = host.registry.get(name)
        assert (info.family, info.distribution) == ("geometry", "deepcore-geometry")


@pytest.mark.parametrize("method", ["kcenter", "herding", "contextual-diversity"])
def test_end_to_end_run_on_digits(method, tmp_path):
    check_end_to_end(method, tmp_path)


def test_kcenter_greedi_radius_is_within_four_times_farthest_first():
    import torch

    from deepcore_geometry.greedy import min_distance_to_set

    rng = np.random.default_rng(2)
    x = (rng.normal(size=(400, 5)) + np.repeat(rng.normal(scale=5, size=(10, 5)), 40, 0)).astype(
        np.float32
    )

    def radius(idx):
        t = torch.as_tensor(x)
        return float(min_distance_to_set(t, t[torch.as_tensor(idx)]).max().sqrt())

    exact = select("kcenter", features=x, budget=10, balance=False)
    opts = {"distributed": "greedi", "parts": 4}
    picks = [select("kcenter", features=x, budget=10, balance=False, options=opts) for _ in "ab"]
    np.testing.assert_array_equal(picks[0].indices, picks[1].indices)
    # farthest-first is within 2x of the optimal radius and two rounds within 4x
    assert radius(picks[0].indices) <= 4 * radius(exact.indices)
    with pytest.raises(DeepcoreError, match="initial and distributed=greedi"):
        select("kcenter", features=x, budget=3, balance=False, options={**opts, "initial": "a.npy"})
