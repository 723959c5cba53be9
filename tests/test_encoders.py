"""Encoders, the embedding store and selection without labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from deepcore_core import DeepcoreError, MissingInputError, select
from deepcore_core.budget import allocate
from deepcore_core.clustering import kmeans
from deepcore_core.context import SelectionContext
from deepcore_core.dedup import semdedup
from deepcore_core.embedding_store import EmbeddingStore
from deepcore_core.encoders import load_weights, make_encoder, pooled
from deepcore_core.engine.simclr import knn_accuracy, nt_xent, views
from deepcore_core.plugins import get_host
from deepcore_core.testing import Confidence, FeatureNorm, ImageBlobs, host_with

HOST = host_with(FeatureNorm, Confidence)

# -- the embedding store ---------------------------------------------------------------------


def rows_of(lo: int, hi: int) -> np.ndarray:
    i = np.arange(lo, hi, dtype=np.float32)[:, None]
    return np.concatenate([i, 2 * i, -i], axis=1)


def test_store_fills_in_shards_and_reads_memory_mapped(tmp_path):
    store = EmbeddingStore(tmp_path / "e", "k", 10, shard_rows=3)
    out = store.fill(rows_of)
    assert isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, rows_of(0, 10))
    assert not list((tmp_path / "e").glob("shard-*"))  # joined, then dropped
    again = EmbeddingStore(tmp_path / "e", "k", 10, shard_rows=3)
    calls = []
    np.testing.assert_array_equal(
        again.fill(lambda lo, hi: calls.append(lo) or rows_of(lo, hi)), out
    )
    assert calls == []  # complete: nothing recomputed


def test_a_killed_fill_resumes_at_the_first_missing_shard(tmp_path):
    calls: list[int] = []

    def dies_at_six(lo: int, hi: int) -> np.ndarray:
        calls.append(lo)
        if lo == 6:
            raise KeyboardInterrupt
        return rows_of(lo, hi)

    store = EmbeddingStore(tmp_path / "e", "k", 10, shard_rows=3)
    with pytest.raises(KeyboardInterrupt):
        store.fill(dies_at_six)
    calls.clear()
    out = store.fill(lambda lo, hi: calls.append(lo) or rows_of(lo, hi))
    assert calls == [6, 9]  # shards 0 and 3 were kept
    np.testing.assert_array_equal(out, rows_of(0, 10))


def test_a_damaged_shard_is_recomputed(tmp_path):
    store = EmbeddingStore(tmp_path / "e", "k", 10, shard_rows=5)
    with pytest.raises(KeyboardInterrupt):
        store.fill(
            lambda lo, hi: rows_of(lo, hi) if lo == 0 else (_ for _ in ()).throw(KeyboardInterrupt)
        )
    shard = tmp_path / "e" / "shard-000000.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    calls: list[int] = []
    out = store.fill(lambda lo, hi: calls.append(lo) or rows_of(lo, hi))
    assert calls == [0, 5]
    np.testing.assert_array_equal(out, rows_of(0, 10))


def test_store_keeps_float16_and_refuses_bad_rows(tmp_path):
    half = EmbeddingStore(tmp_path / "h", "k", 4, dtype="float16")
    assert half.fill(rows_of).dtype == np.float16
    flat = EmbeddingStore(tmp_path / "f", "k", 4)
    with pytest.raises(DeepcoreError, match=r"one row per sample \(N x D after pooling\)"):
        flat.fill(lambda lo, hi: np.zeros(hi - lo))
    nan = EmbeddingStore(tmp_path / "n", "k", 4)
    with pytest.raises(DeepcoreError, match="embedding of sample 0 is NaN"):
        nan.fill(lambda lo, hi: np.full((hi - lo, 2), np.nan))
    with pytest.raises(DeepcoreError, match="float32, float16"):
        EmbeddingStore(tmp_path / "x", "k", 4, dtype="int8")


# -- naming an encoder, its weights and its outputs --------------------------------------------


def test_encoder_names():
    reg = get_host().encoders
    assert make_encoder(reg, None) is None
    assert make_encoder(reg, "supervised") is None
    assert make_encoder(reg, "resnet18").label == "torchvision:resnet18"
    assert make_encoder(reg, "simclr").name == "simclr"
    assert make_encoder(reg, "os.path:join").label == "module:os.path:join"
    with pytest.raises(DeepcoreError, match="unknown encoder 'nonsense'"):
        make_encoder(reg, "nonsense")
    with pytest.raises(DeepcoreError, match="unknown option 'epoch'"):
        make_encoder(reg, "simclr", {"epoch": 3})
    with pytest.raises(DeepcoreError, match="does not exist"):
        make_encoder(reg, "resnet18", weights="/no/such/file.pt")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.body(x))


def test_weights_load_from_a_state_dict_or_a_checkpoint(tmp_path):
    src = Tiny()
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}},
               tmp_path / "ckpt.pt")  # fmt: skip
    dst = Tiny()
    load_weights(dst, tmp_path / "ckpt.pt", "tiny")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_mismatched_weights_name_the_keys(tmp_path):
    state = Tiny().state_dict()
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(1)
    state["body.weight"] = torch.zeros(5, 4)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(DeepcoreError) as err:
        load_weights(Tiny(), tmp_path / "w.pt", "tiny")
    text = str(err.value)
    assert "missing keys head.bias" in text
    assert "unexpected keys extra.weight" in text
    assert "wrong shape keys body.weight" in text
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DeepcoreError, match="could not be read"):
        load_weights(Tiny(), tmp_path / "junk.pt", "tiny")


def test_pooling_makes_one_row_per_sample():
    tokens = torch.arange(24.0).view(2, 3, 4)
    assert torch.equal(pooled(tokens, "cls", "e"), tokens[:, 0])
    assert torch.equal(pooled(tokens, "mean", "e"), tokens.mean(1))
    maps = torch.ones(2, 5, 3, 3)
    assert pooled(maps, "mean", "e").shape == (2, 5)
    assert torch.equal(pooled((tokens[:, 0], "rest"), "none", "e"), tokens[:, 0])
    assert torch.equal(pooled({"last_hidden_state": tokens}, "cls", "e"), tokens[:, 0])
    with pytest.raises(DeepcoreError, match=r"shape \(2, 3, 4\).*pooling: cls or mean"):
        pooled(tokens, "none", "e")


# -- SimCLR's pieces by hand -------------------------------------------------------------------


def test_nt_xent_equals_the_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    t = 0.5
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(6):
        j = (i + 3) % 6
        sims = [math.exp(float(z[i] @ z[m]) / t) for m in range(6) if m != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / sum(sims))
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / 6, rel=1e-5)


def test_views_are_seeded_and_keep_the_shape():
    x = torch.randn(4, 1, 8, 8)
    a = views(x, torch.Generator().manual_seed(1))
    b = views(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, views(x, torch.Generator().manual_seed(2)))


def test_knn_accuracy_by_hand():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    test = np.array([[1, 0.05], [0.05, 1]], np.float32)
    assert knn_accuracy(train, np.array([0, 0, 1, 1]), test, np.array([0, 1]), k=1) == 1.0
    assert knn_accuracy(train, np.array([0, 0, 1, 1]), test, np.array([1, 0]), k=1) == 0.0


# -- selecting with an encoder and without labels ----------------------------------------------


class Flat(nn.Module):
    """An encoder: the flattened image through a fixed random projection."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(144, 6)

    def forward(self, x):
        return self.proj(x.flatten(1))


def by_hand(module: nn.Module, data: ImageBlobs) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([module(data[i][0][None]).numpy() for i in range(len(data))])


def test_a_users_module_is_the_encoder_and_a_method_reads_its_embeddings(tmp_path):
    data, enc = ImageBlobs(60), Flat()
    sel = select("feature-norm", dataset=data, encoder=enc, no_labels=True, budget=8, seed=1,
                 cache_dir=str(tmp_path), host=HOST)  # fmt: skip
    assert enc.training  # given back in the mode it was found in
    norms = np.linalg.norm(by_hand(enc, data).astype(np.float64), axis=1)
    assert sorted(sel.indices.tolist()) == sorted(np.argsort(-norms)[:8].tolist())
    assert sel.meta["labels"] == "hidden"
    assert sel.meta["encoder"]["name"].startswith("user:")
    assert sel.meta["per_class"] is None  # the rows were read as inputs only


def test_rows_without_labels_are_read_as_inputs():
    class Unlabeled(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.x = [torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(i))
                      for i in range(30)]  # fmt: skip

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    sel = select("feature-norm", dataset=Unlabeled(), encoder=Flat(), no_labels=True, budget=5,
                 host=HOST)  # fmt: skip
    assert len(sel) == 5 and sel.meta["per_class"] is None


def test_clusters_split_the_budget_like_classes(tmp_path):
    data, enc = ImageBlobs(90), Flat()
    sel = select("uniform", dataset=data, encoder=enc, no_labels=True, clusters=4, budget=20,
                 seed=2, cache_dir=str(tmp_path))  # fmt: skip
    feats = by_hand(enc, data)
    assign = kmeans(feats, 4, SelectionContext(n=90, seed=2).rng("clusters")).assign
    sizes = {c: int((assign == c).sum()) for c in range(4)}
    want = allocate(sizes, 20)
    got = {c: int((assign[sel.indices] == c).sum()) for c in range(4)}
    assert got == want
    assert sel.meta["pool"]["rule"] == "per cluster"
    assert sel.meta["clusters"]["sizes"] == [sizes[c] for c in range(4)]


def test_dedup_filters_before_the_method(tmp_path):
    data, enc = ImageBlobs(80), Flat()
    sel = select("uniform", dataset=data, encoder=enc, no_labels=True, dedup=0.02, budget=10,
                 seed=4, cache_dir=str(tmp_path))  # fmt: skip
    kept = semdedup(by_hand(enc, data), 0.02, SelectionContext(n=80, seed=4).rng("dedup"))
    assert set(sel.indices.tolist()) <= set(kept.tolist())
    assert sel.meta["dedup"] == {"eps": 0.02, "kept": kept.size, "removed": 80 - kept.size}
    with pytest.raises(DeepcoreError, match=r"--dedup 0.6 kept \d+ of 80 samples, fewer than"):
        select("uniform", dataset=data, encoder=enc, no_labels=True, dedup=0.6, budget=70,
               cache_dir=str(tmp_path))  # fmt: skip


def test_methods_that_need_labels_refuse_without_them():
    refusal = "method 'confidence' needs probabilities, which come from labels, and --no-labels"
    with pytest.raises(MissingInputError, match=refusal):
        select("confidence", dataset=ImageBlobs(30), encoder=Flat(), no_labels=True, budget=3,
               host=HOST)  # fmt: skip
    with pytest.raises(DeepcoreError, match="--balance splits by class"):
        select("feature-norm", dataset=ImageBlobs(30), encoder=Flat(), no_labels=True,
               balance=True, budget=3, host=HOST)  # fmt: skip
    with pytest.raises(DeepcoreError, match="cannot make 40 clusters of 30 samples"):
        select("feature-norm", dataset=ImageBlobs(30), encoder=Flat(), no_labels=True,
               clusters=40, budget=3, host=HOST)  # fmt: skip


def test_an_encoder_output_that_is_not_rows_is_one_error():
    class Maps(nn.Module):
        def forward(self, x):
            return x  # B x 1 x 12 x 12

    with pytest.raises(DeepcoreError, match=r"gives outputs of shape \(\d+, 1, 12, 12\)"):
        select("feature-norm", dataset=ImageBlobs(20), encoder=Maps(), no_labels=True, budget=3,
               host=HOST)  # fmt: skip
    sel = select("feature-norm", dataset=ImageBlobs(20), encoder=Maps(), no_labels=True,
                 budget=3, encoder_options={"pooling": "mean"}, host=HOST)  # fmt: skip
    assert sel.indices.size == 3


def test_simclr_trains_once_caches_and_reports_knn(tmp_path):
    from deepcore_core.testing import synthetic_dataset
    from deepcore_core.workflow import apply_label_settings

    host = host_with()
    data = synthetic_dataset((20, 20, 20), size=8)
    settings = type("S", (), {"no_labels": True, "encoder_options": {"epochs": 1, "batch_size": 16,
                    "network": "mlp"}, "cache_dir": str(tmp_path)})()  # fmt: skip
    ctx = SelectionContext(n=60, labels=data.train.labels, seed=0, dataset=data,
                           networks=host.networks)  # fmt: skip
    apply_label_settings(host, ctx, settings)
    module = ctx.encoder.module(ctx)
    trained = ctx.costs["selection_model"]
    assert not trained.reused and trained.samples == 60
    assert 0 <= ctx.extras["encoder"]["knn_accuracy"] <= 100
    again = SelectionContext(n=60, seed=0, dataset=data, networks=host.networks)
    apply_label_settings(host, again, settings)
    module2 = again.encoder.module(again)
    assert again.costs["selection_model"].reused
    for (k, a), (_, b) in zip(module.state_dict().items(), module2.state_dict().items(),
                              strict=True):  # fmt: skip
        assert torch.equal(a, b), k


# -- the optional encoders, with the real packages --------------------------------------------


def test_a_torchvision_architecture_with_local_weights(tmp_path):
    import torchvision

    from deepcore_core.encoders import drop_head

    torch.manual_seed(3)
    full = torchvision.models.resnet18(weights=None)
    torch.save(full.state_dict(), tmp_path / "r18.pth")
    data = ImageBlobs(24)
    sel = select("feature-norm", dataset=data, encoder="resnet18", no_labels=True, budget=5,
                 encoder_weights=str(tmp_path / "r18.pth"), cache_dir=str(tmp_path),
                 host=HOST)  # fmt: skip
    head_less = drop_head(full).eval()
    with torch.no_grad():
        x = torch.stack([data[i][0] for i in range(len(data))]).expand(-1, 3, -1, -1)
        norms = head_less(x).double().norm(dim=1).numpy()
    assert sorted(sel.indices.tolist()) == sorted(np.argsort(-norms)[:5].tolist())
    assert sel.meta["encoder"]["name"] == "torchvision:resnet18"
    assert sel.meta["encoder"]["dim"] == 512


def test_timm_encoder_reads_a_checkpoint_with_its_classifier(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(4)
    full = timm.create_model("resnet10t", pretrained=False)
    torch.save({"state_dict": full.state_dict()}, tmp_path / "t.pth")
    data = ImageBlobs(20)
    sel = select("feature-norm", dataset=data, encoder="timm:resnet10t", no_labels=True,
                 budget=4, encoder_weights=str(tmp_path / "t.pth"), cache_dir=str(tmp_path),
                 host=HOST)  # fmt: skip
    with torch.no_grad():
        x = torch.stack([data[i][0] for i in range(len(data))]).expand(-1, 3, -1, -1)
        pre = full.eval().forward_head(full.forward_features(x), pre_logits=True)
    norms = pre.double().norm(dim=1).numpy()
    assert sorted(sel.indices.tolist()) == sorted(np.argsort(-norms)[:4].tolist())
    wrong = timm.create_model("resnet18", pretrained=False)
    torch.save(wrong.state_dict(), tmp_path / "wrong.pth")
    with pytest.raises(DeepcoreError, match="do not fit encoder 'timm:resnet10t'"):
        select("feature-norm", dataset=data, encoder="timm:resnet10t", no_labels=True,
               budget=4, encoder_weights=str(tmp_path / "wrong.pth"), host=HOST)  # fmt: skip


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli_arrays(tmp_path):
    from typer.testing import CliRunner

    from deepcore_core.cli import create_app
    from deepcore_core.testing import synthetic_inputs

    for k, v in synthetic_inputs().items():
        np.save(tmp_path / f"{k}.npy", v)
    app, runner = create_app(HOST), CliRunner()
    return tmp_path, lambda *args: runner.invoke(app, list(args))


def test_cli_refuses_bad_label_free_settings_in_one_line(cli_arrays):
    folder, cli = cli_arrays
    x, p = str(folder / "features.npy"), str(folder / "logits.npy")
    out = folder / "bad.npz"
    cases = [
        (["--method", "confidence", "--logits", p, "--no-labels"],
         "method 'confidence' needs probabilities, which come from labels"),
        (["--method", "feature-norm", "--features", x, "--dedup", "1.5"],
         "dedup must be in (0, 1), got 1.5"),
        (["--method", "feature-norm", "--features", x, "--clusters", "0"],
         "clusters must be >= 1, got 0"),
        (["--method", "feature-norm", "--features", x, "--no-labels", "--balance"],
         "--balance splits by class and --no-labels hides the classes"),
        (["--method", "feature-norm", "--features", x, "--encoder-weights", "/no/w.pt"],
         "encoder weights file '/no/w.pt' (--encoder-weights) does not exist"),
        (["--method", "feature-norm", "--features", x, "--encoder", "resnet18"],
         "encoder 'torchvision:resnet18' embeds a dataset (--dataset)"),
        (["--method", "feature-norm", "--dataset", "digits", "--encoder", "nonsense"],
         "unknown encoder 'nonsense'"),
        (["--method", "feature-norm", "--dataset", "digits", "--no-labels",
          "--encoder", "supervised"], "encoder 'supervised' trains on the labels"),
    ]  # fmt: skip
    for args, message in cases:
        r = cli("select", "--fraction", "0.2", "--output", str(out), *args)
        assert r.exit_code == 2, r.output
        last = r.output.strip().splitlines()[-1]
        assert last.startswith("Error: ") and message in last, (args, r.output)
        assert not out.exists()


def test_cli_balances_given_features_over_clusters(cli_arrays):
    folder, cli = cli_arrays
    out = folder / "sel.npz"
    x = str(folder / "features.npy")
    r = cli("select", "--method", "feature-norm", "--features", x, "--no-labels",
            "--clusters", "3", "--fraction", "0.25", "--output", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    from deepcore_core import Selection

    sel = Selection.load(out)
    assert sel.meta["pool"]["rule"] == "per cluster" and sel.meta["clusters"]["k"] == 3
    assert sel.meta["labels"] == "hidden" and sel.meta["per_class"] is None


def test_list_encoders(cli_arrays):
    _, cli = cli_arrays
    r = cli("list-encoders", "--json")
    names = [e["name"] for e in __import__("json").loads(r.output)]
    assert names[0] == "supervised" and {"simclr", "torchvision:NAME", "timm:NAME"} <= set(names)


# -- a grid without labels ---------------------------------------------------------------------


def test_a_run_without_labels_runs_the_methods_that_can(tmp_path, monkeypatch):
    import deepcore_core.clustering as clustering
    from deepcore_core.experiment import Experiment, make_config

    calls = []
    real = clustering.kmeans
    monkeypatch.setattr(clustering, "kmeans", lambda *a, **kw: calls.append(1) or real(*a, **kw))

    base = {
        "dataset": "digits", "no_labels": True, "clusters": 3, "fractions": [0.2, 0.3],
        "encoder_options": {"epochs": 1, "network": "mlp"}, "seeds": [0], "epochs": 1,
        "include_full": False, "output": str(tmp_path / "o"), "cache_dir": str(tmp_path / "c"),
    }  # fmt: skip
    exp = Experiment(make_config(base), HOST, log=lambda m: None)
    assert exp.methods == ("uniform", "feature-norm")  # confidence needs labels: left out
    records = exp.run()
    assert len(calls) == 1  # the seed's clusters are found once for its four selections
    assert {r.key["method"] for r in records} == {"uniform", "feature-norm"}
    assert all(r.key["labels"] == "hidden" and r.key["clusters"] == 3 for r in records)
    assert all(r.accuracy > 0 for r in records)  # the coreset model trains on the labels
    from deepcore_core.report import provenance_text

    assert all(r.provenance["encoder"]["name"] == "simclr" for r in records)
    (later,) = [r for r in records if r.key["method"] == "uniform" and r.key["fraction"] == 0.3]
    # its cluster pools read the encoder's embeddings, made for an earlier selection
    assert later.cost["stages"]["selection_model"]["reused"] is True
    assert "- features from: simclr (k-NN test accuracy " in provenance_text(records, {"x": 2})
    with pytest.raises(MissingInputError, match="method 'confidence' needs probabilities"):
        Experiment(make_config({**base, "methods": ["confidence"]}), HOST, log=lambda m: None)


def test_a_hugging_face_text_encoder_from_a_local_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)  # fmt: skip
    torch.manual_seed(5)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")

    class Texts(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(1, 50, (30, 7), generator=g)

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i]}

    data = Texts()
    model = transformers.AutoModel.from_pretrained(tmp_path / "bert").eval()
    for pooling in ("cls", "mean"):
        sel = select("feature-norm", dataset=data, encoder=f"hf:{tmp_path / 'bert'}",
                     encoder_options={"pooling": pooling}, no_labels=True, budget=6,
                     cache_dir=str(tmp_path / "c"), host=HOST)  # fmt: skip
        with torch.no_grad():
            hidden = model(data.ids).last_hidden_state
        rows = hidden[:, 0] if pooling == "cls" else hidden.mean(1)
        norms = rows.double().norm(dim=1).numpy()
        assert sorted(sel.indices.tolist()) == sorted(np.argsort(-norms)[:6].tolist()), pooling
        assert sel.meta["encoder"]["dim"] == 16
    with pytest.raises(DeepcoreError, match="encoder folder '/no/such' \\(hf:DIR\\) does not"):
        select("feature-norm", dataset=data, encoder="hf:/no/such", no_labels=True, budget=2,
               host=HOST)  # fmt: skip


def test_a_killed_simclr_training_resumes_to_the_same_encoder(tmp_path, monkeypatch):
    import deepcore_core.engine.simclr as simclr
    from deepcore_core.testing import synthetic_dataset
    from deepcore_core.workflow import apply_label_settings

    host = host_with()
    data = synthetic_dataset((20, 20, 20), size=8)

    costs = []

    def trained(cache: str) -> dict[str, torch.Tensor]:
        options = {"epochs": 3, "batch_size": 16, "network": "mlp"}
        settings = type("S", (), {"encoder_options": options, "cache_dir": cache})()
        ctx = SelectionContext(n=60, seed=1, dataset=data, networks=host.networks)
        apply_label_settings(host, ctx, settings, encoder="simclr")
        state = ctx.encoder.module(ctx).state_dict()
        costs.append(ctx.costs["selection_model"])
        return state

    calls = {"n": 0}
    real = simclr.nt_xent

    def dies_in_epoch_two(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # 3 steps an epoch: the second step of epoch 2
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(simclr, "nt_xent", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        trained(str(tmp_path / "a"))
    monkeypatch.setattr(simclr, "nt_xent", real)
    (partial,) = (tmp_path / "a" / "encoders").glob(".*.partial.pt")
    killed = torch.load(partial, weights_only=False)["cost"]["seconds"]
    resumed, fresh = trained(str(tmp_path / "a")), trained(str(tmp_path / "b"))
    for k, v in fresh.items():
        assert torch.equal(resumed[k], v), k
    assert costs[0].seconds > killed > 0  # the killed epoch's time is counted too
    assert costs[0].samples == costs[1].samples == 3 * 60


def test_clusters_and_no_balance_contradict():
    with pytest.raises(DeepcoreError, match="--clusters 3 balances over clusters and --no-b"):
        select("feature-norm", features=np.random.default_rng(0).normal(size=(30, 4)),
               budget=5, clusters=3, balance=False, host=HOST)  # fmt: skip
