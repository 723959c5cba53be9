"""Run records and their summaries (mean ± std over seeds), as stored and as reported."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core._io import atomic_write
from deepcore_core.errors import DeepcoreError

FULL = "full"
BASELINE = "uniform"


@dataclasses.dataclass
class RunRecord:
    """One finished run: a method at a fraction, a seed and a target network."""

    key: dict[str, Any]
    accuracy: float
    best_accuracy: float
    selection_seconds: float
    train_seconds: float
    size: int
    history: list[dict[str, float]]
    #: the code, libraries, device, threads and augmentation that made it
    #: (:mod:`deepcore_core.provenance`; empty in records made before it was kept)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: each stage's cost (:mod:`deepcore_core.cost`) with the run's marginal and
    #: from-scratch totals and whether jobs shared the cores; empty in older records
    cost: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dataclasses.asdict(self)

    @property
    def diverged(self) -> bool:
        """Whether training diverged (no accuracy, or a non-finite final training loss)."""
        last = self.history[-1].get("train_loss", 0.0) if self.history else 0.0
        return not np.isfinite(self.accuracy) or not np.isfinite(last)


def load_record(path: Path) -> RunRecord:
    """Read one run file."""
    return RunRecord(**json.loads(path.read_text()))


def accuracy_text(row: dict[str, Any]) -> str:
    """``mean ± std`` in %, or ``mean (n=1)`` when only one run counts."""
    if row["runs"] - row["diverged"] == 1:
        return f"{100 * row['mean']:.2f} (n=1)"
    return f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}"


def cell_text(row: dict[str, Any]) -> str:
    """A table cell: ``mean ± std (gap)`` and any collapsed seeds, named."""
    text = accuracy_text(row)
    gap = gap_text(row)
    if gap:
        text += f" ({gap})"
    for seed, acc in sorted(row.get("collapsed", {}).items()):
        text += f" [seed {seed} collapsed: {100 * acc:.1f}]"
    return text


#: run-key fields that identify a run's place in the grid, not its settings
_GRID = {"method", "fraction", "network", "seed", "options"}


def check_same_settings(records: list[RunRecord]) -> None:
    """Raise if the records were made with different settings (they must not be averaged).

    Every field of the run keys other than the grid position (method, fraction, network,
    seed) must agree across the records that have it; a method's options must agree across
    its records. The error names the first differing setting and its values.
    """
    seen: dict[str, dict[str, int]] = {}
    for r in records:
        for name, value in _settings(r.key).items():
            seen.setdefault(name, {}).setdefault(value, 0)
            seen[name][value] += 1
    for name, values in sorted(seen.items()):
        if len(values) > 1:
            counts = ", ".join(f"{v} in {n} run{'s' * (n > 1)}" for v, n in values.items())
            raise DeepcoreError(
                f"the results mix settings: {name} is {counts}; report each setting from its "
                "own output folder (a report never averages across settings)"
            )


def _settings(key: dict[str, Any]) -> dict[str, str]:
    out = {k: json.dumps(v, sort_keys=True) for k, v in key.items() if k not in _GRID}
    train = key.get("train")
    if isinstance(train, dict):
        del out["train"]
        out.update({f"train.{k}": json.dumps(v) for k, v in train.items() if k != "seed"})
    for name in ("balance", "revision"):  # each method's own pool and rule revision
        if name in out:
            out[f"{name} of {key['method']}"] = out.pop(name)
    if "options" in key:
        out[f"options of {key['method']}"] = json.dumps(key["options"], sort_keys=True)
        if "selection_lr" not in key and isinstance(train, dict):  # stored only when it differs
            out["selection_lr"] = json.dumps(train.get("lr"))
    return out


#: a run this many points (of accuracy, as a fraction) below its row's median seed collapsed
COLLAPSE = 0.15


def summarize(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Per (method, fraction, network): mean and std of final accuracy over seeds, each
    seed's accuracy (``by_seed``), the runs more than 15 points below the row's median
    (``collapsed``, seed -> accuracy; still in the mean), and the paired gap to ``uniform``
    (``gap``, a :class:`~deepcore_core.stats.Gap`) with its false-discovery-rate adjusted
    p-value across the table (``q``)."""
    groups: dict[tuple[str, float, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.key["method"], r.key["fraction"], r.key["network"]), []).append(r)
    rows = []
    for (method, fraction, network), rs in sorted(groups.items(), key=_order):
        acc = np.array([r.accuracy if not r.diverged else np.nan for r in rs], dtype=float)
        ok = acc[np.isfinite(acc)]
        by_seed = {int(r.key["seed"]): float(a) for r, a in zip(rs, acc, strict=True)}
        median = float(np.median(ok)) if ok.size else float("nan")
        rows.append(
            {
                "method": method,
                "fraction": fraction,
                "network": network,
                "runs": len(rs),
                "diverged": int(len(acc) - len(ok)),
                "mean": float(ok.mean()) if ok.size else float("nan"),
                "std": float(ok.std(ddof=1)) if ok.size > 1 else 0.0,
                "by_seed": by_seed,
                "collapsed": {s: a for s, a in by_seed.items() if a < median - COLLAPSE},
                "selection_seconds": float(np.mean([r.selection_seconds for r in rs])),
                "size": int(np.mean([r.size for r in rs])),
            }
        )
    _add_gaps(rows)
    return rows


def _add_gaps(rows: list[dict[str, Any]]) -> None:
    """Each row's paired gap to ``uniform`` at its fraction and network, and the q-values."""
    from deepcore_core.stats import gaps_with_q

    base = {(r["fraction"], r["network"]): r for r in rows if r["method"] == BASELINE}
    pairs = {
        i: (r["by_seed"], base[(r["fraction"], r["network"])]["by_seed"])
        for i, r in enumerate(rows)
        if r["method"] not in (BASELINE, FULL) and (r["fraction"], r["network"]) in base
    }
    gaps = gaps_with_q(pairs)
    for i, r in enumerate(rows):
        r["gap"], r["q"] = gaps.get(i, (None, float("nan")))


def gap_text(row: dict[str, Any]) -> str:
    """The gap to uniform in points, ``*`` when it survives the FDR correction (q <= 5%)."""
    from deepcore_core.stats import ALPHA

    gap = row.get("gap")
    if gap is None:
        return ""
    mark = "*" if np.isfinite(row["q"]) and row["q"] <= ALPHA else ""
    return f"{100 * gap.mean:+.2f}{mark}"


def _order(item: tuple[tuple[str, float, str], Any]) -> tuple[int, str, float, str]:
    method, fraction, network = item[0]
    rank = 0 if method == FULL else 1 if method == BASELINE else 2
    return rank, method, fraction, network


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: rows methods, columns fractions (x networks), mean +- std in %, the
    gap to uniform (``*``: significant after the FDR correction) and collapsed seeds."""
    nets = sorted({r["network"] for r in rows})
    fractions = sorted({r["fraction"] for r in rows if r["method"] != FULL})
    cols = [(f, n) for n in nets for f in fractions]
    by = {(r["method"], r["fraction"], r["network"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = ["method"] + [f"{f:g}" + (f" {n}" if len(nets) > 1 else "") for f, n in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = []
        for f, n in cols:
            r = by.get((m, 1.0, n)) if m == FULL else by.get((m, f, n))
            cells.append("-" if r is None else cell_text(r))
        lines.append("| " + " | ".join([m, *cells]) + " |")
    return "\n".join(lines)


def summary_legend(rows: list[dict[str, Any]], out: Path) -> str:
    """What :func:`format_summary`'s table shows, in one line (and a second naming any
    collapsed runs)."""
    seeds = max((len(r["by_seed"]) for r in rows), default=0)
    text = (
        f"test accuracy (%) after the last epoch, mean ± std over {seeds} seed(s); in "
        "parentheses the gap to uniform in points, paired by seed, * where it is significant "
        f"(paired t, 5% false-discovery rate over the table); results in {out}/"
    )
    collapsed = sum(len(r.get("collapsed", {})) for r in rows)
    if collapsed:
        text += (
            f"\n{collapsed} run(s) collapsed (over 15 points below their row's median seed): "
            "named in their cells and kept in the means"
        )
    return text


def write_summary(records: list[RunRecord], out: Path) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.md`` (atomically) and return the rows."""
    rows = summarize(records)
    with atomic_write(out / "summary.csv", "w") as fh:
        fh.write("method,fraction,network,runs,mean,std,size,selection_seconds\n")
        for r in rows:
            fh.write(
                f"{r['method']},{r['fraction']:g},{r['network']},{r['runs']},"
                f"{r['mean']:.6f},{r['std']:.6f},{r['size']},"
                f"{r['selection_seconds']:.3f}\n"
            )
    with atomic_write(out / "summary.md", "w") as fh:
        fh.write(format_summary(rows) + "\n")
    return rows
