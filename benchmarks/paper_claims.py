"""Which of the DeepCore paper's findings hold in a results folder? One row per claim.

The claims (Guo, Zhao & Bai 2022, Sec. 4.1, on CIFAR-10): graph cut is the best method at
small fractions; Cal and facility location beat random at the smallest; most methods fall
below random at <= 10%; forgetting is on a par with random at 10-30%; GraNd and the
uncertainty scores beat random at 40-60%; Glister and GraNd are among the best at 60-90%.

Each rule was first checked on the paper's own Table 1 (``--paper``; every claim holds
there, and a test keeps it so): a rule that failed on the paper's numbers would judge the
rule, not the method. A verdict is **holds**, **fails** or **inconclusive**. On results
with two or more seeds a comparison counts only where a paired t test over the seeds tells
the two apart (p <= 5%, uncorrected); a comparison inside the seeds' noise, a fraction
where uniform is within noise of the full-data model (saturated), or one seed, makes that
part inconclusive. The paper's table gives means only (5 seeds); they are taken at face
value, as the paper does.

With ``--original FOLDER`` (a run of the same grid under ``--variant original``), the methods
found there replace their default-variant rows, so the claims are also judged under the
original code's rules.

Usage: python benchmarks/paper_claims.py runs/fashion-mnist-bn [--original FOLDER]
       [--seeds 0,1]
       python benchmarks/paper_claims.py --paper
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepcore_core.experiment.records import RunRecord
from deepcore_core.stats import ALPHA, paired_gap

UNCERTAINTY = ("least-confidence", "entropy", "margin")
ON_PAR = 1.0  # points: "on a par with random" means within this of uniform
TABLE1 = Path(__file__).parent / "data" / "deepcore-table1.json"
Acc = dict[tuple[str, float], dict[int, float]]


class Cells:
    """Accuracies (%) per (method, fraction) and seed, and the three-way comparison."""

    def __init__(self, acc: Acc, means_only: bool = False) -> None:
        self.acc, self.means_only = acc, means_only

    def fractions(self, low: float = 0.0, high: float = 1.0) -> list[float]:
        """The fractions in [low, high] that have uniform."""
        return sorted(f for m, f in self.acc if m == "uniform" and low <= f <= high)

    def methods(self, f: float) -> list[str]:
        """The selection methods at ``f`` (not uniform, not the full-data model)."""
        return sorted(m for m, g in self.acc if g == f and m not in ("uniform", "full"))

    def mean(self, m: str, f: float) -> float:
        return float(np.mean(list(self.acc[(m, f)].values())))

    def compare(self, a: str, b: str, f: float, fb: float | None = None) -> int:
        """+1: ``a`` above ``b`` at ``f`` (``b`` at ``fb``), -1: below, 0: not told apart."""
        va, vb = self.acc[(a, f)], self.acc[(b, f if fb is None else fb)]
        if self.means_only:
            d = np.mean(list(va.values())) - np.mean(list(vb.values()))
            return int(np.sign(d))
        gap = paired_gap(va, vb)
        if gap is None or gap.seeds < 2 or not gap.p <= ALPHA:
            return 0
        return int(np.sign(gap.mean))

    def saturated(self, f: float) -> bool:
        """Whether uniform at ``f`` cannot be told from the full-data model."""
        return ("full", 1.0) in self.acc and self.compare("uniform", "full", f, 1.0) >= 0


def verdict(outcomes: list[int]) -> str:
    """holds: no part against and more parts for than undecided; fails: more parts against
    than for; otherwise inconclusive."""
    pos, neg = outcomes.count(1), outcomes.count(-1)
    if not outcomes:
        return "inconclusive"
    if neg == 0 and pos > outcomes.count(0):
        return "holds"
    return "fails" if neg > pos else "inconclusive"


def pct(f: float) -> str:
    return f"{100 * f:g}%"


def _best_at_small(c: Cells) -> tuple[list[int], str]:
    out, ev = [], []
    for f in c.fractions(high=0.1):
        if ("graph-cut", f) not in c.acc:
            continue
        others = sorted([*c.methods(f), "uniform"], key=lambda m: -c.mean(m, f))
        top = next(m for m in others if m != "graph-cut")
        if others[0] == "graph-cut":
            out.append(1 if c.means_only else max(c.compare("graph-cut", top, f), 0))
        else:
            out.append(min(c.compare("graph-cut", others[0], f), 0))
        rank = others.index("graph-cut") + 1
        ev.append(f"{pct(f)}: rank {rank} ({c.mean('graph-cut', f) - c.mean('uniform', f):+.1f})")
    return out, ", ".join(ev)


def _cal_and_fl(c: Cells) -> tuple[list[int], str]:
    out, ev = [], []
    for f in c.fractions(high=0.01):
        pair = [m for m in ("cal", "facility-location") if (m, f) in c.acc]
        if len(pair) == 2:
            out.append(min(c.compare(m, "uniform", f) for m in pair))
            gaps = ", ".join(f"{m} {c.mean(m, f) - c.mean('uniform', f):+.1f}" for m in pair)
            ev.append(f"{pct(f)}: {gaps}")
    return out, "; ".join(ev)


def _most_below(c: Cells) -> tuple[list[int], str]:
    out, ev = [], []
    for f in c.fractions(high=0.1):
        sides = [c.compare(m, "uniform", f) for m in c.methods(f)]
        n, below, above = len(sides), sides.count(-1), sides.count(1)
        out.append(1 if below * 2 > n else -1 if above * 2 >= n else 0)
        ev.append(f"{pct(f)}: {below} of {n} below, {above} above")
    return out, "; ".join(ev)


def _forgetting_on_par(c: Cells) -> tuple[list[int], str]:
    out, ev = [], []
    for f in c.fractions(0.1, 0.3):
        if ("forgetting", f) not in c.acc:
            continue
        gap = paired_gap(c.acc[("forgetting", f)], c.acc[("uniform", f)])
        if c.means_only or gap is None or gap.seeds < 2:
            d = c.mean("forgetting", f) - c.mean("uniform", f)
            out.append((1 if abs(d) <= ON_PAR else -1) if c.means_only else 0)
            ev.append(f"{pct(f)}: {d:+.2f}")
            continue
        lo, hi = gap.low, gap.high
        out.append(
            1 if lo >= -ON_PAR and hi <= ON_PAR else -1 if lo > ON_PAR or hi < -ON_PAR else 0
        )
        ev.append(f"{pct(f)}: {gap.mean:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    return out, ", ".join(ev)


def _grand_and_uncertainty(c: Cells) -> tuple[list[int], str]:
    out, ev = [], []
    for f in c.fractions(0.4, 0.6):
        ms = [m for m in ("grand", *UNCERTAINTY) if (m, f) in c.acc]
        if ms:
            out.append(min(c.compare(m, "uniform", f) for m in ms))
            ev.append(f"{pct(f)}: " + ", ".join(
                f"{m} {c.mean(m, f) - c.mean('uniform', f):+.2f}" for m in ms
            ))  # fmt: skip
    return out, "; ".join(ev)


def _glister_and_grand(c: Cells) -> tuple[list[int], str]:
    out, ev = [], []
    for f in c.fractions(0.6, 0.9):
        ms = [m for m in ("glister", "grand") if (m, f) in c.acc]
        if not ms:
            continue
        if c.saturated(f):
            out.append(0)
            ev.append(f"{pct(f)}: saturated (uniform {c.mean('uniform', f):.2f} = full data)")
            continue
        everyone = [*c.methods(f), "uniform"]
        parts, ranks = [], []
        for m in ms:
            rank = 1 + sum(c.mean(o, f) > c.mean(m, f) for o in everyone)
            beaten = sum(c.compare(o, m, f) == 1 for o in everyone if o != m)
            parts.append(1 if rank <= 3 else -1 if beaten >= 3 else 0)
            ranks.append(f"{m} rank {rank}")
        out.append(min(parts))
        ev.append(f"{pct(f)}: " + ", ".join(ranks))
    return out, "; ".join(ev)


CLAIMS: list[tuple[str, Callable[[Cells], tuple[list[int], str]]]] = [
    ("graph cut is the best method at fractions <= 10%", _best_at_small),
    ("Cal and facility location beat random at fractions <= 1%", _cal_and_fl),
    ("most methods are below random at fractions <= 10%", _most_below),
    (f"forgetting is on a par with random (within {ON_PAR:g} point) at 10-30%", _forgetting_on_par),
    ("GraNd and the uncertainty scores beat random at 40-60%", _grand_and_uncertainty),
    ("Glister and GraNd are among the best 3 at 60-90%", _glister_and_grand),
]


def claims(c: Cells) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence) rows; a claim whose cells are missing is left out."""
    rows = []
    for text, rule in CLAIMS:
        outcomes, evidence = rule(c)
        if outcomes:
            rows.append((text, verdict(outcomes), evidence))
    return rows


def load(folder: Path, seeds: set[int] | None = None) -> Acc:
    """(method, fraction) -> seed -> test accuracy (%) of the runs that did not diverge."""
    acc: Acc = defaultdict(dict)
    path = folder / "results.jsonl" if folder.is_dir() else folder
    for line in path.read_text().splitlines():
        if line.strip():
            r = RunRecord(**json.loads(line))
            if not r.diverged and (seeds is None or r.key["seed"] in seeds):
                acc[(r.key["method"], float(r.key["fraction"]))][r.key["seed"]] = 100 * r.accuracy
    return acc


def paper_table() -> Acc:
    """The paper's Table 1 as one 'seed' of means per cell, the full-data model included."""
    t = json.loads(TABLE1.read_text())
    acc: Acc = {("full", 1.0): {0: t["full"]}}
    for m, values in t["methods"].items():
        for f, v in zip(t["fractions"], values, strict=True):
            acc[(m, f)] = {0: v}
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="?")
    ap.add_argument("--paper", action="store_true", help="judge the paper's own Table 1")
    ap.add_argument("--original", type=Path, help="results of the same grid, --variant original")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: all)")
    args = ap.parse_args()
    if args.paper:
        variants = {
            "the paper's Table 1 (CIFAR-10, ResNet-18, means of 5 seeds)": (paper_table(), True)
        }
    elif args.results is None:
        ap.error("give a results folder or --paper")
    else:
        seeds = {int(x) for x in args.seeds.split(",")} if args.seeds else None
        default = load(args.results, seeds)
        variants = {"default rules": (default, False)}
        if args.original:
            orig = load(args.original, seeds)
            methods = {m for m, _ in orig} - {"uniform", "full"}
            merged = {k: v for k, v in default.items() if k[0] not in methods}
            merged.update({k: v for k, v in orig.items() if k[0] in methods})
            variants["original rules"] = (merged, False)
    for name, (acc, means_only) in variants.items():
        print(f"\n### {name}\n")
        print("| claim | verdict | evidence (gap to random in points) |\n|---|---|---|")
        for claim, verdict_, ev in claims(Cells(acc, means_only)):
            print(f"| {claim} | {verdict_} | {ev} |")


if __name__ == "__main__":
    main()
