"""Training settings of the engine: plain dataclasses, importable without torch.

These hold the one default of every training setting; the CLI, YAML files and the Python API
(:mod:`deepcore_core.settings`) take their defaults from here.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from deepcore_core.dynamics import RunningSpec
from deepcore_core.errors import DeepcoreError
from deepcore_core.rules import check_range

#: the most CPU threads a process may ask for: more than the machine's CPUs never help, and
#: thousands make the OpenMP runtime fail to start them (a crash)
MACHINE_CPUS = os.cpu_count() or 1
#: the ``threads`` setting: 0 (one per available CPU) up to the machine's CPUs
THREADS: dict[str, Any] = {"min": 0, "max": MACHINE_CPUS}

#: the DataLoader batch of embedding and scoring passes over a user's dataset (the one default)
LOADER_BATCH_SIZE = 256


def _rule(default: object, **bounds: float) -> Any:
    """A training setting with its default and its bounds (:mod:`deepcore_core.rules`)."""
    return dataclasses.field(default=default, metadata=bounds)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Each field's bounds are declared here once; the settings model reads them from
    :func:`bounds` for its options, so the CLI, YAML, Python and the engine share them.
    """

    epochs: int = _rule(50, min=1)  #: the paper trains 200 epochs; 50 keeps the default run short
    batch_size: int = _rule(128, min=1)
    lr: float = _rule(0.1, above=0)
    min_lr: float = _rule(1e-4, min=0)  #: also at most ``lr``
    momentum: float = _rule(0.9, min=0, below=1)
    weight_decay: float = _rule(5e-4, min=0)
    nesterov: bool = True
    schedule: str = "cosine"  # cosine | constant
    iterations: int = _rule(0, min=0)  #: train this many steps instead of ``epochs`` (0: epochs)
    warmup: float = _rule(0.0, min=0, below=1)  #: share of the steps with a linear warm-up
    augment: bool = True
    eval_every: int = _rule(0, min=0)  # 0: evaluate only after the last epoch
    seed: int = 0
    amp: bool = True  # mixed precision, CUDA only
    channels_last: bool = True  # CUDA only

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_range(f.name, getattr(self, f.name), f.metadata)
        if self.min_lr > self.lr:
            raise DeepcoreError(f"min_lr must be in [0, lr], got {self.min_lr}")
        if self.schedule not in ("cosine", "constant"):
            raise DeepcoreError(f"schedule must be cosine or constant, got {self.schedule!r}")

    def steps(self, n: int) -> tuple[int, int]:
        """(epochs, total steps) for ``n`` samples: ``iterations`` steps when set (the last
        epoch cut short), else ``epochs`` full epochs."""
        per_epoch = math.ceil(n / self.batch_size)
        if self.iterations:
            return math.ceil(self.iterations / per_epoch), self.iterations
        return self.epochs, self.epochs * per_epoch

    def lr_at(self, step: int, total: int) -> float:
        """The learning rate for iteration ``step`` of ``total`` (0-based).

        A linear warm-up over the first ``warmup`` share of the steps (reaching ``lr`` at
        its last step), then the exact cosine from ``lr`` to ``min_lr`` over the rest, or
        ``lr`` throughout with the constant schedule.
        """
        warm = math.floor(self.warmup * total)
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.schedule == "constant":
            return self.lr
        t = (step - warm) / max(1, total - warm)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * t))

    def key(self) -> dict[str, object]:
        """The settings as a dict for cache and run keys. Settings added later are left out
        while at their defaults, so keys made before they existed stay valid."""
        out = dataclasses.asdict(self)
        for name, default in (("iterations", 0), ("warmup", 0.0)):
            if out[name] == default:
                del out[name]
        return out


def bounds(name: str) -> dict[str, Any]:
    """The bounds of :class:`TrainConfig` field ``name`` (``{"min": 1}``), for the settings."""
    return dict(next(f for f in dataclasses.fields(TrainConfig) if f.name == name).metadata)


def default_cache_dir() -> Path:
    """``$DEEPCORE_CACHE``, else ``$XDG_CACHE_HOME/deepcore``, else ``~/.cache/deepcore``."""
    if os.environ.get("DEEPCORE_CACHE"):
        return Path(os.environ["DEEPCORE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepcore"


@dataclasses.dataclass(frozen=True)
class PretrainSpec:
    """How the selection model is trained: network, epochs and the training settings.

    As in the paper, the selection model trains on the full training set without
    augmentation (``augment``: with the dataset's augmentation, as the training-dynamics
    papers record), with the optimiser settings of ``train`` and its cosine schedule over
    ``epochs`` (the original code used a constant learning rate here).
    """

    network: str = "lenet"
    epochs: int = 10
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(augment=False))
    pretrained: str | None = None
    cache_dir: Path | None = None
    running: RunningSpec | None = None  #: running dynamics statistics (None: the full history)
    augment: bool = False  #: train (and record the dynamics) with the dataset's augmentation

    def config_for(self, seed: int) -> TrainConfig:
        """The training config of the selection model for ``seed``."""
        return dataclasses.replace(
            self.train,
            epochs=self.epochs,
            iterations=0,
            warmup=0.0,
            augment=self.augment,
            seed=seed,
            eval_every=0,
        )
