"""The Python API, a view of the settings model: :func:`select`, :func:`scores`,
:func:`embed` and :func:`train`.

Every setting of ``deepcore select`` and ``deepcore train`` is a keyword here with the same
name, default, check and error message (:mod:`deepcore_core.settings`); the keywords only
Python has are the objects a command line cannot carry: a torch dataset, a model, arrays,
a collate function, a plugin host. The work itself is :mod:`deepcore_core.workflow`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from deepcore_core._io import atomic_write, load_array
from deepcore_core.budget import check_size
from deepcore_core.engine.config import LOADER_BATCH_SIZE
from deepcore_core.errors import DeepcoreError
from deepcore_core.plugins import PluginHost, get_host
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import ScoreSelector
from deepcore_core.settings import SelectSettings, TrainCommandSettings, build
from deepcore_core.workflow import (
    DataOptions,
    apply_label_settings,
    check_selection_output,
    context_for_arrays,
    context_for_dataset,
    context_for_user_dataset,
    lend_model,
    make_schedule,
    make_selection,
    sampler_for,
    train_network,
    train_summary,
)

__all__ = ["embed", "scores", "select", "train"]

#: renamed keywords: old name -> new name (the old ones warn, for one release)
_RENAMED = {"batch_size": "loader_batch_size", "network": "selection_network"}


def _deprecated(old: str, new: str, why: str = "") -> None:
    warnings.warn(
        f"select()/train() keyword '{old}' is deprecated; use '{new}'{why}",
        DeprecationWarning,
        stacklevel=4,
    )


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords given: None means "not given" (the setting's default holds)."""
    return {k: v for k, v in values.items() if v is not None}


def _reading(data: DataOptions | None, **keywords: Any) -> DataOptions:
    """How a user dataset is read: the loader keywords (``loader_batch_size`` is
    ``DataOptions.batch_size``), or a deprecated ``data=``."""
    if data is not None:
        _deprecated("data", "labels=, loader_batch_size=, num_workers=, collate_fn=, dataset_id=")
        return data
    return DataOptions(batch_size=keywords.pop("loader_batch_size"), **keywords)


def _setup(threads: int | None, device: str) -> str:
    """Threads (only when given: a library leaves its caller's process alone), the torchrun
    group, and the one device resolution."""
    from deepcore_core import distributed
    from deepcore_core.engine.devices import resolve_device, setup_cpu

    if threads is not None:
        setup_cpu(threads)
    if distributed.launched():  # under torchrun: every process runs this call together
        distributed.start(device)
    return resolve_device(device)


def select(
    method: str,
    *,
    dataset: Any = None,
    model: Any = None,
    features: Any = None,
    labels: Any = None,
    scores: Any = None,
    logits: Any = None,
    probs: Any = None,
    training_dynamics: Any = None,
    feature_layer: str | None = None,
    loader_batch_size: int = LOADER_BATCH_SIZE,
    num_workers: int = 0,
    collate_fn: Callable[..., Any] | None = None,
    dataset_id: str | None = None,
    input_key: str | None = None,
    label_key: str | None = None,
    host: PluginHost | None = None,
    **settings: Any,
) -> Selection:
    """Select a coreset with ``method`` from a dataset or from precomputed arrays.

    :param method: a registered method name (see ``deepcore list-methods``).
    :param dataset: a registered dataset's name (``"digits"``; ``data_root=`` its folder) or
        any map-style ``torch.utils.data.Dataset`` of ``(input, label)``. With ``model`` (a
        classifier ``nn.Module``, used as given in eval mode; features are the input of its
        final ``nn.Linear``, or of ``feature_layer``) the model's outputs feed the method;
        without it the engine trains ``selection_network`` (a registered name, or a factory
        ``f(channels, num_classes, image_size)``) and caches it under ``cache_dir``.
        Rows are ``(input, label)`` tuples or mappings (a Hugging Face ``datasets.Dataset``:
        ``input_key``/``label_key`` name the columns, by default the usual names);
        ``collate_fn`` gets the rows as they are, as in the user's own DataLoader.
        ``labels`` skips reading labels from a torch dataset; ``loader_batch_size``,
        ``num_workers`` and ``collate_fn`` are its DataLoader's; ``dataset_id`` names it in
        cache keys. The model is given back as it was found (modes, device, gradients, no
        hook left), whatever happens.
    :param features: N x D features; ``labels``: N class ids; ``scores``: N scores;
        ``logits``/``probs``: N x C model outputs (arrays, tensors or ``.npy`` paths);
        ``training_dynamics``: per-epoch ``correct`` (and ``loss``, ``margin``, ...) arrays.
        Give what the method needs, instead of ``dataset``.
    :param settings: the settings of ``deepcore select``, by the same names: ``fraction``
        or ``budget``, ``balance``, ``seed``, ``options``, ``variant``, ``sampler``,
        ``sampler_options``, ``device`` (auto, cpu, cuda, cuda:N), ``selection_network``,
        ``selection_epochs``, ``selection_lr``, ``selection_schedule``, ``pretrained``,
        ``dynamics`` (full or running) and ``dynamics_options``, ``cache_dir``,
        ``data_root``, ``threads`` (given: set this process's torch and BLAS threads as the
        CLI does; not given: leave them) and ``output`` (given: also write the selection
        there, as the CLI does). Without labels: ``no_labels=True`` (a torch dataset's rows
        may then be inputs alone), ``encoder`` (a name as on the command line, or any
        ``nn.Module`` whose output per batch is the embedding), ``encoder_weights``,
        ``encoder_options``, ``clusters``, ``dedup`` and ``embedding_dtype``. See
        ``docs/python-api.md``.
    :returns: the :class:`Selection`.
    """
    host = host or get_host()
    values, recorded = _select_renames(settings)
    module = values.pop("encoder") if not isinstance(values.get("encoder"), str | None) else None
    training_dynamics = recorded if training_dynamics is None else training_dynamics
    reading = _reading(
        None, labels=labels, loader_batch_size=values.pop("loader_batch_size", loader_batch_size),
        num_workers=num_workers, collate_fn=collate_fn, dataset_id=dataset_id,
        input_key=input_key, label_key=label_key,
    )  # fmt: skip
    factory = values.pop("selection_network") if callable(values.get("selection_network")) else None
    output, threads = values.pop("output", None), values.pop("threads", None)
    named = dataset if isinstance(dataset, str) else None
    s: SelectSettings = build(
        SelectSettings,
        {"method": method, **_given({"dataset": named, "threads": threads}), **values},
        "select() settings",
        text=False,
    )
    if output is not None:
        check_selection_output(output)
    check_size(s.fraction, s.budget)
    device = _setup(threads, s.device)
    selector = host.create_selector(method, s.options, s.variant)
    sampler = sampler_for(host, selector, s.sampler, s.sampler_options)
    if s.no_labels:  # rows are read as inputs only: labels absent or ignored
        reading = dataclasses.replace(reading, unlabeled=True)
    given = {"features": features, "scores": scores, "logits": logits, "probs": probs,
             "training_dynamics": training_dynamics}  # fmt: skip
    with contextlib.ExitStack() as lent:  # the user's model is given back as it was found
        if dataset is None:
            ctx = _arrays_context(s, device, model, {**given, "labels": labels})
            apply_label_settings(host, ctx, s, encoder=module)
        elif named is not None:
            _check_only_dataset(given, named, model, labels)
            ctx = context_for_dataset(
                host, host.datasets.load(named, s.data_root), s, s.seed, device, encoder=module
            )
        else:
            _check_only_dataset(given, None, None, None)
            borrowed = lent.enter_context(lend_model(model, feature_layer, device))
            ctx = context_for_user_dataset(
                host, dataset, s, s.seed, device, model=borrowed, network=factory, data=reading,
                encoder=module,
            )  # fmt: skip
        run = make_selection(
            host, selector, ctx, fraction=s.fraction, budget=s.budget,
            dataset_name=None if ctx.dataset is None else ctx.dataset.name, sampler=sampler,
        )  # fmt: skip
    if output is not None:
        run.selection.save(str(output))
    return run.selection


def _check_only_dataset(
    given: Mapping[str, Any], named: str | None, model: Any, labels: Any
) -> None:
    """A dataset excludes precomputed arrays; a registered one, a model and labels too."""
    extra = [k for k, v in given.items() if v is not None]
    if extra:
        raise DeepcoreError(f"give a dataset or precomputed arrays, not both ({extra[0]})")
    if named is not None and (model is not None or labels is not None):
        raise DeepcoreError(
            f"dataset '{named}' is a registered dataset: model= and labels= need a torch dataset"
        )


def _arrays_context(s: SelectSettings, device: str, model: Any, arrays: Mapping[str, Any]) -> Any:
    """The context of precomputed arrays (``.npy`` paths read memory-mapped)."""
    if model is not None:
        raise DeepcoreError("a model needs the dataset to run on: give dataset=...")
    if s.dynamics == "running":
        raise DeepcoreError("dynamics_options need a dataset the engine trains on")
    loaded = {k: _array_or_file(k, v) for k, v in arrays.items() if k != "training_dynamics"}
    return context_for_arrays(
        **loaded, dynamics=arrays["training_dynamics"], seed=s.seed, balance=s.balance,
        device=device,
    )  # fmt: skip


def _select_renames(settings: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """``settings`` with the old keyword names moved to the new ones (with a warning), and
    recorded dynamics given under their old name ``dynamics``."""
    values = _given(settings)
    recorded = None
    if not isinstance(values.get("dynamics", ""), str):
        _deprecated("dynamics", "training_dynamics", " for recorded arrays")
        recorded = values.pop("dynamics")
    for old, new in _RENAMED.items():
        if old in values:
            if new in values:
                raise DeepcoreError(f"give {new}= or its old name {old}=, not both")
            _deprecated(old, new)
            values[new] = values.pop(old)
    if values.get("dynamics_options") is not None and "dynamics" not in values:
        _deprecated("dynamics_options alone", "dynamics='running' with dynamics_options")
        values["dynamics"] = "running"
    return values, recorded


def _array_or_file(what: str, value: Any) -> Any:
    """An array input, or a ``.npy`` file's (memory-mapped) array when given a path."""
    if isinstance(value, str | os.PathLike):
        return load_array(os.fspath(value), what, mmap=True)
    return value


def scores(method: str, **inputs: Any) -> Any:
    """One score per sample from a score-based method, on the same inputs as :func:`select`.

    :param inputs: every keyword of :func:`select` but the size and balance settings.
    :raises DeepcoreError: for a method that picks rather than scores (k-center, ...).
    """
    host = inputs.get("host") or get_host()
    info = host.method(method)
    if not issubclass(info.cls, ScoreSelector):
        raise DeepcoreError(f"method '{method}' picks samples rather than scoring them")
    bad = sorted(set(inputs) & {"fraction", "budget", "balance"})
    if bad:
        raise DeepcoreError(f"scores() takes no {bad[0]}: every sample is scored")
    sel = select(method, budget=1, balance=False, **inputs)
    assert sel.scores is not None
    return sel.scores


def embed(
    dataset: Any,
    model: Any,
    *,
    feature_layer: str | None = None,
    device: str = "auto",
    labels: Any = None,
    loader_batch_size: int = LOADER_BATCH_SIZE,
    num_workers: int = 0,
    collate_fn: Callable[..., Any] | None = None,
    dataset_id: str | None = None,
    input_key: str | None = None,
    label_key: str | None = None,
    data: DataOptions | None = None,
    host: PluginHost | None = None,
) -> Any:
    """The model's penultimate features and class probabilities for every sample (the model
    is given back as it was found).

    :returns: an object with ``features`` (N x D), ``logits`` and ``probs`` (N x C), numpy,
        from the ``embed`` stage (so a plugin that takes it over applies).
    """
    host = host or get_host()
    s: SelectSettings = build(SelectSettings, {"device": device}, "embed() settings", text=False)
    reading = _reading(
        data, labels=labels, loader_batch_size=loader_batch_size, num_workers=num_workers,
        collate_fn=collate_fn, dataset_id=dataset_id, input_key=input_key, label_key=label_key,
    )  # fmt: skip
    device = _setup(None, s.device)
    with lend_model(model, feature_layer, device) as borrowed:
        ctx = context_for_user_dataset(host, dataset, s, 0, device, model=borrowed, data=reading)
        ctx.hook = host.hook
        out = host.hook.embed(ctx=ctx)
    if out is None:
        raise DeepcoreError("no plugin computed the embedding")
    return out


def train(
    model: Any,
    dataset: Any,
    selection: Selection | str | os.PathLike[str] | None = None,
    *,
    test: Any = None,
    labels: Any = None,
    loader_batch_size: int = LOADER_BATCH_SIZE,
    num_workers: int = 0,
    collate_fn: Callable[..., Any] | None = None,
    dataset_id: str | None = None,
    input_key: str | None = None,
    label_key: str | None = None,
    data: DataOptions | None = None,
    host: PluginHost | None = None,
    **settings: Any,
) -> Any:
    """Train ``model`` on ``dataset`` (or on ``selection`` of it) with the engine's protocol.

    SGD with Nesterov momentum and a per-iteration cosine; a selection's weights weight each
    sample's loss as ``sum(w * l) / sum(w)`` per batch. Every epoch is reported to the
    ``on_train_epoch_end`` observers.

    :param model: an ``nn.Module`` (trained in place), or None to build ``network`` (a
        registered name, default lenet) for the dataset.
    :param dataset: a torch dataset (augmentation is its own transform) or a registered
        dataset's name (``data_root=`` its folder; its test split is evaluated unless
        ``test`` is given).
    :param selection: a :class:`Selection` or a saved selection file.
    :param test: a torch dataset evaluated after the last epoch (and every ``eval_every``).
    :param settings: the settings of ``deepcore train``, by the same names: ``epochs``,
        ``iterations``, ``warmup``, ``batch_size``, ``lr``, ``min_lr``, ``momentum``,
        ``weight_decay``, ``nesterov``, ``augment``, ``eval_every``, ``seed``, ``device``,
        ``network``, ``data_root``, ``schedule`` and ``schedule_options`` (pruning during
        training: ``infobatch``, ``rs2``, ``adaptive``), ``threads`` (given: set, as the CLI
        does) and ``output`` (given: write the CLI's JSON summary there).
    :returns: the engine's ``TrainResult`` (``model``, ``history``, ``final_accuracy``, ...).
    """
    host = host or get_host()
    values = _given(settings)
    output, threads = values.pop("output", None), values.pop("threads", None)
    named = dataset if isinstance(dataset, str) else None
    s: TrainCommandSettings = build(
        TrainCommandSettings,
        {**_given({"dataset": named, "threads": threads}), **values},
        "train() settings",
        text=False,
    )
    device = _setup(threads, s.device)
    read = _reading(
        data, labels=labels, loader_batch_size=loader_batch_size, num_workers=num_workers,
        collate_fn=collate_fn, dataset_id=dataset_id, input_key=input_key, label_key=label_key,
    )  # fmt: skip
    if named is not None:
        splits = host.datasets.load(named, s.data_root)
        held_out = splits.test if test is None else read.source(test)
    else:
        splits = read.splits(dataset)
        held_out = None if test is None else read.source(test)
    sel = (
        Selection.load(os.fspath(selection))
        if isinstance(selection, str | os.PathLike)
        else selection
    )
    fingerprint = None
    if sel is not None and named is not None:
        fingerprint = dataset_fingerprint(splits.train.labels, len(splits.train), splits.name)
        sel.check_fits(len(splits.train), fingerprint, splits.name)
    config = s.train_config(s.seed)
    name = s.network if model is None else type(model).__name__
    size = len(splits.train) if sel is None else len(sel)
    schedule = make_schedule(
        host, s.schedule, s.schedule_options, splits, device, s.seed, selection=sel
    )
    result = train_network(
        host, s.network if model is None else model, splits, config, device, selection=sel,
        test=held_out, run={"method": None if sel is None else sel.meta.get("method"),
                            "network": name, "seed": s.seed},
        desc=f"training on {size} samples", schedule=schedule,
    )  # fmt: skip
    if output is not None:
        file = os.fspath(selection) if isinstance(selection, str | os.PathLike) else None
        with atomic_write(os.fspath(output), "w") as fh:
            json.dump(train_summary(result, config, sel, name, s.seed, size, file), fh, indent=2)
    return result
