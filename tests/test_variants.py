"""The original code's rules as named options, seeded tie-breaks, and the training protocol."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import ClassVar, Literal

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepcore_core import (
    DeepcoreError,
    Need,
    OptionError,
    ScoreSelector,
    SelectionContext,
    TrainConfig,
    original_rule,
    select,
)
from deepcore_core.cli import create_app
from deepcore_core.options import option_table, original_values, parse_options
from deepcore_core.settings import RunSettings, SelectSettings
from deepcore_core.testing import host_with, synthetic_dataset


@dataclasses.dataclass(frozen=True)
class EndOptions:
    """Options of ``ends``."""

    end: Literal["high", "low"] = original_rule("high", "low", "keeps the low end")  #: which end
    size: int = 3  #: unrelated


class Ends(ScoreSelector):
    """Scores are the dynamics' first row; keeps one end."""

    name = "ends"
    family = "test"
    needs: ClassVar[frozenset[Need]] = frozenset({Need.DYNAMICS})
    Options = EndOptions

    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        return np.asarray(ctx.dynamics.correct, dtype=float).sum(0)

    def front_is_high(self, ctx: SelectionContext) -> bool:
        return self.options.end == "high"


def test_original_values_start_the_original_variant_and_given_options_win():
    assert original_values(EndOptions) == {"end": "low"}
    assert parse_options(EndOptions, {}, "ends").end == "high"
    assert parse_options(EndOptions, {}, "ends", "original").end == "low"
    assert parse_options(EndOptions, {"end": "high"}, "ends", "original").end == "high"
    with pytest.raises(OptionError, match="variant must be one of default, original, got 'x'"):
        parse_options(EndOptions, {}, "ends", "x")
    rows = {r["name"]: r for r in option_table(EndOptions)}
    assert rows["end"]["original"] == "low" and rows["end"]["why"] == "keeps the low end"
    assert rows["end"]["doc"] == "which end" and "original" not in rows["size"]


def test_variant_reaches_the_selection_and_its_metadata():
    host = host_with(Ends)
    scores = np.arange(10.0)
    sel = select("ends", scores=scores, budget=3, balance=False, host=host, variant="original")
    assert sorted(sel.indices.tolist()) == [0, 1, 2]
    assert sel.meta["variant"] == "original" and sel.meta["options"]["end"] == "low"
    sel = select("ends", scores=scores, budget=3, balance=False, host=host)
    assert sorted(sel.indices.tolist()) == [7, 8, 9] and sel.meta["variant"] == "default"


def test_given_scores_replace_what_a_score_method_needs():
    # "ends" needs dynamics; scores given by the user make them unnecessary
    host = host_with(Ends)
    sel = select("ends", scores=np.arange(8.0), labels=np.zeros(8, int), budget=2, host=host)
    assert sorted(sel.indices.tolist()) == [6, 7]


def test_ties_are_broken_by_a_seeded_permutation():
    host = host_with(Ends)
    flat = np.zeros(500)

    def pick(seed: int) -> list[int]:
        return select(
            "ends", scores=flat, budget=40, balance=False, seed=seed, host=host
        ).indices.tolist()

    assert pick(0) == pick(0)  # deterministic for a seed
    assert pick(0) != pick(1)
    assert max(pick(0)) > 100  # no bias to the dataset's first rows
    mixed = np.repeat([3.0, 1.0], 250)  # ties only within a score level
    top = select("ends", scores=mixed, budget=40, balance=False, host=host).indices
    assert (top < 250).all()


def test_cli_variant_flag_records_and_rejects(tmp_path):
    host = host_with(Ends)
    app = create_app(host)
    np.save(tmp_path / "s.npy", np.arange(10.0))
    out = tmp_path / "sel.npz"
    r = CliRunner().invoke(
        app,
        [
            "select", "--method", "ends", "--scores", str(tmp_path / "s.npy"), "--budget", "3",
            "--no-balance", "--variant", "original", "--output", str(out),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["variant"] == "original" and meta["options"] == {"end": "low", "size": 3}
    r = CliRunner().invoke(app, ["select", "--method", "ends", "--variant", "paper"])
    assert r.exit_code == 2 and "'paper'" in r.output and "original" in r.output


def test_a_foreign_json_beside_the_output_is_never_overwritten(tmp_path):
    app = create_app()
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    (tmp_path / "sel.json").write_text('{"my": "notes"}')
    r = CliRunner().invoke(
        app,
        [
            "select", "--method", "uniform", "--labels", str(tmp_path / "y.npy"),
            "--fraction", "0.5", "--output", str(tmp_path / "sel.npz"),
        ],
    )  # fmt: skip
    assert r.exit_code == 2 and "sel.json" in r.output and "not a selection" in r.output
    assert not (tmp_path / "sel.npz").exists()
    assert json.loads((tmp_path / "sel.json").read_text()) == {"my": "notes"}
    (tmp_path / "sel.json").unlink()
    for _ in range(2):  # its own sidecar is replaced
        r = CliRunner().invoke(
            app,
            [
                "select", "--method", "uniform", "--labels", str(tmp_path / "y.npy"),
                "--fraction", "0.5", "--output", str(tmp_path / "sel.npz"),
            ],
        )  # fmt: skip
        assert r.exit_code == 0, r.output


def test_selection_schedule_follows_the_variant_and_enters_the_keys():
    s = SelectSettings()
    assert s.pretrain_spec().train.schedule == "cosine"
    o = SelectSettings(variant="original")
    assert o.pretrain_spec().train.schedule == "constant"
    explicit = SelectSettings(variant="original", selection_schedule="cosine")
    assert explicit.pretrain_spec().train.schedule == "cosine"
    assert RunSettings().rules_key() == {"ties": "seeded"}
    assert RunSettings(variant="original").rules_key() == {
        "ties": "seeded",
        "variant": "original",
        "selection_schedule": "constant",
    }


def test_fixed_iterations_and_warmup_schedule():
    c = TrainConfig(epochs=5, batch_size=4, iterations=7, warmup=0.3, min_lr=0.0)
    assert c.steps(10) == (3, 7)  # 3 steps per epoch: two full epochs and one of a single step
    assert TrainConfig(epochs=5, batch_size=4).steps(10) == (5, 15)
    lrs = [c.lr_at(i, 7) for i in range(7)]
    assert lrs[:2] == pytest.approx([0.05, 0.1])  # floor(0.3 * 7) = 2 warm-up steps
    assert lrs[2] == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 5)))
    assert "iterations" not in TrainConfig().key()  # keys made before the setting stay valid
    assert TrainConfig(iterations=3).key()["iterations"] == 3
    with pytest.raises(DeepcoreError, match="warmup must be in"):
        TrainConfig(warmup=1.0)


def test_training_runs_exactly_the_fixed_number_of_steps():
    from deepcore_core import PluginHost
    from deepcore_core.engine.training import train_model

    data = synthetic_dataset(class_sizes=(6, 5))
    model = PluginHost().networks.build("mlp", 1, 2, 8)
    lrs: list[float] = []
    cfg = TrainConfig(batch_size=4, iterations=7, augment=False, amp=False)
    res = train_model(
        model, data.train, cfg, torch.device("cpu"), callbacks=[lambda e, m: lrs.append(m["lr"])]
    )
    assert len(res.history) == 3 and res.images_per_second > 0
    assert lrs[-1] == pytest.approx(cfg.lr_at(6, 7))  # the last step is step 7 of 7
    with pytest.raises(DeepcoreError, match="train by epochs"):
        train_model(model, data.train, cfg, torch.device("cpu"), record_dynamics=True)


@pytest.mark.parametrize(("name", "params"), [("lenet-bn", 61728), ("resnet20", 272186)])
def test_batch_norm_networks(name, params):
    from deepcore_core import PluginHost

    net = PluginHost().networks.build(name, 1, 10, 28)
    assert sum(p.numel() for p in net.parameters()) == params
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    net.train()
    assert net(torch.randn(1, 1, 28, 28)).shape == (1, 10)  # a batch of one trains
