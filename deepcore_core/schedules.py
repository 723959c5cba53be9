"""Pruning during training: which samples each epoch trains on, and each one's loss weight.

A static coreset is chosen once, before training. A *schedule* decides anew every epoch, from
what the model being trained shows, and trains on all of the data over the run:

* ``infobatch`` (Qin et al., ICLR 2024, arXiv 2303.04947): each sample's score is its last
  training loss. Every epoch, a random share ``ratio`` of the samples whose score is below
  the mean score is left out, and the losses of the other below-mean samples are scaled by
  1 / (1 - ratio), so the expected gradient is unchanged. From epoch ``floor(delta * E)`` on,
  every sample trains at weight 1 (the paper's annealing: with ``delta`` = 0.875 the last
  12.5% of the epochs). Scores start equal, so the first epoch is whole.
* ``rs2`` (Okanovic et al., 2023, arXiv 2305.18424, without replacement): every epoch trains on
  the next ``ceil(ratio * N)`` samples of a seeded permutation of the data; when fewer are
  left, they are taken with the first ones of a fresh permutation, so every sample is seen
  once before any is seen twice.
* ``adaptive`` (CORDS' adaptive data-subset selection, Killamsetty et al.): after ``warmup``
  epochs on all of the data, an installed selection method picks ``fraction`` of the data
  from the model being trained, again every ``every`` epochs; its weights are honoured. The
  selection time is counted in the run's cost (stage ``reselection``).

A schedule plans an epoch with :meth:`Schedule.plan` and, where it uses losses, sees every
batch's per-sample losses through :meth:`Schedule.observe`. The engine calls both; a user's
own loop uses :class:`ScheduleSampler` and :meth:`Schedule.loss`. Randomness comes from the
seed and the epoch only, and the state (scores, permutation) is saved in checkpoints, so a
resumed run prunes the same samples. Plugins add schedules with the ``register_schedules``
hook.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from deepcore_core.errors import DeepcoreError
from deepcore_core.options import NoOptions, parse_options


@dataclasses.dataclass
class EpochPlan:
    """One epoch of a schedule.

    :ivar indices: the samples (positions in the training set) the epoch trains on, each
        once; the engine shuffles them.
    :ivar scale: per-sample loss multipliers aligned with ``indices`` (InfoBatch's
        rescaling: the batch loss is the mean of the scaled losses), or None.
    :ivar weights: per-sample selection weights aligned with ``indices`` (as a weighted
        coreset's: the batch loss is the weighted mean), or None.
    """

    indices: np.ndarray
    scale: np.ndarray | None = None
    weights: np.ndarray | None = None


class Schedule(abc.ABC):
    """Base class of a pruning schedule: set ``name`` and ``Options``, implement :meth:`plan`.

    :cvar uses_losses: whether :meth:`observe` needs every batch's losses (the engine skips
        the copy otherwise).
    :cvar uses_model: whether :meth:`plan` reads the model being trained.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    uses_losses: ClassVar[bool] = False
    uses_model: ClassVar[bool] = False

    def __init__(self, options: Any = None) -> None:
        if options is None or isinstance(options, dict):
            options = parse_options(self.Options, options or {}, self.name, kind="schedule")
        self.options = options
        self.n = 0
        self.epochs = 0
        self.seed = 0
        self.epoch = -1  #: the epoch last planned
        self.last: EpochPlan | None = None  #: and its plan
        self._dense_of: EpochPlan | None = None  # the plan _dense_arrays were made from
        self._dense_arrays: tuple[np.ndarray | None, np.ndarray | None] = (None, None)

    def start(self, n: int, epochs: int, seed: int) -> None:
        """Begin a run of ``epochs`` epochs over ``n`` samples."""
        if n < 1 or epochs < 1:
            raise DeepcoreError(f"a schedule needs samples and epochs, got {n} and {epochs}")
        self.n, self.epochs, self.seed, self.epoch, self.last = n, epochs, seed, -1, None

    def rng(self, epoch: int) -> np.random.Generator:
        """The generator of ``epoch``'s random choices (seed and epoch fix it)."""
        return np.random.default_rng([self.seed, epoch, 0x5C4ED])

    @abc.abstractmethod
    def plan(self, epoch: int, model: Any = None) -> EpochPlan:
        """The samples epoch ``epoch`` (from 0) trains on."""

    def observe(self, indices: np.ndarray, losses: np.ndarray) -> None:  # noqa: B027
        """Per-sample losses of one batch (unscaled), by training-set position (kept by
        schedules with ``uses_losses``; the base keeps nothing)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps to resume with the same choices."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s state."""
        self.epoch = int(state["epoch"])

    def describe(self) -> dict[str, Any]:
        """Name and options, for run keys and records."""
        return {"name": self.name, "options": dataclasses.asdict(self.options)}

    def loss(self, losses: torch.Tensor, indices: Any) -> torch.Tensor:
        """A user's loop: the batch loss from per-sample ``losses`` of the samples at
        ``indices`` (this epoch's scale and weights applied), after :meth:`observe`."""
        idx = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64)
        if self.uses_losses:
            self.observe(idx, losses.detach().float().cpu().numpy())
        scale, weights = self._dense()
        if weights is not None:
            w = torch.as_tensor(weights[idx], dtype=losses.dtype, device=losses.device)
            return (losses * w).sum() / w.sum().clamp_min(1e-12)
        if scale is not None:
            s = torch.as_tensor(scale[idx], dtype=losses.dtype, device=losses.device)
            return (losses * s).mean()
        return losses.mean()

    def _dense(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The current plan's scale and weights as N-long arrays (made once per epoch)."""
        if self.last is None:
            return None, None
        if self._dense_of is not self.last:
            out = []
            for part in (self.last.scale, self.last.weights):
                dense = None
                if part is not None:
                    dense = np.ones(self.n, dtype=np.float64)
                    dense[self.last.indices] = part
                out.append(dense)
            self._dense_arrays, self._dense_of = (out[0], out[1]), self.last
        return self._dense_arrays

    def planned(self, epoch: int, model: Any = None) -> EpochPlan:
        """:meth:`plan`, checked and kept as the current epoch's plan."""
        plan = self.plan(epoch, model)
        idx = np.asarray(plan.indices, dtype=np.int64)
        if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= self.n:
            raise DeepcoreError(
                f"schedule '{self.name}' planned no valid samples for epoch {epoch}"
            )
        plan = EpochPlan(idx, plan.scale, plan.weights)
        self.epoch, self.last = epoch, plan
        return plan


@dataclasses.dataclass(frozen=True)
class InfoBatchOptions:
    """Options of ``infobatch``."""

    ratio: float = 0.5  #: share of the below-mean-loss samples left out each epoch
    delta: float = 0.875  #: share of the epochs that prune (the rest train on everything)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"ratio must be in [0, 1), got {self.ratio}")
        if not 0.0 <= self.delta <= 1.0:
            raise ValueError(f"delta must be in [0, 1], got {self.delta}")


class InfoBatch(Schedule):
    """Each epoch, skip a random share of the below-mean-loss samples (InfoBatch).

    The other below-mean samples' losses are scaled up by 1 / (1 - ratio); the last epochs
    train on everything (Qin et al., ICLR 2024).
    """

    name = "infobatch"
    Options = InfoBatchOptions
    uses_losses = True

    def start(self, n: int, epochs: int, seed: int) -> None:
        """Every score starts equal (so the first epoch keeps every sample)."""
        super().start(n, epochs, seed)
        self.scores = np.ones(n, dtype=np.float64)

    def plan(self, epoch: int, model: Any = None) -> EpochPlan:
        """Prune below-mean samples until epoch ``floor(delta * epochs)``."""
        everything = np.arange(self.n)
        if epoch >= math.floor(self.options.delta * self.epochs):
            return EpochPlan(everything)
        low = self.scores < self.scores.mean()
        easy = np.flatnonzero(low)
        keep_share = 1.0 - self.options.ratio
        kept = self.rng(epoch).choice(easy, int(keep_share * len(easy)), replace=False)
        indices = np.concatenate([np.flatnonzero(~low), np.sort(kept)])
        scale = np.ones(len(indices))
        scale[len(indices) - len(kept) :] = 1.0 / keep_share
        return EpochPlan(indices, scale=scale)

    def observe(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Each seen sample's score becomes its latest loss."""
        self.scores[indices] = losses

    def state_dict(self) -> dict[str, Any]:
        """The scores."""
        return {**super().state_dict(), "scores": self.scores.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scores."""
        super().load_state_dict(state)
        self.scores = np.asarray(state["scores"], dtype=np.float64).copy()


@dataclasses.dataclass(frozen=True)
class RatioOptions:
    """Options of ``rs2``."""

    ratio: float = 0.1  #: share of the data each epoch trains on

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")


class RS2(Schedule):
    """Each epoch, the next random share of the data, without replacement (RS2).

    Every sample is seen once before any is seen twice (Okanovic et al., 2023).
    """

    name = "rs2"
    Options = RatioOptions

    def start(self, n: int, epochs: int, seed: int) -> None:
        """An empty pool: the first epoch draws the first permutation."""
        super().start(n, epochs, seed)
        self.pool = np.zeros(0, dtype=np.int64)  # what is left of the current permutation
        self.cycle = 0

    def plan(self, epoch: int, model: Any = None) -> EpochPlan:
        """The next ``ceil(ratio * n)`` samples of the permutations."""
        k = min(self.n, math.ceil(self.options.ratio * self.n))
        take = self.pool[:k]
        self.pool = self.pool[k:]
        if len(take) < k:  # the permutation ran out: the rest from a fresh one, no repeats
            fresh = np.random.default_rng([self.seed, self.cycle, 0x852]).permutation(self.n)
            self.cycle += 1
            fresh = fresh[~np.isin(fresh, take)]
            need = k - len(take)
            take, self.pool = np.concatenate([take, fresh[:need]]), fresh[need:]
        return EpochPlan(take)

    def state_dict(self) -> dict[str, Any]:
        """The rest of the current permutation and how many were drawn."""
        return {**super().state_dict(), "pool": self.pool.copy(), "cycle": self.cycle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the permutation's rest."""
        super().load_state_dict(state)
        self.pool = np.asarray(state["pool"], dtype=np.int64).copy()
        self.cycle = int(state["cycle"])


@dataclasses.dataclass(frozen=True)
class AdaptiveOptions:
    """Options of ``adaptive``."""

    method: str = "gradmatch"  #: the selection method re-run on the model being trained
    fraction: float = 0.1  #: the share of the data it picks
    every: int = 20  #: epochs between selections (CORDS' R)
    warmup: int = 0  #: epochs on all of the data before the first selection

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


#: picks ``fraction`` of the training set with the model being trained:
#: ``(model, epoch) -> (indices, weights or None)``
Reselect = Callable[[Any, int], tuple[np.ndarray, np.ndarray | None]]


class Adaptive(Schedule):
    """Every few epochs, re-select a weighted subset with the model being trained.

    An installed method picks ``fraction`` every ``every`` epochs after ``warmup`` epochs on
    all data; its weights are honoured (CORDS' adaptive data-subset selection).
    """

    name = "adaptive"
    Options = AdaptiveOptions
    uses_model = True

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.reselect: Reselect | None = None
        self.current: EpochPlan | None = None

    def plan(self, epoch: int, model: Any = None) -> EpochPlan:
        """All data during the warm-up; then the latest selection, renewed every ``every``."""
        o = self.options
        if epoch < o.warmup:
            return EpochPlan(np.arange(self.n))
        if self.current is None or (epoch - o.warmup) % o.every == 0:
            if self.reselect is None:
                raise DeepcoreError(
                    "schedule 'adaptive' selects from a dataset: train on a dataset "
                    "(deepcore train/run, dc.train), not a bare loop"
                )
            indices, weights = self.reselect(model, epoch)
            self.current = EpochPlan(np.asarray(indices, dtype=np.int64), weights=weights)
        return self.current

    def state_dict(self) -> dict[str, Any]:
        """The current selection."""
        cur = self.current
        held = None if cur is None else {"indices": cur.indices, "weights": cur.weights}
        return {**super().state_dict(), "current": held}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the current selection."""
        super().load_state_dict(state)
        cur = state.get("current")
        self.current = None if cur is None else EpochPlan(cur["indices"], None, cur["weights"])


class ScheduleSampler(torch.utils.data.Sampler[int]):
    """A :class:`torch.utils.data.Sampler` for a user's own loop: each pass over it is the
    schedule's next epoch, shuffled by ``seed`` and the epoch. Compute the batch loss with
    :meth:`Schedule.loss` (the dataset must give each sample's index)."""

    def __init__(self, schedule: Schedule, model: Any = None) -> None:
        self.schedule, self.model = schedule, model

    def __iter__(self) -> Iterator[int]:
        s = self.schedule
        plan = s.planned(s.epoch + 1, self.model)
        order = np.random.default_rng([s.seed, s.epoch, 0x0D3]).permutation(len(plan.indices))
        return iter(plan.indices[order].tolist())

    def __len__(self) -> int:
        last = self.schedule.last
        return self.schedule.n if last is None else len(last.indices)


BUILTIN_SCHEDULES: tuple[type[Schedule], ...] = (InfoBatch, RS2, Adaptive)
