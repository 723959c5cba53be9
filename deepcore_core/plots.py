"""The report's figures: accuracy against coreset size in one panel per method family, the
gap to uniform as a heatmap, and selection cost. PNG and SVG each, written atomically.

Uses matplotlib's object API (a bare ``Figure``), so the process's backend is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core._io import atomic_write
from deepcore_core.errors import RunError
from deepcore_core.experiment.records import BASELINE, FULL
from deepcore_core.stats import ALPHA

#: within a panel every method has its own colour and marker (tab10 and 10 markers)
MARKERS = "osv^DPX*<>"


def save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.svg`` in ``out_dir``."""
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        try:
            with atomic_write(path) as fh:
                fig.savefig(fh, format=ext, dpi=150, bbox_inches="tight")
        except (RuntimeError, ValueError) as exc:  # an image writer's own error (disk full)
            raise RunError(f"cannot write '{path}': {exc}") from None
        paths.append(path)
    return paths


def accuracy_panels(
    rows: list[dict[str, Any]], out_dir: Path, net: str, families: Mapping[str, str]
) -> list[Path]:
    """Accuracy against fraction, one panel per method family (``families``: method ->
    family; others under ``other``), uniform and the full-data model in every panel."""
    from matplotlib.figure import Figure

    sub = [r for r in rows if r["network"] == net]
    methods = [m for m in dict.fromkeys(r["method"] for r in sub) if m not in (FULL, BASELINE)]
    groups: dict[str, list[str]] = {}
    for m in methods:
        groups.setdefault(families.get(m, "other"), []).append(m)
    names = sorted(groups) or ["uniform"]
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False, sharey=True)
    for ax, family in zip(axes.flat, names, strict=False):
        _panel(ax, sub, groups.get(family, []), family)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(f"test accuracy against coreset size ({net}); mean over seeds, band ± std")
    fig.tight_layout()
    return save(fig, out_dir, f"accuracy-{net}")


def _panel(ax: Any, sub: list[dict[str, Any]], methods: list[str], family: str) -> None:
    import matplotlib

    colors = matplotlib.colormaps["tab10"]
    full = [r for r in sub if r["method"] == FULL]
    if full:
        ax.axhline(
            100 * full[0]["mean"], color="grey", linewidth=1, linestyle=":", label="full data"
        )
    lines = [(BASELINE, {"color": "black", "linewidth": 2.2, "linestyle": "--", "zorder": 5})]
    for i, m in enumerate(methods):
        style = {"color": colors(i % 10), "marker": MARKERS[i % len(MARKERS)], "markersize": 4}
        lines.append((m, {**style, "linewidth": 1.3}))
    for m, style in lines:
        pts = sorted((r["fraction"], r["mean"], r["std"]) for r in sub if r["method"] == m)
        if not pts:
            continue
        f, mean, std = (np.array(v) * 100 for v in zip(*pts, strict=True))
        ax.plot(f, mean, label=m, **style)
        ax.fill_between(f, mean - std, mean + std, alpha=0.08, color=style["color"])
    ax.set_xscale("log")
    ticks = sorted({100 * r["fraction"] for r in sub if r["method"] != FULL})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_title(family, fontsize=10)
    ax.set_xlabel("coreset fraction (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="lower right")


def gap_heatmap(rows: list[dict[str, Any]], out_dir: Path, net: str) -> list[Path]:
    """The paired gap to uniform (points), method x fraction, on a diverging scale centred
    on 0 (linear within one point, logarithmic beyond); ``*`` where it survives the
    false-discovery-rate correction."""
    from matplotlib.colors import SymLogNorm
    from matplotlib.figure import Figure

    sub = [r for r in rows if r["network"] == net and r.get("gap") is not None]
    methods = list(dict.fromkeys(r["method"] for r in sub))
    fractions = sorted({r["fraction"] for r in sub})
    by = {(r["method"], r["fraction"]): r for r in sub}
    gap = np.full((len(methods), len(fractions)), np.nan)
    for (m, f), r in by.items():
        gap[methods.index(m), fractions.index(f)] = 100 * r["gap"].mean
    fig = Figure(figsize=(1.1 * len(fractions) + 2.6, 0.32 * len(methods) + 1.4))
    ax = fig.add_subplot()
    span = float(np.nanmax(np.abs(gap))) if np.isfinite(gap).any() else 1.0
    span = max(span, 1e-6)
    # symmetric and logarithmic past one point: a +1 gap shows next to a -50 one
    norm = SymLogNorm(linthresh=1.0, vmin=-span, vmax=span, base=10)
    image = ax.imshow(gap, cmap="RdBu", norm=norm, aspect="auto")
    for (m, f), r in by.items():
        mark = "*" if np.isfinite(r["q"]) and r["q"] <= ALPHA else ""
        value = gap[methods.index(m), fractions.index(f)]
        ax.text(
            fractions.index(f), methods.index(m), f"{value:+.1f}{mark}", ha="center",
            va="center", fontsize=7, color="white" if abs(value) > 0.6 * span else "black",
        )  # fmt: skip
    ax.set_xticks(range(len(fractions)), [f"{100 * f:g}%" for f in fractions])
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    ax.set_title(f"gap to uniform (points, {net}); * FDR-significant", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="points")
    fig.tight_layout()
    return save(fig, out_dir, f"gap-{net}")


def cost_chart(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Selection seconds per method, mean over seeds, at its costliest fraction (a method's
    scores are computed once per seed, at the first fraction; log scale)."""
    from matplotlib.figure import Figure

    cost: dict[str, float] = {}
    for r in rows:
        if r["method"] != FULL:
            cost[r["method"]] = max(cost.get(r["method"], 1e-3), r["selection_seconds"])
    order = sorted(cost, key=lambda m: cost[m])
    fig = Figure(figsize=(6.0, 0.28 * len(order) + 1.2))
    ax = fig.add_subplot()
    ax.barh(range(len(order)), [cost[m] for m in order], color="#4c72b0")
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("selection time (s, mean over seeds, costliest fraction)")
    # a method that runs first on a seed may include the shared selection model's training
    ax.set_title("selection cost (may include the shared selection model's training)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save(fig, out_dir, "cost")


def cost_accuracy(rows: list[dict[str, Any]], out_dir: Path, net: str) -> list[Path]:
    """Accuracy against total cost (selection included, from scratch) relative to the
    full-data model's training, one point per row of :func:`~deepcore_core.cost_table.cost_rows`
    on ``net``; the full-data model at (1, its accuracy) and a line at its accuracy."""
    from matplotlib.figure import Figure

    sub = [r for r in rows if r["network"] == net and r["speedup"]]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for i, r in enumerate(sub):
        colour = f"C{i % 10}"
        x, y = 1 / r["speedup"], 100 * r["accuracy"]
        ax.errorbar(x, y, yerr=100 * r["std"], fmt=MARKERS[i % len(MARKERS)], color=colour,
                    capsize=2, label=f"{r['label']} {r['fraction']:g}")  # fmt: skip
    full = [r for r in sub if r["label"] == FULL]
    if full:
        ax.axhline(100 * full[0]["accuracy"], color="black", lw=0.8, ls="--")
    ax.axvline(1.0, color="grey", lw=0.6)
    ax.set_xlabel("total cost / full-data training (selection included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"accuracy against cost ({net})", fontsize=9)
    ax.grid(alpha=0.3)
    if sub:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.set_title(f"accuracy against cost ({net}): no costs recorded", fontsize=9)
    fig.tight_layout()
    return save(fig, out_dir, f"cost-accuracy-{net}")
