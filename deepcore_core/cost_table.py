"""Does a selection pay? Each method's total cost next to the full-data model's, and the cost
of reaching a share of the full-data model's accuracy.

A run's cost *from scratch* is every stage it used (:mod:`deepcore_core.cost`), a shared
selection model included; *marginal* is what it paid itself. Evaluation is left out of both
(evaluating every epoch is how the curves are measured, not part of the training). The
reference is the full-data model of the same records: its training seconds, mean over seeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from deepcore_core.experiment.records import FULL, RunRecord

#: the share of the full-data model's accuracy the time-to-accuracy column asks for
REACH = 0.99


def label(record: RunRecord) -> str:
    """A row's name: the method, and its schedule where it trained with one."""
    schedule = record.key.get("schedule")
    if not schedule:
        return str(record.key["method"])
    opts = ", ".join(f"{k}={v}" for k, v in sorted(schedule.get("options", {}).items()))
    return f"{record.key['method']} + {schedule['name']}" + (f" ({opts})" if opts else "")


def spent(record: RunRecord) -> dict[str, float]:
    """Seconds of a run without its evaluation: ``from_scratch``, ``marginal``,
    ``selection`` (from scratch) and ``training`` (with any re-selection). Records made
    before costs were kept give their selection and training seconds."""
    stages = record.cost.get("stages")
    if not stages:
        both = record.selection_seconds + record.train_seconds
        return {"from_scratch": both, "marginal": both, "selection": record.selection_seconds,
                "training": record.train_seconds}  # fmt: skip
    used = {k: v for k, v in stages.items() if k != "evaluation"}
    training = sum(float(used[k]["seconds"]) for k in ("training", "reselection") if k in used)
    total = sum(float(c["seconds"]) for c in used.values())
    paid = sum(float(c["seconds"]) for c in used.values() if not c.get("reused"))
    return {"from_scratch": total, "marginal": paid, "selection": total - training,
            "training": training}  # fmt: skip


def time_to(record: RunRecord, target: float) -> float | None:
    """Seconds (selection from scratch plus training) until the first evaluation at or above
    ``target`` accuracy; None where no evaluation reached it, or none was per epoch."""
    selection = spent(record)["selection"]
    for h in record.history:
        if "test_accuracy" in h and "seconds" in h and h["test_accuracy"] >= target:
            return selection + float(h["seconds"])
    return None


def cost_rows(records: Iterable[RunRecord], reach: float = REACH) -> list[dict[str, Any]]:
    """Per row (method, schedule, fraction, network): accuracy, seconds from scratch and
    marginal, speed-up over the full-data model, samples trained, and the time to reach
    ``reach`` of the full-data model's mean accuracy (mean over the seeds that reach it)."""
    records = [r for r in records if np.isfinite(r.accuracy)]
    groups: dict[tuple[str, float, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((label(r), r.key["fraction"], r.key["network"]), []).append(r)
    rows = []
    for (name, fraction, net), rs in groups.items():
        full = groups.get((FULL, 1.0, net), [])
        base = float(np.mean([spent(r)["training"] for r in full])) if full else None
        target = reach * float(np.mean([r.accuracy for r in full])) if full else None
        costs = [spent(r) for r in rs]
        scratch = float(np.mean([c["from_scratch"] for c in costs]))
        reached = [t for r in rs if target and (t := time_to(r, target)) is not None]
        curves = sum(1 for r in rs if any("seconds" in h for h in r.history))
        rows.append({
            "label": name, "fraction": fraction, "network": net, "runs": len(rs),
            "accuracy": float(np.mean([r.accuracy for r in rs])),
            "std": float(np.std([r.accuracy for r in rs], ddof=1)) if len(rs) > 1 else 0.0,
            "from_scratch": scratch,
            "training": float(np.mean([c["training"] for c in costs])),
            "marginal": float(np.mean([c["marginal"] for c in costs])),
            "speedup": base / scratch if base and scratch > 0 else None,
            "samples": float(np.mean([r.cost.get("stages", {}).get("training", {})
                                      .get("samples", 0) for r in rs])),
            "reach_seconds": float(np.mean(reached)) if reached else None,
            "reached": len(reached),
            "curves": curves,
            "shared_cores": any(r.cost.get("shared_cores") for r in rs),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["label"] != FULL, r["label"], r["fraction"]))


def cost_table(rows: list[dict[str, Any]], reach: float = REACH) -> str:
    """The rows as Markdown."""
    head = ["method", "fraction", "accuracy (%)", "from scratch (s)", "marginal (s)",
            "speed-up over full", f"to {100 * reach:g}% of full (s)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        spread = f"± {100 * r['std']:.2f}" if r["runs"] > 1 else "(n=1)"
        acc = f"{100 * r['accuracy']:.2f} {spread}"
        speed = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        reach_s = "not reached" if r["reach_seconds"] is None else f"{r['reach_seconds']:.0f}"
        if not r.get("curves"):
            reach_s = "-"  # records made before the training time was kept per epoch
        if r["reach_seconds"] is not None and r["reached"] < r["runs"]:
            reach_s += f" ({r['reached']} of {r['runs']} seeds)"
        lines.append(
            f"| {r['label']} | {r['fraction']:g} | {acc} | {r['from_scratch']:.1f} | "
            f"{r['marginal']:.1f} | {speed} | {reach_s} |"
        )
    return "\n".join(lines)


def cost_note(rows: list[dict[str, Any]]) -> str:
    """What the cost table's columns mean, and whether jobs shared the cores."""
    note = (
        "Seconds without evaluation, mean over seeds. *From scratch* charges every stage a "
        "run used, the shared selection model included; *marginal* only what the run paid "
        "itself. Speed-up: the full-data model's training seconds over the row's from-scratch "
        "seconds. The last column needs an evaluation every epoch (`--eval-every 1`)."
    )
    if any(r["shared_cores"] for r in rows):
        note += " Some runs shared the CPU cores with parallel jobs (`--jobs` > 1): their "
        note += "times are inflated where the jobs competed."
    return note
