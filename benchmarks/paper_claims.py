"""Which of the DeepCore paper's findings hold in a results folder? One row per claim.

The claims (Guo, Zhao & Bai 2022, section 5 on CIFAR-10): graph cut is the best method at small
fractions; Cal and facility location come next; most methods fall below random at <= 10%;
forgetting is on a par with random at 10-30%; GraNd and the uncertainty scores are good at
40-60%; Glister and GraNd are the best at 60-90%. Each is checked with an explicit rule on the
mean test accuracy over seeds (printed with the numbers), so the verdict can be argued with.

With ``--original FOLDER`` (a run of the same grid under ``--variant original``), the methods
found there replace their default-variant rows, so the claims are also judged under the
original code's rules.

Usage: python benchmarks/paper_claims.py runs/fashion-mnist-bn [--original FOLDER]
       [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepcore_core.experiment.records import RunRecord

SMALL = (0.005, 0.01, 0.05, 0.1)  # "small fractions" (the paper: up to 10%)
UNCERTAINTY = ("least-confidence", "entropy", "margin")
ON_PAR = 1.0  # points: "on a par with random" means within this of uniform


def load(folder: Path, seeds: set[int] | None = None) -> dict[tuple[str, float], list[float]]:
    """(method, fraction) -> test accuracies (%) of the runs that did not diverge (of the
    given ``seeds`` only, when given)."""
    acc: dict[tuple[str, float], list[float]] = defaultdict(list)
    path = folder / "results.jsonl" if folder.is_dir() else folder
    for line in path.read_text().splitlines():
        if line.strip():
            r = RunRecord(**json.loads(line))
            if not r.diverged and (seeds is None or r.key["seed"] in seeds):
                acc[(r.key["method"], float(r.key["fraction"]))].append(100 * r.accuracy)
    return acc


def table(acc: dict[tuple[str, float], list[float]]) -> dict[float, dict[str, float]]:
    """fraction -> method -> mean accuracy (the full-data model left out)."""
    out: dict[float, dict[str, float]] = defaultdict(dict)
    for (m, f), v in acc.items():
        if m != "full":
            out[f][m] = float(np.mean(v))
    return out


def rank(means: dict[str, float], method: str) -> int:
    """1 for the best mean at that fraction."""
    return 1 + sum(v > means[method] for v in means.values())


def claims(t: dict[float, dict[str, float]]) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence) rows."""
    rows = []
    small = [f for f in SMALL if f in t and "uniform" in t[f]]

    def gap(m: str, f: float) -> str:
        return f"{t[f][m] - t[f]['uniform']:+.1f}"

    def pct(f: float) -> str:
        return f"{100 * f:g}%"

    if small and all("graph-cut" in t[f] for f in small):
        ranks = [rank(t[f], "graph-cut") for f in small]
        ok = sum(r == 1 for r in ranks) * 2 > len(ranks)
        ev = ", ".join(
            f"{pct(f)}: rank {r} ({gap('graph-cut', f)} vs random)"
            for f, r in zip(small, ranks, strict=True)
        )
        rows.append(
            (
                "graph cut is the best method at small fractions",
                "holds" if ok else "does not hold",
                ev,
            )
        )
    pair = ("cal", "facility-location")
    if small and all(m in t[f] for f in small for m in pair):
        ev_parts, hits = [], 0
        for f in small:
            r = [rank(t[f], m) for m in pair]
            hits += all(x <= 3 for x in r)
            ev_parts.append(f"{pct(f)}: cal {r[0]}, FL {r[1]}")
        ok = hits * 2 > len(small)
        rows.append(
            (
                "Cal and facility location come next (top 3)",
                "holds" if ok else "does not hold",
                "; ".join(ev_parts),
            )
        )
    if small:
        ev_parts, hits = [], 0
        for f in small:
            others = [m for m in t[f] if m != "uniform"]
            below = sum(t[f][m] < t[f]["uniform"] for m in others)
            hits += below * 2 > len(others)
            ev_parts.append(f"{pct(f)}: {below} of {len(others)}")
        ok = hits == len(small)
        rows.append(
            (
                "most methods are below random at <= 10%",
                "holds" if ok else "does not hold",
                "; ".join(ev_parts),
            )
        )
    mid = [f for f in (0.1, 0.3) if f in t and {"forgetting", "uniform"} <= set(t[f])]
    if mid:
        ok = all(abs(t[f]["forgetting"] - t[f]["uniform"]) <= ON_PAR for f in mid)
        ev = ", ".join(f"{pct(f)}: {gap('forgetting', f)}" for f in mid)
        rows.append(
            (
                f"forgetting is on a par with random (within {ON_PAR:g} point) at 10-30%",
                "holds" if ok else "does not hold",
                ev,
            )
        )
    if 0.5 in t and "uniform" in t[0.5]:
        ms = [m for m in ("grand", *UNCERTAINTY) if m in t[0.5]]
        ok = bool(ms) and all(t[0.5][m] >= t[0.5]["uniform"] - ON_PAR for m in ms)
        ev = ", ".join(f"{m} {gap(m, 0.5)} (rank {rank(t[0.5], m)})" for m in ms)
        rows.append(
            (
                f"GraNd and uncertainty are good at 50% (at most {ON_PAR:g} point below random)",
                "holds" if ok else "does not hold",
                ev,
            )
        )
    if 0.7 in t and "uniform" in t[0.7]:
        ms = [m for m in ("glister", "grand") if m in t[0.7]]
        ok = bool(ms) and all(rank(t[0.7], m) <= 3 for m in ms)
        best = max(t[0.7], key=t[0.7].get)
        ev = ", ".join(f"{m} rank {rank(t[0.7], m)} ({gap(m, 0.7)})" for m in ms)
        rows.append(
            (
                "Glister and GraNd are the best at 70% (top 3)",
                "holds" if ok else "does not hold",
                f"{ev}; best: {best} ({gap(best, 0.7)})",
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--original", type=Path, help="results of the same grid, --variant original")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: all)")
    args = ap.parse_args()
    seeds = {int(x) for x in args.seeds.split(",")} if args.seeds else None
    default = load(args.results, seeds)
    variants = {"default rules": default}
    if args.original:
        orig = load(args.original, seeds)
        methods = {m for m, _ in orig} - {"uniform", "full"}
        merged = {k: v for k, v in default.items() if k[0] not in methods}
        merged.update({k: v for k, v in orig.items() if k[0] in methods})
        variants["original rules"] = merged
    for name, acc in variants.items():
        print(f"\n### {name}\n")
        print("| claim | verdict | evidence (gap to random in points) |\n|---|---|---|")
        for claim, verdict, ev in claims(table(acc)):
            print(f"| {claim} | {verdict} | {ev} |")


if __name__ == "__main__":
    main()
