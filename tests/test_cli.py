from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepcore_core import Selection
from deepcore_core.cli import create_app
from deepcore_core.testing import synthetic_inputs


@pytest.fixture
def cli():
    runner = CliRunner()
    app = create_app()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


@pytest.fixture
def arrays(tmp_path):
    d = synthetic_inputs()
    for k, v in d.items():
        np.save(tmp_path / f"{k}.npy", v)
    return tmp_path


def test_list_methods_table_and_json(cli):
    r = cli("list-methods")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split()[:4] == ["method", "family", "needs", "distribution"]
    assert max(map(len, lines)) <= 100
    assert lines[2].split()[:2] == ["uniform", "baseline"]
    r = cli("list-methods", "--json")
    (m,) = json.loads(r.output)
    assert m["name"] == "uniform" and m["distribution"] == "deepcore-core"
    assert m["summary"].startswith("Uniform random sampling")
    assert json.loads(cli("list-methods", "--family", "baseline", "--json").output)[0]["name"]
    r = cli("list-methods", "--family", "nope")
    assert r.exit_code == 2 and "no methods of family 'nope'" in r.output


def test_plugins_and_version(cli):
    r = cli("plugins", "--all", "--json")
    names = {p["name"] for p in json.loads(r.output)}
    assert {"deepcore_core.builtin.uniform", "deepcore_core.builtin.stages"} <= names
    assert "deepcore_core.builtin" not in cli("plugins").output
    r = cli("--version")
    assert r.exit_code == 0 and r.output.startswith("deepcore-core ") and "Python 3." in r.output


def test_select_writes_selection(cli, arrays):
    out = arrays / "out.npz"
    r = cli(
        "select",
        "--method",
        "uniform",
        "--labels",
        str(arrays / "labels.npy"),
        "--fraction",
        "0.25",
        "--seed",
        "4",
        "--output",
        str(out),
    )
    assert r.exit_code == 0, r.output
    sel = Selection.load(out)
    assert len(sel) == 13 and sel.meta["seed"] == 4 and sel.meta["balance"] is True
    assert (arrays / "out.json").exists()


def test_select_budget_no_balance_and_config(cli, arrays):
    cfg = arrays / "c.yaml"
    cfg.write_text(
        f"method: uniform\nbudget: 7\nbalance: false\nseed: 9\n"
        f"features: {arrays / 'features.npy'}\noutput: {arrays / 'c.npz'}\n"
    )
    r = cli("select", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    sel = Selection.load(arrays / "c.npz")
    assert len(sel) == 7 and sel.meta["seed"] == 9 and sel.meta["balance"] is False
    # a flag on the command line wins over the file
    r = cli("select", "--config", str(cfg), "--budget", "3")
    assert r.exit_code == 0 and len(Selection.load(arrays / "c.npz")) == 3


def bad(cli, arrays, *args):
    out = arrays / "bad.npz"
    r = cli("select", "--output", str(out), *args)
    assert r.exit_code == 2, r.output
    assert not out.exists() and not (arrays / "bad.json").exists()
    return r.output.strip().splitlines()[-1]


def test_bad_inputs_one_line_exit_2_nothing_written(cli, arrays):
    y = str(arrays / "labels.npy")
    x = str(arrays / "features.npy")
    assert "unknown method 'unifrom'; did you mean 'uniform'" in bad(
        cli, arrays, "--method", "unifrom", "--labels", y, "--fraction", "0.1"
    )
    assert "fraction must be a finite number, got 'nan'" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--fraction", "nan"
    )
    for f in ("0", "-1", "1.5"):
        assert f"fraction must be in (0, 1], got {float(f)!r}" in bad(
            cli, arrays, "--method", "uniform", "--labels", y, "--fraction", f
        )
    assert "fraction must be a number, got 'abc'" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--fraction", "abc"
    )
    assert "budget must be in [1, N=52], got 100" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--budget", "100"
    )
    assert "budget must be an integer, got 'x'" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--budget", "x"
    )
    for seed in ("-1", str(2**70)):  # numpy and torch refuse these far into the run
        assert f"seed must be in [0, 2**63 - 1], got {seed}" in bad(
            cli, arrays, "--method", "uniform", "--labels", y, "--fraction", "0.1", "--seed", seed
        )
    np.save(arrays / "short.npy", np.zeros(10))
    assert "disagree on the number of samples" in bad(
        cli,
        arrays,
        "--method",
        "uniform",
        "--labels",
        str(arrays / "short.npy"),
        "--features",
        x,
        "--fraction",
        "0.1",
    )
    np.save(arrays / "nan.npy", np.full((52, 2), np.nan))
    assert "features contains NaN or inf" in bad(
        cli,
        arrays,
        "--method",
        "uniform",
        "--labels",
        y,
        "--features",
        str(arrays / "nan.npy"),
        "--fraction",
        "0.1",
    )
    assert "labels file" in bad(
        cli,
        arrays,
        "--method",
        "uniform",
        "--labels",
        str(arrays / "nope.npy"),
        "--fraction",
        "0.1",
    )
    (arrays / "junk.npy").write_text("not an array")
    np.save(arrays / "objects.npy", np.array([{"a": 1}], dtype=object))
    for junk in ("junk.npy", "objects.npy"):
        msg = bad(
            cli, arrays, "--method", "uniform", "--labels", str(arrays / junk), "--fraction", "0.1"
        )
        assert "not a valid array file" in msg and "numpy.save" in msg and "unsafely" not in msg
        assert ("Python objects" in msg) == (junk == "objects.npy") != ("header" in msg)
    assert "balanced selection needs labels" in bad(
        cli, arrays, "--method", "uniform", "--features", x, "--fraction", "0.1"
    )
    assert "unknown option 'k' for method 'uniform'" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--fraction", "0.1", "--option", "k=3"
    )
    assert "--option must look like key=value" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--fraction", "0.1", "--option", "k"
    )
    assert "give the size as fraction (--fraction) or budget (--budget), not both" in bad(
        cli, arrays, "--method", "uniform", "--labels", y, "--fraction", "0.1", "--budget", "2"
    )
    assert "give the coreset size" in bad(cli, arrays, "--method", "uniform", "--labels", y)
    assert "no method given" in bad(cli, arrays, "--labels", y, "--fraction", "0.1")


def test_bad_config_files(cli, arrays):
    y = str(arrays / "labels.npy")
    (arrays / "bad.yaml").write_text("method: [unclosed\n")
    assert "is not valid YAML at line" in bad(cli, arrays, "--config", str(arrays / "bad.yaml"))
    (arrays / "key.yaml").write_text("methd: uniform\n")
    assert "unknown key 'methd'" in bad(cli, arrays, "--config", str(arrays / "key.yaml"))
    assert "did you mean 'method'" in bad(cli, arrays, "--config", str(arrays / "key.yaml"))
    (arrays / "list.yaml").write_text("- 1\n")
    assert "must hold a mapping" in bad(cli, arrays, "--config", str(arrays / "list.yaml"))
    assert "does not exist" in bad(cli, arrays, "--config", str(arrays / "none.yaml"))
    (arrays / "seed.yaml").write_text("seed: abc\nmethod: uniform\nfraction: 0.1\n")
    assert "seed must be an integer, got 'abc'" in bad(
        cli, arrays, "--config", str(arrays / "seed.yaml"), "--labels", y
    )


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_listings_wrap_and_never_cut(width):
    """Every word of every cell is shown, within the width, at any terminal size."""
    from deepcore_core.cli.common import format_table

    summary = "Contrastive active learning: mean divergence from the k nearest neighbours; kept."
    rows = [["cal", "boundary", "features,probabilities", "deepcore-boundary", summary]] * 2
    header = ["method", "family", "needs", "distribution", "summary"]
    text = format_table(rows, header, width=width)
    assert all(len(line) <= width for line in text.splitlines())
    words = text.split()
    assert all(w in words for w in summary.split()) and "…" not in text
