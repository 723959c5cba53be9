"""Reports of experiment results: paper-style tables, the accuracy-vs-fraction plot, timings.

Reads the per-run records an experiment writes (its output folder, or its ``results.jsonl``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core._io import atomic_write
from deepcore_core.cost_table import cost_note, cost_rows, cost_table
from deepcore_core.errors import DeepcoreError, file_error
from deepcore_core.experiment.records import (
    FULL,
    RunRecord,
    cell_text,
    check_same_settings,
    gap_text,
    summarize,
)
from deepcore_core.log import log


def load_results(path: str | Path) -> list[RunRecord]:
    """Records from an output folder (its ``runs/`` files) or a ``results.jsonl`` file."""
    p = Path(path)
    if p.is_dir():
        files = sorted((p / "runs").rglob("*.json"))
        if not files:
            raise DeepcoreError(f"'{p}' holds no results (expected {p}/runs/<method>/*.json)")
        return [_record(f, _read_text(f)) for f in files]
    if not p.is_file():
        raise DeepcoreError(f"results '{p}' do not exist")
    records = []
    text = _read_text(p)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(RunRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            if i == len(lines) - 1 and not text.endswith("\n"):  # cut short by a kill
                log.warning("'%s': skipped its last line, cut short by an interruption", p)
                continue
            raise DeepcoreError(f"'{p}' line {i + 1} is not a run record") from None
    if not records:
        raise DeepcoreError(f"'{p}' holds no results")
    return records


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise DeepcoreError(f"'{path}' is not a text file of run records") from None
    except OSError as exc:
        raise file_error(exc, path, "read") from None


def _record(path: Path, text: str) -> RunRecord:
    try:
        return RunRecord(**json.loads(text))
    except (json.JSONDecodeError, TypeError):
        raise DeepcoreError(f"'{path}' is not a run record") from None


def _cell(r: dict[str, Any] | None, best: bool, md: bool) -> str:
    if r is None:
        return "-"
    if r["diverged"] == r["runs"]:
        return f"diverged ({r['runs']})"
    text = cell_text(r)
    if best:
        text = f"**{text}**" if md else f"{text} (best)"
    if r["diverged"]:
        text += f" [{r['diverged']} of {r['runs']} diverged]"
    return text


def best_of(cands: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best row of a column when it is distinguishable from the runner-up (a paired t
    test over their common seeds, p <= 5%); None when it is not, or with one seed."""
    from deepcore_core.stats import ALPHA, paired_gap

    ranked = sorted((c for c in cands if np.isfinite(c["mean"])), key=lambda c: -c["mean"])
    if not ranked:
        return None
    if len(ranked) == 1:
        return ranked[0]
    gap = paired_gap(ranked[0]["by_seed"], ranked[1]["by_seed"])
    return ranked[0] if gap is not None and gap.p <= ALPHA else None


def accuracy_tables(rows: list[dict[str, Any]], md: bool = True) -> str:
    """One table per target network: rows methods, columns fractions.

    Cells are test accuracy mean ± std over seeds (in %), the paired gap to ``uniform`` in
    parentheses (``*``: it survives the false-discovery-rate correction across the table)
    and any collapsed seed; the best method of a column (excluding the full-data model) is
    marked only where it is distinguishable from the runner-up.
    """
    out = []
    for net in sorted({r["network"] for r in rows}):
        sub = [r for r in rows if r["network"] == net]
        fractions = sorted({r["fraction"] for r in sub if r["method"] != FULL})
        by = {(r["method"], r["fraction"]): r for r in sub}
        methods = list(dict.fromkeys(r["method"] for r in sub))
        best = {
            f: best_of([r for r in sub if r["fraction"] == f and r["method"] != FULL])
            for f in fractions
        }
        head = ["method"] + [f"{100 * f:g}%" for f in fractions]
        lines = [f"network: {net}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in methods:
            cells = []
            for f in fractions:
                r = by.get((m, 1.0)) if m == FULL else by.get((m, f))
                cells.append(_cell(r, r is not None and m != FULL and r is best[f], md))
            lines.append("| " + " | ".join([m, *cells]) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def gap_tables(rows: list[dict[str, Any]]) -> str:
    """Per network: each method's paired gap to ``uniform`` in points with its 95% t
    interval and FDR-adjusted p-value (q); ``*`` where q <= 5%."""
    out = []
    for net in sorted({r["network"] for r in rows}):
        sub = [r for r in rows if r["network"] == net and r.get("gap") is not None]
        if not sub:
            continue
        fractions = sorted({r["fraction"] for r in sub})
        by = {(r["method"], r["fraction"]): r for r in sub}
        head = ["method"] + [f"{100 * f:g}%" for f in fractions]
        lines = [f"network: {net}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in dict.fromkeys(r["method"] for r in sub):
            cells = [_gap_cell(by.get((m, f))) for f in fractions]
            lines.append("| " + " | ".join([m, *cells]) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _gap_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    g = r["gap"]
    if g.seeds < 2:
        return f"{100 * g.mean:+.2f} (1 seed: untested)"
    return f"{gap_text(r)} [{100 * g.low:+.2f}, {100 * g.high:+.2f}] q={r['q']:.2g}"


def cross_architecture_table(rows: list[dict[str, Any]]) -> str | None:
    """Rows methods, columns (fraction, network): only when there are several networks."""
    nets = sorted({r["network"] for r in rows})
    if len(nets) < 2:
        return None
    fractions = sorted({r["fraction"] for r in rows if r["method"] != FULL})
    by = {(r["method"], r["fraction"], r["network"]): r for r in rows}
    cols = [(f, n) for f in fractions for n in nets]
    head = ["method"] + [f"{100 * f:g}% {n}" for f, n in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in dict.fromkeys(r["method"] for r in rows):
        if m == FULL:
            continue
        cells = [_cell(by.get((m, f, n)), False, True) for f, n in cols]
        lines.append("| " + " | ".join([m, *cells]) + " |")
    return "\n".join(lines)


def timing_table(rows: list[dict[str, Any]]) -> str:
    """Mean selection seconds per method and fraction (the cost side of the comparison)."""
    fractions = sorted({r["fraction"] for r in rows if r["method"] != FULL})
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != FULL]
    by: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        by.setdefault((r["method"], r["fraction"]), []).append(r["selection_seconds"])
    head = ["method"] + [f"{100 * f:g}%" for f in fractions]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = [f"{np.mean(by[(m, f)]):.2f}" if (m, f) in by else "-" for f in fractions]
        lines.append("| " + " | ".join([m, *cells]) + " |")
    return "\n".join(lines)


def check_same_code(records: list[RunRecord], mix_versions: bool = False) -> dict[str, int]:
    """The code versions that made the records (identity -> runs); an error naming them
    when there are several, unless ``mix_versions``."""
    from deepcore_core.provenance import code_identity

    seen: dict[str, int] = {}
    for r in records:
        ident = code_identity(r.provenance)
        seen[ident] = seen.get(ident, 0) + 1
    if len(seen) > 1 and not mix_versions:
        counts = ", ".join(f"{k} ({n} runs)" for k, n in sorted(seen.items()))
        raise DeepcoreError(
            f"the results come from different code versions: {counts}; report each from its "
            "own output folder, or pass --mix-versions to report them together"
        )
    return seen


def protocol_of(record: RunRecord) -> str:
    """How the record's model trained: the same steps for every model (protocol
    iterations) or its epochs over its own data (protocol epochs)."""
    train = record.key.get("train", {})
    if train.get("iterations"):
        return f"iterations, {train['iterations']} steps for every model"
    return f"epochs, {train.get('epochs')} of each model's own data"


def _tally(values: Iterable[str]) -> str:
    """``value (n runs)`` for each distinct value, sorted."""
    return ", ".join(f"{k} ({n} runs)" for k, n in sorted(Counter(values).items()))


def provenance_text(records: list[RunRecord], codes: dict[str, int]) -> str:
    """The provenance section: code versions, protocol, libraries, devices, threads,
    augmentation."""
    lines = [f"- code: {', '.join(f'{k} ({n} runs)' for k, n in sorted(codes.items()))}"]
    lines.append(f"- protocol: {_tally(protocol_of(r) for r in records)}")
    for field in ("torch", "device", "threads", "cpus", "augmentation"):
        values = (str(r.provenance.get(field, "unrecorded")) for r in records)
        lines.append(f"- {field}: {_tally(values)}")
    encoders = [encoder_of(r) for r in records if r.provenance.get("encoder")]
    if encoders:
        lines.append(f"- features from: {_tally(encoders)}")
    return "\n".join(lines)


def encoder_of(record: RunRecord) -> str:
    """The encoder a record's selection read, with its k-NN sanity figure where known."""
    enc = record.provenance.get("encoder") or {}
    knn = enc.get("knn_accuracy")
    return f"{enc.get('name')}" + (f" (k-NN test accuracy {knn:.2f}%)" if knn is not None else "")


_CSV_HEAD = (
    "method,fraction,network,runs,diverged,mean,std,gap_to_uniform,gap_low,gap_high,p,q,"
    "collapsed_seeds,size,selection_seconds\n"
)


def _csv_line(r: dict[str, Any]) -> str:
    g = r.get("gap")
    nan = float("nan")
    gap = (g.mean, g.low, g.high, g.p) if g is not None else (nan, nan, nan, nan)
    collapsed = ";".join(str(s) for s in sorted(r.get("collapsed", {})))
    return (
        f"{r['method']},{r['fraction']:g},{r['network']},{r['runs']},{r['diverged']},"
        f"{r['mean']:.6f},{r['std']:.6f},{gap[0]:.6f},{gap[1]:.6f},{gap[2]:.6f},{gap[3]:.6g},"
        f"{r['q']:.6g},{collapsed},{r['size']},{r['selection_seconds']:.3f}\n"
    )


def write_report(
    records: list[RunRecord],
    out_dir: Path,
    mix_versions: bool = False,
    families: Mapping[str, str] | None = None,
    html: bool = False,
) -> tuple[str, list[Path]]:
    """Write report.md, report.csv and the figures (and report.html with ``html``); return
    the Markdown and the files.

    Records made with different settings are an error (see ``check_same_settings``), and so
    are records from different code versions unless ``mix_versions``. ``families`` (method
    -> family) groups the accuracy panels.
    """
    from deepcore_core import plots

    check_same_settings(records)
    codes = check_same_code(records, mix_versions)
    rows = summarize(records)
    seeds = max((len(r["by_seed"]) for r in rows), default=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "## Test accuracy (%)",
        "",
        "mean ± std over seeds, after the last epoch; in parentheses the gap to `uniform` "
        "paired by seed, `*` where it survives a Benjamini-Hochberg false-discovery-rate "
        "correction at 5% over the table (paired t test); the best method of a column in "
        "bold only where a paired t test tells it from the runner-up (p <= 5%); a run more "
        "than 15 points below its row's median is named as collapsed (it stays in the mean); "
        "runs whose training diverged are counted and left out of the mean.",
        "",
        accuracy_tables(rows),
    ]
    if seeds < 2:
        parts += ["", "One seed per cell: no gap is tested and no method is marked best."]
    gaps = gap_tables(rows)
    if gaps and seeds >= 2:
        parts += ["", "## Gap to uniform (points, 95% paired t interval, FDR-adjusted q)", ""]
        parts += [gaps]
    cross = cross_architecture_table(rows)
    if cross:
        parts += ["", "## Cross-architecture", "", cross]
    parts += ["", "## Selection time (s, mean over seeds)", "", timing_table(rows)]
    costs = cost_rows(records)
    if any(r["label"] == FULL for r in costs):
        parts += ["", "## Cost against the full-data model", "", cost_note(costs), ""]
        parts += [cost_table(costs)]
    parts += ["", "## Provenance", "", provenance_text(records, codes)]
    md = "\n".join(parts) + "\n"
    files = [out_dir / "report.md", out_dir / "report.csv"]
    with atomic_write(files[0], "w") as fh:
        fh.write(md)
    with atomic_write(files[1], "w") as fh:
        fh.write(_CSV_HEAD + "".join(_csv_line(r) for r in rows))
    figures: list[Path] = []
    for net in sorted({r["network"] for r in rows}):
        figures += plots.accuracy_panels(rows, out_dir, net, families or {})
        if any(r.get("gap") is not None for r in rows):
            figures += plots.gap_heatmap(rows, out_dir, net)
    figures += plots.cost_chart(rows, out_dir)
    for net in sorted({r["network"] for r in costs if r["label"] == FULL}):
        figures += plots.cost_accuracy(costs, out_dir, net)
    files += figures
    if html:
        from deepcore_core.report_html import write_html

        files.append(write_html(md, [f for f in figures if f.suffix == ".svg"], out_dir))
    return md, files
