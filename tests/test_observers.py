"""Observer hooks, plugin commands, --json outputs and progress display."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import typer
from typer.testing import CliRunner

from deepcore_core import PluginHost, Selection, hookimpl
from deepcore_core.cli import create_app
from deepcore_core.experiment import Experiment, make_config
from deepcore_core.progress import Progress


class Recorder:
    """A test plugin that records every observer call."""

    def __init__(self) -> None:
        self.epochs: list[tuple[dict[str, Any], int, dict[str, float]]] = []
        self.selections: list[Selection] = []
        self.runs: list[dict[str, Any]] = []

    @hookimpl
    def on_train_epoch_end(self, run, epoch, metrics):
        self.epochs.append((dict(run), epoch, dict(metrics)))

    @hookimpl
    def on_selection_end(self, selection):
        self.selections.append(selection)

    @hookimpl
    def on_run_end(self, record):
        self.runs.append(record)


def test_observers_see_every_epoch_selection_and_run(tmp_path):
    host = PluginHost(load_entrypoints=False)
    rec = Recorder()
    host.register(rec, "recorder")
    cfg = make_config(
        {
            "methods": ["uniform"],
            "seeds": [0],
            "epochs": 4,
            "protocol": "epochs",
            "eval_every": 2,
            "output": str(tmp_path / "out"),
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    records = Experiment(cfg, host, log=lambda m: None).run()
    assert len(rec.runs) == len(records) == 2  # full and uniform
    assert {r["key"]["method"] for r in rec.runs} == {"full", "uniform"}
    assert len(rec.selections) == 1 and rec.selections[0].meta["method"] == "uniform"
    coreset = [(e, m) for run, e, m in rec.epochs if run["method"] == "uniform"]
    assert [e for e, _ in coreset] == [1, 2, 3, 4]
    assert [("test_accuracy" in m) for _, m in coreset] == [False, True, False, True]
    run = next(r for r, _, _ in rec.epochs if r["method"] == "uniform")
    assert run == {"kind": "coreset", "method": "uniform", "fraction": 0.1, "seed": 0,
                   "network": "lenet-bn"}  # fmt: skip
    # the history stored with each run has the periodic evaluations too
    assert [("test_accuracy" in h) for h in records[1].history] == [False, True, False, True]


def test_selection_model_epochs_are_observed(tmp_path):
    from deepcore_core import PretrainSpec, SelectionContext, TrainConfig

    host = PluginHost(load_entrypoints=False)
    rec = Recorder()
    host.register(rec, "recorder")
    data = host.datasets.load("digits", None)
    spec = PretrainSpec("mlp", 2, TrainConfig(augment=False), cache_dir=tmp_path)
    ctx = SelectionContext(
        n=len(data.train), labels=data.train.labels, dataset=data, pretrain=spec,
        networks=host.networks, hook=host.hook,
    )  # fmt: skip
    host.hook.train(ctx=ctx)
    assert [(r["kind"], e) for r, e, _ in rec.epochs] == [
        ("selection-model", 1),
        ("selection-model", 2),
    ]


def test_plugin_commands_are_added_through_register_commands():
    class Commands:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("hello")
            def hello(name: str = "world") -> None:
                """Say hello."""
                typer.echo(f"hello {name}")

    host = PluginHost(load_entrypoints=False)
    host.register(Commands(), "commands")
    app = create_app(host)
    r = CliRunner().invoke(app, ["hello", "--name", "deepcore"])
    assert r.exit_code == 0 and r.output.strip() == "hello deepcore"
    assert "hello" in CliRunner().invoke(app, ["--help"]).output


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCORE_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    app = create_app()
    return lambda *args: runner.invoke(app, list(args))


def test_json_listings(cli):
    datasets = json.loads(cli("list-datasets", "--json").output)
    assert {"digits", "fashion-mnist"} <= {d["name"] for d in datasets}
    networks = json.loads(cli("list-networks", "--json").output)
    lenet = next(n for n in networks if n["name"] == "lenet")
    assert {"min_size", "max_size", "description"} <= set(lenet)
    info = json.loads(cli("info", "uniform", "--json").output)
    assert info["name"] == "uniform" and info["options"] == []
    assert info["description"].startswith("Uniform random sampling")
    methods = json.loads(cli("list-methods", "--options", "--json").output)
    assert methods[0]["options"] == []
    r = cli("info", "unifrom")
    assert r.exit_code == 2 and "did you mean 'uniform'" in r.output


def test_info_lists_options_with_type_default_and_doc(cli):
    r = cli("info", "uniform")
    assert r.exit_code == 0 and "uniform (baseline) from deepcore-core" in r.output
    assert "uniform: no options" in r.output


def test_train_and_report_json(cli, tmp_path):
    sel = tmp_path / "s.npz"
    r = cli("select", "--dataset", "digits", "--method", "uniform", "--fraction", "0.2",
            "--output", str(sel))  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli("train", "--selection", str(sel), "--dataset", "digits", "--epochs", "2", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["method"] == "uniform" and out["size"] == len(Selection.load(sel))
    assert [h["epoch"] for h in out["history"]] == [1, 2] and 0 <= out["test_accuracy"] <= 1
    run = tmp_path / "run"
    r = cli("run", "--method", "uniform", "--seed", "0", "--epochs", "1", "--no-full",
            "--output", str(run))  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = json.loads(cli("report", str(run), "--json").output)
    assert [row["method"] for row in rep["rows"]] == ["uniform"]
    assert any(f.endswith("report.md") for f in rep["files"])


def test_progress_shows_nothing_for_an_empty_stage(capsys, monkeypatch):
    monkeypatch.setenv("DEEPCORE_PROGRESS", "1")
    with Progress(0, "nothing") as bar:
        bar.update(0)
    assert capsys.readouterr().err == ""


def test_progress_plain_lines_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("DEEPCORE_PROGRESS", raising=False)
    monkeypatch.setenv("DEEPCORE_PROGRESS_INTERVAL", "0")
    with Progress(3, "stage") as bar:
        assert bar.mode == "plain"  # pytest's captured stderr is not a terminal
        for _ in range(3):
            bar.update(1, "note")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("stage: 1/3 after") and err[-1].startswith("stage: 3/3")


def test_quiet_turns_progress_off(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPCORE_PROGRESS", raising=False)
    r = cli("-q", "run", "--method", "uniform", "--seed", "0", "--epochs", "1", "--no-full",
            "--output", str(tmp_path / "q"))  # fmt: skip
    assert r.exit_code == 0
    assert "runs on" not in r.output  # the notes are gone, the table stays
    assert "| uniform |" in r.output
    import os

    assert os.environ["DEEPCORE_PROGRESS"] == "0"
    monkeypatch.delenv("DEEPCORE_PROGRESS")


def test_training_and_embedding_progress_move_with_every_batch(capsys, monkeypatch):
    """Long stages show progress from their first batch, with the samples per second."""
    from deepcore_core.engine.config import TrainConfig
    from deepcore_core.engine.embedding import compute_embedding
    from deepcore_core.engine.training import train_model
    from deepcore_core.testing import synthetic_dataset

    monkeypatch.delenv("DEEPCORE_PROGRESS", raising=False)
    monkeypatch.setenv("DEEPCORE_PROGRESS_INTERVAL", "0")
    data = synthetic_dataset()
    net = PluginHost(load_entrypoints=False).networks.build(
        "mlp", data.channels, data.num_classes, data.image_size
    )
    train_model(net, data.train, TrainConfig(epochs=2, batch_size=16), torch.device("cpu"),
                desc="fit")  # fmt: skip
    compute_embedding(net, data.train, torch.device("cpu"), batch_size=16)
    err = capsys.readouterr().err.splitlines()
    fit = [line for line in err if line.startswith("fit: ")]
    assert fit[0].startswith("fit: 0.") and "samples/s" in fit[0]  # inside the first epoch
    assert fit[-1].startswith("fit: 2/2") and "loss" in fit[-1]
    assert any(line.startswith("embedding: 16/") and "samples/s" in line for line in err)
