"""End to end: deepcore run / select --dataset / train on the shipped digits set."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepcore_core import Selection
from deepcore_core.cli import create_app
from deepcore_core.engine.pretrain import TRAINED_COUNT


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCORE_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    app = create_app()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


QUICK = ["--epochs", "3", "--selection-epochs", "2", "--seed", "0", "--seed", "1"]


def test_run_writes_results_and_resumes(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("run", *QUICK, "--fraction", "0.1", "--fraction", "0.2", "--output", str(out))
    assert r.exit_code == 0, r.output
    assert "| full |" in r.output and "| uniform |" in r.output
    runs = sorted((out / "runs").rglob("*.json"))
    assert len(runs) == 2 * (1 + 2)  # seeds x (full + uniform at 2 fractions)
    csv = (out / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("method,fraction,network") and len(csv) == 4
    rec = json.loads(runs[0].read_text())
    assert 0 <= rec["accuracy"] <= 1 and rec["history"][-1]["epoch"] == 3
    mtimes = {p: p.stat().st_mtime_ns for p in runs}
    r = cli("run", *QUICK, "--fraction", "0.1", "--fraction", "0.2", "--output", str(out))
    assert r.exit_code == 0 and "resuming: 6 of 6 runs already done" in r.output
    assert {p: p.stat().st_mtime_ns for p in runs} == mtimes


def test_run_config_file_and_flags(cli, tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "dataset: digits\nmethods: [uniform]\nfractions: [0.05]\nseeds: [4]\n"
        "epochs: 2\nnetworks: [mlp, lenet]\ninclude_full: false\n"
    )
    r = cli("run", "--config", str(cfg), "--output", str(tmp_path / "o"))
    assert r.exit_code == 0, r.output
    assert "0.05 lenet" in r.output and "0.05 mlp" in r.output
    assert len(list((tmp_path / "o" / "runs").rglob("*.json"))) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "cifar"], "unknown dataset 'cifar'; did you mean 'cifar10'"),
        (["--network", "resnet19"], "unknown network 'resnet19'"),
        (["--device", "tpu"], "device must be one of auto, cpu, cuda or cuda:N, got 'tpu'"),
        (["--fraction", "2"], "each of fractions (--fraction) must be in (0, 1], got 2.0"),
        (["--epochs", "x"], "epochs must be an integer, got 'x'"),
        (["--method", "nope"], "unknown method 'nope'"),
        (["--option", "k=1", "--method", "uniform"], "unknown option 'k' for method 'uniform'"),
        (["--dataset", "mnist", "--data-root", "/nonexistent"], "does not exist"),
        (["--dataset", "mnist"], "needs --data-root"),
        (["--selection-lr", "0"], "selection_lr must be > 0, got 0.0"),
        (["--selection-lr", "fast"], "selection_lr must be a number, got 'fast'"),
    ],
)
def test_run_bad_input(cli, tmp_path, args, message):
    out = tmp_path / "bad"
    r = cli("run", *args, "--output", str(out))
    assert r.exit_code == 2, r.output
    assert message in r.output.strip().splitlines()[-1]
    assert not out.exists()


def test_run_cuda_without_gpu(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = cli("run", "--device", "cuda", "--output", str(tmp_path / "x"))
    assert r.exit_code == 2 and "no CUDA GPU is available" in r.output


def test_options_of_a_method_left_out_are_checked_not_refused(tmp_path):
    """``--method`` may narrow a config whose ``method_options`` name other methods."""
    import dataclasses

    from deepcore_core import DeepcoreError, Need, ScoreSelector
    from deepcore_core.experiment import Experiment, make_config
    from deepcore_core.testing import host_with

    @dataclasses.dataclass(frozen=True)
    class ConfidentOptions:
        power: int = 1

    class Confident(ScoreSelector):
        """Most confident first (test method)."""

        name = "confident"
        needs = frozenset({Need.PROBABILITIES})
        Options = ConfidentOptions

        def compute_scores(self, ctx):
            return ctx.probs.max(1)

    host = host_with(Confident)

    def experiment(options):
        base = {"methods": ["uniform"], "seeds": [0], "output": str(tmp_path / "o")}
        return Experiment(make_config({**base, "method_options": options}), host, log=print)

    assert experiment({"confident": {"power": 2}}).methods == ("uniform",)
    for options, message in [
        ({"confidnt": {"power": 2}}, "method_options: unknown method 'confidnt'; did you mean"),
        ({"confident": {"pwr": 2}}, "method_options: unknown option 'pwr' for method"),
    ]:
        with pytest.raises(DeepcoreError, match=message):
            experiment(options)


def test_run_unknown_config_key(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("datset: digits\n")
    r = cli("run", "--config", str(cfg))
    assert r.exit_code == 2 and "unknown key 'datset'" in r.output
    assert "did you mean 'dataset'?" in r.output


def test_select_from_dataset_then_train(cli, tmp_path):
    sel_path = tmp_path / "sel.npz"
    r = cli(
        "select",
        "--dataset",
        "digits",
        "--method",
        "uniform",
        "--fraction",
        "0.2",
        "--seed",
        "2",
        "--output",
        str(sel_path),
    )
    assert r.exit_code == 0, r.output
    sel = Selection.load(sel_path)
    assert len(sel) == 288 and sel.meta["dataset"] == "digits"
    r = cli(
        "train",
        "--selection",
        str(sel_path),
        "--dataset",
        "digits",
        "--epochs",
        "5",
        "--output",
        str(tmp_path / "t.json"),
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "t.json").read_text())["size"] == 288


def test_train_rejects_selection_from_other_dataset(cli, tmp_path):
    import numpy as np

    np.save(tmp_path / "y.npy", np.arange(100) % 3)
    cli(
        "select",
        "--method",
        "uniform",
        "--labels",
        str(tmp_path / "y.npy"),
        "--budget",
        "5",
        "--output",
        str(tmp_path / "s.npz"),
    )
    r = cli("train", "--selection", str(tmp_path / "s.npz"), "--dataset", "digits")
    assert r.exit_code == 2 and "was made on another dataset" in r.output


def test_methods_share_one_pretraining(tmp_path):
    """Every method and fraction of a seed reuses one selection model."""
    from deepcore_core import Need, PluginHost, ScoreSelector, hookimpl
    from deepcore_core.experiment import Experiment, make_config

    class Confident(ScoreSelector):
        """Most confident first (test method)."""

        name = "confident"
        needs = frozenset({Need.PROBABILITIES})

        def compute_scores(self, ctx):
            return ctx.probs.max(1)

    class Lowest(Confident):
        """Least confident first (test method)."""

        name = "lowest"
        descending = False

    class Reg:
        @hookimpl
        def register_selectors(self, register):
            register(Confident)
            register(Lowest)

    host = PluginHost(load_entrypoints=False)
    host.register(Reg(), "test-methods")
    cfg = make_config(
        {
            "methods": ["confident", "lowest"],
            "fractions": [0.1, 0.3],
            "seeds": [0],
            "epochs": 1,
            "selection_epochs": 1,
            "output": str(tmp_path / "o"),
            "cache_dir": str(tmp_path / "c"),
        }
    )
    before = TRAINED_COUNT["n"]
    Experiment(cfg, host, log=lambda m: None).run()
    assert TRAINED_COUNT["n"] - before == 1


def test_selection_lr_sets_only_the_selection_model(tmp_path):
    """``selection_lr`` changes the selection model's rate, and run keys only where it differs."""
    from deepcore_core import PluginHost
    from deepcore_core.experiment import Experiment, make_config

    base = {"methods": ["uniform"], "seeds": [0], "lr": 0.01, "output": str(tmp_path)}
    same = make_config(base)
    assert same.pretrain_spec().config_for(0).lr == same.train_config(0).lr == 0.01
    own = make_config({**base, "selection_lr": 0.1})
    spec = own.pretrain_spec().config_for(0)
    assert (spec.lr, spec.min_lr, own.train_config(0).lr) == (0.1, 1e-4, 0.01)

    def keys(cfg):
        return Experiment(cfg, PluginHost(), log=lambda m: None).plan()

    assert keys(make_config({**base, "selection_lr": 0.01})) == keys(same)
    selected = [k for k in keys(own) if k["method"] != "full"]
    assert selected and all(k["selection_lr"] == 0.1 for k in selected)
