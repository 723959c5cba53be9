from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import DeepcoreError, MissingInputError, Need, ScoreSelector, select
from deepcore_core.testing import host_with, synthetic_inputs


def test_select_on_tensors_matches_arrays():
    torch = pytest.importorskip("torch")
    d = synthetic_inputs()
    a = select("uniform", labels=d["labels"], fraction=0.3, seed=5)
    b = select("uniform", labels=torch.as_tensor(d["labels"]), fraction=0.3, seed=5)
    assert np.array_equal(a.indices, b.indices)


def test_seed_changes_and_fixes_selection():
    y = synthetic_inputs()["labels"]
    a, b = (select("uniform", labels=y, fraction=0.3, seed=s).indices for s in (1, 2))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, select("uniform", labels=y, fraction=0.3, seed=1).indices)


def test_classes_do_not_share_random_draws():
    # Two classes with identical layouts must not get the same relative picks.
    y = np.repeat([0, 1], 50)
    idx = select("uniform", labels=y, fraction=0.2, seed=0).indices
    assert sorted(idx[idx < 50]) != sorted(i - 50 for i in idx[idx >= 50])


def test_metadata_is_complete():
    d = synthetic_inputs()
    sel = select("uniform", labels=d["labels"], fraction=0.5, seed=2)
    for key in (
        "method",
        "options",
        "fraction",
        "budget",
        "seed",
        "balance",
        "dataset_fingerprint",
        "versions",
        "per_class",
    ):
        assert key in sel.meta
    assert sel.meta["versions"]["deepcore-core"]
    assert sum(sel.meta["per_class"].values()) == len(sel) == 26


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": np.ones((5, 2)), "labels": np.zeros(4)}, "disagree on the number"),
        ({"features": np.array([[np.nan, 1.0]] * 3), "labels": np.zeros(3)}, "NaN or inf"),
        ({"labels": np.zeros(3), "scores": np.array([1.0, np.inf, 0.0])}, "NaN or inf"),
        ({"features": np.ones(5)}, "features must be 2-D"),
        ({"labels": np.array([0.5, 1.0])}, "whole numbers"),
        ({"labels": np.array([-1, 0])}, "non-negative"),
        ({}, "nothing to select from"),
        ({"labels": np.zeros(3), "probs": np.full((3, 2), 0.7)}, "sum to 1"),
        ({"labels": np.array([0, 3]), "logits": np.zeros((2, 2))}, "out of range"),
        ({"labels": np.zeros(3), "seed": -1}, r"seed must be in \[0, 2\*\*63 - 1\], got -1"),
        ({"labels": np.zeros(3), "seed": 2**70}, r"seed must be in \[0, 2\*\*63 - 1\]"),
        ({"labels": np.zeros(3), "seed": 1.5}, "seed must be an integer"),
        ({"labels": np.zeros(3), "balance": "no"}, "balance must be true or false, got 'no'"),
        ({"labels": np.zeros(3), "options": [1, 2]}, r"options must be a mapping, got \[1, 2\]"),
    ],
)
def test_bad_inputs(kwargs, message):
    with pytest.raises(DeepcoreError, match=message):
        select("uniform", fraction=0.5, **kwargs)


def test_balance_without_labels():
    with pytest.raises(MissingInputError, match="balanced selection needs labels.*--no-balance"):
        select("uniform", features=np.ones((4, 2)), fraction=0.5)
    assert len(select("uniform", features=np.ones((4, 2)), fraction=0.5, balance=False)) == 2


def test_missing_need_names_it():
    class NeedsModel(ScoreSelector):
        """Needs a model."""

        name = "needs-model"
        needs = frozenset({Need.MODEL})

        def compute_scores(self, ctx):
            return np.zeros(ctx.n)

    host = host_with(NeedsModel)
    with pytest.raises(MissingInputError, match="method 'needs-model' needs model; select from"):
        select("needs-model", labels=np.zeros(4), fraction=0.5, host=host)


def test_scores_given_to_a_method_that_ignores_them():
    with pytest.raises(DeepcoreError, match="does not use per-sample scores"):
        select("uniform", labels=np.zeros(4), scores=np.ones(4), fraction=0.5)


def test_budget_larger_than_n():
    with pytest.raises(DeepcoreError, match=r"budget must be in \[1, N=4\], got 5"):
        select("uniform", labels=np.zeros(4), budget=5)


def test_unknown_option():
    with pytest.raises(DeepcoreError, match="unknown option 'k' for method 'uniform'"):
        select("uniform", labels=np.zeros(4), budget=1, options={"k": 1})
