"""deepcore benchmark / report: resume, shared caches, report numbers and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepcore_core import Need, PluginHost, ScoreSelector, hookimpl
from deepcore_core.cli import create_app
from deepcore_core.engine import pretrain as pretrain_mod
from deepcore_core.experiment import Experiment, make_config
from deepcore_core.report import load_results, write_report


class Confident(ScoreSelector):
    """Most confident first (test method; needs the selection model)."""

    name = "confident"
    needs = frozenset({Need.PROBABILITIES})
    calls = 0

    def compute_scores(self, ctx):
        Confident.calls += 1
        return ctx.probs.max(1)


class Reg:
    @hookimpl
    def register_selectors(self, register):
        register(Confident)


def host():
    h = PluginHost(load_entrypoints=False)
    h.register(Reg(), "test-methods")
    return h


def config(tmp_path, **kw):
    values = {
        "methods": ["confident"],
        "fractions": [0.05, 0.2],
        "seeds": [0, 1],
        "epochs": 2,
        "selection_epochs": 1,
        "output": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
    }
    values.update(kw)
    return make_config(values)


def test_caches_are_shared_and_scores_computed_once_per_seed(tmp_path):
    before = pretrain_mod.TRAINED_COUNT["n"]
    Confident.calls = 0
    Experiment(config(tmp_path), host(), log=lambda m: None).run()
    assert pretrain_mod.TRAINED_COUNT["n"] - before == 2  # one selection model per seed
    assert Confident.calls == 2  # scores once per seed, reused across the two fractions


def test_resume_after_interruption_loses_nothing_and_repeats_nothing(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    exp = Experiment(cfg, host(), log=lambda m: None)
    total = len(exp.plan())
    trained: list[str] = []
    real = Experiment.run_one

    def counting(self, key):
        trained.append(json.dumps(key, sort_keys=True))
        if len(trained) == 4:
            raise KeyboardInterrupt  # killed in the middle of the grid
        return real(self, key)

    monkeypatch.setattr(Experiment, "run_one", counting)
    with pytest.raises(KeyboardInterrupt):
        exp.run()
    done = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(done) == 3
    Experiment(cfg, host(), log=lambda m: None).run()
    assert len(trained) == total + 1  # the interrupted run is redone, nothing else twice
    assert len(set(trained)) == total
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == total
    assert len({json.dumps(json.loads(x)["key"], sort_keys=True) for x in lines}) == total


def test_report_numbers_match_raw_results_and_plot(tmp_path):
    exp = Experiment(config(tmp_path), host(), log=lambda m: None)
    records = exp.run()
    md, _files = write_report(load_results(tmp_path / "out" / "results.jsonl"), tmp_path / "rep")
    prov = records[0].provenance  # each record says what made it
    assert prov["versions"]["deepcore-core"] and prov["device"] == "cpu"
    assert prov["threads"] >= 1 and prov["augmentation"] == "none"  # digits: no augmentation
    assert "## Provenance" in md and "- threads: " in md
    for method in ("confident", "uniform"):
        for f in (0.05, 0.2):
            acc = [
                r.accuracy for r in records if r.key["method"] == method and r.key["fraction"] == f
            ]
            cell = f"{100 * np.mean(acc):.2f} ± {100 * np.std(acc, ddof=1):.2f}"
            assert cell in md
    csv = (tmp_path / "rep" / "report.csv").read_text().splitlines()
    row = next(r for r in csv if r.startswith("confident,0.05,"))
    conf = np.mean(
        [
            r.accuracy
            for r in records
            if r.key["method"] == "confident" and r.key["fraction"] == 0.05
        ]
    )
    unif = np.mean(
        [r.accuracy for r in records if r.key["method"] == "uniform" and r.key["fraction"] == 0.05]
    )
    assert float(row.split(",")[7]) == pytest.approx(conf - unif, abs=1e-6)
    png = tmp_path / "rep" / "accuracy-lenet-bn.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "rep" / "accuracy-lenet-bn.svg").read_text()
    for label in ("uniform", "confident", "full data"):
        assert label in svg
    assert "Selection time" in md


def test_parallel_jobs_give_the_same_results(tmp_path):
    a = Experiment(config(tmp_path / "a", seeds=[0]), host(), log=lambda m: None).run(jobs=1)
    b = Experiment(
        config(tmp_path / "b", seeds=[0], methods=["uniform"]),
        PluginHost(load_entrypoints=False),
        log=lambda m: None,
    ).run(jobs=2)
    acc_a = {(r.key["method"], r.key["fraction"]): r.accuracy for r in a}
    acc_b = {(r.key["method"], r.key["fraction"]): r.accuracy for r in b}
    for key, acc in acc_b.items():
        assert acc_a[key] == acc


def test_cli_benchmark_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCORE_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    out = tmp_path / "bm"
    r = runner.invoke(
        create_app(),
        ["benchmark", "--fraction", "0.1", "--seed", "0", "--epochs", "2", "--output", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert (out / "report.md").is_file() and (out / "accuracy-lenet-bn.svg").is_file()
    r = runner.invoke(create_app(), ["report", str(out), "--output", str(tmp_path / "rep")])
    assert r.exit_code == 0 and "| uniform |" in r.output
    r = runner.invoke(create_app(), ["report", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "do not exist" in r.output
    r = runner.invoke(create_app(), ["benchmark", "--jobs", "x", "--output", str(out)])
    assert r.exit_code == 2 and "jobs must be an integer, got 'x'" in r.output


def test_resume_from_a_copied_results_file(tmp_path):
    cfg = config(tmp_path, seeds=[0])
    first = Experiment(cfg, host(), log=lambda m: None).run()
    out = tmp_path / "out"
    lines = (out / "results.jsonl").read_text()
    import shutil

    shutil.rmtree(out / "runs")
    (out / "results.jsonl").write_text(lines + '{"truncated": ')  # a torn last line
    trained = []
    real = Experiment.run_one
    Experiment.run_one = lambda self, key: trained.append(key) or real(self, key)
    try:
        again = Experiment(cfg, host(), log=lambda m: None).run()
    finally:
        Experiment.run_one = real
    assert trained == []
    assert [r.accuracy for r in again] == [r.accuracy for r in first]


def test_diverged_runs_are_recorded_and_reported(tmp_path):
    cfg = config(
        tmp_path,
        seeds=[0],
        lr=1e6,
        min_lr=0.0,
        methods=["uniform"],
        fractions=[0.2],
        selection_epochs=1,
    )
    records = Experiment(cfg, PluginHost(load_entrypoints=False), log=lambda m: None).run()
    assert all(np.isnan(r.accuracy) for r in records)
    md, _ = write_report(records, tmp_path / "rep")
    assert "diverged (1)" in md
    csv = (tmp_path / "rep" / "report.csv").read_text().splitlines()
    assert csv[0].split(",")[4] == "diverged" and csv[1].split(",")[4] == "1"


def test_results_jsonl_is_repaired_on_resume(tmp_path):
    cfg = config(tmp_path, seeds=[0], fractions=[0.1])
    Experiment(cfg, host(), log=lambda m: None).run()
    out = tmp_path / "out"
    good = (out / "results.jsonl").read_text().splitlines()
    assert len(good) == 3  # full, uniform and confident
    # a lost row (killed between the run file and the append), a duplicate, a torn last line
    (out / "results.jsonl").write_text(good[0] + "\n" + good[0] + "\n" + '{"key": {"meth')
    Experiment(cfg, host(), log=lambda m: None).run()
    again = (out / "results.jsonl").read_text().splitlines()
    assert sorted(again) == sorted(good)
    # report reads a results file whose last line was cut short
    (out / "results.jsonl").write_text("\n".join(good) + '\n{"key": ')
    assert len(load_results(out / "results.jsonl")) == 3


def test_a_second_run_on_the_same_folder_stops_naming_the_holder(tmp_path):
    import os

    from deepcore_core import DeepcoreError
    from deepcore_core.experiment import Store

    cfg = config(tmp_path, seeds=[0])
    with (
        Store(tmp_path / "out").lock(),
        pytest.raises(
            DeepcoreError, match=rf"in use by another deepcore run \(pid {os.getpid()}\)"
        ),
    ):
        Experiment(cfg, host(), log=lambda m: None).run()


def test_report_never_averages_across_settings(tmp_path):
    a = Experiment(config(tmp_path, seeds=[0], epochs=1), host(), log=lambda m: None).run()
    b = Experiment(config(tmp_path, seeds=[1], epochs=2), host(), log=lambda m: None).run()
    from deepcore_core import DeepcoreError

    with pytest.raises(DeepcoreError, match=r"mix settings: train.epochs is 1 in \d+ runs, 2 in"):
        write_report(a + b, tmp_path / "rep")
    md, _ = write_report(a, tmp_path / "rep")
    assert "(n=1)" in md and "± 0.00" not in md


def test_a_damaged_stored_selection_is_made_again(tmp_path, caplog):
    import logging

    cfg = config(tmp_path, seeds=[0], fractions=[0.1])
    first = Experiment(cfg, host(), log=lambda m: None).run()
    out = tmp_path / "out"
    for p in (out / "selections").glob("*.npz"):
        p.write_bytes(b"junk")
    import shutil

    shutil.rmtree(out / "runs")
    (out / "results.jsonl").unlink()
    with caplog.at_level(logging.WARNING, logger="deepcore"):
        again = Experiment(cfg, host(), log=lambda m: None).run()
    assert "selecting again" in caplog.text
    assert [r.accuracy for r in again] == [r.accuracy for r in first]
