"""The Python API with the user's own Dataset, model and device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import deepcore_core as dc
from deepcore_core import DeepcoreError, Need, PluginHost, ScoreSelector
from deepcore_core.engine import pretrain as pretrain_mod
from deepcore_core.nets.features import FeatureModel
from deepcore_core.testing import GradNorm, OddNet, host_with
from deepcore_core.testing import ImageBlobs as Blobs


class Forgotten(ScoreSelector):
    """Test method: how often a sample was wrong during selection-model training."""

    name = "wrong-count"
    family = "test"
    needs = frozenset({Need.DYNAMICS})

    def compute_scores(self, ctx):
        return (~np.asarray(ctx.dynamics.correct)).sum(0).astype(float)


@pytest.fixture(scope="module")
def host():
    return host_with(GradNorm, Forgotten)


def test_features_are_the_input_of_the_final_linear_layer():
    model, x = OddNet().eval(), torch.rand(5, 1, 12, 12)
    wrapped = FeatureModel(model)
    out, h = wrapped.forward_with_features(x)
    assert wrapped.layer_name == "decide"
    torch.testing.assert_close(h, model.trunk(x))
    torch.testing.assert_close(out, model(x))
    hidden = FeatureModel(model, feature_layer="trunk.1")
    torch.testing.assert_close(hidden.forward_with_features(x)[1], nn.Flatten()(x))


def test_feature_layer_errors_are_clear():
    with pytest.raises(
        DeepcoreError, match=r"feature_layer 'trunk' is a Sequential, not nn.Linear"
    ):
        FeatureModel(OddNet(), feature_layer="trunk")
    with pytest.raises(DeepcoreError, match="feature_layer 'head' is no layer .*decide"):
        FeatureModel(OddNet(), feature_layer="head")
    with pytest.raises(DeepcoreError, match="has no nn.Linear layer"):
        FeatureModel(nn.Sequential(nn.Flatten()))


def test_gradients_through_the_api_equal_autograd(host):
    ds, model = Blobs(), OddNet().eval()
    sel = dc.select("grad-norm", dataset=ds, model=model, budget=5, balance=False,
                    device="cpu", host=host)  # fmt: skip
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.as_tensor([ds[i][1] for i in range(len(ds))])
    ref = []
    for i in range(len(ds)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        g = torch.cat([model.decide.bias.grad, model.decide.weight.grad.flatten()])
        ref.append(g.norm().item())
    np.testing.assert_allclose(sel.scores, ref, rtol=1e-4, atol=1e-6)
    assert sel.indices.tolist() == np.argsort(-np.asarray(ref), kind="stable")[:5].tolist()


def test_labels_come_from_targets_or_one_pass(host):
    a = dc.select("uniform", dataset=Blobs(), budget=9, device="cpu", host=host)
    b = dc.select("uniform", dataset=Blobs(expose_targets=False), budget=9, device="cpu", host=host)
    assert a.indices.tolist() == b.indices.tolist()  # the same labels, read both ways
    with pytest.raises(DeepcoreError, match="labels must be 90 whole numbers"):
        dc.select("uniform", dataset=Blobs(), labels=[0, 1], budget=9, host=host)


@pytest.mark.parametrize(
    ("device", "message"),
    [("meta", "device must be one of auto, cpu, cuda or cuda:N, got 'meta'"), ("tpu", "got 'tpu'")],
)
def test_bad_devices_are_rejected(host, device, message):
    with pytest.raises(DeepcoreError, match=message):
        dc.select("uniform", dataset=Blobs(), budget=3, device=device, host=host)
    with pytest.raises(DeepcoreError, match=message):
        dc.select("uniform", labels=[0, 1, 1], budget=1, device=device, host=host)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(host):
    for kw in ({"dataset": Blobs()}, {"labels": [0, 1, 1]}):
        with pytest.raises(DeepcoreError, match="no CUDA GPU is available"):
            dc.select("uniform", budget=1, device="cuda", host=host, **kw)


def test_without_a_model_the_engine_trains_and_caches_one(host, tmp_path):
    kw = {"budget": 9, "device": "cpu", "host": host, "selection_network": "mlp",
          "selection_epochs": 2, "cache_dir": str(tmp_path)}  # fmt: skip
    before = pretrain_mod.TRAINED_COUNT["n"]
    a = dc.select("wrong-count", dataset=Blobs(), **kw)
    b = dc.select("wrong-count", dataset=Blobs(), **kw)  # same data: from the cache
    assert pretrain_mod.TRAINED_COUNT["n"] == before + 1
    assert a.indices.tolist() == b.indices.tolist()
    dc.select("wrong-count", dataset=Blobs(), dataset_id="blobs-v2", **kw)
    assert pretrain_mod.TRAINED_COUNT["n"] == before + 2  # another id: another cache entry
    with pytest.raises(DeepcoreError, match="needs dynamics"):
        dc.select("wrong-count", dataset=Blobs(), model=OddNet(), budget=9, device="cpu", host=host)


def test_selection_back_to_torch_and_weighted_training(host):
    ds = Blobs()
    sel = dc.select("uniform", dataset=ds, fraction=0.2, device="cpu", host=host)
    sub = sel.subset(ds)
    assert len(sub) == len(sel) and sub[0][1] == ds[int(sel.indices[0])][1]
    weighted = dc.Selection(sel.indices, np.arange(1.0, len(sel) + 1), None, sel.meta)
    _, y, w = next(iter(DataLoader(weighted.weighted(ds), batch_size=len(sel))))
    assert w.tolist() == list(np.arange(1.0, len(sel) + 1)) and len(y) == len(sel)
    result = dc.train(OddNet(), ds, weighted, epochs=3, lr=0.05, device="cpu", test=ds)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert 0 <= result.final_accuracy <= 1
    with pytest.raises(DeepcoreError, match="made on 90 samples, not 10"):
        sel.subset(Blobs(n=10))


def test_a_model_without_a_dataset_is_refused(host):
    with pytest.raises(DeepcoreError, match="a model needs the dataset"):
        dc.select("uniform", labels=[0, 1], model=OddNet(), budget=1, host=host)


def test_a_network_factory_is_trained_and_cached(host, tmp_path):
    calls = []

    def tiny(channels, num_classes, image_size):
        calls.append((channels, num_classes, image_size))
        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(channels * image_size**2, num_classes)
        )

    kw = {"budget": 9, "device": "cpu", "host": host, "selection_network": tiny,
          "selection_epochs": 1, "cache_dir": str(tmp_path)}  # fmt: skip
    before = pretrain_mod.TRAINED_COUNT["n"]
    a = dc.select("wrong-count", dataset=Blobs(), **kw)
    b = dc.select("wrong-count", dataset=Blobs(), **kw)
    assert calls[0] == (1, 3, 12) and pretrain_mod.TRAINED_COUNT["n"] == before + 1
    assert a.indices.tolist() == b.indices.tolist()
    assert "tiny" not in host.networks  # the host's registry is not changed


def test_embed_gives_the_models_features_and_probabilities():
    from deepcore_core.api import embed

    ds, model = Blobs(n=20), OddNet().eval()
    out = embed(ds, model, device="cpu", host=PluginHost(load_entrypoints=False))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        np.testing.assert_allclose(out.features, model.trunk(x).numpy(), rtol=1e-5, atol=1e-6)
        probs = torch.softmax(model(x), 1).numpy()
    np.testing.assert_allclose(out.probs, probs, rtol=1e-4, atol=1e-6)


def test_scores_of_a_score_method_on_the_users_data(host):
    s = dc.scores("grad-norm", dataset=Blobs(), model=OddNet(), device="cpu", host=host)
    sel = dc.select("grad-norm", dataset=Blobs(), model=OddNet(), budget=3, device="cpu",
                    balance=False, host=host)  # fmt: skip
    np.testing.assert_array_equal(s, sel.scores)
    with pytest.raises(DeepcoreError, match="picks samples rather than scoring"):
        dc.scores("uniform", labels=[0, 1], host=host)
    with pytest.raises(DeepcoreError, match="takes no budget"):
        dc.scores("grad-norm", dataset=Blobs(), model=OddNet(), budget=3, host=host)
