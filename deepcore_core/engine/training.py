"""The training engine: SGD with Nesterov momentum and a per-iteration cosine schedule.

The settings are a :class:`~deepcore_core.engine.config.TrainConfig`. Schedules follow the
DeepCore paper's protocol (cosine to ``min_lr`` per iteration), without the original code's
schedule offset.
Per-sample weights give the loss ``sum(w_i * l_i) / sum(w_i)`` per batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepcore_core import distributed
from deepcore_core._io import owner_tag, save_torch, sweep_stale
from deepcore_core.cost import StageCost, measure
from deepcore_core.data.sources import Source
from deepcore_core.dynamics import Dynamics, RunningDynamics, RunningSpec
from deepcore_core.engine.config import TrainConfig
from deepcore_core.engine.recording import Recorder
from deepcore_core.errors import DeepcoreError, TrainingDiverged
from deepcore_core.progress import Progress
from deepcore_core.schedules import Schedule


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: nn.Module
    history: list[dict[str, float]]
    final_accuracy: float | None
    best_accuracy: float | None
    dynamics: Dynamics | RunningDynamics | None
    seconds: float  #: training and evaluation, wall (a resumed run's earlier part included)
    images_per_second: float
    #: the training and the evaluation apart (a resumed run's earlier part included)
    costs: dict[str, StageCost] = dataclasses.field(default_factory=dict)

    def cost(self) -> StageCost:
        """The training's cost (without evaluation)."""
        return self.costs["training"]


def evaluate(
    model: nn.Module, source: Source, device: torch.device, batch_size: int = 512
) -> tuple[float, float]:
    """Return (accuracy, mean cross-entropy) of ``model`` on ``source``."""
    model.eval()
    correct = torch.zeros((), device=device)
    loss = torch.zeros((), device=device, dtype=torch.float64)
    order = torch.arange(len(source))
    with torch.inference_mode():
        for x, y, _ in source.batches(order, batch_size, device=device):
            out = model(x).float()
            loss += nn.functional.cross_entropy(out, y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
    n = max(1, len(source))
    return float(correct) / n, float(loss) / n


def global_batch(batch_size: int) -> int:
    """Samples per step over every rank: ``batch_size`` rounded up to a multiple of the
    number of processes (``batch_size`` itself in one process)."""
    world = distributed.world_size()
    return -(-batch_size // world) * world


#: called after every epoch with the epoch number (from 1) and that epoch's metrics
EpochCallback = Callable[[int, dict[str, float]], None]


#: the least time between two checkpoints (an interrupted run repeats at most this much)
CHECKPOINT_SECONDS = 10.0


def train_model(
    model: nn.Module,
    source: Source,
    config: TrainConfig,
    device: torch.device,
    *,
    weights: np.ndarray | None = None,
    test: Source | None = None,
    record_dynamics: bool = False,
    running: RunningSpec | None = None,
    checkpoint: Path | None = None,
    desc: str = "training",
    lr_option: str = "--lr",
    callbacks: Sequence[EpochCallback] = (),
    schedule: Schedule | None = None,
) -> TrainResult:
    """Train ``model`` on all of ``source`` (use ``source.subset`` for a coreset).

    :param weights: per-sample loss weights aligned with ``source`` (None: all ones).
    :param test: evaluated every ``config.eval_every`` epochs and after the last one.
    :param record_dynamics: keep per-sample loss/correctness/margin for every epoch.
    :param running: with ``record_dynamics``, keep only these running statistics instead of
        the epochs x N history.
    :param checkpoint: save state here after an epoch (at most every ``CHECKPOINT_SECONDS``,
        and after the last) and resume from it if present.
    :param lr_option: the setting that the divergence error tells the user to lower.
    :param callbacks: called after every epoch with ``(epoch, metrics)``; metrics hold
        ``train_loss``, ``lr``, ``samples`` and, on evaluated epochs, ``test_accuracy`` and
        ``test_loss``.
    :param schedule: a :class:`~deepcore_core.schedules.Schedule` that picks each epoch's
        samples (pruning during training); trains by epochs, in one process.
    """
    if len(source) == 0:
        raise DeepcoreError("cannot train on an empty set")
    loop = _Loop.start(model, source, config, device, weights, record_dynamics, running)
    if schedule is not None:
        loop.use(schedule)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if checkpoint is not None:
        start_epoch = _resume(checkpoint, loop, history, config)
    saved = time.perf_counter()
    with Progress(loop.epochs - start_epoch, desc, unit="samples") as bar:
        for epoch in range(start_epoch, loop.epochs):
            planning = dataclasses.replace(loop.costs.get("reselection", StageCost()))
            with measure(device) as spent:
                entry = loop.epoch(epoch, lambda k: bar.update(1 / loop.iters, None, k))
            if "reselection" in loop.costs:  # counted apart, not again as training
                spent.seconds -= loop.costs["reselection"].seconds - planning.seconds
                spent.cpu_seconds -= loop.costs["reselection"].cpu_seconds - planning.cpu_seconds
            entry["samples"] = loop.seen - loop.costs["training"].samples
            loop.add("training", spent, int(entry["samples"]))
            # the training so far, re-selections included, for time-to-accuracy curves
            entry["seconds"] = sum(loop.costs[k].seconds for k in ("training", "reselection")
                                   if k in loop.costs)  # fmt: skip
            broken = "the loss is" if not math.isfinite(entry["train_loss"]) else None
            if broken is None and not all(bool(p.isfinite().all()) for p in model.parameters()):
                broken = "the weights are"  # a finite loss can hide them (a dead layer)
            if broken is not None:
                raise TrainingDiverged(
                    f"{desc}: training diverged in epoch {epoch + 1} ({broken} not finite) at "
                    f"lr {config.lr:g}; lower the learning rate ({lr_option}) or use another seed"
                )
            last = epoch + 1 == loop.epochs
            if test is not None and (
                last or (config.eval_every and (epoch + 1) % config.eval_every == 0)
            ):
                with measure(device) as spent:
                    entry["test_accuracy"], entry["test_loss"] = evaluate(loop.model, test, device)
                loop.add("evaluation", spent, len(test))
            history.append(entry)
            if checkpoint is not None and (
                last or time.perf_counter() - saved >= CHECKPOINT_SECONDS
            ):  # short epochs (small coresets) are saved at most every CHECKPOINT_SECONDS
                _save_checkpoint(checkpoint, loop, history, config, epoch + 1)
                saved = time.perf_counter()
            for callback in callbacks:
                callback(epoch + 1, dict(entry))
            note = f"loss {entry['train_loss']:.3f}"
            if "test_accuracy" in entry:
                note += f" acc {entry['test_accuracy']:.4f}"
            bar.update(epoch + 1 - start_epoch - bar.done, note)
    loop.share_buffers()
    accs = [h["test_accuracy"] for h in history if "test_accuracy" in h]
    train = loop.costs["training"]
    return TrainResult(
        loop.model,
        history,
        accs[-1] if accs else None,
        max(accs) if accs else None,
        loop.dynamics(),
        train.seconds + loop.costs["evaluation"].seconds,
        train.samples / train.seconds if train.seconds > 0 else 0.0,
        dict(loop.costs),
    )


@dataclasses.dataclass
class _Loop:
    """The state of one training run: model, optimiser, generator, weights, dynamics."""

    model: nn.Module
    source: Source
    config: TrainConfig
    device: torch.device
    opt: torch.optim.Optimizer
    scaler: Any
    gen: torch.Generator
    weights: torch.Tensor | None
    dyn: Recorder | None
    iters: int  #: steps per full epoch
    epochs: int  #: epochs to run (the last one cut short to ``total`` steps)
    total: int  #: steps in all
    seen: int = 0
    net: nn.Module | None = None  #: the DistributedDataParallel wrapper under torchrun
    #: training and evaluation cost so far (kept in checkpoints: a resumed run keeps its time)
    costs: dict[str, StageCost] = dataclasses.field(
        default_factory=lambda: {"training": StageCost(), "evaluation": StageCost()}
    )
    schedule: Schedule | None = None  #: picks each epoch's samples (pruning during training)
    _order: torch.Tensor | None = None  #: the schedule's samples this epoch, shuffled
    _count: int | None = None  #: and their number of batches

    def use(self, schedule: Schedule) -> None:
        """Train with ``schedule`` picking each epoch's samples."""
        if self.dyn is not None or self.config.iterations or self.net is not None:
            raise DeepcoreError(
                f"schedule '{schedule.name}' trains by epochs in one process: give epochs, "
                "not iterations (protocol epochs), and no training dynamics or torchrun"
            )
        if self.weights is not None:
            raise DeepcoreError(
                f"schedule '{schedule.name}' picks from the whole training set; a weighted "
                "coreset has weights of its own"
            )
        schedule.start(len(self.source), self.epochs, self.config.seed)
        self.schedule = schedule
        if schedule.uses_model:
            self.costs.setdefault("reselection", StageCost())

    def add(self, stage: str, spent: StageCost, samples: int) -> None:
        """Add ``spent`` (and ``samples``) to ``stage``'s running cost."""
        c = self.costs[stage]
        c.seconds += spent.seconds
        c.cpu_seconds += spent.cpu_seconds
        c.samples += samples

    @classmethod
    def start(
        cls,
        model: nn.Module,
        source: Source,
        config: TrainConfig,
        device: torch.device,
        weights: np.ndarray | None,
        record_dynamics: bool,
        running: RunningSpec | None = None,
    ) -> _Loop:
        n, cuda = len(source), device.type == "cuda"
        model = model.to(device)
        if cuda and config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov and config.momentum > 0,
        )
        w = None
        if weights is not None:
            w = torch.as_tensor(np.asarray(weights), dtype=torch.float32, device=device)
            if w.shape != (n,) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise DeepcoreError("weights must be one finite non-negative number per sample")
        dyn = None
        if record_dynamics and config.iterations:
            raise DeepcoreError("training dynamics are recorded per epoch: train by epochs")
        if record_dynamics:
            dyn = Recorder(config.epochs, n, device, running)
        scaler = torch.amp.GradScaler("cuda", enabled=cuda and config.amp)
        gen = torch.Generator().manual_seed(config.seed)
        steps = dataclasses.replace(config, batch_size=global_batch(config.batch_size))
        iters = math.ceil(n / steps.batch_size)
        epochs, total = steps.steps(n)
        loop = cls(model, source, config, device, opt, scaler, gen, w, dyn, iters, epochs, total)
        if distributed.active():
            from torch.nn.parallel import DistributedDataParallel

            loop.net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        return loop

    def epoch(self, epoch: int, on_batch: Callable[[int], None] | None = None) -> dict[str, float]:
        """Train one epoch; return its metrics (``epoch``, ``train_loss``, ``lr``).

        :param on_batch: called after every step with the samples it trained on (progress).
        """
        config, device = self.config, self.device
        amp = device.type == "cuda" and config.amp
        last_channels = device.type == "cuda" and config.channels_last
        scale = weights = None
        if self.schedule is not None:
            scale, weights = self._plan(epoch)
        self.model.train()
        run_loss = torch.zeros((), device=device)
        steps, batches = 0, self._count
        for i, (x, y, idx, real, denom) in enumerate(self._batches(epoch)):
            if epoch * self.iters + i >= self.total:
                break  # a fixed number of iterations ends inside this epoch
            # a schedule's short epoch spans the same share of the learning-rate schedule
            step = epoch * self.iters + (i if batches is None else i * self.iters // batches)
            lr = config.lr_at(step, self.total)
            for group in self.opt.param_groups:
                group["lr"] = lr
            if last_channels:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=amp):
                out = (self.net or self.model)(x)
            per = nn.functional.cross_entropy(out.float(), y, reduction="none")
            if real is not None:  # a rank's share of a global batch: DDP averages the ranks
                wb = real if self.weights is None else self.weights[idx.to(device)] * real
                loss = (per * wb).sum() / denom * distributed.world_size()
            elif (held := self.weights if weights is None else weights) is not None:
                wb = held[idx.to(device)]
                loss = (per * wb).sum() / wb.sum().clamp_min(1e-12)
            elif scale is not None:
                loss = (per * scale[idx.to(device)]).mean()
            else:
                loss = per.mean()
            if self.schedule is not None and self.schedule.uses_losses:
                self.schedule.observe(idx.cpu().numpy(), per.detach().float().cpu().numpy())
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            run_loss += loss.detach()
            steps += 1
            keep = slice(None) if real is None else real.bool()
            self.seen += int(y[keep].numel())
            if on_batch is not None:
                on_batch(int(y[keep].numel()))
            if self.dyn is not None:
                out_d, per_d = out.detach().float()[keep], per.detach()[keep]
                self.dyn.record(epoch, idx.to(device)[keep], out_d, y[keep], per_d)
        if self.dyn is not None:
            self.dyn.end_epoch(epoch)
        mean_loss = distributed.sum_(run_loss) / (max(1, steps) * distributed.world_size())
        return {"epoch": epoch + 1, "train_loss": float(mean_loss), "lr": lr}

    def _plan(self, epoch: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Ask the schedule for ``epoch``'s samples (the time a model-reading schedule takes
        is the run's ``reselection`` cost); their dense loss scale and weights."""
        assert self.schedule is not None
        with measure(self.device) as spent:
            plan = self.schedule.planned(epoch, self.model if self.schedule.uses_model else None)
        if self.schedule.uses_model:
            self.add("reselection", spent, 0)
            self.model.train()
        idx = torch.as_tensor(plan.indices)
        self._order = idx[torch.randperm(len(idx), generator=self.gen)]
        self._count = math.ceil(len(idx) / self.config.batch_size)
        dense = []
        for part in (plan.scale, plan.weights):
            full = None
            if part is not None:
                full = torch.ones(len(self.source), device=self.device)
                full[idx.to(self.device)] = torch.as_tensor(part, dtype=torch.float32).to(
                    self.device
                )
            dense.append(full)
        return dense[0], dense[1]

    def _batches(
        self, epoch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any, Any]]:
        """``(x, y, idx, real, denom)`` per step. In one process: the batches of a seeded
        permutation (``real`` and ``denom`` None). Under torchrun: this rank's share of each
        global batch (every rank draws the same permutation; ranks take every ``world``-th
        sample, so step i's global batch is a contiguous slice of it), padded with zero-weight
        samples (``real`` 0) so every rank takes the same steps; ``denom`` is the global
        batch's total weight."""
        config, device, n = self.config, self.device, len(self.source)
        if self.net is None:
            order = torch.randperm(n, generator=self.gen) if self._order is None else self._order
            for x, y, idx in self.source.batches(
                order, config.batch_size, config.augment, self.gen, device
            ):
                yield x, y, idx, None, None
            return
        world, rank = distributed.world_size(), distributed.rank()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + epoch))
        aug = torch.Generator().manual_seed((config.seed + epoch) * 1_000_003 + rank)
        local = order[rank::world]
        count, width = len(local), -(-n // world)
        local = torch.cat([local, order[: width - count]])  # pads carry weight 0
        per_rank = -(-config.batch_size // world)
        big = per_rank * world
        for i, (x, y, idx) in enumerate(
            self.source.batches(local, per_rank, config.augment, aug, device)
        ):
            start = i * per_rank
            real = (torch.arange(start, start + len(y), device=device) < count).float()
            chunk = order[i * big : (i + 1) * big]
            denom = (
                float(len(chunk)) if self.weights is None else self.weights[chunk.to(device)].sum()
            )
            yield x, y, idx, real, denom

    def share_buffers(self) -> None:
        """Under torchrun: every rank takes rank 0's buffers (batch-norm statistics), so all
        ranks hold the same model."""
        if self.net is not None:
            import torch.distributed as dist

            for b in self.model.buffers():
                dist.broadcast(b, 0)

    def dynamics(self) -> Dynamics | RunningDynamics | None:
        """The recorded dynamics as numpy arrays, if recorded."""
        return None if self.dyn is None else self.dyn.result()


def _config_key(config: TrainConfig, schedule: Schedule | None = None) -> str:
    key = config.key()
    if schedule is not None:  # absent without one: older checkpoints stay valid
        key["schedule"] = schedule.describe()
    return json.dumps(key, sort_keys=True)


def _save_checkpoint(
    path: Path, loop: _Loop, history: list[dict[str, float]], config: TrainConfig, epoch: int
) -> None:
    if not distributed.is_main():
        return  # every rank holds the same state; rank 0 writes it
    state = {
        "model": loop.model.state_dict(),
        "optimizer": loop.opt.state_dict(),
        "generator": loop.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "dynamics": None if loop.dyn is None else loop.dyn.state,
        "history": history,
        "config": _config_key(config, loop.schedule),
        "epoch": epoch,
        "seen": loop.seen,
        "costs": {k: c.as_dict() for k, c in loop.costs.items()},
        "schedule": None if loop.schedule is None else loop.schedule.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent, prefix=f".{path.name}.")  # a killed run's half-written copies
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{owner_tag()}-", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        save_torch(state, tmp, path)
        os.replace(tmp, path)  # a unique temporary name: concurrent writers never collide
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any] | str | None:
    """The checkpoint's state, ``None`` when there is none, or why it cannot be read.

    A missing file is not an error even when it was there a moment ago: another process
    filling the same cache entry removes its checkpoint once the entry is in place.
    """
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    except Exception as exc:
        return f"checkpoint '{path}' is unreadable: {exc}; delete it to restart"
    return state


def _resume(path: Path, loop: _Loop, history: list[dict[str, float]], config: TrainConfig) -> int:
    """Restore ``loop`` from the checkpoint at ``path``; the epoch to start at (0 without one)."""
    state = distributed.share(_read(path) if distributed.is_main() else None)  # rank 0's file
    if state is None:
        return 0
    if isinstance(state, str):
        raise DeepcoreError(state)
    if state.get("config") != _config_key(config, loop.schedule):
        raise DeepcoreError(
            f"checkpoint '{path}' was written with other settings; delete it "
            "or use another output folder"
        )
    loop.model.load_state_dict(state["model"])
    loop.opt.load_state_dict(state["optimizer"])
    loop.gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if loop.dyn is not None and state["dynamics"] is not None:
        saved = state["dynamics"]
        if set(saved) != set(loop.dyn.state):
            raise DeepcoreError(
                f"checkpoint '{path}' holds other training dynamics (another deepcore "
                "version); delete it to restart"
            )
        for k in loop.dyn.state:  # replaced, not copied: some are sized on the first batch
            loop.dyn.state[k] = saved[k].to(loop.device)
    history.extend(state["history"])
    loop.seen = int(state.get("seen", 0))
    for stage, cost in state.get("costs", {}).items():  # older checkpoints: counted from here
        loop.costs[stage] = StageCost.of(cost)
    if loop.schedule is not None and state.get("schedule") is not None:
        loop.schedule.load_state_dict(state["schedule"])
    return int(state["epoch"])
