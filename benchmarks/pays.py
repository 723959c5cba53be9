"""Does it pay? One table over the does-it-pay grids: accuracy, seconds from scratch,
speed-up over the full-data model, and the time to reach 99% of its accuracy.

Reads every ``results.jsonl`` under the given folders (each grid's output, or the committed
copies under ``docs/results/fashion-mnist/pays/``), takes the full-data model from the one
that has it, and marks the rows that meet the goal: at least 30% less total wall time than
full-data training, selection included (a speed-up of 1/0.7 = 1.43x or more), at no more than
0.3 points of accuracy lost (InfoBatch's claim, ICLR 2024).

Usage:
    python benchmarks/pays.py FOLDER... [--write DIR]

``--write DIR`` copies each grid's results into ``DIR/<grid>/results.jsonl`` (the committed
form; the table is then made from those copies).
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

from deepcore_core.cost_table import cost_rows, cost_table
from deepcore_core.experiment.records import FULL
from deepcore_core.report import load_results

#: the goal: the share of full-data wall time saved, and the most accuracy given up
SAVED, LOST = 0.30, 0.003


def results_files(folders: list[Path]) -> list[Path]:
    """Every results.jsonl under ``folders``, sorted."""
    return sorted({f for d in folders for f in Path(d).rglob("results.jsonl")})


def verdict(row: dict, full: float) -> str:
    """Whether ``row`` meets the goal against the full-data model's mean accuracy."""
    if row["label"] == FULL or row["speedup"] is None:
        return "reference" if row["label"] == FULL else "-"
    fast = row["speedup"] >= 1 / (1 - SAVED)
    close = row["accuracy"] >= full - LOST
    if fast and close:
        return "meets"
    why = [w for w, bad in (("too slow", not fast), ("loses accuracy", not close)) if bad]
    return "no: " + ", ".join(why)


def uses_to_pay(row: dict, full_seconds: float) -> str:
    """How many trainings on one static coreset pay for its selection: the least k with
    k * full >= selection + k * training (selection from scratch, training per use)."""
    selection = row["from_scratch"] - row["training"]
    if row["label"] == FULL or selection <= 0:
        return "-"
    if row["training"] >= full_seconds:
        return "never"
    return str(math.ceil(selection / (full_seconds - row["training"])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--write", type=Path, help="copy each grid's results here first")
    args = ap.parse_args()
    files = results_files(args.folders)
    if args.write:
        for f in files:
            name = f.parent.name.removeprefix("pays-")
            (args.write / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, args.write / name / "results.jsonl")
        files = results_files([args.write])
    records = [r for f in files for r in load_results(f)]
    rows = cost_rows(records)
    full = next((r["accuracy"] for r in rows if r["label"] == FULL), None)
    if full is None:
        raise SystemExit("no full-data model in these results: run grid-static.yaml first")
    full_seconds = next(r["training"] for r in rows if r["label"] == FULL)
    lines = cost_table(rows).splitlines()
    lines[0] += " trainings to pay off the selection | goal (>= 30% saved, <= 0.3 points lost) |"
    lines[1] += "---|---|"
    for i, r in enumerate(rows):
        lines[i + 2] += f" {uses_to_pay(r, full_seconds)} | {verdict(r, full)} |"
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
