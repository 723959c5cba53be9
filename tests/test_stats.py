"""Significance over seeds: paired t intervals and the Benjamini-Hochberg correction."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from deepcore_core.experiment.records import RunRecord, summarize
from deepcore_core.provenance import UNRECORDED, code_identity
from deepcore_core.report import best_of, check_same_code, write_report
from deepcore_core.stats import fdr_adjust, paired_gap


def test_paired_gap_is_scipys_paired_t_test_and_interval():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5):
        a, b = rng.normal(0.8, 0.02, n), rng.normal(0.79, 0.02, n)
        gap = paired_gap(dict(enumerate(a)), dict(enumerate(b)))
        test = sps.ttest_rel(a, b)
        assert gap.p == pytest.approx(test.pvalue) and gap.seeds == n
        d = a - b
        half = sps.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
        assert (gap.low, gap.high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_paired_gap_pairs_by_seed_and_leaves_out_what_it_cannot_pair():
    gap = paired_gap({0: 0.9, 1: 0.8, 2: float("nan"), 5: 0.7}, {1: 0.7, 0: 0.8, 2: 0.5})
    assert gap.seeds == 2 and gap.mean == pytest.approx(0.1)  # seeds 0 and 1 only
    one = paired_gap({0: 0.9}, {0: 0.8})
    assert one.seeds == 1 and math.isnan(one.p) and math.isnan(one.low)
    assert paired_gap({3: 0.9}, {0: 0.8}) is None


def test_fdr_adjust_is_benjamini_hochberg():
    p = [0.01, 0.04, 0.03, 0.2, float("nan"), 0.005]
    q = fdr_adjust(p)
    finite = [x for x in p if not math.isnan(x)]
    want = sps.false_discovery_control(finite, method="bh")
    np.testing.assert_allclose([x for x in q if not math.isnan(x)], want)
    assert math.isnan(q[4])
    # by hand: m = 5 tests; sorted p 0.005, 0.01, 0.03, 0.04, 0.2
    assert q[5] == pytest.approx(0.025) and q[3] == pytest.approx(0.2)


def record(method, seed, acc, fraction=0.1, prov=None):
    key = {"method": method, "fraction": fraction, "seed": seed, "network": "lenet"}
    return RunRecord(key, acc, acc, 0.0, 0.0, 10, [], prov or {})


def test_summary_rows_carry_the_gap_the_q_value_and_collapsed_seeds():
    uniform = [0.80, 0.81, 0.79, 0.80]
    better = [0.85, 0.86, 0.84, 0.851]
    noisy = [0.80, 0.40, 0.82, 0.81]
    recs = [record("uniform", s, a) for s, a in enumerate(uniform)]
    recs += [record("better", s, a) for s, a in enumerate(better)]
    recs += [record("noisy", s, a) for s, a in enumerate(noisy)]
    rows = {r["method"]: r for r in summarize(recs)}
    assert rows["uniform"]["gap"] is None
    assert rows["better"]["gap"].mean == pytest.approx(np.mean(better) - np.mean(uniform))
    assert rows["better"]["q"] < 0.05 and rows["noisy"]["q"] > 0.05
    assert rows["noisy"]["collapsed"] == {1: 0.40} and rows["better"]["collapsed"] == {}
    assert best_of(list(rows.values())) is rows["better"]
    tie = [record("tie", s, a + 0.001 * (-1) ** s) for s, a in enumerate(better)]
    rows = summarize(recs + tie)
    assert best_of(rows) is None  # better and tie cannot be told apart


def test_the_report_marks_significance_names_collapses_and_provenance(tmp_path):
    recs = [record("uniform", s, a) for s, a in enumerate([0.80, 0.81, 0.79])]
    recs += [record("better", s, a) for s, a in enumerate([0.85, 0.861, 0.84])]
    recs += [record("noisy", s, a) for s, a in enumerate([0.80, 0.40, 0.82])]
    md, _ = write_report(recs, tmp_path)
    assert "(+5.03*)" in md and "**" in md and "[seed 1 collapsed: 40.0]" in md
    assert "## Gap to uniform" in md and "q=" in md
    assert f"code: {UNRECORDED} (9 runs)" in md
    csv = (tmp_path / "report.csv").read_text().splitlines()
    head = csv[0].split(",")
    noisy = dict(zip(head, next(r for r in csv if r.startswith("noisy")).split(","), strict=True))
    assert noisy["collapsed_seeds"] == "1" and float(noisy["q"]) > 0.05
    one = write_report([recs[0], recs[3], recs[6]], tmp_path / "one")[0]  # seed 0
    assert "One seed per cell" in one and "**" not in one


def test_reports_refuse_mixed_code_versions_unless_told():
    from deepcore_core import DeepcoreError

    prov = {"versions": {"deepcore-core": "0.1.0"}, "checkout": {"commit": "a" * 40, "dirty": True}}
    assert code_identity(prov) == "deepcore-core 0.1.0 at aaaaaaaaaa+changes"
    other = {**prov, "checkout": {"commit": "b" * 40, "dirty": False}}
    recs = [record("uniform", 0, 0.8, prov=prov), record("uniform", 1, 0.8, prov=other)]
    with pytest.raises(DeepcoreError, match=r"different code versions: .*aaaaaaaaaa\+changes"):
        check_same_code(recs)
    assert sum(check_same_code(recs, mix_versions=True).values()) == 2
    same = [dataclasses.replace(r, provenance=prov) for r in recs]
    assert len(check_same_code(same)) == 1


def test_the_report_draws_every_figure_and_one_self_contained_html(tmp_path):
    recs = [record("uniform", s, a, f) for f in (0.1, 0.3) for s, a in enumerate([0.8, 0.81, 0.79])]
    recs += [
        record("better", s, a, f) for f in (0.1, 0.3) for s, a in enumerate([0.85, 0.86, 0.84])
    ]
    recs += [record("worse", s, a, f) for f in (0.1, 0.3) for s, a in enumerate([0.6, 0.62, 0.61])]
    recs += [record("full", s, 0.9, 1.0) for s in range(3)]
    families = {"better": "geometry", "worse": "uncertainty"}
    md, files = write_report(recs, tmp_path, families=families, html=True)
    assert "## Cost against the full-data model" in md and "- protocol: " in md
    names = {f.name for f in files}
    for stem in ("accuracy-lenet", "gap-lenet", "cost", "cost-accuracy-lenet"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
        assert (tmp_path / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = (tmp_path / "accuracy-lenet.svg").read_text()
    for text in ("geometry", "uncertainty", "uniform", "full data", "better", "worse"):
        assert text in panels  # one panel per family, uniform and full data in each
    assert panels.count("full data") >= 2
    heat = (tmp_path / "gap-lenet.svg").read_text()
    assert "+5.0*" in heat and "-19.0*" in heat
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 4 and "<table>" in page and "<h2>Provenance</h2>" in page
    assert "src=" not in page and 'href="http' not in page  # nothing fetched from elsewhere
