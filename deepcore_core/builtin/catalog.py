"""Registers the core's datasets and networks through the same hooks plugins use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepcore_core.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register the built-in datasets."""
    from deepcore_core.data import BUILTIN_DATASETS

    for info in BUILTIN_DATASETS:
        register(info)


@hookimpl
def register_samplers(register: Callable[[Any], None]) -> None:
    """Register the built-in sampling rules (top, stratified, beta, band)."""
    from deepcore_core.samplers import BUILTIN_SAMPLERS

    for cls in BUILTIN_SAMPLERS:
        register(cls)


@hookimpl
def register_schedules(register: Callable[[Any], None]) -> None:
    """Register the built-in pruning schedules (infobatch, rs2, adaptive)."""
    from deepcore_core.schedules import BUILTIN_SCHEDULES

    for cls in BUILTIN_SCHEDULES:
        register(cls)


@hookimpl
def register_encoders(register: Callable[[Any], None]) -> None:
    """Register the built-in encoders (simclr, torchvision, module, timm, hf)."""
    from deepcore_core.encoders import BUILTIN_ENCODERS
    from deepcore_core.engine.simclr import SimCLR

    for cls in (SimCLR, *BUILTIN_ENCODERS):
        register(cls)


@hookimpl
def register_networks(register: Callable[[Any], None]) -> None:
    """Register the built-in networks."""
    from deepcore_core.nets import BUILTIN_NETWORKS

    for info in BUILTIN_NETWORKS:
        register(info)
