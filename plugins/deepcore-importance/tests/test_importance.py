from __future__ import annotations

import numpy as np
import pytest
import torch

from deepcore_core import PluginHost, SelectionContext, select
from deepcore_core.engine import pretrain as pretrain_mod
from deepcore_core.engine.pretrain import PretrainSpec
from deepcore_core.engine.training import TrainConfig
from deepcore_core.testing import check_end_to_end, check_selector
from deepcore_core.workflow import run_selection
from deepcore_importance import METHODS, SEED_STRIDE, GraNd, forgetting_counts


def test_forgetting_counts_on_a_scripted_sequence():
    # columns: always right, learned once, forgotten twice, never learned, forgotten then relearned
    correct = np.array(
        [
            [1, 0, 1, 0, 1],
            [1, 0, 0, 0, 0],
            [1, 1, 1, 0, 1],
            [1, 1, 0, 0, 1],
            [1, 1, 1, 0, 1],
        ],
        dtype=bool,
    )
    assert forgetting_counts(correct).tolist() == [0, 0, 2, 5, 1]


def test_forgetting_keeps_most_forgettable_never_learned_first():
    correct = np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=bool)
    sel = select("forgetting", training_dynamics={"correct": correct}, budget=2, balance=False)
    assert sel.indices.tolist() == [1, 0]  # never learned (3), then forgotten once (1)
    assert sel.scores.tolist() == [1, 3, 0, 1]
    easy = select(
        "forgetting",
        training_dynamics={"correct": correct},
        budget=2,
        balance=False,
        options={"keep": "easiest"},
    )
    assert easy.indices[0] == 2 and easy.indices[1] in (0, 3)  # 0 and 3 tie at 1 event
    zero = select(
        "forgetting",
        training_dynamics={"correct": correct},
        budget=2,
        balance=False,
        variant="original",
    )
    assert zero.scores.tolist() == [1, 0, 0, 1]  # never learned scores 0, as the original
    assert sorted(zero.indices.tolist()) == [0, 3]
    assert zero.meta["options"]["never_learned"] == "zero"


def test_drop_hardest_then_keep():
    scores = np.arange(10, dtype=float)  # index 9 is the hardest
    corr = np.ones((2, 10), bool)
    ctx_scores = {"correct": corr}
    sel = select(
        "forgetting",
        training_dynamics=ctx_scores,
        scores=scores,
        budget=3,
        balance=False,
        options={"drop_hardest": 0.2},
    )
    assert sel.indices.tolist() == [7, 6, 5]
    sel = select(
        "forgetting",
        training_dynamics=ctx_scores,
        scores=scores,
        budget=9,
        balance=False,
        options={"drop_hardest": 0.5},
    )
    assert sorted(sel.indices.tolist()) == list(range(9))  # never fewer than k left


def outputs(seed=0, n=30, c=4, d=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return p.astype(np.float32), rng.integers(0, c, n), rng.normal(size=(n, d)).astype(np.float32)


def test_el2n_matches_formula():
    p, y, _ = outputs()
    sel = select("el2n", probs=p, labels=y, budget=5, balance=False)
    ref = np.sqrt(((p - np.eye(4)[y]) ** 2).sum(1))
    np.testing.assert_allclose(sel.scores, ref, rtol=1e-6)
    assert sel.indices.tolist() == np.argsort(-ref, kind="stable")[:5].tolist()


def last_layer():
    """A float64 linear last layer on the features of ``outputs(1)``, and its probabilities."""
    _, y, h = outputs(1)
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 4).double()
    ht = torch.as_tensor(h, dtype=torch.float64)
    with torch.no_grad():
        p = torch.softmax(layer(ht), 1).numpy()
    return layer, ht, p, y, h


def test_grand_closed_form_equals_autograd_norms():
    layer, ht, p, y, h = last_layer()
    ref = []
    for i in range(len(y)):
        layer.zero_grad()
        torch.nn.functional.cross_entropy(layer(ht[i : i + 1]), torch.tensor([y[i]])).backward()
        ref.append(torch.cat([layer.bias.grad, layer.weight.grad.flatten()]).norm().item())
    ours = GraNd().per_model(p, y, h)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    sel = select("grand", probs=p, labels=y, features=h, budget=3, balance=False)
    np.testing.assert_allclose(sel.scores, ref, rtol=1e-5)


def test_grand_loss_batch_equals_autograd_of_a_batch_mean_loss_over_the_whole_set():
    """The original's gradients: the training set in index order, batches of 8, each batch's
    mean loss; balanced or not, the loader runs over every sample."""
    layer, ht, p, y, h = last_layer()
    ref = []
    for lo in range(0, len(y), 8):
        layer.zero_grad()
        out = layer(ht[lo : lo + 8]).detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(out, torch.as_tensor(y[lo : lo + 8]))
        (grad,) = torch.autograd.grad(loss, out)
        for r in range(len(grad)):  # bias and weight gradient of one sample, their norm
            row = torch.cat([grad[r], (grad[r][:, None] * ht[lo + r][None]).flatten()])
            ref.append(row.norm().item())
    assert len(y) % 8  # a partial last batch, whose samples weigh more
    for balance in (False, True):
        sel = select(
            "grand",
            probs=p,
            labels=y,
            features=h,
            budget=6,
            balance=balance,
            options={"loss_batch": 8},
        )
        np.testing.assert_allclose(sel.scores, ref, rtol=1e-5)
    orig = select("grand", probs=p, labels=y, features=h, budget=6, variant="original")
    assert orig.meta["options"]["loss_batch"] == 256


def test_repeats_use_distinct_cached_models(tmp_path, monkeypatch):
    host = PluginHost(load_entrypoints=True)
    data = host.datasets.load("digits", None)
    spec = PretrainSpec("lenet", 2, TrainConfig(epochs=2, augment=False), cache_dir=tmp_path)
    seen: list[int] = []
    real = pretrain_mod.pretrain

    def spy(data, spec, seed, *a, **k):
        seen.append(seed)
        return real(data, spec, seed, *a, **k)

    monkeypatch.setattr(pretrain_mod, "pretrain", spy)

    def run(method, seed):
        ctx = SelectionContext(
            n=len(data.train),
            labels=data.train.labels,
            seed=seed,
            dataset=data,
            pretrain=spec,
            networks=host.networks,
        )
        sel = host.create_selector(method, {"repeats": 3})
        return run_selection(host, sel, ctx, fraction=0.1)

    before = pretrain_mod.TRAINED_COUNT["n"]
    g = run("grand", 7)
    assert sorted(set(seen)) == [7, 7 + SEED_STRIDE, 7 + 2 * SEED_STRIDE]
    assert pretrain_mod.TRAINED_COUNT["n"] - before == 3  # r=0 is the shared selection model
    e = run("el2n", 7)  # same repeated models: all from the cache
    assert pretrain_mod.TRAINED_COUNT["n"] - before == 3
    assert len(g) == len(e) == 144
    assert not np.allclose(g.scores, e.scores)


@pytest.mark.parametrize("cls", METHODS)
def test_conformance(cls):
    check_selector(cls)


def test_registered():
    host = PluginHost(load_entrypoints=True, strict=True)
    assert {m.name for m in host.registry if m.family == "importance"} == {
        "forgetting",
        "grand",
        "el2n",
    }
    assert host.registry.get("forgetting").needs == ["dynamics"]


@pytest.mark.parametrize("method", ["forgetting", "grand", "el2n"])
def test_end_to_end_run_on_digits(method, tmp_path):
    check_end_to_end(method, tmp_path, *([] if method == "forgetting" else ["repeats=2"]))


@pytest.mark.parametrize("never_learned", ["max", "zero"])
def test_forgetting_from_running_statistics_equals_the_history(never_learned):
    from deepcore_core import Dynamics, RunningSpec, scores
    from deepcore_core.engine.recording import summarize

    rng = np.random.default_rng(3)
    correct = rng.random((9, 80)) < 0.5
    correct[:, :5] = False  # never learned
    z = np.zeros(correct.shape, np.float32)
    running = summarize(Dynamics(z, correct, z, z, None, z), RunningSpec())
    opts = {"never_learned": never_learned}
    want = scores("forgetting", training_dynamics={"correct": correct}, options=opts)
    np.testing.assert_array_equal(
        scores("forgetting", training_dynamics=running, options=opts), want
    )
    assert (want[:5] == (9 if never_learned == "max" else 0)).all()
