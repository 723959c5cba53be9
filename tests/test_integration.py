"""Run by ``nox -s integration`` with every plugin installed; skipped elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepcore_core import Need, PluginHost, Selection
from deepcore_core.testing import inputs_for, synthetic_inputs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("DEEPCORE_INTEGRATION"), reason="integration only"),
]


def deepcore(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCORE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "deepcore_core", *args], capture_output=True, text=True, env=full_env
    )


def host() -> PluginHost:
    return PluginHost(load_entrypoints=True, strict=True)


def test_every_plugin_loads_without_clashes():
    r = deepcore("--strict-plugins", "plugins", "--json")
    assert r.returncode == 0, r.stderr
    assert all(p["status"] == "ok" for p in json.loads(r.stdout))
    assert len(host().registry) >= 2


def test_load_and_disable_switches():
    r = deepcore("list-methods", "--json", env={"DEEPCORE_LOAD_PLUGINS": ""})
    assert [m["name"] for m in json.loads(r.stdout)] == ["uniform"]
    only = "deepcore-example-prototypes"
    r = deepcore("list-methods", "--json", env={"DEEPCORE_LOAD_PLUGINS": only})
    assert {m["distribution"] for m in json.loads(r.stdout)} == {"deepcore-core", only}
    r = deepcore("list-methods", "--json", env={"DEEPCORE_DISABLE_PLUGINS": "prototypes"})
    assert "prototype-distance" not in {m["name"] for m in json.loads(r.stdout)}


ARRAY_NEEDS = {Need.LABELS, Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS, Need.SCORES}


@pytest.mark.parametrize("method", sorted(host().registry.names()))
def test_every_array_method_selects_through_the_cli(method, tmp_path):
    info = host().registry.get(method)
    if not info.cls.needs <= ARRAY_NEEDS:
        pytest.skip(f"{method} needs a dataset and a model")
    files = []
    for key, value in inputs_for(info.cls, synthetic_inputs()).items():
        np.save(tmp_path / f"{key}.npy", value)
        files += [f"--{key}", str(tmp_path / f"{key}.npy")]
    out = tmp_path / "sel.npz"
    r = deepcore("select", "--method", method, "--fraction", "0.3", "--output", str(out), *files)
    assert r.returncode == 0, r.stderr
    assert len(Selection.load(out)) == 16


@pytest.mark.parametrize("method", sorted(host().registry.names()))
def test_every_method_on_a_custom_dataset_and_model(method, tmp_path):
    """The Python API with a Dataset and a model deepcore never saw (tests/test_user_inputs)."""
    import deepcore_core as dc
    from deepcore_core.testing import ImageBlobs, OddNet

    ds = ImageBlobs()
    info = host().registry.get(method)
    kw = {"fraction": 0.2, "device": "cpu", "host": host(), "seed": 1}
    if info.cls.needs & {Need.DYNAMICS, Need.DATASET}:  # the engine trains a network
        kw.update(selection_network="mlp", selection_epochs=2, cache_dir=str(tmp_path))
        sel = dc.select(method, dataset=ds, **kw)
    else:
        sel = dc.select(method, dataset=ds, model=OddNet(), **kw)
    assert len(sel) == 18 and sel.meta["dataset"].startswith("ImageBlobs-")
    model = {} if "selection_network" in kw else {"model": OddNet()}
    again = dc.select(method, dataset=ds, **model, **kw)
    assert again.indices.tolist() == sel.indices.tolist()  # deterministic


def test_the_python_api_example_runs():
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "python-api" / "own_data_and_model.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCORE_")}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("graph-cut: 100 of 2000 samples, weighted=False")
    assert lines[1].startswith("craig: 100 of 2000 samples, weighted=True")
    assert all(float(line.rsplit(" ", 1)[1]) > 0.5 for line in lines)


def test_the_text_classifier_example_runs():
    from pathlib import Path

    pytest.importorskip("datasets")
    script = Path(__file__).parent.parent / "examples" / "python-api" / "text_classifier.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCORE_")}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "craig: 100 of 1000 reviews, classes ['negative', 'positive']"
    assert float(lines[1].rsplit(" ", 1)[1]) > 0.8
    assert lines[2] == "kept rows: 100, columns ['input_ids', 'label', 'weight']"


def test_the_readme_examples_run(tmp_path, monkeypatch):
    """Every command and Python snippet of the README works after its install command."""
    import re
    import shlex
    from pathlib import Path

    from deepcore_core.testing import check_selector

    text = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCORE_")}
    env["DEEPCORE_CACHE"] = str(tmp_path / "cache")
    commands = [
        line
        for kind, body in blocks
        if kind == "bash"
        for line in body.splitlines()
        if line.startswith("deepcore ")
    ]
    assert len(commands) >= 3
    for line in commands:
        args = shlex.split(line)[1:]
        r = subprocess.run([sys.executable, "-m", "deepcore_core", *args], capture_output=True,
                           text=True, env=env)  # fmt: skip
        assert r.returncode == 0, f"{line}\n{r.stderr}"
    import deepcore_core.plugins as plugins

    # the snippets' dc.select uses the default host: with every plugin, as after the install
    monkeypatch.setattr(plugins, "_default_host", plugins.PluginHost(load_entrypoints=True))
    namespace: dict = {}
    snippets = [body for kind, body in blocks if kind == "python"]
    assert len(snippets) >= 3
    for body in snippets:
        if "@hookimpl" in body:  # the plugin example: a method that passes the conformance suite
            plugin: dict = {}
            exec(compile(body, "README.md", "exec"), plugin)
            check_selector(plugin["FeatureNorm"])
        else:
            exec(compile(body, "README.md", "exec"), namespace)
    assert len(namespace["sel"]) == 60 and namespace["result"].history


def test_feature_methods_run_without_labels_across_plugins():
    """With the labels hidden, every method that can run on features alone selects from given
    features, D2 with a label-free score (the labelfree plugin's prototype) included."""
    from deepcore_core import select

    x = synthetic_inputs()["features"]
    runs = {
        "kcenter": {}, "herding": {}, "prototype": {}, "semdedup": {},
        "facility-location": {"similarity": "features"}, "graph-cut": {"similarity": "features"},
        "log-determinant": {"similarity": "features"}, "moderate": {"median": "all"},
        "d2": {"score": "prototype", "drop_score": "prototype"},
    }  # fmt: skip
    for method, options in runs.items():
        sel = select(method, features=x, fraction=0.3, options=options, no_labels=True,
                     clusters=3, host=host())  # fmt: skip
        assert sel.meta["pool"]["rule"] == "per cluster", method
        assert len(sel) == round(0.3 * len(x)) and sel.meta["labels"] == "hidden", method
