"""Training settings of the engine: plain dataclasses, importable without torch.

These hold the one default of every training setting; the CLI, YAML files and the Python API
(:mod:`deepcore_core.settings`) take their defaults from here.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from deepcore_core.dynamics import RunningSpec
from deepcore_core.errors import DeepcoreError

#: the most CPU threads a process may ask for: more than the machine's CPUs never help, and
#: thousands make the OpenMP runtime fail to start them (a crash)
MACHINE_CPUS = os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 50  #: the paper trains 200 epochs; 50 keeps the default run short
    batch_size: int = 128
    lr: float = 0.1
    min_lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    schedule: str = "cosine"  # cosine | constant
    iterations: int = 0  #: train this many steps instead of ``epochs`` (0: use epochs)
    warmup: float = 0.0  #: share of the steps with a linear warm-up to ``lr``, in [0, 1)
    augment: bool = True
    eval_every: int = 0  # 0: evaluate only after the last epoch
    seed: int = 0
    amp: bool = True  # mixed precision, CUDA only
    channels_last: bool = True  # CUDA only

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.min_lr <= self.lr, f"min_lr must be in [0, lr], got {self.min_lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (
                self.schedule in ("cosine", "constant"),
                f"schedule must be cosine or constant, got {self.schedule!r}",
            ),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
            (self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}"),
            (0 <= self.warmup < 1, f"warmup must be in [0, 1), got {self.warmup}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DeepcoreError(msg)

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
    augmentation, with the optimiser settings of ``train`` and its cosine schedule over
    ``epochs`` (the original code used a constant learning rate here).
    """

    network: str = "lenet"
    epochs: int = 10
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(augment=False))
    pretrained: str | None = None
    cache_dir: Path | None = None
    running: RunningSpec | None = None  #: running dynamics statistics (None: the full history)

    def config_for(self, seed: int) -> TrainConfig:
        """The training config of the selection model for ``seed``."""
        return dataclasses.replace(
            self.train,
            epochs=self.epochs,
            iterations=0,
            warmup=0.0,
            augment=False,
            seed=seed,
            eval_every=0,
        )
