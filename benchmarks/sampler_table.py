"""One table of the training-dynamics methods and of every score with every sampler.

Reads the results of ``docs/results/fashion-mnist/grid-dynamics.yaml`` (the methods with
their own samplers; forgetting, EL2N and AUM there are the ``top`` rows) and of the
``grid-sampler-*.yaml`` grids, and prints Markdown: test accuracy (%) mean ± std over seeds
and the gap to uniform (trained in each folder on the same seeds; the gap is taken against
the uniform rows of the same folder), with the number of seeds, for the fractions given.

Usage: python benchmarks/sampler_table.py runs [--fractions 0.1,0.3,0.5]
       python benchmarks/sampler_table.py docs/results/fashion-mnist --committed
(``--committed``: the committed layout, the main grid's results.jsonl in the folder itself and
the sampler grids' under samplers/)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepcore_core.experiment.records import RunRecord
from deepcore_core.stats import ALPHA, Gap, gaps_with_q, paired_gap

#: folder (under the runs root) -> sampler label; the first holds the methods' own samplers
FOLDERS = {
    "fashion-mnist-bn": "own",
    "fashion-mnist-sampler-stratified": "stratified",
    "fashion-mnist-sampler-beta": "beta",
    "fashion-mnist-sampler-band": "band",
}
#: the same folders as committed under docs/results/fashion-mnist
COMMITTED = {".": "own", **{f"samplers/{s}": s for s in ("stratified", "beta", "band")}}
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


def cell(acc: dict[int, float], gap: Gap | None, q: float) -> str:
    """``mean ± std (gap, n seeds)``: the gap paired by seed, ``*`` where its FDR-adjusted
    p-value ``q`` is at most 5%."""
    if not acc:
        return "-"
    v = np.array(list(acc.values()))
    mean = gap.mean if gap is not None else float("nan")
    std = f" ± {v.std(ddof=1):.2f}" if v.size > 1 else ""
    return f"{v.mean():.2f}{std} ({mean:+.2f}{'*' if q <= ALPHA else ''}, n={v.size})"


def main() -> None:
    """Print the two tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--fractions", default="0.1,0.3,0.5")
    ap.add_argument("--committed", action="store_true", help="the committed folder layout")
    args = ap.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    folders = COMMITTED if args.committed else FOLDERS
    data = {label: load(args.root / name) for name, label in folders.items()}
    own_rows = [("own", m, m) for m in ("uniform", *OWN)]
    score_rows = [(label, m, "top" if label == "own" else label) for m in SCORES
                  for label in ("own", "stratified", "beta", "band")]  # fmt: skip
    pairs = {
        (label, m, f): (data[label].get((m, f), {}), data[label].get(("uniform", f), {}))
        for label, m, _ in own_rows + score_rows
        for f in fractions
    }
    gaps = gaps_with_q({k: ab for k, ab in pairs.items() if k[1] != "uniform"})
    head = "| method | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |"
    rule = "|---" * (len(fractions) + 1) + "|"
    print("Each method with its own sampler (gap to uniform paired by seed in parentheses;")
    print("* where it survives a Benjamini-Hochberg FDR correction at 5% over both tables)\n")
    print(head + "\n" + rule)
    for label, m, _ in own_rows:
        cells = [_cell(pairs, gaps, (label, m, f)) for f in fractions]
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nScores x samplers (top: the grid above)\n")
    print("| score | sampler | " + head[len("| method | ") :] + "\n" + "|---" + rule)
    for label, m, name in score_rows:
        cells = [_cell(pairs, gaps, (label, m, f)) for f in fractions]
        print(f"| {m} | {name} | " + " | ".join(cells) + " |")


def _cell(pairs: dict, gaps: dict, k: tuple[str, str, float]) -> str:
    """A cell; uniform's own row shows its zero gap, untested (not counted in the FDR)."""
    gap, q = gaps.get(k, (paired_gap(*pairs[k]), float("nan")))
    return cell(pairs[k][0], gap, q)


if __name__ == "__main__":
    main()
