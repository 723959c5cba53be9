"""Data and models as practitioners hold them: rows as tuples or mappings (Hugging Face), the
user's own collate function, the model given back as found, checked last-layer assumptions,
and the bridges out (masks, samplers, Hugging Face datasets)."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import deepcore_core as dc
from deepcore_core import DeepcoreError, Need, PluginHost, ScoreSelector, Selection
from deepcore_core.testing import Confidence, GradNorm, ImageBlobs, OddNet, host_with


class Failing(ScoreSelector):
    """Test method: fails after the model was used."""

    name = "failing"
    family = "test"
    needs = frozenset({Need.PROBABILITIES})

    def compute_scores(self, ctx):
        raise RuntimeError("boom")


@pytest.fixture(scope="module")
def host():
    return host_with(Confidence, GradNorm, Failing)


class BNNet(nn.Module):
    """A small image classifier with batch norm (its running statistics move in training)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body(x))


# -- the model as found -----------------------------------------------------------------------


def _train(select_every_step: bool, host: PluginHost) -> nn.Module:
    torch.manual_seed(0)
    net, data = BNNet(), ImageBlobs(n=60)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for x, y in DataLoader(data, batch_size=20, shuffle=False):
        if select_every_step:
            dc.select("confidence", dataset=data, model=net, budget=6, device="cpu", host=host)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net


def test_selecting_inside_training_leaves_the_model_as_found(host):
    plain, selecting = _train(False, host), _train(True, host)
    for (name, a), b in zip(
        plain.state_dict().items(), selecting.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # weights and batch-norm statistics alike
    assert selecting.training and all(m.training for m in selecting.modules())
    assert not selecting.head._forward_pre_hooks and not selecting.head._forward_hooks


def test_the_model_is_given_back_after_a_failure_too(host):
    net = BNNet()
    net.body[1].weight.requires_grad_(False)
    net.head.weight.grad = torch.ones_like(net.head.weight)
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(RuntimeError, match="boom"):
        dc.select("failing", dataset=ImageBlobs(n=30), model=net, budget=3, host=host)
    assert net.training and not net.head._forward_pre_hooks
    assert not net.body[1].weight.requires_grad and net.head.weight.requires_grad
    assert torch.equal(net.head.weight.grad, torch.ones_like(net.head.weight))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    dc.embed(ImageBlobs(n=30), net, device="cpu", host=host)
    assert net.training and not net.head._forward_pre_hooks


# -- rows as people hold them -----------------------------------------------------------------


class Tokens(Dataset):
    """A tiny text set: rows of variable-length token ids and a label, as a tokenizer gives."""

    def __init__(self, n: int = 40) -> None:
        rng = np.random.default_rng(0)
        self.rows = []
        for i in range(n):
            label = i % 2
            ids = rng.integers(1 + 10 * label, 11 + 10 * label, size=int(rng.integers(3, 9)))
            self.rows.append({"input_ids": ids.tolist(), "label": label})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return self.rows[i]


def pad(rows):
    """A standard collate function: pads the user's own rows into a batch."""
    assert all(isinstance(r, dict) and set(r) == {"input_ids", "label"} for r in rows)
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
    return {"input_ids": ids, "label": torch.tensor([r["label"] for r in rows])}


class BagOfWords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(21, 8, padding_idx=0)
        self.classify = nn.Linear(8, 2)

    def forward(self, ids):
        return self.classify(self.embed(ids))


def test_a_text_classifier_with_its_own_collate_function(host):
    data, net = Tokens(), BagOfWords()
    sel = dc.select("grad-norm", dataset=data, model=net, fraction=0.25, collate_fn=pad, host=host)
    assert len(sel) == 10 and sel.meta["per_class"] == {"0": 5, "1": 5}
    result = dc.train(net, data, sel, epochs=2, lr=0.5, batch_size=5, collate_fn=pad, host=host)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["train_loss"])


def test_collate_fn_gets_the_users_own_tuples(host):
    seen = []

    def collate(rows):
        seen.append(len(rows[0]))
        return torch.stack([r[0] for r in rows]), torch.tensor([r[1] for r in rows])

    ds = ImageBlobs(n=30)
    a = dc.select("confidence", dataset=ds, model=OddNet(), budget=6, collate_fn=collate, host=host)
    b = dc.select("confidence", dataset=ds, model=OddNet(), budget=6, host=host)
    assert set(seen) == {2} and a.indices.tolist() == b.indices.tolist()


class Renamed(Dataset):
    def __init__(self) -> None:
        self.blobs = ImageBlobs(n=30, expose_targets=False)

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int):
        x, y = self.blobs[i]
        return {"pic": x, "cls": y}


def test_mapping_rows_with_named_keys(host):
    ds = Renamed()
    sel = dc.select("confidence", dataset=ds, model=OddNet(), budget=6, input_key="pic",
                    label_key="cls", host=host)  # fmt: skip
    same = dc.select("confidence", dataset=ImageBlobs(n=30), model=OddNet(), budget=6, host=host)
    assert sel.indices.tolist() == same.indices.tolist()
    with pytest.raises(DeepcoreError, match=r"no input key .* keys \['cls', 'pic'\]; rows must be"):
        dc.select("confidence", dataset=ds, model=OddNet(), budget=6, label_key="cls", host=host)
    row = sel.weighted(ds)[0]
    assert set(row) == {"pic", "cls", "weight"} and row["weight"] == 1.0


def test_a_row_we_cannot_use_says_what_rows_must_look_like(host):
    class Scalars(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return float(i)

    with pytest.raises(DeepcoreError, match=r"row of type float; rows must be \(input, label\)"):
        dc.select("confidence", dataset=Scalars(), model=OddNet(), budget=2, host=host)


# -- checked assumptions ----------------------------------------------------------------------


class TwoHeads(nn.Module):
    """Averages two heads (as a distilled transformer does): the logits are no layer's output."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.ReLU())
        self.head, self.dist = nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        h = self.trunk(x)
        return (self.head(h) + self.dist(h)) / 2


def test_gradients_are_refused_where_the_logits_are_not_the_layers_output(host):
    ds = ImageBlobs(n=30)
    with pytest.raises(
        DeepcoreError, match=r"not the output of its layer 'dist' .* feature_layer="
    ):
        dc.select("grad-norm", dataset=ds, model=TwoHeads(), budget=3, host=host)
    dc.select("confidence", dataset=ds, model=TwoHeads(), budget=3, host=host)  # no gradients


def test_equal_scores_warn_that_the_pick_is_the_tie_break(host, caplog):
    net = OddNet()
    for p in net.decide.parameters():
        nn.init.zeros_(p)
    with caplog.at_level(logging.WARNING, logger="deepcore"):
        dc.select("confidence", dataset=ImageBlobs(n=30), model=net, budget=6, host=host)
    assert "scores of a pool are equal" in caplog.text and "tie-break" in caplog.text


def test_two_factories_with_one_name_do_not_share_a_cached_model(host, tmp_path):
    def make(bias: float):
        def factory(c, k, s):
            net = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, k))
            nn.init.constant_(net[1].bias, bias)
            return net

        return factory

    kw = {"budget": 6, "selection_epochs": 1, "cache_dir": str(tmp_path), "host": host}
    first, second = make(0.0), make(1.0)  # one name, one code, another network
    dc.select("confidence", dataset=ImageBlobs(n=30), selection_network=first, **kw)
    dc.select("confidence", dataset=ImageBlobs(n=30), selection_network=second, **kw)
    assert len(list((tmp_path / "selection-models").iterdir())) == 2


def test_the_sidecar_says_which_model_scored(host, tmp_path):
    out = tmp_path / "s.npz"
    dc.select("confidence", dataset=ImageBlobs(n=30), model=OddNet(), budget=3, host=host,
              output=str(out))  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["selection_model"] == {
        "model": "deepcore_core.testing.OddNet.<locals>._OddNet",
        "feature_layer": "decide",
    }


# -- bridges -------------------------------------------------------------------------------


def test_mask_and_samplers(host):
    sel = dc.select("uniform", labels=np.repeat([0, 1], 10), budget=4, host=host)
    mask = sel.mask(20)
    assert mask.dtype == bool and mask.sum() == 4 and set(np.flatnonzero(mask)) == set(sel.indices)
    drawn = list(sel.sampler(seed=1))
    assert sorted(drawn) == sorted(sel.indices.tolist())
    assert drawn == list(sel.sampler(seed=1)) and drawn != list(sel.sampler(seed=2))
    with pytest.raises(DeepcoreError, match="gave no weights"):
        sel.sampler(weighted=True)
    weighted = Selection(np.array([1, 3]), np.array([0.0, 2.0]), None, {"n": 5})
    assert set(weighted.sampler(weighted=True, seed=0)) == {3}


def test_hugging_face_datasets_in_and_out(host):
    datasets = pytest.importorskip("datasets")
    blobs = ImageBlobs(n=30)
    hf = datasets.Dataset.from_dict(
        {"image": [blobs[i][0].numpy() for i in range(30)], "label": blobs.targets},
        features=datasets.Features(
            {
                "image": datasets.Array3D((1, 12, 12), "float32"),
                "label": datasets.ClassLabel(names=["red", "green", "blue"]),
            }
        ),
    ).with_format("torch")
    sel = dc.select("confidence", dataset=hf, model=OddNet(), budget=6, host=host)
    same = dc.select("confidence", dataset=blobs, model=OddNet(), budget=6, host=host)
    assert sel.indices.tolist() == same.indices.tolist()
    assert sel.meta["classes"] == ["red", "green", "blue"]
    kept = sel.to_hf(hf, score="score")
    assert len(kept) == 6 and "score" in kept.column_names and "weight" not in kept.column_names
    assert [int(v) for v in kept["label"]] == np.asarray(blobs.targets)[sel.indices].tolist()
    assert set(sel.weighted(hf)[0]) == {"image", "label", "weight"}
    with pytest.raises(DeepcoreError, match="needs a Hugging Face datasets.Dataset"):
        sel.to_hf(blobs)
