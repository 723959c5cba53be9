"""Sampling rules over any score: brute-force definitions, determinism, the plugin hook."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
from typer.testing import CliRunner

from deepcore_core import DeepcoreError, PluginHost, hookimpl, select
from deepcore_core.cli import create_app
from deepcore_core.samplers import (
    Band,
    Beta,
    Ranking,
    Sampler,
    Stratified,
    Top,
    beta_parameters,
    ccs_drop,
    water_fill,
)

RNG = np.random.default_rng


def ranking(n=200, seed=0, high_first=True):
    return Ranking(RNG(seed).normal(size=n), high_first)


def test_top_is_the_front_of_the_ranking():
    r = ranking()
    pos = Top().sample(r, 20, RNG(1))
    assert sorted(pos.tolist()) == sorted(np.argsort(-r.scores)[:20].tolist())
    low = Top().sample(Ranking(r.scores, False), 20, RNG(1))
    assert sorted(low.tolist()) == sorted(np.argsort(r.scores)[:20].tolist())


def brute_stratified_counts(scores, high_first, k, bins, drop):
    """The CCS rule written out plainly: drop, equal-width bins, smallest bins first."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: -scores[i] if high_first else scores[i])
    rest = order[min(math.floor(drop * n), n - k) :]
    lo, hi = min(scores[i] for i in rest), max(scores[i] for i in rest)
    members = [[] for _ in range(bins)]
    for i in rest:
        b = bins - 1 if hi == lo else min(int((scores[i] - lo) / ((hi - lo) / bins)), bins - 1)
        members[b].append(i)
    budget, left = {}, k
    by_size = sorted(range(bins), key=lambda b: len(members[b]))
    for pos, b in enumerate(by_size):
        share = -(-left // (bins - pos))  # ceil
        budget[b] = min(len(members[b]), share)
        left -= budget[b]
    return rest, members, budget


@pytest.mark.parametrize(("k", "drop", "bins"), [(20, 0.0, 10), (50, 0.3, 50), (150, 0.1, 7)])
def test_stratified_matches_the_ccs_rule(k, drop, bins):
    r = ranking(n=400, seed=3)
    pos = Stratified({"bins": bins, "drop": drop}).sample(r, k, RNG(5))
    assert len(pos) == k == len(set(pos.tolist()))
    rest, members, budget = brute_stratified_counts(r.scores.tolist(), True, k, bins, drop)
    assert set(pos.tolist()) <= set(rest)  # the hardest share is gone
    for b, want in budget.items():
        assert len(set(pos.tolist()) & set(members[b])) == want


def test_stratified_default_drop_follows_the_pruning_rate():
    assert [ccs_drop(r) for r in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)] == [0, 0, 0.1, 0.2, 0.3, 0.3]
    r = ranking(n=1000, seed=4)
    pos = Stratified().sample(r, 100, RNG(0))  # 90% pruned: the 300 highest are dropped
    assert not set(pos.tolist()) & set(np.argsort(-r.scores)[:300].tolist())


def test_water_fill_takes_small_strata_whole_and_is_exact():
    sizes = np.array([2, 50, 0, 7, 30])
    take = water_fill(sizes, 40)
    assert take.sum() == 40 and take[0] == 2 and take[2] == 0 and take[3] == 7
    assert (take <= sizes).all() and abs(int(take[1]) - int(take[4])) <= 1


def test_band_keeps_the_middle_of_the_ranking():
    r = ranking(n=101, seed=2)
    pos = Band().sample(r, 21, RNG(0))
    ranks = np.empty(101, int)
    ranks[np.argsort(-r.scores)] = np.arange(101)
    assert sorted(ranks[pos].tolist()) == list(range(40, 61))


def test_beta_probabilities_are_dual_density_over_positions():
    n, k = 500, 50
    r = ranking(n=n, seed=6)
    p = Beta().probabilities(r, k, RNG(0))
    ranks = np.empty(n, int)
    ranks[np.argsort(-r.scores)] = np.arange(n)
    x = (ranks + 0.5) / n
    anchor = x[np.argsort(-r.scores)[:10]].mean()
    a, b = beta_parameters(anchor, 0.9, 4.0)
    assert b == pytest.approx(15 * (1 - anchor) * (1 - 0.9**4)) and a == pytest.approx(16 - b)
    ref = scipy.stats.beta.pdf(x, a, b)
    np.testing.assert_allclose(p, ref / ref.sum(), rtol=1e-6, atol=1e-11)
    # low pruning rates favour the front, high ones move away from it
    front = np.argsort(-r.scores)[:100]
    assert Beta().probabilities(r, 400, RNG(0))[front].sum() > p[front].sum()


def test_beta_uses_a_method_s_own_variable_and_weights():
    n = 300
    x = RNG(1).uniform(size=n)
    w = RNG(2).uniform(size=n)
    r = Ranking(RNG(3).normal(size=n), True, {"beta_x": x, "beta_weight": w})
    p = Beta().probabilities(r, 30, RNG(0))
    anchor = x[np.argsort(-r.scores)[:10]].mean()
    a, b = beta_parameters(anchor, 0.9, 4.0)
    ref = scipy.stats.beta.pdf(x, a, b) * w
    np.testing.assert_allclose(p, ref / ref.sum(), rtol=1e-6, atol=1e-11)


@pytest.mark.parametrize("cls", [Top, Stratified, Beta, Band])
def test_every_sampler_is_exact_and_deterministic(cls):
    r = Ranking(np.repeat([1.0, 2.0, 3.0], 40), True)  # heavy ties
    a = cls().sample(r, 30, RNG(9))
    assert len(a) == 30 == len(set(a.tolist())) and a.min() >= 0 and a.max() < 120
    assert np.array_equal(a, cls().sample(r, 30, RNG(9)))
    assert len(cls().sample(r, 120, RNG(9))) == 120


def test_samplers_through_select_and_metadata():
    scores = RNG(0).normal(size=300)
    labels = np.repeat([0, 1, 2], 100)
    sel = select("uniform", labels=labels, fraction=0.1)  # not a score method: no sampler
    assert "sampler" not in sel.meta
    with pytest.raises(DeepcoreError, match="picks its samples itself"):
        select("uniform", labels=labels, fraction=0.1, sampler="band")
    with pytest.raises(DeepcoreError, match="unknown sampler 'bnad'; did you mean 'band'"):
        PluginHost().create_sampler("bnad")
    with pytest.raises(DeepcoreError, match="invalid options for sampler 'stratified': bins"):
        PluginHost().create_sampler("stratified", {"bins": 0})
    with pytest.raises(DeepcoreError, match="option 'c_d' of sampler 'beta' must be a finite"):
        PluginHost().create_sampler("beta", {"c_d": "inf"})
    del scores


class EveryOther(Sampler):
    """A third-party rule: every other sample of the ranking from the front."""

    name = "every-other"

    def sample(self, ranking, k, rng):
        return ranking.order(rng)[::2][:k]


class ThirdParty:
    @hookimpl
    def register_samplers(self, register):
        register(EveryOther)


def test_a_plugin_sampler_works_with_any_score_method():
    from deepcore_core.testing import host_with
    from tests.test_variants import Ends

    host = host_with(Ends)
    host.register(ThirdParty(), "third-party")
    assert "every-other" in host.samplers
    scores = np.arange(20.0)
    sel = select("ends", scores=scores, budget=4, balance=False, host=host, sampler="every-other")
    assert sorted(sel.indices.tolist()) == [13, 15, 17, 19]
    assert sel.meta["sampler"] == {"name": "every-other", "options": {}}


def test_a_bad_sampler_registration_marks_the_plugin():
    class Bad:
        @hookimpl
        def register_samplers(self, register):
            register(object)

    host = PluginHost(load_entrypoints=False)
    host.register(Bad(), "bad")
    _ = host.samplers
    assert host.records["bad"].status == "error"
    assert "not a Sampler subclass" in host.records["bad"].error


def test_cli_sampler_and_its_options(tmp_path):
    from deepcore_core.testing import host_with
    from tests.test_variants import Ends

    app = create_app(host_with(Ends))
    np.save(tmp_path / "s.npy", np.arange(100.0))
    out = tmp_path / "sel.npz"
    args = ["select", "--method", "ends", "--scores", str(tmp_path / "s.npy"), "--budget", "10"]
    args += ["--no-balance", "--output", str(out)]
    r = CliRunner().invoke(app, [*args, "--sampler", "band"])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sampler"]["name"] == "band"
    r = CliRunner().invoke(app, [*args, "--sampler", "stratified", "--sampler-option", "bins=5"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["sampler"]["options"]["bins"] == 5
    r = CliRunner().invoke(app, [*args, "--sampler-option", "bins=5"])
    assert r.exit_code == 2 and "--sampler-option needs --sampler" in r.output
    r = CliRunner().invoke(app, [*args, "--sampler", "stratified", "--sampler-option", "bins"])
    assert r.exit_code == 2 and "--sampler-option must look like key=value" in r.output


def test_list_samplers_names_every_rule_and_its_options():
    r = CliRunner().invoke(create_app(), ["list-samplers", "--json"])
    assert r.exit_code == 0, r.output
    items = {i["name"]: i for i in json.loads(r.output)}
    assert set(items) == {"top", "stratified", "beta", "band"}
    assert [o["name"] for o in items["stratified"]["options"]] == ["bins", "drop"]
    text = CliRunner().invoke(create_app(), ["list-samplers"]).output
    assert "stratified" in text and "bins=50" in text
