"""GreeDi, the two-round distributed greedy, in one process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepcore_core import FacilityLocation, greedi, maximize
from deepcore_core.submodular.greedi import parts_for, seeded_solver


def kernel(x: np.ndarray) -> np.ndarray:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d / d.mean()).astype(np.float32)


def fl_value(x: np.ndarray, ground: np.ndarray, chosen: np.ndarray) -> float:
    """Facility location of ``chosen`` over ``ground``, by its definition."""
    s = kernel(x[ground])
    pos = np.searchsorted(ground, chosen)
    return float(s[:, pos].max(1).astype(np.float64).sum())


def solver(x: np.ndarray):
    def solve(cands: np.ndarray, k: int) -> np.ndarray:
        order = maximize(FacilityLocation(kernel(x[cands])), k, "naive", np.random.default_rng(0))
        return cands[order]

    return solve


@pytest.mark.parametrize(("parts", "k"), [(2, 5), (4, 8), (8, 3)])
def test_greedi_value_is_within_its_bound_of_the_centralised_greedy(parts, k):
    rng = np.random.default_rng(parts)
    x = rng.normal(size=(120, 2)) + np.repeat(rng.normal(scale=4, size=(6, 2)), 20, axis=0)
    pool = np.arange(120)
    solve = solver(x)
    central = fl_value(x, pool, solve(pool, k))
    picks = greedi(pool, k, parts, np.random.default_rng(1), solve, lambda g, c: fl_value(x, g, c))
    assert picks.size == k and np.unique(picks).size == k and np.isin(picks, pool).all()
    bound = (1 - 1 / math.e) ** 2 / min(parts, k)
    ratio = fl_value(x, pool, picks) / central
    assert ratio >= bound
    assert ratio > 0.9  # far above the worst case on clustered data
    again = greedi(pool, k, parts, np.random.default_rng(1), solve, lambda g, c: fl_value(x, g, c))
    np.testing.assert_array_equal(picks, again)


def test_one_part_or_a_small_pool_is_the_plain_greedy():
    x = np.random.default_rng(0).normal(size=(30, 3))
    solve, pool = solver(x), np.arange(30)

    def value(g: np.ndarray, c: np.ndarray) -> float:
        return fl_value(x, g, c)

    np.testing.assert_array_equal(
        greedi(pool, 4, 1, np.random.default_rng(0), solve, value), solve(pool, 4)
    )
    small = greedi(pool[:4], 4, 3, np.random.default_rng(0), solve, value)
    np.testing.assert_array_equal(np.sort(small), pool[:4])
    with pytest.raises(ValueError, match="parts must be >= 1"):
        greedi(pool, 4, 0, np.random.default_rng(0), solve, value)


def test_parts_default_and_solver_seeds_depend_on_the_candidates_only():
    assert parts_for(None) == 2 and parts_for(5) == 5
    seen = []
    run = seeded_solver(
        np.random.default_rng(3), lambda c, k, r: seen.append(r.integers(1 << 30)) or c[:k]
    )
    run(np.arange(5, 15), 2)
    run(np.arange(20, 30), 2)
    run(np.arange(5, 15), 2)
    assert seen[0] == seen[2] != seen[1]


def test_a_greedi_selector_runs_its_greedy_or_greedi_by_its_options():
    import dataclasses

    from deepcore_core import GreediSelector, SelectionContext

    x = np.random.default_rng(2).normal(size=(80, 2))

    @dataclasses.dataclass(frozen=True)
    class Opts:
        distributed: str = "exact"
        parts: int | None = None

    class FL(GreediSelector):
        name = "fl-test"
        Options = Opts

        def greedy(self, ctx, pool, k, rng):
            return solver(x)(pool, k)

        def ground_value(self, ctx):
            return lambda g, c: fl_value(x, g, c)

    ctx = SelectionContext(n=80)
    pool, rng = np.arange(80), np.random.default_rng(5)
    exact = FL()
    assert not exact.collective  # one process: never collective
    np.testing.assert_array_equal(exact.pick(ctx, pool, 6, rng).indices, solver(x)(pool, 6))
    two = FL(distributed="greedi", parts=3)
    r = np.random.default_rng(7)  # the solver's seed is drawn first, then the partition
    solve = seeded_solver(r, lambda c, k, _: solver(x)(c, k))
    want = greedi(pool, 6, 3, r, solve, lambda g, c: fl_value(x, g, c))
    np.testing.assert_array_equal(two.pick(ctx, pool, 6, np.random.default_rng(7)).indices, want)
