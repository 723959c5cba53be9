from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepcore_core import PluginHost, select
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
    y = np.array([0, 0, 0, 1, 1, 1])
    host = PluginHost()
    for m in ("least-confidence", "entropy", "margin"):
        orig = {"unbalanced_keep": "certain"}
        certain = select(m, probs=p, budget=2, balance=False, options=orig, host=host)
        assert sorted(certain.indices.tolist()) == [0, 4]  # the two most confident
        assert certain.meta["options"]["unbalanced_keep"] == "certain"
        both = [
            select(m, probs=p, labels=y, budget=2, variant=v, host=host) for v in VARIANTS
        ]  # balanced: the original kept the most uncertain too
        assert both[0].indices.tolist() == both[1].indices.tolist() == [1, 3]
        assert both[1].meta["variant"] == "original"


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
