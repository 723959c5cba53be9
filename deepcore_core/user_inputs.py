"""The researcher's own torch dataset, model and device in the Python API.

:func:`dataset_context` turns any map-style ``Dataset`` (and optionally a trained classifier)
into a selection context; :func:`train` runs the engine's training on the user's dataset and
model, honouring a selection's weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from deepcore_core.context import SelectionContext
from deepcore_core.dynamics import RunningSpec
from deepcore_core.errors import DeepcoreError
from deepcore_core.plugins import PluginHost
from deepcore_core.selection import Selection


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """How the user's dataset is read.

    :ivar labels: the N labels when reading them from the dataset would be slow.
    :ivar batch_size: batch size of the embedding and scoring passes.
    :ivar num_workers: DataLoader workers; ``collate_fn``: the DataLoader's collate function.
    :ivar dataset_id: names the dataset in cache keys (default: its class and a hash of its
        first and last samples, cheap but not a proof of identity).
    """

    labels: Any = None
    batch_size: int = 256
    num_workers: int = 0
    collate_fn: Callable[..., Any] | None = None
    dataset_id: str | None = None


def resolve(device: str) -> str:
    """``device`` checked (``auto``, ``cpu``, ``cuda``, ``cuda:N``), as a torch device string."""
    if device == "cpu":
        return "cpu"  # no torch import for array-only work on the CPU
    from deepcore_core.engine.devices import resolve_device

    if not isinstance(device, str):
        raise DeepcoreError(f"device must be one of auto, cpu, cuda, got {device!r}")
    return str(resolve_device(device))


def dataset_context(
    host: PluginHost,
    dataset: Any,
    *,
    model: Any = None,
    feature_layer: str | None = None,
    network: str | Callable[[int, int, int], Any] | None = None,
    selection_epochs: int | None = None,
    cache_dir: str | Path | None = None,
    data: DataOptions = DataOptions(),
    seed: int = 0,
    balance: bool = True,
    device: str = "auto",
    variant: str = "default",
    running: Mapping[str, Any] | None = None,
) -> SelectionContext:
    """A selection context over ``dataset``.

    With ``model`` (any classifier ``nn.Module``) the model is used as given, in eval mode;
    its penultimate features are the input of its final linear layer. Without it, the engine
    trains the selection model on the dataset and caches it: ``network`` is a registered
    name, or a factory ``network(channels, num_classes, image_size) -> nn.Module`` (cached
    under its qualified name). ``variant="original"`` trains it at a constant learning rate,
    as the original DeepCore code does. ``running`` (a mapping of window, horizon and decay)
    keeps running dynamics statistics instead of the full history.
    """
    from deepcore_core.data.user import UserSource, fingerprint_name, user_splits
    from deepcore_core.engine.config import PretrainSpec
    from deepcore_core.nets.features import with_features

    dev = resolve(device)
    source = UserSource(dataset, data.labels, data.batch_size, data.num_workers, data.collate_fn)
    splits = user_splits(source, fingerprint_name(dataset, data.dataset_id))
    networks = host.networks
    spec = None  # with the user's model: no selection-model training
    wrapped = None
    if model is not None:
        if running is not None:
            raise DeepcoreError("dynamics_options need a selection model the engine trains")
        wrapped = with_features(model, feature_layer).to(dev).eval()
    else:
        if callable(network):
            networks, network = with_factory(networks, network)
        default = PretrainSpec()
        spec = PretrainSpec(
            network or default.network,
            selection_epochs or default.epochs,
            dataclasses.replace(
                default.train, schedule="constant" if variant == "original" else "cosine"
            ),
            cache_dir=Path(cache_dir) if cache_dir else None,
            running=None if running is None else RunningSpec.parse(dict(running)),
        )
        networks.get(spec.network)
    return SelectionContext(
        n=len(source),
        labels=source.labels,
        seed=seed,
        balance=balance,
        device=dev,
        dataset=splits,
        model=wrapped,
        pretrain=spec,
        networks=networks,
    )


def with_factory(registry: Any, factory: Callable[[int, int, int], Any]) -> tuple[Any, str]:
    """A copy of the network ``registry`` with ``factory`` added; returns it and the name."""
    from deepcore_core.nets import NetworkInfo, NetworkRegistry
    from deepcore_core.nets.features import with_features

    name = "custom-" + getattr(factory, "__qualname__", type(factory).__name__).lower()
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    out = NetworkRegistry()
    for info in registry:
        out.add(info)
    out.add(
        NetworkInfo(
            name,
            cast(Any, lambda c, k, s: with_features(factory(c, k, s))),
            "a factory given to select()",
            min_size=1,
            max_size=1 << 16,
        )
    )
    return out, name


def embed(
    dataset: Any,
    model: Any,
    *,
    feature_layer: str | None = None,
    device: str = "auto",
    data: DataOptions = DataOptions(),
    host: PluginHost | None = None,
) -> Any:
    """The model's penultimate features and class probabilities for every sample.

    :returns: an object with ``features`` (N x D), ``logits`` and ``probs`` (N x C), numpy,
        from the ``embed`` stage (so a plugin that takes it over applies).
    """
    from deepcore_core.plugins import get_host

    host = host or get_host()
    ctx = dataset_context(host, dataset, model=model, feature_layer=feature_layer, data=data,
                          device=device)  # fmt: skip
    ctx.hook = host.hook
    out = host.hook.embed(ctx=ctx)
    if out is None:
        raise DeepcoreError("no plugin computed the embedding")
    return out


def train(
    model: Any,
    dataset: Any,
    selection: Selection | None = None,
    *,
    epochs: int = 50,
    lr: float = 0.1,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    seed: int = 0,
    test: Any = None,
    device: str = "auto",
    data: DataOptions = DataOptions(),
) -> Any:
    """Train ``model`` on ``dataset`` (or on ``selection`` of it) with the engine's protocol.

    SGD with Nesterov momentum and a per-iteration cosine; a selection's weights weight each
    sample's loss as ``sum(w * l) / sum(w)`` per batch. Augmentation is the dataset's own
    transform. ``test`` (a dataset) is evaluated after the last epoch.

    :returns: the engine's ``TrainResult`` (``model``, ``history``, ``final_accuracy``, ...).
    """
    import torch

    from deepcore_core.data.user import UserSource
    from deepcore_core.engine.config import TrainConfig
    from deepcore_core.engine.devices import seed_everything
    from deepcore_core.engine.training import train_model

    dev = torch.device(resolve(device))
    source = UserSource(dataset, data.labels, data.batch_size, data.num_workers, data.collate_fn)
    weights = None
    if selection is not None:
        selection.check_fits(len(source))
        source, weights = source.subset(selection.indices), selection.weights
    config = TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, seed=seed,
        augment=False, min_lr=min(TrainConfig().min_lr, lr),
    )  # fmt: skip
    seed_everything(seed)
    held_out = None
    if test is not None:
        held_out = UserSource(test, None, data.batch_size, data.num_workers, data.collate_fn)
    return train_model(
        model,
        source,  # type: ignore[arg-type]
        config,
        dev,
        weights=weights,
        test=held_out,  # type: ignore[arg-type]
        desc=f"training on {len(source)} samples",
    )
