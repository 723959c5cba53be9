from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from deepcore_core import PluginHost, select
from deepcore_core.testing import check_selector
from deepcore_example_prototypes import PrototypeDistance


def test_conformance():
    check_selector(PrototypeDistance)
    check_selector(PrototypeDistance, options={"keep": "easy"})


def test_scores_against_direct_computation():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 13.0], [10.0, 7.0]])
    y = np.array([0, 0, 1, 1, 1])
    sel = select(
        "prototype-distance",
        features=x,
        labels=y,
        budget=2,
        host=PluginHost(load_entrypoints=True, strict=True),
    )
    assert np.allclose(sel.scores, [1.0, 1.0, 0.0, 3.0, 3.0])
    # class 0 keeps index 0 (tie broken by index), class 1 keeps 3 (tie with 4, lower index)
    assert sel.indices.tolist() == [0, 3]
    easy = select(
        "prototype-distance",
        features=x,
        labels=y,
        budget=2,
        options={"keep": "easy"},
        host=PluginHost(load_entrypoints=True),
    )
    assert easy.indices.tolist() == [0, 2]


def test_registered_through_its_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "deepcore_core", "--strict-plugins", "list-methods", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "DEEPCORE_STRICT_PLUGINS": "1"},
    ).stdout
    by_name = {m["name"]: m for m in json.loads(out)}
    m = by_name["prototype-distance"]
    assert m["distribution"] == "deepcore-example-prototypes" and m["plugin"] == "prototypes"
    assert m["family"] == "example" and m["needs"] == ["labels", "features"]
