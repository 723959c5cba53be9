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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from deepcore_core.data.sources import Source
from deepcore_core.engine.config import TrainConfig
from deepcore_core.errors import DeepcoreError, TrainingDiverged
from deepcore_core.progress import Progress


@dataclasses.dataclass
class Dynamics:
    """Per-sample training dynamics, one row per epoch (epochs x N arrays).

    Values are recorded from the forward pass of each sample's mini-batch, before the update:

    * ``loss``: the cross-entropy; the true-class probability is ``p_true = exp(-loss)``.
    * ``correct``: whether the prediction was right.
    * ``margin``: the true-class logit minus the largest other logit (negative when wrong).
    * ``max_other``: the largest other-class probability (CCS's probability margin is
      ``p_true - max_other``).
    * ``sum_sq``: the sum of squared probabilities (per-epoch EL2N is
      ``sqrt(sum_sq - 2 p_true + 1)``).
    * ``change``: TDDS's per-epoch contribution sum_c |p_t,c log(p_t,c / p_t-1,c)| (0 in the
      first epoch), computed online against the previous epoch's probabilities.

    The last three are None in dynamics made without them (older caches, user arrays).
    Memory: 5 float32 and 1 bool per sample and epoch, 21 MB per million samples and epoch,
    plus the previous epoch's probabilities while training (4 C bytes per sample).
    """

    loss: np.ndarray  # float32, epochs x N
    correct: np.ndarray  # bool, epochs x N
    margin: np.ndarray  # float32, epochs x N
    max_other: np.ndarray | None = None  # float32, epochs x N
    sum_sq: np.ndarray | None = None  # float32, epochs x N
    change: np.ndarray | None = None  # float32, epochs x N

    @property
    def p_true(self) -> np.ndarray:
        """The true-class probability per epoch, ``exp(-loss)``."""
        return np.exp(-self.loss.astype(np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that are present, by name."""
        return {k: v for k, v in vars(self).items() if v is not None}

    def save(self, path: Path | IO[bytes]) -> None:
        """Write as a compressed ``.npz`` (to a path or an open binary file)."""
        np.savez_compressed(path, **self.arrays())  # type: ignore[arg-type]

    def shapes(self) -> dict[str, list[Any]]:
        """Shape and dtype of each array, for the cache's records."""
        return {k: [list(v.shape), str(v.dtype)] for k, v in self.arrays().items()}

    def need(self, name: str, method: str) -> np.ndarray:
        """The array ``name``, or a clear error naming ``method`` when it was not recorded."""
        value = self.p_true if name == "p_true" else getattr(self, name)
        if value is None:
            raise DeepcoreError(
                f"method '{method}' needs the dynamics' '{name}', which these dynamics lack "
                "(select from a dataset so that the engine records it, or give it)"
            )
        return np.asarray(value)

    @classmethod
    def load(cls, path: Path) -> Dynamics:
        """Read a file written by :meth:`save`."""
        with np.load(path) as z:
            names = [f.name for f in dataclasses.fields(cls)]
            return cls(**{k: z[k] for k in names if k in z.files})


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: nn.Module
    history: list[dict[str, float]]
    final_accuracy: float | None
    best_accuracy: float | None
    dynamics: Dynamics | None
    seconds: float
    images_per_second: float


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
    checkpoint: Path | None = None,
    desc: str = "training",
    lr_option: str = "--lr",
    callbacks: Sequence[EpochCallback] = (),
) -> TrainResult:
    """Train ``model`` on all of ``source`` (use ``source.subset`` for a coreset).

    :param weights: per-sample loss weights aligned with ``source`` (None: all ones).
    :param test: evaluated every ``config.eval_every`` epochs and after the last one.
    :param record_dynamics: keep per-sample loss/correctness/margin for every epoch.
    :param checkpoint: save state here after an epoch (at most every ``CHECKPOINT_SECONDS``,
        and after the last) and resume from it if present.
    :param lr_option: the setting that the divergence error tells the user to lower.
    :param callbacks: called after every epoch with ``(epoch, metrics)``; metrics hold
        ``train_loss``, ``lr`` and, on evaluated epochs, ``test_accuracy`` and ``test_loss``.
    """
    if len(source) == 0:
        raise DeepcoreError("cannot train on an empty set")
    loop = _Loop.start(model, source, config, device, weights, record_dynamics)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        start_epoch = _resume(checkpoint, loop, history, config)
    t0 = saved = time.perf_counter()
    with Progress(loop.epochs - start_epoch, desc) as bar:
        for epoch in range(start_epoch, loop.epochs):
            entry = loop.epoch(epoch)
            if not math.isfinite(entry["train_loss"]):
                raise TrainingDiverged(
                    f"{desc}: training diverged in epoch {epoch + 1} (the loss is not finite) at "
                    f"lr {config.lr:g}; lower the learning rate ({lr_option}) or use another seed"
                )
            last = epoch + 1 == loop.epochs
            if test is not None and (
                last or (config.eval_every and (epoch + 1) % config.eval_every == 0)
            ):
                entry["test_accuracy"], entry["test_loss"] = evaluate(loop.model, test, device)
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
            bar.update(1, note)
    seconds = time.perf_counter() - t0
    accs = [h["test_accuracy"] for h in history if "test_accuracy" in h]
    return TrainResult(
        loop.model,
        history,
        accs[-1] if accs else None,
        max(accs) if accs else None,
        loop.dynamics(),
        seconds,
        loop.seen / seconds if seconds > 0 else 0.0,
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
    dyn: dict[str, torch.Tensor] | None
    iters: int  #: steps per full epoch
    epochs: int  #: epochs to run (the last one cut short to ``total`` steps)
    total: int  #: steps in all
    seen: int = 0

    @classmethod
    def start(
        cls,
        model: nn.Module,
        source: Source,
        config: TrainConfig,
        device: torch.device,
        weights: np.ndarray | None,
        record_dynamics: bool,
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
            kinds = [(k, torch.float32) for k in ("loss", "margin", "max_other", "sum_sq")]
            kinds += [("correct", torch.bool), ("change", torch.float32)]
            dyn = {k: torch.zeros(config.epochs, n, device=device, dtype=dt) for k, dt in kinds}
            dyn["_prev"] = torch.zeros(0, device=device)  # last epoch's probabilities, N x C
        scaler = torch.amp.GradScaler("cuda", enabled=cuda and config.amp)
        gen = torch.Generator().manual_seed(config.seed)
        iters = math.ceil(n / config.batch_size)
        epochs, total = config.steps(n)
        return cls(model, source, config, device, opt, scaler, gen, w, dyn, iters, epochs, total)

    def epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch; return its metrics (``epoch``, ``train_loss``, ``lr``)."""
        config, device = self.config, self.device
        amp = device.type == "cuda" and config.amp
        last_channels = device.type == "cuda" and config.channels_last
        self.model.train()
        order = torch.randperm(len(self.source), generator=self.gen)
        run_loss = torch.zeros((), device=device)
        batches = self.source.batches(order, config.batch_size, config.augment, self.gen, device)
        steps = 0
        for i, (x, y, idx) in enumerate(batches):
            if epoch * self.iters + i >= self.total:
                break  # a fixed number of iterations ends inside this epoch
            lr = config.lr_at(epoch * self.iters + i, self.total)
            for group in self.opt.param_groups:
                group["lr"] = lr
            if last_channels:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=amp):
                out = self.model(x)
            per = nn.functional.cross_entropy(out.float(), y, reduction="none")
            if self.weights is not None:
                wb = self.weights[idx.to(device)]
                loss = (per * wb).sum() / wb.sum().clamp_min(1e-12)
            else:
                loss = per.mean()
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            run_loss += loss.detach()
            steps += 1
            self.seen += len(y)
            if self.dyn is not None:
                _record(self.dyn, epoch, idx.to(device), out.detach().float(), y, per.detach())
        return {"epoch": epoch + 1, "train_loss": float(run_loss) / max(1, steps), "lr": lr}

    def dynamics(self) -> Dynamics | None:
        """The recorded dynamics as numpy arrays, if recorded."""
        if self.dyn is None:
            return None
        d = {k: v.cpu().numpy() for k, v in self.dyn.items() if not k.startswith("_")}
        return Dynamics(**d)


def _record(
    dyn: dict[str, torch.Tensor],
    epoch: int,
    idx: torch.Tensor,
    out: torch.Tensor,
    y: torch.Tensor,
    per: torch.Tensor,
) -> None:
    true = out.gather(1, y[:, None]).squeeze(1)
    other = out.scatter(1, y[:, None], float("-inf")).max(1).values
    dyn["loss"][epoch, idx] = per
    dyn["correct"][epoch, idx] = out.argmax(1) == y
    dyn["margin"][epoch, idx] = true - other
    logp = torch.log_softmax(out, 1)
    p = logp.exp()
    dyn["max_other"][epoch, idx] = p.scatter(1, y[:, None], 0.0).max(1).values
    dyn["sum_sq"][epoch, idx] = (p * p).sum(1)
    if dyn["_prev"].numel() == 0:  # the first batch: now the class count is known
        dyn["_prev"] = torch.zeros(dyn["loss"].shape[1], p.shape[1], device=p.device)
    if epoch > 0:
        prev = dyn["_prev"][idx].clamp_min(1e-12).log()
        dyn["change"][epoch, idx] = (p * (logp - prev)).abs().sum(1)
    dyn["_prev"][idx] = p


def _config_key(config: TrainConfig) -> str:
    return json.dumps(config.key(), sort_keys=True)


def _save_checkpoint(
    path: Path, loop: _Loop, history: list[dict[str, float]], config: TrainConfig, epoch: int
) -> None:
    state = {
        "model": loop.model.state_dict(),
        "optimizer": loop.opt.state_dict(),
        "generator": loop.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "dynamics": loop.dyn,
        "history": history,
        "config": _config_key(config),
        "epoch": epoch,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)  # a unique temporary name: concurrent writers never collide
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resume(path: Path, loop: _Loop, history: list[dict[str, float]], config: TrainConfig) -> int:
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DeepcoreError(
            f"checkpoint '{path}' is unreadable: {exc}; delete it to restart"
        ) from None
    if state.get("config") != _config_key(config):
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
        if set(saved) != set(loop.dyn):
            raise DeepcoreError(
                f"checkpoint '{path}' holds other training dynamics (another deepcore "
                "version); delete it to restart"
            )
        for k in loop.dyn:  # replaced, not copied: some are sized on the first batch
            loop.dyn[k] = saved[k].to(loop.device)
    history.extend(state["history"])
    return int(state["epoch"])
