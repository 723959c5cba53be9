"""The settings model: one default per setting, precedence flag > YAML > default, YAML paths."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from deepcore_core import DeepcoreError, Selection
from deepcore_core.cli import create_app
from deepcore_core.engine.config import PretrainSpec, TrainConfig
from deepcore_core.experiment.plan import RunKey
from deepcore_core.settings import (
    NETWORK,
    WARMUP,
    RunSettings,
    SelectSettings,
    TrainCommandSettings,
    build,
)
from deepcore_core.testing import synthetic_inputs


@pytest.fixture
def cli():
    runner = CliRunner()
    app = create_app()
    return lambda *args: runner.invoke(app, list(args))


def test_training_defaults_come_from_the_engine_once():
    train, pretrain = TrainConfig(), PretrainSpec()
    for cls in (RunSettings, TrainCommandSettings):
        s = cls()
        for f in ("epochs", "batch_size", "lr", "min_lr", "momentum", "weight_decay"):
            assert getattr(s, f) == getattr(train, f)
    assert RunSettings().selection_epochs == SelectSettings().selection_epochs
    assert SelectSettings().selection_epochs == pretrain.epochs
    # the front ends' protocol (lenet-bn, a short warm-up) is set once, in the settings
    assert RunSettings().selection_network == TrainCommandSettings().network == NETWORK
    assert RunSettings().warmup == TrainCommandSettings().warmup == WARMUP


def test_cli_help_shows_types_and_the_same_defaults(cli):
    text = " ".join(cli("run", "--help").output.split())
    assert "--epochs INTEGER" in text and f"[default: {TrainConfig().epochs}]" in text
    assert "--fraction NUMBER" in text and "[default: 0.1]" in text
    assert "<str>" not in text
    sel = " ".join(cli("select", "--help").output.split())
    assert "--selection-epochs INTEGER" in sel and f"[default: {PretrainSpec().epochs}]" in sel


def test_select_and_run_share_names():
    run, sel = (
        {f.name for f in dataclasses.fields(RunSettings)},
        {f.name for f in dataclasses.fields(SelectSettings)},
    )
    shared = {"dataset", "data_root", "balance", "selection_network", "selection_epochs"}
    assert shared <= run & sel
    # a run accepts the singular keys of select for its lists
    cfg = build(RunSettings, {"method": "kcenter", "fraction": 0.2, "seed": 3})
    assert (cfg.methods, cfg.fractions, cfg.seeds) == (("kcenter",), (0.2,), (3,))


def test_python_api_checks_keys_types_and_ranges():
    with pytest.raises(DeepcoreError, match="unknown key 'epoch'.*did you mean 'epochs'"):
        build(RunSettings, {"epoch": 3})
    with pytest.raises(DeepcoreError, match="epochs must be an integer, got 'x'"):
        build(RunSettings, {"epochs": "x"})
    with pytest.raises(DeepcoreError, match=r"epochs must be >= 1, got 0"):
        build(RunSettings, {"epochs": 0})
    bad_fraction = r"each of fractions \(--fraction\) must be in \(0, 1\], got 1.5"
    with pytest.raises(DeepcoreError, match=bad_fraction):
        build(RunSettings, {"fractions": [0.1, 1.5]})
    with pytest.raises(DeepcoreError, match="device must be"):
        build(RunSettings, {"device": "tpu"})
    assert build(RunSettings, {"epochs": "7"}).epochs == 7


@pytest.fixture
def arrays(tmp_path):
    d = synthetic_inputs()
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "labels.npy", d["labels"])
    return tmp_path


def test_precedence_flag_over_yaml_over_default(cli, arrays, monkeypatch):
    monkeypatch.chdir(arrays)
    cfg = arrays / "c.yaml"
    cfg.write_text("method: uniform\nlabels: data/labels.npy\nbudget: 7\noutput: out.npz\n")
    # YAML over default: budget 7 and seed 0 (the default)
    r = cli("select", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    sel = Selection.load(arrays / "out.npz")
    assert len(sel) == 7 and sel.meta["seed"] == SelectSettings().seed
    # flag over YAML
    r = cli("select", "--config", str(cfg), "--budget", "3", "--seed", "5")
    assert r.exit_code == 0, r.output
    sel = Selection.load(arrays / "out.npz")
    assert len(sel) == 3 and sel.meta["seed"] == 5


def test_relative_yaml_paths_resolve_against_the_file(cli, arrays, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(elsewhere)  # the current folder has no data/
    cfg = arrays / "c.yaml"
    cfg.write_text("method: uniform\nlabels: data/labels.npy\nfraction: 0.5\noutput: sub/o.npz\n")
    r = cli("select", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert (arrays / "sub" / "o.npz").is_file() and not (elsewhere / "sub").exists()
    # a relative path given as a flag is relative to the current folder
    r = cli("select", "--config", str(cfg), "--output", "here.npz")
    assert r.exit_code == 0 and (elsewhere / "here.npz").is_file()


def test_resolve_paths_touches_only_relative_path_settings(tmp_path):
    from deepcore_core.settings import RunSettings, resolve_paths

    values = {"output": "../runs/x", "data_root": "/abs/data", "dataset": "a/b", "lr": 0.1}
    out = resolve_paths(RunSettings, values, tmp_path / "cfg")
    assert out["output"] == str(tmp_path / "runs" / "x")
    assert out["data_root"] == "/abs/data" and out["dataset"] == "a/b" and out["lr"] == 0.1
    assert values["output"] == "../runs/x"  # the input is not changed


def test_unknown_yaml_key_has_a_suggestion(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: uniform\nfracton: 0.1\n")
    r = cli("select", "--config", str(cfg))
    assert r.exit_code == 2
    assert (
        r.output.strip()
        .splitlines()[-1]
        .startswith(
            f"Error: unknown key 'fracton' in config file '{cfg}'; did you mean 'fraction'?"
        )
    )


def test_run_yaml_method_options_and_select_options(cli, arrays, monkeypatch):
    monkeypatch.chdir(arrays)
    cfg = arrays / "s.yaml"
    cfg.write_text("method: uniform\nlabels: data/labels.npy\nfraction: 0.5\noptions: {k: 1}\n")
    r = cli("select", "--config", str(cfg))
    assert r.exit_code == 2 and "unknown option 'k' for method 'uniform'" in r.output


def test_select_json_summary(cli, arrays, monkeypatch):
    monkeypatch.chdir(arrays)
    r = cli(
        "select", "--method", "uniform", "--labels", "data/labels.npy", "--budget", "5",
        "--output", "j.npz", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["selected"] == 5 and out["method"] == "uniform" and out["output"] == "j.npz"
    assert sum(out["per_class"].values()) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "inf"], "lr must be a finite number, got 'inf'"),
        (["--lr", "nan"], "lr must be a finite number, got 'nan'"),
        (["--jobs", "0"], f"jobs must be in [1, {4 * (os.cpu_count() or 1)}], got 0"),
        (["--jobs", "100000"], f"jobs must be in [1, {4 * (os.cpu_count() or 1)}], got 100000"),
        (["--seed", "abc"], "each of seeds (--seed) must be an integer, got 'abc'"),
        (["--seed", "-1"], "each of seeds (--seed) must be in [0, 2**63 - 1], got -1"),
        (["--seed", "0", "--seed", "0"], "seeds (--seed) lists 0 more than once: [0, 0]"),
        (
            ["--fraction", "0.1", "--fraction", "0.10"],
            "fractions (--fraction) lists 0.1 more than once: [0.1, 0.1]",
        ),
        (
            ["--method", "margin", "--method", "margin"],
            "methods (--method) lists 'margin' more than once: ['margin', 'margin']",
        ),
        (  # uniform trains no selection model, so the path would never be read
            ["--method", "uniform", "--pretrained", "missing.pt"],
            "pretrained weights file 'missing.pt' (--pretrained) does not exist",
        ),
    ],
)
def test_run_validation_is_one_line_before_any_work(cli, tmp_path, args, message):
    r = cli("run", *args, "--output", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"Error: {message}"]  # no plan line first
    assert not (tmp_path / "o").exists()


def test_select_seed_is_one_line(cli):
    r = cli("select", "--method", "uniform", "--seed", "abc", "--budget", "1")
    assert r.exit_code == 2 and r.output.strip() == "Error: seed must be an integer, got 'abc'"


def test_pretrained_weights_must_exist_when_named(tmp_path):
    with pytest.raises(DeepcoreError, match="'nope.pt' .--pretrained. does not exist"):
        SelectSettings(pretrained="nope.pt")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")  # only existence is checked here; loading checks the rest
    assert SelectSettings(pretrained=str(weights)).pretrained == str(weights)
    assert RunSettings(pretrained=str(weights)).pretrained == str(weights)


def test_the_former_name_of_run_settings_still_works():
    from deepcore_core.experiment import ExperimentConfig

    assert ExperimentConfig is RunSettings


def test_selection_augment_reaches_the_selection_model_and_the_keys():
    plain, augmented = RunSettings(), RunSettings(selection_augment=True)
    assert not plain.pretrain_spec().config_for(0).augment
    assert augmented.pretrain_spec().config_for(0).augment
    assert "selection_augment" not in plain.rules_key()  # keys made before it stay valid
    assert augmented.rules_key()["selection_augment"] is True
    # the selection model's key (and so its cache entry) differs
    assert (
        plain.pretrain_spec().config_for(0).key() != augmented.pretrain_spec().config_for(0).key()
    )


def test_balance_left_out_is_each_methods_own_pool():
    from deepcore_core.selector import Selector

    class Whole(Selector):
        name = "whole"
        default_balance = False
        revision = 2

        def pick(self, ctx, pool, k, rng):  # pragma: no cover - not run
            raise AssertionError

    keys = RunKey(RunSettings(), "digits", "f", {"whole": Whole})
    assert keys.selection("whole", 0.1, 0)["balance"] is False
    assert keys.selection("whole", 0.1, 0)["revision"] == 2
    assert keys.selection("other", 0.1, 0)["balance"] is True
    assert "revision" not in keys.selection("other", 0.1, 0)
    given = RunKey(RunSettings(balance=True), "digits", "f", {"whole": Whole})
    assert given.run("whole", 0.1, 0, "lenet")["balance"] is True


def test_protocol_iterations_gives_every_model_the_full_models_steps():
    s = RunSettings(epochs=3, batch_size=10)
    # 95 samples: 10 batches an epoch, 3 epochs -> 30 steps for the full model and every coreset
    assert s.train_config(0, train_size=95).steps(9) == (30, 30)
    assert s.train_config(0, train_size=95).steps(95) == (3, 30)
    given = RunSettings(epochs=3, batch_size=10, iterations=7)
    assert given.train_config(0, train_size=95).steps(9) == (7, 7)
    own = RunSettings(epochs=3, batch_size=10, protocol="epochs")
    assert own.train_config(0, train_size=95).steps(9) == (3, 3)  # 3 passes over 9 samples
    keys = RunKey(s, "digits", "f", {}, 95)
    assert keys.run("full", 1.0, 0, "lenet")["train"]["iterations"] == 30
    assert "iterations" not in RunKey(own, "digits", "f", {}, 95).run("full", 1.0, 0, "x")["train"]


def test_protocol_epochs_refuses_a_step_count():
    with pytest.raises(DeepcoreError, match="iterations 5 needs protocol iterations"):
        build(RunSettings, {"protocol": "epochs", "iterations": 5}).validate()
    with pytest.raises(DeepcoreError, match="protocol must be"):
        build(RunSettings, {"protocol": "steps"})
