"""Pruning schedules: each rule against a hand computation on scripted losses, seeded
determinism, resuming with the same choices, and weights and rescaling reaching the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepcore_core import DeepcoreError
from deepcore_core.data.sources import TensorSource
from deepcore_core.engine import training
from deepcore_core.engine.config import TrainConfig
from deepcore_core.engine.training import train_model
from deepcore_core.plugins import PluginHost
from deepcore_core.schedules import (
    RS2,
    Adaptive,
    EpochPlan,
    InfoBatch,
    Schedule,
    ScheduleSampler,
)

CPU = torch.device("cpu")


def test_infobatch_prunes_below_mean_samples_and_rescales_the_rest():
    s = InfoBatch({"ratio": 0.5, "delta": 0.75})
    s.start(n=8, epochs=4, seed=3)
    first = s.planned(0)
    assert first.indices.tolist() == list(range(8)) and set(first.scale) == {1.0}  # scores equal
    losses = np.array([0.1, 0.2, 0.3, 0.4, 2.0, 3.0, 4.0, 5.0])  # mean 1.875: 0-3 well learned
    s.observe(np.arange(8), losses)
    plan = s.planned(1)
    kept = set(plan.indices.tolist())
    assert {4, 5, 6, 7} <= kept  # every above-mean sample trains, at scale 1
    easy = sorted(kept - {4, 5, 6, 7})
    assert len(easy) == int(0.5 * 4) and set(easy) <= {0, 1, 2, 3}
    scale = dict(zip(plan.indices.tolist(), plan.scale.tolist(), strict=True))
    assert all(scale[i] == 1.0 for i in (4, 5, 6, 7)) and all(scale[i] == 2.0 for i in easy)
    # a pruned sample keeps its old score; seen ones take their new loss
    s.observe(np.array([4]), np.array([0.0]))
    assert s.scores[4] == 0.0 and s.scores[0] == 0.1
    # epochs from floor(0.75 * 4) = 3 on train on everything, unscaled
    s.planned(2)
    last = s.planned(3)
    assert last.indices.tolist() == list(range(8)) and last.scale is None


def test_infobatch_is_seeded_and_its_state_resumes():
    losses = np.linspace(0, 1, 50)

    def plans(seed, cut=None):
        s = InfoBatch({"ratio": 0.3})
        s.start(50, 8, seed)
        out = []
        for e in range(6):
            if e == cut:  # a resumed run: a fresh schedule loaded from the checkpoint's state
                state = s.state_dict()
                s = InfoBatch({"ratio": 0.3})
                s.start(50, 8, seed)
                s.load_state_dict(state)
            out.append(s.planned(e).indices.tolist())
            s.observe(np.arange(50), np.roll(losses, e))
        return out

    assert plans(0) == plans(0) == plans(0, cut=3) and plans(0) != plans(1)


def test_rs2_sees_every_sample_once_before_any_twice():
    s = RS2({"ratio": 0.3})
    s.start(n=10, epochs=5, seed=0)
    epochs = [s.planned(e).indices.tolist() for e in range(5)]
    assert all(len(e) == math.ceil(0.3 * 10) == len(set(e)) for e in epochs)
    first_pass = [i for e in epochs[:3] for i in e] + epochs[3][:1]
    assert sorted(first_pass) == list(range(10))  # 3 + 3 + 3 + the one left over
    assert epochs[3][0] not in epochs[3][1:]  # no repeat inside the epoch that wraps
    again = RS2({"ratio": 0.3})
    again.start(10, 5, 0)
    assert [again.planned(e).indices.tolist() for e in range(5)] == epochs


def test_adaptive_reselects_after_warmup_every_few_epochs():
    calls = []

    def reselect(model, epoch):
        calls.append(epoch)
        return np.array([epoch % 4, 5]), np.array([1.0, 3.0])

    s = Adaptive({"every": 2, "warmup": 1, "fraction": 0.2})
    s.reselect = reselect
    s.start(10, 6, 0)
    plans = [s.planned(e, model="m") for e in range(6)]
    assert plans[0].indices.tolist() == list(range(10))  # warm-up: all data
    assert calls == [1, 3, 5]
    assert plans[2].indices.tolist() == plans[1].indices.tolist() == [1, 5]
    assert plans[2].weights.tolist() == [1.0, 3.0]


def test_bad_options_name_the_value():
    for cls, opts, msg in (
        (InfoBatch, {"ratio": 1.0}, "ratio must be in"),
        (InfoBatch, {"delta": 1.5}, "delta must be in"),
        (RS2, {"ratio": 0}, "ratio must be in"),
        (Adaptive, {"every": 0}, "every must be >= 1"),
    ):
        with pytest.raises(DeepcoreError, match=msg):
            cls(opts)
    with pytest.raises(DeepcoreError, match="unknown schedule 'nope'"):
        PluginHost(load_entrypoints=False).create_schedule("nope")


class Fixed(Schedule):
    """The same plan every epoch (test schedule)."""

    name = "fixed"

    def __init__(self, plan):
        super().__init__()
        self.fixed = plan

    def plan(self, epoch, model=None):
        return self.fixed


def _data(n=12):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    return TensorSource(images, torch.arange(n) % 3, [0.5], [0.25])


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))


PLAIN = TrainConfig(
    epochs=1, batch_size=12, lr=0.1, momentum=0, weight_decay=0, min_lr=0.1, augment=False
)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_rescaling_reaches_the_loss():
    """A scale of 2 on every sample is one SGD step at twice the learning rate."""
    n = 12
    scaled = Fixed(EpochPlan(np.arange(n), scale=np.full(n, 2.0)))
    a = train_model(_net(), _data(), PLAIN, CPU, schedule=scaled).model
    double = TrainConfig(**{**PLAIN.__dict__, "lr": 0.2, "min_lr": 0.2})
    b = train_model(_net(), _data(), double, CPU).model
    assert torch.allclose(_weights(a), _weights(b), atol=1e-6)


def test_weights_reach_the_loss():
    """Weight 0 on half of the data is the same full-batch step as training on the rest."""
    n = 12
    half = Fixed(EpochPlan(np.arange(n), weights=np.r_[np.ones(6), np.zeros(6)]))
    a = train_model(_net(), _data(), PLAIN, CPU, schedule=half).model
    b = train_model(_net(), _data().subset(np.arange(6)), PLAIN, CPU).model
    assert torch.allclose(_weights(a), _weights(b), atol=1e-6)


def test_a_killed_scheduled_run_resumes_with_the_same_choices(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)
    config = TrainConfig(epochs=5, batch_size=4, augment=False)
    whole = train_model(_net(), _data(40), config, CPU, schedule=InfoBatch({"ratio": 0.5}))

    class Killed(Exception):
        pass

    def kill(epoch, metrics):
        if epoch == 3:
            raise Killed

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Killed):
        train_model(
            _net(), _data(40), config, CPU, schedule=InfoBatch({"ratio": 0.5}),
            checkpoint=ckpt, callbacks=[kill],
        )  # fmt: skip
    resumed = train_model(
        _net(), _data(40), config, CPU, schedule=InfoBatch({"ratio": 0.5}), checkpoint=ckpt
    )
    assert [h["samples"] for h in resumed.history] == [h["samples"] for h in whole.history]
    assert torch.equal(_weights(resumed.model), _weights(whole.model))
    assert sum(h["samples"] for h in whole.history) < 5 * 40  # it pruned


def test_a_schedule_refuses_iterations_and_weighted_coresets():
    with pytest.raises(DeepcoreError, match="trains by epochs"):
        train_model(_net(), _data(), TrainConfig(iterations=3), CPU, schedule=RS2())
    with pytest.raises(DeepcoreError, match="weights of its own"):
        train_model(_net(), _data(), PLAIN, CPU, weights=np.ones(12), schedule=RS2())


def test_a_users_loop_with_the_sampler_and_the_loss():
    n = 20
    data = torch.utils.data.TensorDataset(torch.randn(n, 3), torch.arange(n) % 2, torch.arange(n))
    s = RS2({"ratio": 0.5})
    s.start(n, epochs=2, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=ScheduleSampler(s))
    model = torch.nn.Linear(3, 2)
    seen = []
    for _ in range(2):
        for x, y, idx in loader:
            per = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
            loss = s.loss(per, idx)
            assert torch.isclose(loss, per.mean())  # RS2 neither scales nor weights
            seen += idx.tolist()
    assert sorted(seen) == list(range(n))  # two halves: every sample once
    ib = InfoBatch()
    ib.start(4, 8, 0)
    ib.planned(0)
    per = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ib.loss(per, torch.tensor([0, 1, 2, 3]))
    assert ib.scores.tolist() == [1.0, 2.0, 3.0, 4.0]  # the loss callback observed them


def test_train_and_run_with_a_schedule_from_the_command_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from deepcore_core.cli import create_app

    app, out = create_app(), tmp_path / "t.json"
    args = ["train", "--dataset", "digits", "--network", "mlp", "--epochs", "3"]
    r = CliRunner().invoke(
        app, [*args, "--schedule", "rs2", "--schedule-option", "ratio=0.2", "--output", str(out)]
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(out.read_text())
    assert summary["schedule"] == {"name": "rs2", "options": {"ratio": 0.2}}
    assert [h["samples"] for h in summary["history"]] == [math.ceil(0.2 * 1438)] * 3
    assert summary["cost"]["training"]["samples"] == 3 * math.ceil(0.2 * 1438)
    r = CliRunner().invoke(
        app,
        ["run", "--method", "uniform", "--fraction", "1", "--seed", "0", "--epochs", "2",
         "--network", "mlp", "--protocol", "epochs", "--schedule", "infobatch",
         "--output", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    runs = [json.loads(p.read_text()) for p in (tmp_path / "run" / "runs").rglob("*.json")]
    by = {r["key"]["method"]: r for r in runs}
    assert "schedule" not in by["full"]["key"]  # the full-data model stays the reference
    assert by["uniform"]["key"]["schedule"]["name"] == "infobatch"
    assert sum(h["samples"] for h in by["uniform"]["history"]) <= 2 * 1438
    adaptive = ["--schedule", "adaptive", "--schedule-option", "method=uniform",
                "--schedule-option", "warmup=1", "--schedule-option", "every=1"]  # fmt: skip
    r = CliRunner().invoke(app, [*args, *adaptive, "--output", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(out.read_text())
    assert [h["samples"] for h in summary["history"]] == [1438, 144, 144]  # 10% after warm-up
    assert summary["cost"]["reselection"]["seconds"] > 0
    r = CliRunner().invoke(app, [*args, *adaptive[:2], "--schedule-option", "method=nope"])
    assert r.exit_code == 2 and "unknown method 'nope'" in r.output
    before_any_work = ["run", "--protocol", "epochs", "--output", str(tmp_path / "no")]
    for bad, message in (
        ([*adaptive[:4], "--fraction", "0.5"], "run it with --method uniform --fraction 1"),
        (["--schedule", "nope"], "unknown schedule 'nope'"),
    ):
        r = CliRunner().invoke(app, [*before_any_work, *bad])
        assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "no").exists()


def test_reselection_time_is_counted_once_and_apart_from_training():
    import time

    class Slow(Fixed):
        """A model-reading schedule whose planning takes 0.3 s (test schedule)."""

        uses_model = True

        def plan(self, epoch, model=None):
            time.sleep(0.3)
            return self.fixed

    result = train_model(
        _net(), _data(), TrainConfig(epochs=2, augment=False), CPU,
        schedule=Slow(EpochPlan(np.arange(12))),
    )  # fmt: skip
    training, reselection = result.costs["training"], result.costs["reselection"]
    assert reselection.seconds >= 0.6 and training.seconds < 0.3  # 24 samples, a linear model
    assert result.history[-1]["seconds"] == pytest.approx(training.seconds + reselection.seconds)
