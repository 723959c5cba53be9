"""Selection-model pretraining, cached on disk and keyed by everything that determines it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepcore_core import distributed
from deepcore_core._io import check_writable, owner_tag, save_torch, sweep_stale
from deepcore_core._version import __version__
from deepcore_core.cache import CacheEntry
from deepcore_core.cost import StageCost
from deepcore_core.data.sources import DatasetSplits, on_device
from deepcore_core.dynamics import Dynamics, RunningDynamics, load_dynamics
from deepcore_core.engine.config import PretrainSpec, default_cache_dir
from deepcore_core.engine.devices import resolve_device, seed_everything
from deepcore_core.engine.training import EpochCallback, train_model
from deepcore_core.errors import DeepcoreError
from deepcore_core.nets.base import Network, NetworkRegistry
from deepcore_core.selection import dataset_fingerprint

#: 2: every file checksummed in manifest.json; 3: dynamics with max_other, sum_sq and change
CACHE_FORMAT = 3
#: how many selection models were actually trained (not loaded) in this process
TRAINED_COUNT = {"n": 0}


@dataclasses.dataclass
class Pretrained:
    """A trained selection model, its training dynamics and its cache folder."""

    model: Network
    dynamics: Dynamics | RunningDynamics
    folder: Path
    cached: bool
    #: what training it cost (reused when loaded: the cost recorded when it was trained)
    cost: StageCost = dataclasses.field(default_factory=StageCost)


def cache_key(data: DatasetSplits, spec: PretrainSpec, seed: int) -> str:
    """A hash of everything that determines the selection model."""
    pre = None
    if spec.pretrained:
        p = Path(spec.pretrained)
        pre = [str(p.resolve()), p.stat().st_size if p.exists() else None]
    payload = {
        "format": CACHE_FORMAT,
        "core_minor": ".".join(__version__.split(".")[:2]),
        "dataset": dataset_fingerprint(data.train.labels, len(data.train), data.name),
        "shape": [data.channels, data.image_size, data.num_classes],
        "network": spec.network.lower(),
        "train": spec.config_for(seed).key(),
        "pretrained": pre,
    }
    if spec.running is not None:  # absent for the full history: older keys stay valid
        payload["dynamics"] = spec.running.key()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def pretrain(
    data: DatasetSplits,
    spec: PretrainSpec,
    seed: int,
    device: str,
    networks: NetworkRegistry,
    callbacks: Sequence[EpochCallback] = (),
) -> Pretrained:
    """Train (or load from the cache) the selection model for ``seed``.

    :param networks: the registry the selection network is built from.
    :param callbacks: called after every training epoch (not when loaded from the cache).
    """
    dev = torch.device(resolve_device(device))  # a public entry point: checked here too
    key = cache_key(data, spec, seed)
    folder = (spec.cache_dir or default_cache_dir()) / "selection-models" / key

    def build() -> Network:
        seed_everything(seed)
        return networks.build(
            spec.network, data.channels, data.num_classes, data.image_size, spec.pretrained
        )

    entry = CacheEntry(folder, key)
    cached = None  # under torchrun rank 0 reads the cache and every rank takes its copy
    if distributed.is_main() and entry.usable(
        "model.pt", "dynamics.npz", what="selection-model cache entry"
    ):
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        cached = (state, load_dynamics(folder / "dynamics.npz"))
    cached = distributed.share(cached)
    if cached is not None:
        model = build()
        model.load_state_dict(cached[0])
        cost = _recorded_cost(folder, spec.config_for(seed).epochs * len(data.train))
        return Pretrained(model.to(dev), cached[1], folder, True, cost)
    if distributed.is_main():  # before the training, not after it
        check_writable(folder.parent, folder=True)
        sweep_stale(folder.parent)  # what killed runs left half-written
    model = build()  # a broken entry in the way is replaced once the new one is complete
    source = on_device(data.train, dev)
    result = train_model(
        model,
        source,
        spec.config_for(seed),
        dev,
        record_dynamics=True,
        running=spec.running,
        checkpoint=folder.parent / f".{folder.name}.partial.pt",
        desc=f"selection model {spec.network} seed {seed}",
        lr_option="--selection-lr",
        callbacks=callbacks,
    )
    TRAINED_COUNT["n"] += 1
    assert result.dynamics is not None
    if distributed.is_main():
        _store(folder, key, model, result.dynamics, _meta(data, spec, seed, result))
    distributed.barrier()  # the entry exists before any rank goes on
    return Pretrained(model, result.dynamics, folder, False, result.cost())


def _recorded_cost(folder: Path, samples: int) -> StageCost:
    """The cost a cache entry's ``meta.json`` recorded (entries from before costs were
    recorded give their seconds and ``samples``, the epochs over the data), as reused."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    recorded = {"samples": samples, "seconds": meta.get("seconds", 0.0), **meta.get("cost", {})}
    return StageCost.of({**recorded, "reused": True})


def _meta(data: DatasetSplits, spec: PretrainSpec, seed: int, result: Any) -> dict[str, Any]:
    return {
        "network": spec.network,
        "seed": seed,
        "dataset": data.name,
        "train": spec.config_for(seed).key(),
        "seconds": result.seconds,
        "cost": result.cost().as_dict(),
        "images_per_second": result.images_per_second,
        "dynamics": spec.running.key() if spec.running else {"kind": "full"},
    }


def _store(
    folder: Path,
    key: str,
    model: Network,
    dynamics: Dynamics | RunningDynamics,
    meta: dict[str, Any],
) -> None:
    """Fill a temporary folder (every file checksummed) and move it into place at once."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{owner_tag()}-", dir=folder.parent))
    try:
        entry = CacheEntry(tmp, key)
        entry.write("model.pt", lambda fh: save_torch(model.state_dict(), fh, folder / "model.pt"))
        entry.write("dynamics.npz", dynamics.save, arrays=dynamics.shapes())
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        (tmp / ".lock").unlink(missing_ok=True)
        for _ in range(2):
            try:
                os.replace(tmp, folder)
                break
            except OSError:  # the folder exists: another process's copy or a broken entry
                if _complete(CacheEntry(folder, key)):
                    break  # another process finished first: keep its copy
                shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left once it moved into place
        (folder.parent / f".{folder.name}.partial.pt").unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _complete(entry: CacheEntry) -> bool:
    return entry.problem("model.pt") is None and entry.problem("dynamics.npz") is None


def pretrain_on_labels(ctx: Any, labels: np.ndarray, what: str) -> Pretrained:
    """Train the selection network of ``ctx`` on ``labels`` in place of the dataset's (e.g.
    pseudo-labels from clustering), recording its dynamics; cached like every selection
    model (the labels are part of the key). Its cost is added to ``selection_model``.

    :param what: what the labels are, for errors (``"pseudo-labels"``).
    """
    from deepcore_core.data.sources import relabelled

    if ctx.dataset is None or ctx.pretrain is None or ctx.networks is None:
        raise DeepcoreError(
            f"training on {what} needs a dataset and a selection network the engine trains "
            "(--dataset; in Python: dataset= without model=)"
        )
    labels = np.asarray(labels, np.int64)
    data = dataclasses.replace(
        ctx.dataset,
        name=f"{ctx.dataset.name}+{what}",
        train=relabelled(ctx.dataset.train, labels),
        num_classes=int(labels.max()) + 1,
    )
    return pretrain(data, ctx.pretrain, ctx.seed, ctx.device, ctx.networks)


def proxy_accuracy(ctx: Any, labels: np.ndarray, subset: np.ndarray, iterations: int) -> float:
    """Train a fresh selection network on ``subset`` of ``ctx``'s dataset with ``labels`` (in
    place of its own) for ``iterations`` steps, seeded by the run's seed, and return its
    accuracy (a fraction) over every sample against ``labels``: how well a coreset teaches
    them."""
    from deepcore_core.data.sources import relabelled

    if ctx.dataset is None or ctx.pretrain is None or ctx.networks is None:
        raise DeepcoreError("a proxy training needs a dataset and a selection network")
    spec: PretrainSpec = ctx.pretrain
    labels = np.asarray(labels, np.int64)
    source = relabelled(ctx.dataset.train, labels)
    data = ctx.dataset
    dev = torch.device(resolve_device(ctx.device))
    seed_everything(ctx.seed)
    net = ctx.networks.build(spec.network, data.channels, int(labels.max()) + 1, data.image_size)
    config = dataclasses.replace(spec.config_for(ctx.seed), iterations=iterations, eval_every=0)
    result = train_model(
        net, on_device(source.subset(np.asarray(subset)), dev), config, dev,
        test=on_device(source, dev), desc=f"proxy on {len(subset)} samples",
        lr_option="--selection-lr",
    )  # fmt: skip
    return float(result.final_accuracy or 0.0)


def pretrain_selection_model(ctx: Any) -> Network:
    """The core's ``train`` hook: pretrain for ``ctx`` and record its dynamics."""
    spec: PretrainSpec = ctx.pretrain
    if ctx.networks is None:
        raise DeepcoreError("training a selection model needs the network registry (ctx.networks)")
    run = {"kind": "selection-model", "network": spec.network, "seed": ctx.seed}

    def observe(epoch: int, metrics: dict[str, float]) -> None:
        if ctx.hook is not None:
            ctx.hook.on_train_epoch_end(run=run, epoch=epoch, metrics=metrics)

    done = pretrain(ctx.dataset, spec, ctx.seed, ctx.device, ctx.networks, [observe])
    ctx.dynamics = done.dynamics
    ctx.cache_folder = done.folder
    ctx.costs["selection_model"] = done.cost
    return done.model
