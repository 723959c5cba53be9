"""Example observer plugin: TensorBoard scalars for every training epoch, selection and run.

It implements only the observer hooks, so it changes nothing about what deepcore computes.
Event files go under ``$DEEPCORE_TENSORBOARD_DIR`` (default ``runs/tensorboard``), one
folder per trained model: ``selection-model/<network>-s<seed>`` and
``coreset/<method>-f<fraction>-<network>-s<seed>``. Set ``DEEPCORE_TENSORBOARD_DIR=`` (empty)
to switch it off without uninstalling.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepcore_core import Selection, hookimpl

_WRITERS: dict[str, Any] = {}


def log_dir() -> Path | None:
    """Where event files go, or None when switched off."""
    value = os.environ.get("DEEPCORE_TENSORBOARD_DIR", "runs/tensorboard")
    return Path(value) if value else None


def run_name(run: Mapping[str, Any]) -> str:
    """A folder name for one trained model."""
    if run.get("kind") == "selection-model":
        return f"selection-model/{run.get('network')}-s{run.get('seed')}"
    fraction = run.get("fraction")
    f = f"-f{fraction:g}" if isinstance(fraction, float) else ""
    return f"coreset/{run.get('method')}{f}-{run.get('network')}-s{run.get('seed')}"


def writer(name: str) -> Any:
    """The (cached) SummaryWriter of one run, or None when logging is off."""
    root = log_dir()
    if root is None:
        return None
    if name not in _WRITERS:
        from torch.utils.tensorboard import SummaryWriter

        _WRITERS[name] = SummaryWriter(str(root / name))
    return _WRITERS[name]


@hookimpl
def on_train_epoch_end(run: Mapping[str, Any], epoch: int, metrics: Mapping[str, float]) -> None:
    """Log the epoch's training loss, learning rate and (when evaluated) test metrics."""
    w = writer(run_name(run))
    if w is None:
        return
    for key, value in metrics.items():
        if key != "epoch":
            w.add_scalar(key, value, epoch)
    w.flush()


@hookimpl
def on_selection_end(selection: Selection) -> None:
    """Log the size of each selection under its method."""
    w = writer("selections")
    if w is not None:
        meta = selection.meta
        w.add_scalar(f"{meta.get('method')}/size", len(selection), int(meta.get("seed", 0)))
        w.flush()


@hookimpl
def on_run_end(record: Mapping[str, Any]) -> None:
    """Log each finished run's final accuracy against its coreset fraction (in %)."""
    w = writer("results")
    if w is None:
        return
    key = record["key"]
    tag = f"{key['method']}/{key['network']}/accuracy"
    w.add_scalar(tag, record["accuracy"], round(100 * key["fraction"] * 1000))
    w.flush()
