"""A results folder as a markdown table: mean test accuracy (%) over seeds per method and
fraction, the gap to ``uniform`` in parentheses, the best per column in bold, methods in
order of their mean gap, and how many seeds each cell has when they differ.

Usage: python benchmarks/results_table.py runs/fashion-mnist-bn [--methods a,b,...]
       [--fractions 0.005,0.01,...] [--std] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from paper_claims import load


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--methods", default=None, help="comma-separated (default: all)")
    ap.add_argument("--fractions", default=None, help="comma-separated (default: all)")
    ap.add_argument("--std", action="store_true", help="add the standard deviation over seeds")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: all)")
    args = ap.parse_args()
    acc = load(args.results, {int(x) for x in args.seeds.split(",")} if args.seeds else None)
    fractions = sorted(
        {f for _, f in acc if f < 1.0}
        if args.fractions is None
        else {float(f) for f in args.fractions.split(",")}
    )
    methods = sorted({m for m, _ in acc} - {"full", "uniform"})
    if args.methods:
        methods = [m for m in args.methods.split(",") if m != "uniform"]
    mean = {k: statistics.mean(v) for k, v in acc.items() if v}
    base = {f: mean.get(("uniform", f)) for f in fractions}

    def gap(m: str) -> float:
        gaps = [mean[(m, f)] - b for f, b in base.items() if (m, f) in mean and b is not None]
        return statistics.mean(gaps) if gaps else float("-inf")

    rows = ["uniform", *sorted(methods, key=gap, reverse=True)]
    best = {f: max((mean[(m, f)] for m in rows if (m, f) in mean), default=None) for f in fractions}
    counts = {len(acc[k]) for k in acc if k[0] in rows and k[1] in fractions}
    print("| method | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |")
    print("|---" * (len(fractions) + 1) + "|")
    for m in rows:
        cells = []
        for f in fractions:
            if (m, f) not in mean:
                cells.append("-")
                continue
            v = mean[(m, f)]
            text = f"{v:.2f}"
            if args.std and len(acc[(m, f)]) > 1:
                text += f" ± {statistics.stdev(acc[(m, f)]):.2f}"
            if m != "uniform" and base[f] is not None:
                text += f" ({v - base[f]:+.2f})"
            if len(counts) > 1:
                text += f" n={len(acc[(m, f)])}"
            cells.append(f"**{text}**" if v == best[f] else text)
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
