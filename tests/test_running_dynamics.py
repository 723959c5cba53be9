"""Running window statistics of the training dynamics: the same values as the full history."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepcore_core import (
    DeepcoreError,
    Dynamics,
    Need,
    PluginHost,
    RunningDynamics,
    RunningSpec,
    ScoreSelector,
    SelectionContext,
    TrainConfig,
)
from deepcore_core.cli import create_app
from deepcore_core.dynamics import load_dynamics
from deepcore_core.engine.recording import Recorder, summarize
from deepcore_core.engine.training import train_model
from deepcore_core.settings import RunSettings, SelectSettings, build
from deepcore_core.testing import host_with

CPU = torch.device("cpu")


def reference(full: Dynamics, spec: RunningSpec) -> dict[str, np.ndarray]:
    """Every running statistic by brute force from the epochs x N history."""
    p = np.exp(-full.loss.astype(np.float64))
    e = p.shape[0]
    assert full.max_other is not None and full.change is not None
    out = {
        "aum": full.margin.astype(np.float64).mean(0),
        "aum_probability": (p - full.max_other).mean(0),
        "forgetting": sum(full.correct[t - 1] & ~full.correct[t] for t in range(1, e)),
        "ever_correct": full.correct.any(0),
    }
    w = min(spec.window, e)
    out["dyn_unc"] = np.mean([p[s : s + w].std(0) for s in range(e - w + 1)], axis=0)
    h = min(spec.horizon, e)
    wd = min(spec.window, h)
    out["dual"] = np.mean(
        [p[s : s + wd].std(0) * (1 - p[s : s + wd].mean(0)) for s in range(h - wd + 1)], axis=0
    )
    out["early_p_true"] = p[:h].mean(0)
    d = full.change[1:h].astype(np.float64)
    tdds = np.zeros(p.shape[1])
    if len(d):
        wt = min(spec.window - 1, len(d))  # a window of ``window`` epochs: window - 1 changes
        k = len(d) - wt + 1
        for i in range(k):
            win = d[i : i + wt]
            dev = np.sqrt(((win - win.mean(0)) ** 2).sum(0))
            tdds += spec.decay * (1 - spec.decay) ** (k - 1 - i) * dev
    out["tdds"] = tdds
    return out


def scripted(epochs: int, spec: RunningSpec, n: int = 40, c: int = 4, seed: int = 0):
    """Drive a full and a running recorder with the same random logits, in shuffled batches."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    full, running = Recorder(epochs, n, CPU), Recorder(epochs, n, CPU, spec)
    for epoch in range(epochs):
        out = torch.randn(n, c, generator=g) * 2 + 1.5 * torch.nn.functional.one_hot(y, c)
        order = torch.randperm(n, generator=g)
        for idx in order.split(7):
            per = torch.nn.functional.cross_entropy(out[idx], y[idx], reduction="none")
            for r in (full, running):
                r.record(epoch, idx, out[idx], y[idx], per)
        for r in (full, running):
            r.end_epoch(epoch)
    return full.result(), running.result()


@pytest.mark.parametrize(
    ("epochs", "window", "horizon"),
    [(12, 4, 7), (3, 10, 30), (12, 4, 20), (6, 4, 2), (1, 2, 2), (8, 3, 8), (9, 2, 3)],
)
def test_running_statistics_equal_the_brute_force_over_the_history(epochs, window, horizon):
    spec = RunningSpec(window, horizon, 0.7)
    full, running = scripted(epochs, spec)
    assert isinstance(full, Dynamics) and isinstance(running, RunningDynamics)
    assert running.epochs == epochs and running.spec == spec and running.samples == 40
    ref = reference(full, spec)
    folded = summarize(full, spec)
    for name, value in ref.items():
        np.testing.assert_allclose(getattr(running, name), value, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(getattr(folded, name), value, rtol=1e-9, atol=1e-12)
    assert running.forgetting.sum() > 0 or epochs < 3  # the data has forgetting events


def test_running_dynamics_round_trip_and_check_the_methods_windows(tmp_path):
    spec = RunningSpec(window=4, horizon=7, decay=0.5)
    _, running = scripted(12, spec)
    running.save(tmp_path / "d.npz")
    back = load_dynamics(tmp_path / "d.npz")
    assert isinstance(back, RunningDynamics) and back.spec == spec and back.epochs == 12
    for name in ("aum", "forgetting", "ever_correct", "dyn_unc", "tdds"):
        np.testing.assert_array_equal(getattr(back, name), getattr(running, name))
    assert back.value("dyn_unc", "dyn-unc", window=4) is back.dyn_unc
    back.value("aum", "aum", window=99)  # aum has no window: nothing to check
    with pytest.raises(DeepcoreError, match=r"'dyn-unc' with window=10 .*window 4, horizon 7"):
        back.value("dyn_unc", "dyn-unc", window=10)
    with pytest.raises(DeepcoreError, match="dynamics_options"):
        back.value("tdds", "tdds", window=4, horizon=7, decay=0.9)
    with pytest.raises(DeepcoreError, match="dual"):
        back.value("dual", "dual", window=4, horizon=30)
    # a horizon past the recorded epochs selects the same windows as any other one
    long = scripted(5, RunningSpec(window=3, horizon=30))[1]
    long.value("dual", "dual", window=3, horizon=8)


def test_running_spec_errors_are_one_line_and_name_the_value():
    with pytest.raises(DeepcoreError, match="window must be an integer >= 2, got 1"):
        RunningSpec(window=1)
    with pytest.raises(DeepcoreError, match=r"decay must be in \(0, 1\], got 0"):
        RunningSpec(decay=0)
    with pytest.raises(DeepcoreError, match="unknown key 'windw' .*known: decay, horizon"):
        RunningSpec.parse({"windw": 3})
    bare = Dynamics(np.zeros((2, 3), np.float32), np.ones((2, 3), bool), np.zeros((2, 3)))
    with pytest.raises(DeepcoreError, match="needs their 'max_other' and 'change'"):
        summarize(bare, RunningSpec())


@pytest.fixture(scope="module")
def digits():
    return PluginHost(load_entrypoints=False).datasets.load("digits", None)


def lenet(data):
    torch.manual_seed(0)
    host = PluginHost(load_entrypoints=False)
    return host.networks.build("lenet", data.channels, data.num_classes, data.image_size)


def test_training_records_running_statistics_equal_to_its_full_history(digits):
    cfg = TrainConfig(epochs=5, seed=0, augment=False)
    spec = RunningSpec(window=2, horizon=4, decay=0.8)
    full = train_model(lenet(digits), digits.train, cfg, CPU, record_dynamics=True).dynamics
    run = train_model(lenet(digits), digits.train, cfg, CPU, record_dynamics=True, running=spec)
    assert isinstance(full, Dynamics) and isinstance(run.dynamics, RunningDynamics)
    for name, value in reference(full, spec).items():
        np.testing.assert_allclose(getattr(run.dynamics, name), value, rtol=1e-5, atol=1e-6)


def test_settings_turn_running_statistics_on_and_into_the_keys():
    s = build(SelectSettings, {"dynamics": "running", "dynamics_options": {"window": 5}})
    assert s.pretrain_spec().running == RunningSpec(window=5)
    assert SelectSettings().pretrain_spec().running is None
    with pytest.raises(DeepcoreError, match="dynamics_options need dynamics: running"):
        build(SelectSettings, {"dynamics_options": {"window": 5}}).validate()
    with pytest.raises(DeepcoreError, match="unknown key 'size'"):
        build(RunSettings, {"dynamics": "running", "dynamics_options": {"size": 5}}).validate()
    full, running = RunSettings(), RunSettings(dynamics="running")
    assert "dynamics" not in full.rules_key()  # keys made before running statistics stay valid
    assert running.rules_key()["dynamics"] == {
        "kind": "running", "window": 10, "horizon": 30, "decay": 0.9, "tdds": "epochs",
    }  # fmt: skip


class MeanMargin(ScoreSelector):
    """The running AUM, or the mean margin of the full history."""

    name = "mean-margin"
    family = "test"
    needs: ClassVar[frozenset[Need]] = frozenset({Need.DYNAMICS})

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        d = ctx.dynamics
        if isinstance(d, RunningDynamics):
            return d.value("aum", self.name)
        return np.asarray(d.margin, dtype=np.float64).mean(0)


def test_cli_select_with_running_dynamics_caches_them_under_their_own_key(tmp_path):
    app = create_app(host_with(MeanMargin))
    picks = {}
    for mode in ("full", "running"):
        out = tmp_path / f"{mode}.npz"
        r = CliRunner().invoke(
            app,
            [
                "select", "--dataset", "digits", "--method", "mean-margin", "--fraction", "0.1",
                "--selection-epochs", "2", "--dynamics", mode, "--cache-dir", str(tmp_path / "c"),
                "--device", "cpu", "--output", str(out),
            ],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        picks[mode] = np.load(out)["indices"]
    np.testing.assert_array_equal(picks["full"], picks["running"])
    metas = [json.loads(p.read_text()) for p in (tmp_path / "c").rglob("meta.json")]
    assert sorted(m["dynamics"]["kind"] for m in metas) == ["full", "running"]
    kinds = {type(load_dynamics(p)) for p in (tmp_path / "c").rglob("dynamics.npz")}
    assert kinds == {Dynamics, RunningDynamics}
    r = CliRunner().invoke(app, ["select", "--method", "mean-margin", "--dynamics", "some"])
    assert r.exit_code == 2 and "'some'" in r.output and "running" in r.output


def test_running_statistics_take_the_documented_memory_whatever_the_epochs():
    n, c = 1000, 10
    for epochs in (40, 200):  # (fewer epochs than the horizon make a smaller ring)
        recorder = Recorder(epochs, n, CPU, RunningSpec(window=10))
        recorder.state["_prev"] = torch.zeros(n, c)  # sized on the first batch
        per_sample = sum(t.nbytes for t in recorder.state.values()) / n
        # a ring of the window's 10 losses and of its 9 changes: 187 MB per million samples
        assert per_sample == 71 + 4 * 10 + 4 * 9 + 4 * c
    full = Recorder(10, n, CPU)
    assert sum(t.nbytes for t in full.state.values()) / n == 21 * 10  # 21 MB per million/epoch
