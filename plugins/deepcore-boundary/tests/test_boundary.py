from __future__ import annotations

import numpy as np
import pytest
import torch

from deepcore_boundary import METHODS, Cal, DeepFool, symmetric_kl
from deepcore_boundary.deepfool import deepfool_batch
from deepcore_core import DeepcoreError, PluginHost, select
from deepcore_core.testing import (
    check_end_to_end,
    check_selector,
    synthetic_dataset,
    synthetic_inputs,
)


def linear_model(d=6, c=5, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(d, c).double()


def test_deepfool_flips_and_matches_analytic_distance_for_linear_model():
    model = linear_model()
    x = torch.randn(40, 6, dtype=torch.float64)
    dist, flipped = deepfool_batch(model, x, max_iter=50, overshoot=0.0, top_k=5)
    assert flipped.all()
    w, b = model.weight.detach(), model.bias.detach()
    f = x @ w.T + b
    k = f.argmax(1)
    analytic = []
    for i in range(len(x)):
        d = [abs(f[i, c] - f[i, k[i]]) / (w[c] - w[k[i]]).norm() for c in range(5) if c != k[i]]
        analytic.append(min(d).item())
    # one linear step reaches the boundary (plus the 1e-4 push past it)
    np.testing.assert_allclose(dist.numpy(), analytic, rtol=1e-3, atol=1e-3)
    # with overshoot the perturbed point is on the other side
    dist2, flipped2 = deepfool_batch(model, x, overshoot=0.02, top_k=5)
    assert flipped2.all() and (dist2 >= dist).all()


def test_deepfool_is_batch_invariant_and_handles_top_k():
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
    model = model.double()
    x = torch.randn(30, 6, dtype=torch.float64)
    full, _ = deepfool_batch(model, x, top_k=3)
    parts = torch.cat([deepfool_batch(model, x[i : i + 7], top_k=3)[0] for i in range(0, 30, 7)])
    np.testing.assert_allclose(full.numpy(), parts.numpy(), rtol=1e-6)


def brute_cal(features, probs, labels, k, balanced=True):
    n = len(features)
    scores = np.zeros(n)
    groups = (
        [np.flatnonzero(labels == c) for c in np.unique(labels)] if balanced else [np.arange(n)]
    )
    for g in groups:
        if len(g) < 2:
            continue  # a lone sample has no neighbours: score 0
        x = features[g].astype(np.float64)
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        nb = np.argsort(d, axis=1, kind="stable")[:, : min(k, len(g) - 1)]
        p = probs[g].astype(np.float64)
        for a, i in enumerate(g):
            scores[i] = np.mean([symmetric_kl(p[a], p[j]) for j in nb[a]])
    return scores


@pytest.mark.parametrize("balance", [True, False])
def test_cal_equals_brute_force_and_keeps_most_contrastive(balance):
    d = synthetic_inputs(seed=3)
    p = np.exp(d["logits"]) / np.exp(d["logits"]).sum(1, keepdims=True)
    sel = select(
        "cal",
        features=d["features"],
        probs=p,
        labels=d["labels"],
        fraction=0.2,
        balance=balance,
        options={"neighbors": 4},
    )
    ref = brute_cal(d["features"], p, d["labels"], 4, balance)
    np.testing.assert_allclose(sel.scores, ref, rtol=1e-5, atol=1e-9)
    if not balance:
        assert sel.indices.tolist() == np.argsort(-ref, kind="stable")[: len(sel)].tolist()


def test_symmetric_kl_safe_with_zeros():
    p = np.array([1.0, 0.0, 0.0])
    q = np.array([0.5, 0.5, 0.0])
    v = symmetric_kl(p, q)
    assert np.isfinite(v) and v > 0 and symmetric_kl(p, p) == 0


def test_deepfool_conformance_and_direction():
    data = {"dataset": synthetic_dataset()}
    check_selector(DeepFool, inputs=data, options={"max_iter": 5, "top_k": 3})
    from deepcore_core.testing import run_method

    sel = run_method(DeepFool, data, budget=5, balance=False, options={"max_iter": 5})
    assert sel.scores[sel.indices].max() <= np.sort(sel.scores)[4] + 1e-12  # smallest first


def test_cal_conformance():
    check_selector(Cal)


def test_registered():
    host = PluginHost(load_entrypoints=True, strict=True)
    assert host.registry.get("deepfool").needs == ["model"]
    assert host.registry.get("cal").family == "boundary"
    assert len(METHODS) == 2


@pytest.mark.parametrize("method", ["deepfool", "cal"])
def test_end_to_end_run_on_digits(method, tmp_path):
    check_end_to_end(method, tmp_path)


def test_cal_least_contrastive_is_the_other_end_of_the_same_scores():
    d = synthetic_inputs(seed=3)
    p = np.exp(d["logits"]) / np.exp(d["logits"]).sum(1, keepdims=True)
    kw = {"features": d["features"], "probs": p, "fraction": 0.2, "balance": False}
    ours = select("cal", options={"neighbors": 4}, **kw)
    orig = select(
        "cal", options={"neighbors": 4, "neighbor_features": "model"}, variant="original", **kw
    )
    np.testing.assert_array_equal(ours.scores, orig.scores)
    rest = np.setdiff1d(np.arange(len(orig.scores)), orig.indices)
    assert orig.scores[orig.indices].max() <= orig.scores[rest].min()  # the lowest divergence
    assert not set(ours.indices) & set(orig.indices)
    assert orig.meta["options"]["keep"] == "least-contrastive"


def test_cal_neighbours_from_a_resnet18_weights_file(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    from deepcore_boundary.imagenet import resnet18_features
    from deepcore_core.testing import run_method

    torch.manual_seed(0)
    weights = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), weights)
    data = synthetic_dataset(class_sizes=(12, 10))
    feats = resnet18_features(data.train, len(data.train), weights, 32, "cpu")
    assert feats.shape == (22, 512) and np.isfinite(feats).all()
    opts = {"neighbors": 3, "image_size": 32, "weights_file": str(weights)}
    r18 = run_method(
        Cal, {"dataset": data}, budget=6, options={**opts, "neighbor_features": "imagenet-resnet18"}
    )
    model = run_method(Cal, {"dataset": data}, budget=6, options=opts)
    assert not np.allclose(r18.scores, model.scores)  # another neighbour space
    # auto: the ResNet-18 where its file exists, else the selection model's features
    auto = run_method(
        Cal, {"dataset": data}, budget=6, options={**opts, "neighbor_features": "auto"}
    )
    np.testing.assert_array_equal(auto.scores, r18.scores)
    missing = {**opts, "weights_file": str(tmp_path / "none.pth")}
    fallback = run_method(
        Cal, {"dataset": data}, budget=6, options={**missing, "neighbor_features": "auto"}
    )
    np.testing.assert_array_equal(fallback.scores, model.scores)
    with pytest.raises(DeepcoreError, match="none.pth"):
        run_method(
            Cal,
            {"dataset": data},
            budget=6,
            options={**missing, "neighbor_features": "imagenet-resnet18"},
        )
    (tmp_path / "bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(DeepcoreError, match="bad.pth"):
        resnet18_features(data.train, 22, tmp_path / "bad.pth", 32, "cpu")


def test_deepfool_original_rules_consider_every_class_without_overshoot():
    host = PluginHost()
    sel = host.create_selector("deepfool", {}, "original")
    assert sel.options.top_k is None and sel.options.overshoot == 0.0
    model = linear_model(c=5)
    x = torch.randn(30, 6, dtype=torch.float64)
    all_classes, _ = deepfool_batch(model, x, overshoot=0.0, top_k=None)
    five, _ = deepfool_batch(model, x, overshoot=0.0, top_k=5)
    np.testing.assert_allclose(all_classes.numpy(), five.numpy())
