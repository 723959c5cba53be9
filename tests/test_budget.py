from __future__ import annotations

import math

import numpy as np
import pytest

from deepcore_core import DeepcoreError, allocate, plan_pools, total_budget


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [
        (100, 0.1, 10),
        (10, 0.25, 3),
        (10, 0.35, 4),
        (7, 0.5, 4),
        (5, 0.5, 3),
        (3, 0.01, 1),
        (50, 1.0, 50),
    ],
)
def test_total_rounds_half_up_and_is_at_least_one(n, fraction, expected):
    assert total_budget(n, fraction) == expected


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "abc", True])
def test_bad_fraction(bad):
    with pytest.raises(
        DeepcoreError, match=f"fraction must be a number in \\(0, 1\\], got {bad!r}"
    ):
        total_budget(10, fraction=bad)


def test_budget_checks():
    assert total_budget(10, budget=10) == 10
    with pytest.raises(DeepcoreError, match=r"budget must be in \[1, N=10\], got 11"):
        total_budget(10, budget=11)
    with pytest.raises(DeepcoreError, match=r"give the coreset size as fraction \(--fraction\)"):
        total_budget(10)
    with pytest.raises(DeepcoreError, match="not both"):
        total_budget(10, fraction=0.5, budget=3)


def brute_force_largest_remainder(sizes, total):
    n = sum(sizes.values())
    q = {c: total * s / n for c, s in sizes.items()}
    a = {c: math.floor(v) for c, v in q.items()}
    rest = total - sum(a.values())
    for c in sorted(q, key=lambda c: (-(q[c] - a[c]), -sizes[c], c))[:rest]:
        a[c] += 1
    return a


def test_allocation_matches_hamilton_when_no_class_is_tiny():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = {c: int(rng.integers(20, 200)) for c in range(int(rng.integers(2, 8)))}
        total = int(rng.integers(len(sizes) * 20, sum(sizes.values()) + 1))
        assert allocate(sizes, total) == brute_force_largest_remainder(sizes, total)


def test_allocation_invariants():
    rng = np.random.default_rng(1)
    for _ in range(500):
        sizes = {c: int(rng.integers(1, 50)) for c in range(int(rng.integers(1, 9)))}
        n = sum(sizes.values())
        total = int(rng.integers(1, n + 1))
        a = allocate(sizes, total)
        assert sum(a.values()) == total
        assert all(0 <= a[c] <= sizes[c] for c in sizes)
        if total >= len(sizes):
            assert all(a[c] >= 1 for c in sizes)


def test_tiny_classes_get_one_and_big_class_gives_way():
    assert allocate({0: 100, 1: 1, 2: 1}, 3) == {0: 1, 1: 1, 2: 1}
    assert allocate({0: 100, 1: 1, 2: 1}, 10) == {0: 8, 1: 1, 2: 1}


def test_pools():
    labels = np.array([0, 1, 0, 2, 1, 0])
    pools = plan_pools(labels, 6, 3, balance=True)
    assert [(p.label, p.indices.tolist(), p.k) for p in pools] == [
        (0, [0, 2, 5], 1),
        (1, [1, 4], 1),
        (2, [3], 1),
    ]
    (pool,) = plan_pools(None, 6, 2, balance=False)
    assert pool.indices.tolist() == list(range(6)) and pool.k == 2
    with pytest.raises(DeepcoreError, match="balanced selection needs labels"):
        plan_pools(None, 6, 2, balance=True)
