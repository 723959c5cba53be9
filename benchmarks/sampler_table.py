"""One table of the training-dynamics methods and of every score with every sampler.

Reads the results of ``docs/results/fashion-mnist/grid-dynamics.yaml`` (the methods with
their own samplers; forgetting, EL2N and AUM there are the ``top`` rows) and of the
``grid-sampler-*.yaml`` grids, and prints Markdown: test accuracy (%) mean ± std over seeds
and the gap to uniform (trained in each folder on the same seeds; the gap is taken against
the uniform rows of the same folder), with the number of seeds, for the fractions given.

Usage: python benchmarks/sampler_table.py runs [--fractions 0.1,0.3,0.5]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepcore_core.experiment.records import RunRecord

#: folder (under the runs root) -> sampler label; the first holds the methods' own samplers
FOLDERS = {
    "fashion-mnist-bn": "own",
    "fashion-mnist-sampler-stratified": "stratified",
    "fashion-mnist-sampler-beta": "beta",
    "fashion-mnist-sampler-band": "band",
}
OWN = ("aum", "ccs", "dyn-unc", "dual", "tdds", "moderate", "forgetting", "el2n")
SCORES = ("forgetting", "el2n", "aum")


def load(folder: Path) -> dict[tuple[str, float], dict[int, float]]:
    """(method, fraction) -> seed -> accuracy (%), runs that diverged left out."""
    out: dict[tuple[str, float], dict[int, float]] = defaultdict(dict)
    path = folder / "results.jsonl"
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            r = RunRecord(**json.loads(line))
            if not r.diverged:
                k = r.key
                out[(k["method"], float(k["fraction"]))][int(k["seed"])] = 100 * r.accuracy
    return out


def cell(acc: dict[int, float], base: dict[int, float]) -> str:
    """``mean ± std (gap, n seeds)``; the gap is over the seeds both have."""
    if not acc:
        return "-"
    v = np.array(list(acc.values()))
    seeds = sorted(set(acc) & set(base))
    gap = np.mean([acc[s] - base[s] for s in seeds]) if seeds else float("nan")
    std = f" ± {v.std(ddof=1):.2f}" if v.size > 1 else ""
    return f"{v.mean():.2f}{std} ({gap:+.2f}, n={v.size})"


def main() -> None:
    """Print the two tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--fractions", default="0.1,0.3,0.5")
    args = ap.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    data = {label: load(args.root / name) for name, label in FOLDERS.items()}
    head = "| method | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |"
    rule = "|---" * (len(fractions) + 1) + "|"
    own = data["own"]
    print("Each method with its own sampler (gap to uniform in parentheses)\n")
    print(head + "\n" + rule)
    for m in ("uniform", *OWN):
        cells = [cell(own.get((m, f), {}), own.get(("uniform", f), {})) for f in fractions]
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nScores x samplers (top: the grid above)\n")
    print("| score | sampler | " + head[len("| method | ") :] + "\n" + "|---" + rule)
    for m in SCORES:
        for label in ("own", "stratified", "beta", "band"):
            d = data[label]
            cells = [cell(d.get((m, f), {}), d.get(("uniform", f), {})) for f in fractions]
            name = "top" if label == "own" else label
            print(f"| {m} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
