"""The use cases under the three front ends: the command line, the Python API and the runner.

Each front end turns what it was given into settings (:mod:`deepcore_core.settings`) and a
resolved device, then calls these functions; none assembles a selection or a training run
itself. A new cross-cutting setting therefore touches ``settings.py`` and this module.

- **Contexts**: :func:`context_for_dataset` (a loaded dataset's splits, the selection model
  trained from the settings), :func:`context_for_user_dataset` (any map-style torch dataset,
  with or without the user's model) and :func:`context_for_arrays` (precomputed inputs).
- **Samplers**: :func:`sampler_for`, the one rule from settings to a sampler.
- **Selection**: :func:`make_selection` runs the stages (train, embed, score, select) for one
  method and returns the selection with the stage outputs another method of the same seed
  may reuse (:class:`StageOutputs`).
- **Training**: :func:`train_network` trains a network on a dataset or a selection of it,
  calling the ``on_train_epoch_end`` observers; whether a selection fits is
  :meth:`Selection.check_fits <deepcore_core.selection.Selection.check_fits>`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from deepcore_core.blocks import row_blocks
from deepcore_core.budget import total_budget
from deepcore_core.context import SelectionContext
from deepcore_core.cost import StageCost, measure
from deepcore_core.engine.config import LOADER_BATCH_SIZE
from deepcore_core.errors import DeepcoreError, MissingInputError, PluginError
from deepcore_core.gradients import softmax
from deepcore_core.plugins import PluginHost
from deepcore_core.progress import Progress
from deepcore_core.rules import check_range
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import Need, ScoreSelector, Selector

if TYPE_CHECKING:
    from deepcore_core.data.sources import DatasetSplits
    from deepcore_core.engine.config import TrainConfig
    from deepcore_core.engine.training import TrainResult
    from deepcore_core.samplers import Sampler
    from deepcore_core.settings import DataSettings

_HINTS = {
    Need.LABELS: "give labels (--labels)",
    Need.FEATURES: "give features (--features) or select from a dataset",
    Need.PROBABILITIES: "give logits or probabilities (--logits/--probs) or select from a dataset",
    Need.GRADIENTS: "give features, labels and logits/probabilities, or select from a dataset",
    Need.MODEL: "select from a dataset (--dataset, or dataset= and model= in Python)",
    Need.DYNAMICS: "select from a dataset (--dataset) so training dynamics can be recorded"
    " (in Python: dataset= without model=, or training_dynamics=)",
    Need.SCORES: "give per-sample scores (--scores)",
    Need.DATASET: "select from a dataset the engine trains on (--dataset; in Python: dataset= "
    "without model=)",
}
_MODEL_NEEDS = {Need.MODEL, Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS, Need.DYNAMICS}


# -- what a selection made that others may reuse --------------------------------------------


@dataclasses.dataclass(frozen=True)
class StageOutputs:
    """What the ``train`` and ``embed`` stages made for one seed's selection model: every
    method of that seed reuses them instead of training and embedding again."""

    model: Any = None
    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    dynamics: Any = None
    cache_folder: Path | None = None
    #: the encoder's embeddings (the features of feature-only methods when an encoder is set)
    embeddings: np.ndarray | None = None
    #: what the selection records of that encoder (name, options, store entry, k-NN figure)
    encoder_record: dict[str, Any] | None = None
    #: the k-means cluster of every sample (``--clusters``) and the samples SemDeDup kept
    #: (``--dedup``): the same for every method of the seed
    pools: np.ndarray | None = None
    candidates: np.ndarray | None = None
    #: what the shared stages (selection model, embedding) cost when they were made
    costs: dict[str, StageCost] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, ctx: SelectionContext) -> StageOutputs:
        """The stage outputs a context holds after a selection."""
        shared = {k: v for k, v in ctx.costs.items() if k in ("selection_model", "embedding")}
        values: dict[str, Any] = {
            f.name: getattr(ctx, f.name, None) for f in dataclasses.fields(cls)
        }
        values["encoder_record"] = ctx.extras.get("encoder")
        if ctx.features is not None and ctx.features is ctx.embeddings:
            values["features"] = None  # the model's features only
        return cls(**{**values, "costs": shared})

    def fill(self, ctx: SelectionContext) -> None:
        """Put these outputs into a fresh context (its stages then skip what they hold, and
        their costs are marked reused)."""
        for f in dataclasses.fields(self):
            if f.name not in ("costs", "encoder_record"):
                setattr(ctx, f.name, getattr(self, f.name))
        if self.encoder_record is not None:
            ctx.extras["encoder"] = dict(self.encoder_record)
        ctx.costs.update({k: c.as_reused() for k, c in self.costs.items()})


@dataclasses.dataclass(frozen=True)
class SelectionRun:
    """One selection with what its stages made and the seconds it took."""

    selection: Selection
    outputs: StageOutputs
    seconds: float
    #: each stage's cost (reused ones marked)
    costs: dict[str, StageCost] = dataclasses.field(default_factory=dict)


# -- contexts --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """How a user's torch dataset is read.

    :ivar labels: the N labels when reading them from the dataset would be slow.
    :ivar batch_size: batch size of the embedding and scoring passes (in the API:
        ``loader_batch_size``).
    :ivar num_workers: DataLoader workers; ``collate_fn``: the DataLoader's collate function.
    :ivar dataset_id: names the dataset in cache keys (default: its class and a hash of its
        first and last samples, cheap but not a proof of identity).
    :ivar input_key: ``label_key``: where a mapping row (a Hugging Face row) keeps its input
        and its label (default: the first of the usual names present; see
        :class:`~deepcore_core.data.user.RowFormat`).
    """

    labels: Any = None
    batch_size: int = LOADER_BATCH_SIZE
    num_workers: int = 0
    collate_fn: Callable[..., Any] | None = None
    dataset_id: str | None = None
    input_key: str | None = None
    label_key: str | None = None
    #: read inputs only (``no_labels``): rows may lack labels, which are then ignored
    unlabeled: bool = False

    def __post_init__(self) -> None:
        for name, lowest in (("batch_size", 1), ("num_workers", 0)):
            value = getattr(self, name)
            shown = "loader_batch_size" if name == "batch_size" else name
            if isinstance(value, bool) or not isinstance(value, int):
                raise DeepcoreError(f"{shown} must be an integer, got {value!r}")
            check_range(shown, value, {"min": lowest})
        if self.collate_fn is not None and not callable(self.collate_fn):
            raise DeepcoreError(
                f"collate_fn must be callable, got {type(self.collate_fn).__name__}"
            )

    def source(self, dataset: Any) -> Any:
        """``dataset`` as an engine source read with these options."""
        from deepcore_core.data.user import RowFormat, UserSource

        rows = RowFormat(self.input_key, self.label_key, self.unlabeled)
        return UserSource(
            dataset, self.labels, self.batch_size, self.num_workers, self.collate_fn, rows=rows
        )

    def splits(self, dataset: Any) -> DatasetSplits:
        """``dataset`` as the engine's splits (its channels, class names and cache name)."""
        from deepcore_core.data.user import RowFormat, class_names, fingerprint_name, user_splits

        rows = RowFormat(self.input_key, self.label_key, self.unlabeled)
        source = self.source(dataset)  # checks the dataset first (not empty, rows we can use)
        name = fingerprint_name(dataset, self.dataset_id, rows)
        return user_splits(source, name, class_names(dataset, rows))


def context_for_dataset(
    host: PluginHost,
    data: DatasetSplits,
    settings: DataSettings,
    seed: int,
    device: str,
    *,
    outputs: StageOutputs | None = None,
    scores: np.ndarray | None = None,
    encoder: Any = None,
) -> SelectionContext:
    """A selection context over ``data``; the selection model is trained as ``settings`` say.

    :param device: a resolved device (:func:`~deepcore_core.engine.devices.resolve_device`).
    :param outputs: the stage outputs of an earlier selection of the same seed, reused.
    :param scores: this method's scores from an earlier selection (another fraction).
    :param encoder: the user's ``nn.Module`` whose outputs are the features (in place of
        ``settings.encoder``).
    """
    host.networks.get(settings.selection_network)
    ctx = _over(data, settings, seed, device, settings.pretrain_spec(), host.networks)
    apply_label_settings(host, ctx, settings, encoder=encoder)
    ctx.scores = scores
    if outputs is not None:
        outputs.fill(ctx)
    return ctx


def context_for_user_dataset(
    host: PluginHost,
    dataset: Any,
    settings: DataSettings,
    seed: int,
    device: str,
    *,
    model: Any = None,
    network: Callable[[int, int, int], Any] | None = None,
    data: DataOptions = DataOptions(),
    encoder: Any = None,
) -> SelectionContext:
    """A selection context over a user's map-style ``dataset`` of ``(input, label)``.

    With ``model``, a classifier lent by :func:`lend_model` (used as given; its penultimate
    features are the input of its final linear layer), nothing is trained. Without it the
    engine trains the selection model as ``settings`` say and caches it; ``network`` is a
    factory ``network(channels, num_classes, image_size)`` used in place of the registered
    ``settings.selection_network``. ``encoder``: the user's ``nn.Module`` whose outputs are
    the features (in place of ``settings.encoder``).
    """
    splits = data.splits(dataset)
    networks = host.networks
    spec = None  # with the user's model: no selection-model training
    if model is not None:
        if settings.dynamics == "running":
            raise DeepcoreError("dynamics_options need a selection model the engine trains")
        _probe(model, splits, device)
    else:
        if network is not None:
            networks, name = with_factory(networks, network)
            settings = dataclasses.replace(settings, selection_network=name)
        networks.get(settings.selection_network)
        spec = settings.pretrain_spec()
    ctx = _over(splits, settings, seed, device, spec, networks)
    apply_label_settings(host, ctx, settings, encoder=encoder)
    ctx.model = model
    return ctx


def _over(
    data: DatasetSplits, settings: DataSettings, seed: int, device: str, spec: Any, networks: Any
) -> SelectionContext:
    """A selection context over ``data``'s training split."""
    return SelectionContext(
        n=len(data.train),
        labels=data.train.labels,
        seed=seed,
        balance=settings.balance,
        device=device,
        dataset=data,
        pretrain=spec,
        networks=networks,
    )


def apply_label_settings(
    host: PluginHost, ctx: SelectionContext, settings: Any, *, encoder: Any = None
) -> None:
    """Put the encoder and label settings (``encoder``, ``no_labels``, ``clusters``,
    ``dedup``, ``embedding_dtype``) into ``ctx``; ``encoder`` (an ``nn.Module``) overrides
    the named one. Without labels the encoder defaults to ``simclr``."""
    from deepcore_core.encoders import make_encoder

    no_labels = bool(getattr(settings, "no_labels", False))
    name = encoder if encoder is not None else getattr(settings, "encoder", None)
    if name is None and no_labels and ctx.dataset is not None:
        name = "simclr"
    options = getattr(settings, "encoder_options", None)
    ctx.encoder = make_encoder(
        host.encoders, name, options, getattr(settings, "encoder_weights", None)
    )
    if ctx.encoder is not None and ctx.dataset is None:
        raise DeepcoreError(
            f"encoder '{ctx.encoder.label}' embeds a dataset (--dataset); with precomputed "
            "features (--features) the features are given"
        )
    ctx.no_labels = no_labels
    if no_labels:
        ctx.labels = None
    ctx.clusters = getattr(settings, "clusters", None)
    ctx.dedup = getattr(settings, "dedup", None)
    ctx.embedding_dtype = getattr(settings, "embedding_dtype", "float32")
    cache = getattr(settings, "cache_dir", None)
    ctx.cache_dir = Path(cache) if cache else None


def _probe(model: Any, data: DatasetSplits, device: str) -> None:
    """The user's model on a first batch of their data, before any work."""
    import torch

    from deepcore_core.nets.features import probe

    x, _, _ = next(data.train.batches(torch.arange(min(2, len(data.train))), 2, device=device))
    probe(model, x, data.num_classes)


def lend_model(model: Any, feature_layer: str | None, device: str) -> Any:
    """A context manager: the user's ``model`` ready for the stages (wrapped for its features,
    eval mode, on ``device``), given back as it was found when the block ends; None stays
    None (then the engine trains the selection model)."""
    import contextlib

    from deepcore_core.nets.features import lent

    return contextlib.nullcontext(None) if model is None else lent(model, feature_layer, device)


def with_factory(registry: Any, factory: Callable[[int, int, int], Any]) -> tuple[Any, str]:
    """A copy of the network ``registry`` with ``factory`` added; returns it and the name."""
    from deepcore_core.nets import NetworkInfo, NetworkRegistry
    from deepcore_core.nets.features import with_features

    name = "custom-" + getattr(factory, "__qualname__", type(factory).__name__).lower()
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name) + "-" + _identity(factory)
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


def _identity(factory: Callable[..., Any]) -> str:
    """A short hash of what a network factory is: its module, qualified name, code (or,
    without source, its bytecode) and the plain values it closes over or defaults to (numbers,
    strings: other objects by type, as their text may change between runs), so two factories
    never share a cached model."""
    import hashlib
    import inspect

    parts = [getattr(factory, "__module__", ""), getattr(factory, "__qualname__", repr(factory))]
    try:
        parts.append(inspect.getsource(factory))
    except (OSError, TypeError):
        code = getattr(factory, "__code__", None)
        parts.append(repr(code.co_code) if code is not None else type(factory).__qualname__)
    cells = [c.cell_contents for c in getattr(factory, "__closure__", None) or ()]
    for value in [*cells, *(getattr(factory, "__defaults__", None) or ())]:
        plain = isinstance(value, int | float | str | bool | type(None))
        parts.append(repr(value) if plain else type(value).__qualname__)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]


def as_array(value: Any, what: str, ndim: int, dtype: Any) -> np.ndarray | None:
    """Convert an array-like or torch tensor, checking dimensions and finiteness."""
    if value is None:
        return None
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DeepcoreError(f"{what} could not be read as an array: {exc}") from None
    if arr.ndim != ndim:
        raise DeepcoreError(f"{what} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise DeepcoreError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        for lo, block in row_blocks(arr):
            if not np.isfinite(block).all():
                rows = (~np.isfinite(block)).reshape(len(block), -1).any(1)
                bad = lo + int(np.flatnonzero(rows)[0])
                raise DeepcoreError(f"{what} contains NaN or inf (first at row {bad})")
    if dtype is np.int64:
        if arr.dtype.kind == "f" and not np.equal(np.mod(arr, 1), 0).all():
            raise DeepcoreError(f"{what} must be whole numbers (class labels)")
        return arr.astype(np.int64)
    if dtype is None:  # floats as given, other numbers as float64
        dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
    if arr.dtype == dtype and arr.flags.c_contiguous:
        return arr  # as given (a memory map stays one)
    return np.ascontiguousarray(arr, dtype=dtype)


def _probabilities(logits: np.ndarray | None, p: np.ndarray | None) -> np.ndarray | None:
    """Probabilities from logits (softmax, block by block, float32), or the given ones checked."""
    if logits is not None:
        out = np.empty(logits.shape, dtype=np.float32)
        for lo, block in row_blocks(logits):
            out[lo : lo + len(block)] = softmax(block)
        return out
    if p is not None:
        for _, block in row_blocks(p):
            if (block < 0).any() or not np.allclose(block.sum(axis=1), 1.0, atol=1e-3):
                raise DeepcoreError("probabilities must be non-negative and sum to 1 in every row")
    return p


def context_for_arrays(
    *,
    features: Any = None,
    labels: Any = None,
    scores: Any = None,
    logits: Any = None,
    probs: Any = None,
    dynamics: Any = None,
    seed: int = 0,
    balance: bool | None = None,
    device: str = "cpu",
) -> SelectionContext:
    """Validate precomputed inputs and put them into a :class:`SelectionContext`.

    ``dynamics`` is per-sample training dynamics: an object or mapping with ``correct``
    (epochs x N booleans) and optionally ``loss``, ``margin``, ``max_other``, ``sum_sq`` and
    ``change`` (epochs x N; see :class:`~deepcore_core.engine.training.Dynamics`).
    """
    if logits is not None and probs is not None:
        raise DeepcoreError("give logits or probabilities, not both")
    arrays = {
        "features": as_array(features, "features", 2, np.float32),
        "labels": as_array(labels, "labels", 1, np.int64),
        "scores": as_array(scores, "scores", 1, np.float64),
        "logits": as_array(logits, "logits", 2, None),  # any float: softmax is float64
        "probs": as_array(probs, "probabilities", 2, np.float32),
    }
    dyn = _as_dynamics(dynamics)
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if dyn is not None:
        lengths["dynamics"] = dyn.samples
    if not lengths:
        raise DeepcoreError(
            "nothing to select from: give features, labels, scores, logits or probabilities"
        )
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise DeepcoreError(f"inputs disagree on the number of samples: {detail}")
    n = next(iter(lengths.values()))
    p = _probabilities(arrays["logits"], arrays["probs"])
    y = arrays["labels"]
    if y is not None and (y < 0).any():
        raise DeepcoreError(f"labels must be non-negative class ids, got {int(y.min())}")
    if y is not None and p is not None and y.max() >= p.shape[1]:
        raise DeepcoreError(
            f"label {int(y.max())} is out of range for {p.shape[1]} classes of probabilities"
        )
    return SelectionContext(
        n=n,
        labels=y,
        features=arrays["features"],
        probs=p,
        logits=arrays["logits"],
        scores=arrays["scores"],
        dynamics=dyn,
        seed=int(seed),
        balance=None if balance is None else bool(balance),
        device=device,
    )


def _as_dynamics(value: Any) -> Any:
    from deepcore_core.dynamics import Dynamics, RunningDynamics

    if value is None or isinstance(value, RunningDynamics):
        return value

    get = value.get if isinstance(value, dict) else lambda k: getattr(value, k, None)
    correct = get("correct")
    if correct is None:
        raise DeepcoreError("dynamics need a 'correct' array (epochs x N)")
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise DeepcoreError(f"dynamics 'correct' must be 2-D (epochs x N), got {correct.shape}")
    parts: dict[str, Any] = {}
    for key in ("loss", "margin", "max_other", "sum_sq", "change"):
        arr = get(key)
        if arr is None:  # loss and margin default to zeros; the others stay absent
            parts[key] = np.zeros(correct.shape, np.float32) if key in ("loss", "margin") else None
            continue
        arr = np.asarray(arr, np.float32)
        if arr.shape != correct.shape or not np.isfinite(arr).all():
            raise DeepcoreError(f"dynamics '{key}' must be finite with shape {correct.shape}")
        parts[key] = arr
    return Dynamics(correct=correct.astype(bool), **parts)


# -- samplers and selection ------------------------------------------------------------------


def sampler_for(
    host: PluginHost,
    selector: Selector | None,
    name: str | None,
    options: Mapping[str, Any] | None = None,
    *,
    rankers_only: bool = False,
) -> Sampler | None:
    """The sampler the settings ask for (None: each method's own), checked once.

    :param selector: the method it is for (None: only check the name and options).
    :param rankers_only: give a method that picks its samples itself no sampler (a grid's
        sampler applies to the methods that rank) instead of refusing it.
    """
    if options and not name:
        raise DeepcoreError("--sampler-option needs --sampler (sampler_options need a sampler)")
    if not name:
        return None
    if rankers_only and selector is not None and not isinstance(selector, ScoreSelector):
        return None
    return host.create_sampler(name, dict(options or {}))


def make_selection(
    host: PluginHost,
    selector: Selector,
    ctx: SelectionContext,
    *,
    fraction: float | None = None,
    budget: int | None = None,
    dataset_name: str | None = None,
    sampler: Sampler | None = None,
) -> SelectionRun:
    """Run the stages (train, embed, score, select) for one selector on one context.

    :param sampler: a :class:`~deepcore_core.samplers.Sampler` for a score-based method
        (None: the method's ``default_sampler``).
    :returns: the selection, the stage outputs (for the next method of this seed) and the
        seconds it took.
    """
    t0 = time.perf_counter()
    if sampler is not None and not isinstance(selector, ScoreSelector):
        raise DeepcoreError(
            f"method '{selector.name}' picks its samples itself; a sampler ('{sampler.name}') "
            "applies to score-based methods only"
        )
    if isinstance(selector, ScoreSelector):
        ctx.sampler = sampler or host.create_sampler(selector.default_sampler)
    pool_rule = "given" if ctx.balance is not None else "method default"
    if ctx.balance is None:
        ctx.balance = selector.default_balance
    ctx.selector = selector
    ctx.hook = host.hook
    if ctx.dataset is not None and ctx.networks is None:
        ctx.networks = host.networks
    ctx.total = total_budget(ctx.n, fraction, budget)
    if ctx.no_labels:
        refuse_label_needs(selector)
    filters = _groups_and_filters(host, ctx, pool_rule)
    _run_stages(host, selector, ctx)
    with measure(ctx.device) as picking:
        result: Selection = host.hook.select(selector=selector, ctx=ctx)
    ctx.costs["picking"] = picking
    meta = _metadata(host, selector, ctx, result, fraction, dataset_name)
    rule = (
        "per cluster" if ctx.pools is not None else "per class" if ctx.balance else "whole dataset"
    )
    meta["pool"] = {"rule": rule, "from": pool_rule}
    meta.update(filters)
    selection = Selection(result.indices, result.weights, result.scores, meta)
    host.hook.on_selection_end(selection=selection)
    used = selector.required()
    if ctx.pools is not None or ctx.candidates is not None:  # clusters, dedup read features
        used = used | {Need.FEATURES}
    charged = _charged(ctx.costs, used)
    return SelectionRun(selection, StageOutputs.of(ctx), time.perf_counter() - t0, charged)


def check_selection_output(path: str | os.PathLike[str]) -> Path:
    """Where a selection will be written, checked before any work: a ``.npz`` file that can
    be written, whose ``.json`` sidecar is not in the way."""
    from deepcore_core._io import check_writable
    from deepcore_core.selection import check_sidecar

    out = Path(path)
    if out.suffix != ".npz":
        raise DeepcoreError(f"output (--output) must end in .npz, got '{out}'")
    check_writable(out)
    check_sidecar(out.with_suffix(".json"))
    return out


def run_selection(
    host: PluginHost, selector: Selector, ctx: SelectionContext, **kw: Any
) -> Selection:
    """:func:`make_selection`'s selection alone (for callers that reuse nothing)."""
    return make_selection(host, selector, ctx, **kw).selection


def _charged(costs: Mapping[str, StageCost], needs: frozenset[Need]) -> dict[str, StageCost]:
    """The stage costs a method with ``needs`` is charged: without the reused stages (an
    earlier method's selection model and embeddings) it does not use. The context keeps
    them for the next method of the seed."""
    used = {
        "selection_model": bool(needs & _MODEL_NEEDS),
        "embedding": bool(needs & {Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS}),
    }
    return {k: c for k, c in costs.items() if used.get(k, True) or not c.reused}


#: inputs that come from a model trained on the labels (features alone may come from an encoder)
_OUTPUT_NEEDS = {Need.MODEL, Need.PROBABILITIES, Need.GRADIENTS, Need.DYNAMICS}


def label_needs(selector: Selector) -> list[str]:
    """What ``selector`` needs that only labels give (the labels, or a model trained on
    them); empty for a method that runs without labels."""
    return sorted(n.value for n in selector.required() & ({Need.LABELS} | _OUTPUT_NEEDS))


def refuse_label_needs(selector: Selector) -> None:
    """A one-line refusal when ``selector`` cannot run with the labels hidden."""
    bad = label_needs(selector)
    if bad:
        raise MissingInputError(
            f"method '{selector.name}' needs {', '.join(bad)}, which come from labels, and "
            "--no-labels hides them: use a method that needs only features (see list-methods)"
        )


def _groups_and_filters(host: PluginHost, ctx: SelectionContext, pool_rule: str) -> dict[str, Any]:
    """Cluster pools (``--clusters``) and the SemDeDup filter (``--dedup``) for ``ctx``;
    returns what the selection's record says of them."""
    out: dict[str, Any] = {}
    if ctx.no_labels and ctx.balance and ctx.clusters is None:
        if pool_rule == "given":
            raise DeepcoreError(
                "balanced selection needs labels or clusters: give --clusters K or --no-balance"
            )
        ctx.balance = False  # no classes to balance over: the whole dataset
    if ctx.clusters:
        from deepcore_core.clustering import kmeans

        if pool_rule == "given" and not ctx.balance:
            raise DeepcoreError(
                f"--clusters {ctx.clusters} balances over clusters and --no-balance draws from "
                "the whole dataset: give one of them"
            )
        ctx.balance = True
        if ctx.pools is None:  # else an earlier method of the seed found them
            x = _features_for_groups(host, ctx)
            ctx.pools = kmeans(x, int(ctx.clusters), ctx.rng("clusters"), device=ctx.device).assign
        sizes = np.bincount(ctx.pools, minlength=int(ctx.clusters)).tolist()
        out["clusters"] = {"k": int(ctx.clusters), "sizes": sizes}
    if ctx.dedup:
        from deepcore_core.dedup import semdedup

        if ctx.candidates is None:  # else an earlier method of the seed found them
            x = _features_for_groups(host, ctx)
            ctx.candidates = semdedup(x, ctx.dedup, ctx.rng("dedup"), device=ctx.device)
        kept = ctx.candidates
        if kept.size < ctx.total:
            raise DeepcoreError(
                f"--dedup {ctx.dedup} kept {kept.size} of {ctx.n} samples, fewer than the "
                f"budget of {ctx.total}: lower the eps or the fraction"
            )
        out["dedup"] = {"eps": ctx.dedup, "kept": int(kept.size), "removed": ctx.n - kept.size}
    return out


def _features_for_groups(host: PluginHost, ctx: SelectionContext) -> np.ndarray:
    """The features clusters and duplicates are found in: the encoder's, the given ones, or
    the selection model's."""
    if ctx.encoder is not None:
        return _embeddings(ctx)
    if ctx.features is None and ctx.dataset is not None and not ctx.no_labels:
        if ctx.model is None:
            with measure(ctx.device) as training:
                ctx.model = host.hook.train(ctx=ctx)
            ctx.costs.setdefault("selection_model", training)
        _embed(host, ctx)
    if ctx.features is None:
        raise MissingInputError(
            "clusters and dedup need features: give --features, a dataset, or an encoder"
        )
    return ctx.features


def _embeddings(ctx: SelectionContext) -> np.ndarray:
    """The encoder's embeddings (from the store; computed once per context)."""
    if ctx.embeddings is None:
        from deepcore_core.encoders import encode

        ctx.embeddings = encode(ctx)
    return ctx.embeddings


def _embed(host: PluginHost, ctx: SelectionContext) -> None:
    """The ``embed`` stage: the model's features and probabilities into ``ctx``."""
    with measure(ctx.device, ctx.n) as embedding:
        out = host.hook.embed(ctx=ctx)
    ctx.costs["embedding"] = embedding
    if out is not None:
        check_outputs(out, ctx.labels)
        ctx.features = ctx.features if ctx.features is not None else out.features
        if ctx.probs is None:  # the logits only with the probabilities they give
            ctx.probs, ctx.logits = out.probs, getattr(out, "logits", None)


def _run_stages(host: PluginHost, selector: Selector, ctx: SelectionContext) -> None:
    """Train, embed and score as the method needs (what the context holds is not redone)."""
    uses_scores = isinstance(selector, ScoreSelector)
    needs = set(selector.required())
    if ctx.scores is not None and Need.SCORES not in needs and not uses_scores:
        raise DeepcoreError(f"method '{selector.name}' does not use per-sample scores")
    if ctx.scores is not None and uses_scores:
        needs = set()  # given scores replace the method's own: what they come from is moot
    if ctx.balance and ctx.pools is None:
        needs.add(Need.LABELS)
    if ctx.encoder is not None and Need.FEATURES in needs and not needs & _OUTPUT_NEEDS:
        ctx.features = _embeddings(ctx)  # a feature-only method reads the encoder's
    elif ctx.features is not None and ctx.features is ctx.embeddings:
        ctx.features = None  # model outputs come with the model's own features
    _check_needs(selector, ctx, needs)
    if any(not ctx.has(nd) for nd in needs & _MODEL_NEEDS):
        if ctx.model is None:
            with measure(ctx.device) as training:
                ctx.model = host.hook.train(ctx=ctx)
            ctx.costs.setdefault("selection_model", training)  # the core's hook sets its own
        if any(
            not ctx.has(nd) for nd in needs & {Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS}
        ):
            _embed(host, ctx)
        _check_needs(selector, ctx, needs, after_stages=True)
    with Progress(1, f"{selector.name}: scoring") as bar, measure(ctx.device) as scoring:
        scores = host.hook.score(selector=selector, ctx=ctx)
        bar.update(1)
    ctx.costs["scoring"] = scoring
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (ctx.n,):
            raise PluginError(
                f"method '{selector.name}' returned scores of shape {scores.shape}, "
                f"expected ({ctx.n},)"
            )
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise PluginError(
                f"method '{selector.name}' returned NaN or inf scores (first for sample {bad}; "
                "is that sample's input finite?)"
            )
        ctx.scores = scores


def check_outputs(out: Any, labels: np.ndarray | None) -> None:
    """Refuse a model's outputs that no method can use: NaN or inf (naming the first sample,
    whose input is then likely not finite) or fewer classes than the labels have."""
    outputs = "logits" if getattr(out, "logits", None) is not None else "probs"
    for what in ("features", outputs):
        arr = getattr(out, what, None)
        if arr is None:
            continue
        for lo, block in row_blocks(np.asarray(arr)):
            finite = np.isfinite(block).reshape(len(block), -1).all(1)
            if not finite.all():
                bad = lo + int(np.flatnonzero(~finite)[0])
                raise DeepcoreError(
                    f"the model's {what} for sample {bad} are NaN or inf: check that sample's "
                    "input (and the model) for NaN or inf values"
                )
    given = getattr(out, outputs, None)
    width = None if given is None else np.asarray(given).shape[1]
    if width is not None and labels is not None and labels.size and labels.max() >= width:
        raise DeepcoreError(
            f"the model gives {width} outputs per sample but the labels go up to "
            f"{int(labels.max())} ({int(labels.max()) + 1} classes): give a model with one "
            "output per class"
        )


def _metadata(
    host: PluginHost,
    selector: Selector,
    ctx: SelectionContext,
    result: Selection,
    fraction: float | None,
    dataset_name: str | None,
) -> dict[str, Any]:
    info = host.registry.get(selector.name)
    return {
        "method": selector.name,
        "family": selector.family,
        "plugin": info.plugin,
        "distribution": f"{info.distribution} {info.version}",
        "options": selector.options_dict(),
        "variant": selector.variant,
        **({"sampler": ctx.sampler.describe()} if ctx.sampler is not None else {}),
        "fraction": fraction,
        "budget": ctx.total,
        "n": ctx.n,
        "seed": ctx.seed,
        "balance": ctx.balance,
        "dataset": dataset_name,
        "dataset_fingerprint": dataset_fingerprint(_known_labels(ctx), ctx.n, dataset_name),
        **_class_names(ctx),
        **_selection_model(ctx),
        **({"labels": "hidden"} if ctx.no_labels else {}),
        **({"encoder": ctx.extras["encoder"]} if _read_embeddings(ctx) else {}),
        "per_class": _per_class(result.indices, _known_labels(ctx)),
        **ctx.extras.get("meta", {}),
        "versions": host.versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **result.meta,
    }


def _known_labels(ctx: SelectionContext) -> np.ndarray | None:
    """The labels, or where ``--no-labels`` hid them from selection, the dataset's own (for
    the record only: its fingerprint and the picks per class)."""
    if ctx.labels is not None or not ctx.no_labels or ctx.dataset is None:
        return ctx.labels
    from deepcore_core.data.sources import labels_or_none

    return labels_or_none(ctx.dataset.train)


def _read_embeddings(ctx: SelectionContext) -> bool:
    """Whether the encoder's embeddings went into this selection (as features or groups)."""
    used = ctx.features is not None and ctx.features is ctx.embeddings
    return "encoder" in ctx.extras and (used or ctx.pools is not None or bool(ctx.dedup))


def _class_names(ctx: SelectionContext) -> dict[str, Any]:
    """``{"classes": [...]}`` where the dataset names its classes (not just their ids)."""
    names = list(getattr(ctx.dataset, "classes", None) or [])
    return {"classes": names} if names and names != [str(i) for i in range(len(names))] else {}


def _selection_model(ctx: SelectionContext) -> dict[str, Any]:
    """Which model the method's inputs came from: the engine's (network, epochs, cache
    entry) or the user's (its class and feature layer); nothing for precomputed inputs."""
    if ctx.model is None:
        return {}
    if ctx.pretrain is not None:
        spec = ctx.pretrain
        entry = None if ctx.cache_folder is None else ctx.cache_folder.name
        return {"selection_model": {"network": spec.network, "epochs": spec.epochs, "cache": entry}}
    inner = getattr(ctx.model, "model", ctx.model)
    cls = type(inner)
    return {
        "selection_model": {
            "model": f"{cls.__module__}.{cls.__qualname__}",
            "feature_layer": getattr(ctx.model, "layer_name", None),
        }
    }


def _check_needs(
    selector: Selector, ctx: SelectionContext, needs: set[Need], after_stages: bool = False
) -> None:
    for need in Need:
        if need not in needs or ctx.has(need):
            continue
        if not after_stages and ctx.dataset is not None and need in _MODEL_NEEDS:
            continue
        what = (
            "balanced selection"
            if need is Need.LABELS and need not in selector.required()
            else f"method '{selector.name}'"
        )
        extra = " or use --no-balance" if what == "balanced selection" else ""
        raise MissingInputError(f"{what} needs {need.value}; {_HINTS[need]}{extra}")


def _per_class(indices: np.ndarray, labels: np.ndarray | None) -> dict[str, int] | None:
    if labels is None:
        return None
    classes, counts = np.unique(labels[indices], return_counts=True)
    return {str(int(c)): int(k) for c, k in zip(classes, counts, strict=True)}


# -- training ----------------------------------------------------------------------------


def train_network(
    host: PluginHost,
    network: Any,
    data: DatasetSplits,
    config: TrainConfig,
    device: str,
    *,
    selection: Selection | None = None,
    test: Any = None,
    run: Mapping[str, Any],
    checkpoint: Path | None = None,
    desc: str | None = None,
    schedule: Any = None,
) -> TrainResult:
    """Train ``network`` on ``data.train``, or on ``selection`` of it (weights honoured).

    :param network: a registered network name (built for ``data`` after seeding with
        ``config.seed``) or the user's ``nn.Module``, trained in place.
    :param test: the source evaluated every ``config.eval_every`` epochs and after the last
        (None: no evaluation).
    :param run: what is trained, for the ``on_train_epoch_end`` observers (``kind``
        ``coreset`` is added), called after every epoch.
    :param checkpoint: resume from and save to this file.
    :param schedule: a :class:`~deepcore_core.schedules.Schedule` (from :func:`make_schedule`)
        that picks each epoch's samples.
    """
    import torch

    from deepcore_core.data.sources import on_device
    from deepcore_core.engine.devices import seed_everything
    from deepcore_core.engine.training import train_model

    dev = torch.device(device)
    train, weights = data.train, None
    if selection is not None:
        selection.check_fits(len(train))
        train, weights = train.subset(selection.indices), selection.weights
    seed_everything(config.seed)
    if isinstance(network, str):
        network = host.networks.build(network, data.channels, data.num_classes, data.image_size)
    else:  # the user's model: can it take the data, does it have an output per class?
        from deepcore_core.nets.features import probe

        x, _, _ = next(train.batches(torch.arange(min(2, len(train))), 2, device=dev))
        probe(network.to(dev), x, data.num_classes)
    train = on_device(train, dev)
    test = None if test is None else on_device(test, dev)
    info = {"kind": "coreset", **run}

    def observe(epoch: int, metrics: dict[str, float]) -> None:
        host.hook.on_train_epoch_end(run=info, epoch=epoch, metrics=metrics)

    return train_model(
        network, train, config, dev, weights=weights, test=test, checkpoint=checkpoint,
        desc=desc or f"training on {len(train)} samples", callbacks=[observe], schedule=schedule,
    )  # fmt: skip


def make_schedule(
    host: PluginHost,
    name: str | None,
    options: Mapping[str, Any],
    data: DatasetSplits,
    device: str,
    seed: int,
    *,
    selection: Selection | None = None,
) -> Any:
    """The schedule ``name`` with ``options`` (None without a name); a schedule that selects
    from the model being trained (``adaptive``) selects from ``data``'s training split."""
    if not name:
        if options:
            raise DeepcoreError("schedule_options need a schedule (--schedule NAME)")
        return None
    schedule = host.create_schedule(name, dict(options))
    if schedule.uses_model:
        if selection is not None:
            raise DeepcoreError(
                f"schedule '{name}' selects from the whole training set: train without a "
                "selection file"
            )
        schedule.reselect = _reselector(host, schedule.options, data, device, seed)
    return schedule


def _reselector(host: PluginHost, options: Any, data: DatasetSplits, device: str, seed: int) -> Any:
    """``(model, epoch) -> (indices, weights)``: ``options.method`` picks ``options.fraction``
    of ``data`` with the model being trained (given back to training as it was)."""
    selector = host.create_selector(options.method, {}, "default")

    def reselect(model: Any, epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        ctx = SelectionContext(
            n=len(data.train), labels=data.train.labels, seed=seed, device=device,
            dataset=data, networks=host.networks,
        )  # fmt: skip
        with lend_model(model, None, device) as lent:
            ctx.model = lent
            sel = make_selection(host, selector, ctx, fraction=options.fraction).selection
        return sel.indices, sel.weights

    return reselect


def train_summary(
    result: TrainResult,
    config: TrainConfig,
    selection: Selection | None,
    network: str,
    seed: int,
    size: int,
    selection_file: str | None = None,
) -> dict[str, Any]:
    """What ``deepcore train --json`` prints (and ``--output`` writes) about one training of
    ``size`` samples."""
    return {
        "selection": selection_file,
        "method": None if selection is None else selection.meta.get("method"),
        "size": size,
        "weighted": selection is not None and selection.weights is not None,
        "network": network,
        "seed": seed,
        "train": dataclasses.asdict(config),
        "test_accuracy": result.final_accuracy,
        "best_accuracy": result.best_accuracy,
        "seconds": result.seconds,
        "cost": {k: c.as_dict() for k, c in result.costs.items()},
        "history": result.history,
    }
