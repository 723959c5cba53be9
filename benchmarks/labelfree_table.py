"""Label-free selection next to the supervised rows: a markdown table and the goal's verdict.

Rows: every method of the label-free results (labels hidden during selection; a method run
with options appears once per set of options, named with them), each with its
mean test accuracy (%) over seeds, the standard deviation and the gap to the label-free
``uniform`` paired by seed (``*`` where it survives a Benjamini-Hochberg correction at 5%
over the table); then the supervised reference rows: uniform per class (``--supervised``,
the main grid) and, per fraction, the best supervised method of the ``--best`` results
(named in the cell). The verdict lines check the goal: the best label-free method above
uniform at every fraction, and within one point of the best supervised one at 30% and 50%.

Usage: python benchmarks/labelfree_table.py docs/results/fashion-mnist/labelfree/results.jsonl
       --supervised docs/results/fashion-mnist/results.jsonl
       --best docs/results/fashion-mnist/dynamics-30/results.jsonl [--best ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from paper_claims import Acc, load

from deepcore_core.experiment.records import RunRecord
from deepcore_core.stats import ALPHA, gaps_with_q


def load_labelled(path: Path) -> Acc:
    """(method, fraction) -> seed -> accuracy (%), a method with options named with them
    (``prototype (keep: hard)``), so that two rules of one method stay two rows."""
    acc: Acc = defaultdict(dict)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = RunRecord(**json.loads(line))
        if r.diverged:
            continue
        options = r.key.get("options") or {}
        label = r.key["method"]
        if options:
            label += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(options.items())) + ")"
        acc[(label, float(r.key["fraction"]))][r.key["seed"]] = 100 * r.accuracy
    return dict(acc)


def _mean(values: dict[int, float]) -> float:
    return statistics.mean(values.values())


def main() -> None:
    """Print the table and the verdict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--supervised", type=Path, required=True)
    ap.add_argument("--best", type=Path, action="append", default=[])
    args = ap.parse_args()
    free = load_labelled(args.results)
    fractions = sorted({f for m, f in free if m == "uniform"})
    methods = sorted({m for m, _ in free} - {"uniform"})
    gaps = gaps_with_q(
        {
            (m, f): (free[(m, f)], free[("uniform", f)])
            for m in methods
            for f in fractions
            if (m, f) in free and ("uniform", f) in free
        }
    )
    head = "| method | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |"
    print(head)
    print("|---" * (len(fractions) + 1) + "|")

    def cell(acc: Acc, m: str, f: float, gap: bool = True) -> str:
        v = acc.get((m, f))
        if not v:
            return "-"
        sd = statistics.stdev(v.values()) if len(v) > 1 else 0.0
        out = f"{_mean(v):.2f} ± {sd:.2f}"
        g, q = gaps.get((m, f), (None, float("nan"))) if gap else (None, float("nan"))
        if g is not None:
            out += f" ({g.mean:+.2f}{'*' if q <= ALPHA else ''})"
        return out

    order = sorted(
        methods,
        key=lambda m: (
            -statistics.mean(
                _mean(free[(m, f)]) - _mean(free[("uniform", f)])
                for f in fractions
                if (m, f) in free
            )
        ),
    )
    row = " | ".join(cell(free, "uniform", f) for f in fractions)
    print(f"| uniform (no labels) | {row} |")
    for m in order:
        print(f"| {m} (no labels) | " + " | ".join(cell(free, m, f) for f in fractions) + " |")
    sup = load(args.supervised)
    print(
        "| uniform per class (labels) | "
        + " | ".join(cell(sup, "uniform", f, gap=False) for f in fractions)
        + " |"
    )
    best: dict[float, tuple[float, str, str]] = {}
    for path in args.best:
        acc = load(path)
        for (m, f), v in acc.items():
            if m in ("uniform", "full") or f not in fractions or not v:
                continue
            if f not in best or _mean(v) > best[f][0]:
                best[f] = (_mean(v), m, cell(acc, m, f, gap=False))
    print(
        "| best supervised (labels) | "
        + " | ".join(f"{best[f][1]}: {best[f][2]}" if f in best else "-" for f in fractions)
        + " |"
    )
    print()
    for f in fractions:
        top = max(order, key=lambda m: _mean(free[(m, f)]) if (m, f) in free else float("-inf"))
        g, q = gaps[(top, f)]
        assert g is not None
        side = "above" if g.mean > 0 else "below"
        sig = "significant" if q <= ALPHA else "not significant"
        line = (
            f"- {100 * f:g}%: best label-free {top} {_mean(free[(top, f)]):.2f}, {side} "
            f"uniform by {abs(g.mean):.2f} ({sig})"
        )
        if f in best:
            short = best[f][0] - _mean(free[(top, f)])
            where = f"{short:.2f} points below" if short > 0 else f"{-short:.2f} points above"
            line += f"; {where} the best supervised, {best[f][1]} {best[f][0]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
