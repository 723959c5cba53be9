from __future__ import annotations

import numpy as np

from deepcore_core import select
from deepcore_core.builtin.uniform import Uniform
from deepcore_core.testing import check_selector


def test_uniform_conformance():
    check_selector(Uniform)


def test_uniform_is_roughly_uniform():
    counts = np.zeros(20)
    for seed in range(400):
        counts[select("uniform", labels=np.zeros(20, int), budget=5, seed=seed).indices] += 1
    # each index is picked with probability 1/4: 100 expected, sd ~8.7
    assert counts.min() > 60 and counts.max() < 140
