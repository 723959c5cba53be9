"""The observer plugin writes one event file per trained model with the epoch metrics."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deepcore_core.cli import create_app

pytest.importorskip("tensorboard")


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_run_logs_every_epoch_of_every_model(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCORE_TENSORBOARD_DIR", str(tmp_path / "tb"))
    monkeypatch.setenv("DEEPCORE_CACHE", str(tmp_path / "cache"))
    args = ["run", "--method", "uniform", "--seed", "0", "--epochs", "4", "--eval-every", "2",
            "--selection-epochs", "2", "--selection-network", "lenet", "--protocol", "epochs",
            "--output", str(tmp_path / "out")]  # fmt: skip
    r = CliRunner().invoke(create_app(), args)
    assert r.exit_code == 0, r.output
    coreset = scalars(tmp_path / "tb" / "coreset" / "uniform-f0.1-lenet-s0")
    assert [s for s, _ in coreset["train_loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in coreset["test_accuracy"]] == [2, 4]
    full = scalars(tmp_path / "tb" / "coreset" / "full-f1-lenet-s0")
    assert len(full["lr"]) == 4
    results = scalars(tmp_path / "tb" / "results")
    assert set(results) == {"uniform/lenet/accuracy", "full/lenet/accuracy"}
