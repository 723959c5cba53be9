"""benchmarks/paper_claims.py: every claim rule holds on the paper's own Table 1, and a gap
inside the seeds' noise is inconclusive, not a verdict."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import paper_claims as pc


def test_every_claim_rule_holds_on_the_papers_own_table():
    rows = pc.claims(pc.Cells(pc.paper_table(), means_only=True))
    assert len(rows) == len(pc.CLAIMS)
    assert [v for _, v, _ in rows] == ["holds"] * len(pc.CLAIMS), rows


def test_seed_noise_makes_a_claim_inconclusive_and_a_clear_gap_decides_it():
    def cells(gaps):
        acc = {("uniform", 0.5): {0: 90.0, 1: 91.0, 2: 89.0}}
        for m, g in gaps.items():
            acc[(m, 0.5)] = {s: v + g[s] for s, v in acc[("uniform", 0.5)].items()}
        return pc.Cells(acc)

    clear = {m: [1.0, 1.1, 0.9] for m in ("grand", *pc.UNCERTAINTY)}
    noisy = {**clear, "margin": [1.0, -1.0, 0.2]}
    below = {**clear, "entropy": [-1.0, -1.1, -0.9]}
    claim = dict(pc.CLAIMS)["GraNd and the uncertainty scores beat random at 40-60%"]
    assert pc.verdict(claim(cells(clear))[0]) == "holds"
    assert pc.verdict(claim(cells(noisy))[0]) == "inconclusive"
    assert pc.verdict(claim(cells(below))[0]) == "fails"
    one_seed = pc.Cells({k: {0: v[0]} for k, v in cells(clear).acc.items()})
    assert pc.verdict(claim(one_seed)[0]) == "inconclusive"  # one seed decides nothing


def test_a_saturated_fraction_is_inconclusive():
    acc = {
        ("full", 1.0): {0: 90.5, 1: 90.4, 2: 90.6},
        ("uniform", 0.7): {0: 90.6, 1: 90.3, 2: 90.5},
    }
    acc[("glister", 0.7)] = {0: 90.0, 1: 89.9, 2: 90.1}
    acc[("grand", 0.7)] = {0: 90.0, 1: 89.9, 2: 90.1}
    rows = pc.claims(pc.Cells(acc))
    assert rows[-1][1] == "inconclusive" and "saturated" in rows[-1][2]
