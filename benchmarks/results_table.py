"""A results folder as a markdown table: mean test accuracy (%) over seeds per method and
fraction, the gap to ``uniform`` paired by seed in parentheses (``*`` where it survives a
Benjamini-Hochberg false-discovery-rate correction at 5% over the table), the best of a
column in bold only where a paired t test tells it from the runner-up (p <= 5%), methods in
order of their mean gap, and how many seeds each cell has when they differ.

With ``--original DIR`` (the same grid under ``--variant original``): each method of that
folder twice, its original-rules row above its default-rules row, both against the default
folder's ``uniform`` at the same seeds (no bold).

Usage: python benchmarks/results_table.py runs/fashion-mnist-bn [--methods a,b,...]
       [--fractions 0.005,0.01,...] [--std] [--seeds 0,1] [--original DIR]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from paper_claims import Acc, load

from deepcore_core.report import best_of
from deepcore_core.stats import ALPHA, gaps_with_q


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--methods", default=None, help="comma-separated (default: all)")
    ap.add_argument("--fractions", default=None, help="comma-separated (default: all)")
    ap.add_argument("--std", action="store_true", help="add the standard deviation over seeds")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: all)")
    ap.add_argument("--original", type=Path, default=None, help="the original-rules results")
    args = ap.parse_args()
    seeds = {int(x) for x in args.seeds.split(",")} if args.seeds else None
    acc = load(args.results, seeds)
    fractions = sorted(
        {f for _, f in acc if f < 1.0}
        if args.fractions is None
        else {float(f) for f in args.fractions.split(",")}
    )
    mean = {k: statistics.mean(v.values()) for k, v in acc.items() if v}
    base = {f: mean.get(("uniform", f)) for f in fractions}
    if args.original is not None:
        orig = load(args.original, seeds)
        methods = [m for m, _ in orig if m not in ("full", "uniform")]
        if args.methods:
            methods = [m for m in args.methods.split(",") if m in methods]
        rows: list[tuple[str, Acc, str]] = [("uniform", acc, "uniform")]
        for m in dict.fromkeys(methods):
            rows += [(f"{m}, original rules", orig, m), (f"{m}, default rules", acc, m)]
        print_table(rows, fractions, base, args.std, bold=False)
        return

    def gap(m: str) -> float:
        gaps = [mean[(m, f)] - b for f, b in base.items() if (m, f) in mean and b is not None]
        return statistics.mean(gaps) if gaps else float("-inf")

    methods = sorted({m for m, _ in acc} - {"full", "uniform"})
    if args.methods:
        methods = [m for m in args.methods.split(",") if m != "uniform"]
    order = ["uniform", *sorted(methods, key=gap, reverse=True)]
    print_table([(m, acc, m) for m in order], fractions, base, args.std, bold=True)


def print_table(
    rows: list[tuple[str, Acc, str]],
    fractions: list[float],
    base: dict[float, float | None],
    std: bool,
    bold: bool,
) -> None:
    """One row per (label, accuracies, method); paired gaps to uniform in parentheses."""
    uniform = rows[0][1]
    cell = {(label, f): a[(m, f)] for label, a, m in rows for f in fractions if a.get((m, f))}
    gaps = gaps_with_q(
        {
            k: (v, uniform[("uniform", k[1])])
            for k, v in cell.items()
            if k[0] != "uniform" and ("uniform", k[1]) in uniform
        }
    )
    best = {f: _best(cell, f) if bold else None for f in fractions}
    counts = {len(v) for v in cell.values()}
    print("| method | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |")
    print("|---" * (len(fractions) + 1) + "|")
    for label, _, m in rows:
        cells = []
        for f in fractions:
            if (label, f) not in cell:
                cells.append("-")
                continue
            v = cell[(label, f)]
            text = f"{statistics.mean(v.values()):.2f}"
            if std and len(v) > 1:
                text += f" ± {statistics.stdev(v.values()):.2f}"
            g, q = gaps.get((label, f), (None, float("nan")))
            if m != "uniform" and g is not None:
                text += f" ({g.mean:+.2f}{'*' if q <= ALPHA else ''})"
            if len(counts) > 1:
                text += f" n={len(v)}"
            cells.append(f"**{text}**" if best[f] == label else text)
        print(f"| {label} | " + " | ".join(cells) + " |")


def _best(cell: dict[tuple[str, float], dict[int, float]], f: float) -> str | None:
    """The best label at ``f`` where a paired t test tells it from the runner-up (the
    reports' rule, :func:`deepcore_core.report.best_of`)."""
    rows = [
        {"label": k[0], "mean": statistics.mean(v.values()), "by_seed": v}
        for k, v in cell.items()
        if k[1] == f
    ]
    best = best_of(rows) if len(rows) > 1 else None
    return None if best is None else best["label"]


if __name__ == "__main__":
    main()
