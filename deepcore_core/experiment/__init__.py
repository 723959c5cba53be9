"""Experiments: pretrain, select, train on the coreset and evaluate, over methods x fractions x
seeds x target networks, with the random baseline and the full-data model as references.

Three parts: the *plan* (:mod:`.plan`: the grid and every key), the *store* (:mod:`.store`:
files, resume, the folder lock) and the *runner* (:mod:`.runner`: selections, training,
worker processes). Each finished run is one JSON file in the output folder (written
atomically), so running the same command again skips finished runs and resumes.
"""

from __future__ import annotations

from typing import Any

from deepcore_core.experiment.plan import RunKey, run_id
from deepcore_core.experiment.records import (
    BASELINE,
    FULL,
    RunRecord,
    format_summary,
    load_record,
    summarize,
    summary_legend,
    write_summary,
)
from deepcore_core.experiment.runner import Experiment
from deepcore_core.experiment.store import Store
from deepcore_core.settings import ExperimentConfig, RunSettings, build

__all__ = [
    "BASELINE",
    "FULL",
    "Experiment",
    "ExperimentConfig",
    "RunKey",
    "RunRecord",
    "RunSettings",
    "Store",
    "format_summary",
    "load_record",
    "make_config",
    "run_id",
    "summarize",
    "summary_legend",
    "write_summary",
]


def make_config(values: dict[str, Any]) -> RunSettings:
    """Build and check an experiment's settings from a mapping (YAML keys; see settings)."""
    config: RunSettings = build(RunSettings, values, "experiment settings")
    return config
