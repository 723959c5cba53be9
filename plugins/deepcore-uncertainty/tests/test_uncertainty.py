from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepcore_core import DeepcoreError, PluginHost, select
from deepcore_core.cli import create_app
from deepcore_core.options import VARIANTS
from deepcore_core.testing import check_end_to_end, check_selector
from deepcore_uncertainty import METHODS, Entropy, LeastConfidence, Margin

P = np.array(
    [
        [1.0, 0.0, 0.0],  # certain
        [0.5, 0.5, 0.0],  # two-way tie
        [1 / 3, 1 / 3, 1 / 3],  # uniform: most uncertain
        [0.7, 0.2, 0.1],
        [0.6, 0.3, 0.1],
    ]
)


def test_scores_match_formulas():
    lc = [1 - max(row) for row in P]
    ent = [-sum(x * np.log(x) for x in row if x > 0) for row in P]
    mar = [sorted(row)[-1] - sorted(row)[-2] for row in P]
    np.testing.assert_allclose(LeastConfidence.from_probs(P), lc)
    np.testing.assert_allclose(Entropy.from_probs(P), ent)
    np.testing.assert_allclose(Margin.from_probs(P), mar, atol=1e-12)
    assert np.isfinite(Entropy.from_probs(P)).all()


@pytest.mark.parametrize("method", ["least-confidence", "entropy", "margin"])
def test_most_uncertain_first_unbalanced(method):
    sel = select(method, probs=P, budget=2, balance=False)
    assert 2 in sel.indices  # the uniform row is among the most uncertain for every method
    assert 0 not in sel.indices  # the certain row is never kept
    assert np.allclose(
        sel.scores,
        {"least-confidence": LeastConfidence, "entropy": Entropy, "margin": Margin}[
            method
        ].from_probs(P),
    )


def test_margin_keeps_smallest_gap():
    sel = select("margin", probs=P, budget=3, balance=False)
    assert sorted(sel.indices[:2].tolist()) == [1, 2]  # gaps 0, 0: a tie, in seeded order
    assert sel.indices[2] == 4  # gap 0.3


def test_ties_broken_by_a_seeded_permutation():
    p = np.tile([0.6, 0.4], (600, 1))  # every score ties
    for m in ("least-confidence", "entropy", "margin"):
        a = select(m, probs=p, budget=50, balance=False, seed=1).indices
        assert np.array_equal(a, select(m, probs=p, budget=50, balance=False, seed=1).indices)
        b = select(m, probs=p, budget=50, balance=False, seed=2).indices
        assert len(set(a) & set(b)) < 25  # another seed, another draw
        assert a.max() > 100  # not the dataset's first rows


def test_original_variant_keeps_the_most_certain_only_when_unbalanced():
    p = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.55, 0.45], [1.0, 0.0], [0.6, 0.4]])
    z = np.log(np.clip(p, 1e-9, None))  # logits of p: the largest logit ranks as max p does
    y = np.array([0, 0, 0, 1, 1, 1])
    host = PluginHost()
    for m in ("least-confidence", "entropy", "margin"):
        orig = {"unbalanced_keep": "certain"}
        certain = select(m, probs=p, budget=2, balance=False, options=orig, host=host)
        assert sorted(certain.indices.tolist()) == [0, 4]  # the two most confident
        assert certain.meta["options"]["unbalanced_keep"] == "certain"
        certain = select(m, logits=z, budget=2, balance=False, variant="original", host=host)
        assert sorted(certain.indices.tolist()) == [0, 4]
        both = [
            select(m, logits=z, labels=y, budget=2, variant=v, host=host) for v in VARIANTS
        ]  # balanced: the original kept the most uncertain too
        assert both[0].indices.tolist() == both[1].indices.tolist() == [1, 3]
        assert both[1].meta["variant"] == "original"


def test_least_confidence_on_logits_ranks_by_the_largest_raw_logit():
    # row 0: two classes tie at a large logit (p about 0.5, max logit 5); row 1: one class
    # far ahead at a small logit (p about 0.96, max logit 1). By probability row 0 is the
    # less confident, by raw logit row 1 (the original code's rule)
    rng = np.random.default_rng(3)
    rest = rng.normal(size=(38, 3)) * 0.1 + 6.0 * np.eye(3)[rng.integers(0, 3, 38)]
    z = np.vstack([[[5.0, 5.0, 0.0], [1.0, -3.0, -3.0]], rest])  # rest: confident both ways
    y = np.repeat([0, 1], 20)
    by_p = select("least-confidence", logits=z, budget=1, balance=False)
    assert by_p.indices.tolist() == [0]
    by_z = select("least-confidence", logits=z, budget=1, balance=False, options={"score": "logit"})
    assert by_z.indices.tolist() == [1]
    np.testing.assert_allclose(by_z.scores, -z.max(axis=1))
    # the original variant: the logit rule, and unbalanced it keeps the largest logit
    orig = select("least-confidence", logits=z, budget=1, balance=False, variant="original")
    assert orig.meta["options"]["score"] == "logit"
    assert orig.indices.tolist() == [int(np.argmax(z.max(axis=1)))]
    sel = select("least-confidence", logits=z, labels=y, fraction=0.25, options={"score": "logit"})
    for c in (0, 1):  # balanced: each class's lowest largest-logits
        members = np.flatnonzero(y == c)
        want = members[np.argsort(z[members].max(axis=1), kind="stable")[:5]]
        assert sorted(sel.indices[y[sel.indices] == c]) == sorted(want)


def test_least_confidence_on_logits_needs_logits(tmp_path):
    with pytest.raises(DeepcoreError, match="score=logit needs the logits"):
        select("least-confidence", probs=P, budget=2, balance=False, variant="original")
    np.save(tmp_path / "p.npy", P)
    out = tmp_path / "s.npz"
    base = ["select", "--method", "least-confidence", "--probs", str(tmp_path / "p.npy")]
    base += ["--budget", "2", "--no-balance", "--output", str(out)]
    r = CliRunner().invoke(create_app(), [*base, "--variant", "original"])
    assert r.exit_code == 2 and "score=logit needs the logits" in r.output
    assert not out.exists()
    r = CliRunner().invoke(create_app(), [*base, "--option", "score=nope"])
    assert r.exit_code == 2 and "'probability' | 'logit', got 'nope'" in r.output


def test_least_confidence_on_logits_from_the_selection_model():
    import torch

    from deepcore_core.testing import ImageBlobs, OddNet

    ds, model = ImageBlobs(60), OddNet()
    sel = select(
        "least-confidence", dataset=ds, model=model, budget=6, balance=False,
        options={"score": "logit"}, device="cpu",
    )  # fmt: skip
    with torch.no_grad():
        z = model.eval()(torch.stack([ds[i][0] for i in range(len(ds))])).numpy()
    np.testing.assert_allclose(sel.scores, -z.max(axis=1), rtol=1e-5, atol=1e-6)


def test_balanced_selects_per_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 4))
    y = np.repeat([0, 1, 2, 3], 10)
    sel = select("entropy", logits=logits, labels=y, fraction=0.2)
    ent = Entropy.from_probs(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    for c in range(4):
        members = np.flatnonzero(y == c)
        want = members[np.argsort(-ent[members], kind="stable")[:2]]
        assert sorted(sel.indices[y[sel.indices] == c]) == sorted(want)


def test_unbalanced_ranks_globally():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(30, 3)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sel = select("least-confidence", probs=p, labels=np.zeros(30, int), budget=5, balance=False)
    assert sel.indices.tolist() == np.argsort(-(1 - p.max(1)), kind="stable")[:5].tolist()


@pytest.mark.parametrize("cls", METHODS)
def test_conformance(cls):
    check_selector(cls)


def test_registered_through_entry_point():
    host = PluginHost(load_entrypoints=True, strict=True)
    for name in ("least-confidence", "entropy", "margin"):
        info = host.registry.get(name)
        assert (info.family, info.distribution, info.needs) == (
            "uncertainty",
            "deepcore-uncertainty",
            ["probabilities"],
        )


def test_cli_on_logits(tmp_path):
    np.save(tmp_path / "logits.npy", np.log(P + 1e-9))
    out = tmp_path / "s.npz"
    r = CliRunner().invoke(
        create_app(),
        [
            "select",
            "--method",
            "margin",
            "--logits",
            str(tmp_path / "logits.npy"),
            "--budget",
            "2",
            "--no-balance",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["method"] == "margin"


@pytest.mark.parametrize("method", ["least-confidence", "entropy", "margin"])
def test_end_to_end_run_on_digits(method, tmp_path):
    check_end_to_end(method, tmp_path)
