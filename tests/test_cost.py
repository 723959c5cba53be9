"""Cost accounting: every stage's seconds and samples, reused stages marked, resumed runs
keeping the time of their finished part."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepcore_core.cost import StageCost, measure, totals
from deepcore_core.data.sources import TensorSource
from deepcore_core.engine.config import TrainConfig
from deepcore_core.engine.training import train_model
from deepcore_core.experiment import Experiment, make_config
from deepcore_core.testing import Confidence, GradNorm, host_with


def test_measure_and_totals_follow_the_reused_marks():
    with measure(samples=5) as c:
        sum(range(10_000))
    assert c.seconds > 0 and c.cpu_seconds >= 0 and c.samples == 5
    stages = {
        "selection_model": StageCost(10.0, 9.0, 100, reused=True).as_dict(),
        "scoring": StageCost(1.0).as_dict(),
        "training": StageCost(4.0, 4.0, 40).as_dict(),
    }
    assert totals(stages) == {"marginal_seconds": 5.0, "from_scratch_seconds": 15.0}
    assert StageCost.of(stages["selection_model"]) == StageCost(10.0, 9.0, 100, True)


def test_a_resumed_run_keeps_the_time_of_its_finished_part(tmp_path):
    images = torch.randint(0, 255, (40, 1, 4, 4), dtype=torch.uint8)
    source = TensorSource(images, torch.arange(40) % 2, [0.5], [0.25])
    config = TrainConfig(epochs=3, batch_size=8, augment=False)
    ckpt = tmp_path / "run.pt"

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))

    first = train_model(net(), source, config, torch.device("cpu"), checkpoint=ckpt)
    assert first.costs["training"].samples == 3 * 40
    assert [h["seconds"] for h in first.history] == sorted(h["seconds"] for h in first.history)
    again = train_model(net(), source, config, torch.device("cpu"), checkpoint=ckpt)
    # the checkpoint holds every epoch: nothing is trained again, and the cost is the first's
    assert first.costs["training"].seconds > 0
    assert again.costs["training"].seconds == pytest.approx(
        first.costs["training"].seconds, abs=1e-5
    )
    assert again.costs["training"].samples == 3 * 40
    assert again.seconds == pytest.approx(first.seconds, abs=1e-5)


def test_records_charge_the_shared_selection_model_once_and_to_every_method(tmp_path):
    cfg = make_config(
        {
            "methods": ["confidence", "uniform", "grad-norm"],
            "seeds": [0],
            "epochs": 1,
            "selection_epochs": 2,
            "selection_network": "mlp",
            "networks": ["mlp"],
            "output": str(tmp_path / "out"),
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    records = Experiment(cfg, host_with(Confidence, GradNorm), log=lambda m: None).run()
    by = {r.key["method"]: r.cost for r in records}
    full = by["full"]
    assert set(full["stages"]) == {"training", "evaluation"} and not full["shared_cores"]
    assert full["stages"]["training"]["samples"] == 1438  # one epoch of digits' 1,438
    model = [by[m]["stages"]["selection_model"] for m in ("confidence", "grad-norm")]
    assert sum(1 for c in model if not c.get("reused")) == 1  # paid by the first method only
    assert model[0]["seconds"] == model[1]["seconds"] > 0  # and charged to both from scratch
    assert model[0]["samples"] == 2 * 1438
    for m in ("confidence", "grad-norm"):
        c = by[m]
        assert {"embedding", "scoring", "picking", "training"} <= set(c["stages"])
        assert c["from_scratch_seconds"] >= c["marginal_seconds"] > 0
    assert "selection_model" not in by["uniform"]["stages"]  # uniform runs first, trains nothing


def test_a_method_that_uses_no_model_is_not_charged_for_a_shared_one():
    from deepcore_core import SelectionContext
    from deepcore_core.workflow import StageOutputs, make_selection

    host = host_with(Confidence)
    costs = {"selection_model": StageCost(9.0), "embedding": StageCost(1.0)}
    shared = StageOutputs(probs=np.full((20, 2), 0.5, dtype=np.float32), costs=costs)
    for method, charged in (("uniform", set()), ("confidence", {"selection_model", "embedding"})):
        ctx = SelectionContext(n=20, labels=np.arange(20) % 2)
        shared.fill(ctx)
        run = make_selection(host, host.create_selector(method), ctx, fraction=0.5)
        reused = {k for k, c in run.costs.items() if c.reused}
        assert reused == charged, method
        assert set(run.outputs.costs) == set(costs)  # kept for the seed's next method


def _record(method, fraction, seed, acc, stages, history, schedule=None):
    from deepcore_core.experiment.records import RunRecord

    key = {"method": method, "fraction": fraction, "seed": seed, "network": "n"}
    if schedule:
        key["schedule"] = schedule
    return RunRecord(key, acc, acc, 0.0, 0.0, 10, history, {}, {"stages": stages})


def test_cost_rows_against_a_hand_computation():
    from deepcore_core.cost_table import cost_rows, cost_table

    def hist(accs, step):  # evaluations every epoch, `step` seconds of training each
        return [{"test_accuracy": a, "seconds": step * (i + 1)} for i, a in enumerate(accs)]

    full = [
        _record("full", 1.0, s, 0.90, {"training": {"seconds": 100.0},
                "evaluation": {"seconds": 7.0}}, hist([0.5, 0.89, 0.90], 100 / 3))
        for s in (0, 1)
    ]  # fmt: skip
    shared = {"seconds": 40.0, "reused": True}
    dual = [
        _record("dual", 0.3, 0, 0.88, {"selection_model": {"seconds": 40.0},
                "training": {"seconds": 30.0}}, hist([0.7, 0.88, 0.88], 10.0)),
        _record("dual", 0.3, 1, 0.86, {"selection_model": shared,
                "training": {"seconds": 30.0}}, hist([0.7, 0.80, 0.86], 10.0)),
    ]  # fmt: skip
    schedule = {"name": "infobatch", "options": {"ratio": 0.5}}
    ib = [_record("uniform", 1.0, 0, 0.90, {"training": {"seconds": 60.0}},
                  hist([0.6, 0.895, 0.90], 20.0), schedule)]  # fmt: skip
    rows = {r["label"]: r for r in cost_rows(full + dual + ib)}
    target = 0.99 * 0.90  # 0.891
    assert rows["full"]["speedup"] == pytest.approx(1.0)
    assert rows["full"]["reach_seconds"] == pytest.approx(100.0)  # 0.89 < 0.891: third epoch
    d = rows["dual"]
    assert d["from_scratch"] == pytest.approx(70.0) and d["marginal"] == pytest.approx(50.0)
    assert d["speedup"] == pytest.approx(100 / 70)
    assert d["reach_seconds"] is None and target > 0.88  # neither seed reaches 0.891
    u = rows["uniform + infobatch (ratio=0.5)"]
    assert u["speedup"] == pytest.approx(100 / 60) and u["reach_seconds"] == pytest.approx(40.0)
    text = cost_table(list(rows.values()))
    assert "| dual | 0.3 | 87.00 ± 1.41 | 70.0 | 50.0 | 1.43x | not reached |" in text
    old = _record("full", 1.0, 0, 0.9, {"training": {"seconds": 5.0}}, [{"test_accuracy": 0.9}])
    assert cost_table(cost_rows([old])).endswith("| 1.00x | - |")  # no curve: nothing to say
