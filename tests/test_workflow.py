"""The use-case layer and the Python API as a view of the settings model."""

from __future__ import annotations

import dataclasses
import json
import threading
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import deepcore_core as dc
from deepcore_core import (
    DeepcoreError,
    Pick,
    PluginHost,
    Selection,
    Selector,
    hookimpl,
)
from deepcore_core.cli import create_app
from deepcore_core.engine.devices import resolve_device
from deepcore_core.experiment.schedule import in_order
from deepcore_core.rules import check_range, describe
from deepcore_core.settings import SelectSettings, TrainCommandSettings
from deepcore_core.testing import Confidence, ImageBlobs, OddNet, host_with
from deepcore_core.workflow import (
    StageOutputs,
    context_for_arrays,
    context_for_dataset,
    make_selection,
    sampler_for,
)


class FirstK(Selector):
    """Test method: the first k of each pool."""

    name = "first-k"
    family = "test"

    def pick(self, ctx, pool, k, rng):
        return Pick(pool[:k])


@pytest.fixture(scope="module")
def host():
    return host_with(Confidence, FirstK)


# -- the settings keywords ------------------------------------------------------------------


def test_every_select_setting_is_a_select_keyword(host, tmp_path):
    """Each CLI setting of select is accepted by dc.select under its own name."""
    y = np.repeat(np.arange(3), 10)
    np.save(tmp_path / "y.npy", y)
    arrays = {"features", "labels", "scores", "logits", "probs"}  # arrays (or .npy paths)
    given = {"labels": str(tmp_path / "y.npy")}
    for f in dataclasses.fields(SelectSettings):
        if f.name in arrays | {"method", "dataset", "budget", "output", "threads"}:
            continue
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name == "fraction":
            value = 0.5
        given[f.name] = value
    sel = dc.select("uniform", host=host, **given, output=str(tmp_path / "s.npz"), threads=1)
    assert len(sel) == 15 and (tmp_path / "s.npz").is_file() and (tmp_path / "s.json").is_file()
    assert Selection.load(tmp_path / "s.npz").indices.tolist() == sel.indices.tolist()


def test_every_train_setting_is_a_train_keyword(host, tmp_path):
    ds = ImageBlobs(n=40)
    given = {}
    for f in dataclasses.fields(TrainCommandSettings):
        if f.name in {"selection", "dataset", "output", "network", "data_root", "threads"}:
            continue
        given[f.name] = f.default_factory() if f.default is dataclasses.MISSING else f.default
    given.update(epochs=1, device="cpu")
    result = dc.train(OddNet(), ds, host=host, output=str(tmp_path / "t.json"), **given)
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["size"] == 40 and summary["train"]["epochs"] == 1
    assert len(result.history) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"selection_epochs": 0}, "selection_epochs must be >= 1, got 0"),
        ({"fraction": 0.1, "budget": 3}, "not both"),
        ({"fraction": 1.5}, r"fraction must be in \(0, 1\], got 1.5"),
        ({"selection_schedul": "constant"}, "did you mean 'selection_schedule'"),
        ({"device": "gpu"}, "device must be one of auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"variant": "paper"}, "variant must be"),
        ({"sampler_options": {"bins": 3}}, "sampler_options need a sampler"),
    ],
)
def test_select_checks_what_the_cli_checks(host, kwargs, message):
    kwargs = {"fraction": 0.5, **kwargs}
    with pytest.raises(DeepcoreError, match=message):
        dc.select("uniform", labels=np.zeros(10), host=host, **kwargs)


def test_the_cli_and_python_give_the_same_message(host, tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(10, dtype=np.int64))
    r = CliRunner().invoke(
        create_app(host),
        ["select", "--method", "uniform", "--labels", str(tmp_path / "y.npy"),
         "--fraction", "0.5", "--selection-epochs", "0", "--output", str(tmp_path / "s.npz")],
    )  # fmt: skip
    assert r.exit_code == 2
    with pytest.raises(DeepcoreError) as exc:
        dc.select("uniform", labels=np.zeros(10), fraction=0.5, selection_epochs=0, host=host)
    assert r.output.strip() == f"Error: {exc.value}"


def test_a_registered_dataset_by_name_selects_as_the_cli(host, tmp_path):
    out = tmp_path / "cli.npz"
    r = CliRunner().invoke(
        create_app(host),
        ["select", "--dataset", "digits", "--method", "uniform", "--fraction", "0.1",
         "--seed", "3", "--output", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    sel = dc.select("uniform", dataset="digits", fraction=0.1, seed=3, host=host)
    assert sel.indices.tolist() == Selection.load(out).indices.tolist()
    assert sel.meta["dataset"] == "digits"


def test_old_keywords_warn_and_still_work(host, tmp_path):
    ds = ImageBlobs(n=60)
    kw = {"budget": 6, "device": "cpu", "host": host, "selection_epochs": 1,
          "cache_dir": str(tmp_path)}  # fmt: skip
    with pytest.warns(DeprecationWarning, match="'network' is deprecated; use 'selection_network'"):
        old = dc.select("uniform", dataset=ds, network="mlp", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = dc.select("uniform", dataset=ds, selection_network="mlp", **kw)
    assert old.indices.tolist() == new.indices.tolist()
    with pytest.warns(DeprecationWarning, match="'batch_size' is deprecated"):
        dc.select("uniform", dataset=ds, model=OddNet(), budget=6, batch_size=7, host=host)
    dyn = {"correct": np.ones((2, 60), bool)}
    with pytest.warns(DeprecationWarning, match="use 'training_dynamics'"):
        dc.select("uniform", dynamics=dyn, budget=6, balance=False, host=host)
    with pytest.warns(DeprecationWarning, match="'data' is deprecated"):
        dc.embed(ds, OddNet(), device="cpu", data=dc.DataOptions(batch_size=8), host=host)
    with pytest.raises(DeepcoreError, match="not both"):
        dc.select("uniform", dataset=ds, network="a", selection_network="b", **kw)


def test_train_reports_every_epoch_to_observers(tmp_path):
    seen = []

    class Observer:
        @hookimpl
        def on_train_epoch_end(self, run, epoch, metrics):
            seen.append((dict(run), epoch))

    host = PluginHost(load_entrypoints=False)
    host.register(Observer(), "observer")
    sel = dc.select("uniform", labels=ImageBlobs(n=30).targets, budget=9, host=host)
    dc.train(OddNet(), ImageBlobs(n=30), sel, epochs=2, device="cpu", host=host)
    assert [e for _, e in seen] == [1, 2]
    assert seen[0][0]["kind"] == "coreset" and seen[0][0]["method"] == "uniform"


def test_train_on_a_registered_dataset_by_name(host):
    sel = dc.select("uniform", dataset="digits", fraction=0.1, host=host)
    result = dc.train(None, "digits", sel, epochs=1, network="mlp", device="cpu", host=host)
    assert result.final_accuracy is not None and 0 <= result.final_accuracy <= 1
    other = Selection(sel.indices, None, None, {**sel.meta, "dataset_fingerprint": "x" * 16})
    with pytest.raises(DeepcoreError, match="made on another dataset"):
        dc.train(None, "digits", other, epochs=1, network="mlp", device="cpu", host=host)


# -- the use cases ----------------------------------------------------------------------------


def test_stage_outputs_are_returned_and_reused(host, tmp_path):
    data = host.datasets.load("digits", None)
    s = SelectSettings(selection_epochs=1, cache_dir=str(tmp_path))
    first = make_selection(
        host,
        host.create_selector("confidence", {}),
        context_for_dataset(host, data, s, 0, "cpu"),
        fraction=0.1,
    )
    assert first.outputs.model is not None and first.outputs.probs is not None
    ctx = context_for_dataset(host, data, s, 0, "cpu", outputs=first.outputs)
    assert ctx.model is first.outputs.model  # nothing is trained or embedded again
    again = make_selection(host, host.create_selector("confidence", {}), ctx, fraction=0.1)
    assert again.selection.indices.tolist() == first.selection.indices.tolist()
    assert StageOutputs.of(ctx) == again.outputs


def test_sampler_rule(host):
    ranks, picks = host.create_selector("confidence", {}), host.create_selector("first-k", {})
    assert sampler_for(host, ranks, None) is None
    assert sampler_for(host, ranks, "stratified").name == "stratified"
    assert sampler_for(host, picks, "stratified", rankers_only=True) is None
    with pytest.raises(DeepcoreError, match="needs --sampler"):
        sampler_for(host, ranks, None, {"bins": 3})
    ctx = context_for_arrays(labels=np.zeros(10))
    with pytest.raises(DeepcoreError, match="picks its samples itself"):
        make_selection(host, picks, ctx, budget=2, sampler=sampler_for(host, picks, "top"))


def test_device_is_resolved_to_one_canonical_string():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda:0")
    for bad in ("gpu", "cuda:", "cuda:x", "CPU"):
        with pytest.raises(DeepcoreError, match="device must be one of"):
            resolve_device(bad)


def test_rules_write_their_message_from_the_bounds():
    assert describe({"above": 0, "max": 1}) == "in (0, 1]"
    assert describe({"min": 1}) == ">= 1"
    with pytest.raises(DeepcoreError, match=r"x must be in \[0, 1\), got 1"):
        check_range("x", 1, {"min": 0, "below": 1})
    check_range("x", "anything", {"min": 0})  # a rule on numbers leaves strings alone


def test_in_order_runs_jobs_in_order_and_stops():
    stop = threading.Event()
    seen: list[int] = []

    def job(i: int) -> int:
        seen.append(i)
        if i == 1:
            stop.set()
        return i

    futures = in_order([lambda i=i: job(i) for i in range(4)], stop)
    assert [f.result(timeout=5) for f in futures[:2]] == [0, 1]
    for f in futures[2:]:
        with pytest.raises(Exception):  # noqa: B017  (cancelled)
            f.result(timeout=5)
    assert seen == [0, 1]
