"""The Python API: :func:`select` a coreset from arrays, tensors or a dataset."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepcore_core.blocks import row_blocks
from deepcore_core.budget import total_budget
from deepcore_core.context import SelectionContext
from deepcore_core.errors import DeepcoreError, MissingInputError, PluginError
from deepcore_core.gradients import softmax
from deepcore_core.plugins import PluginHost, get_host
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import Need, ScoreSelector, Selector

_HINTS = {
    Need.LABELS: "give labels (--labels)",
    Need.FEATURES: "give features (--features) or select from a dataset",
    Need.PROBABILITIES: "give logits or probabilities (--logits/--probs) or select from a dataset",
    Need.GRADIENTS: "give features, labels and logits/probabilities, or select from a dataset",
    Need.MODEL: "select from a dataset (--dataset, or dataset= and model= in Python)",
    Need.DYNAMICS: "select from a dataset (--dataset) so training dynamics can be recorded"
    " (in Python: dataset= without model=, or dynamics=)",
    Need.SCORES: "give per-sample scores (--scores)",
}


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


def build_context(
    *,
    features: Any = None,
    labels: Any = None,
    scores: Any = None,
    logits: Any = None,
    probs: Any = None,
    dynamics: Any = None,
    seed: int = 0,
    balance: bool = True,
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
        balance=bool(balance),
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


def run_selection(
    host: PluginHost,
    selector: Selector,
    ctx: SelectionContext,
    *,
    fraction: float | None = None,
    budget: int | None = None,
    dataset_name: str | None = None,
    sampler: Any = None,
) -> Selection:
    """Run the stages (train, embed, score, select) for one selector on one context.

    :param sampler: a :class:`~deepcore_core.samplers.Sampler` for a score-based method
        (None: the method's ``default_sampler``).
    """
    if sampler is not None and not _uses_scores(selector):
        raise DeepcoreError(
            f"method '{selector.name}' picks its samples itself; a sampler ('{sampler.name}') "
            "applies to score-based methods only"
        )
    if isinstance(selector, ScoreSelector):
        ctx.sampler = sampler or host.create_sampler(selector.default_sampler)
    ctx.selector = selector
    ctx.hook = host.hook
    if ctx.dataset is not None and ctx.networks is None:
        ctx.networks = host.networks
    ctx.total = total_budget(ctx.n, fraction, budget)
    needs = set(selector.required())
    if ctx.scores is not None and Need.SCORES not in needs and not _uses_scores(selector):
        raise DeepcoreError(f"method '{selector.name}' does not use per-sample scores")
    if ctx.scores is not None and _uses_scores(selector):
        needs = set()  # given scores replace the method's own: what they come from is moot
    if ctx.balance:
        needs.add(Need.LABELS)
    _check_needs(selector, ctx, needs)
    model_needs = {Need.MODEL, Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS, Need.DYNAMICS}
    if any(not ctx.has(nd) for nd in needs & model_needs):
        if ctx.model is None:
            ctx.model = host.hook.train(ctx=ctx)
        if any(
            not ctx.has(nd) for nd in needs & {Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS}
        ):
            out = host.hook.embed(ctx=ctx)
            if out is not None:
                ctx.features = ctx.features if ctx.features is not None else out.features
                if ctx.probs is None:  # the logits only with the probabilities they give
                    ctx.probs, ctx.logits = out.probs, getattr(out, "logits", None)
        _check_needs(selector, ctx, needs, after_stages=True)
    scores = host.hook.score(selector=selector, ctx=ctx)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (ctx.n,):
            raise PluginError(
                f"method '{selector.name}' returned scores of shape {scores.shape}, "
                f"expected ({ctx.n},)"
            )
        if not np.isfinite(scores).all():
            raise PluginError(f"method '{selector.name}' returned NaN or inf scores")
        ctx.scores = scores
    result: Selection = host.hook.select(selector=selector, ctx=ctx)
    info = host.registry.get(selector.name)
    meta = {
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
        "dataset_fingerprint": dataset_fingerprint(ctx.labels, ctx.n, dataset_name),
        "per_class": _per_class(result.indices, ctx.labels),
        "versions": host.versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **result.meta,
    }
    selection = Selection(result.indices, result.weights, result.scores, meta)
    host.hook.on_selection_end(selection=selection)
    return selection


def _uses_scores(selector: Selector) -> bool:
    return isinstance(selector, ScoreSelector)


def _check_needs(
    selector: Selector, ctx: SelectionContext, needs: set[Need], after_stages: bool = False
) -> None:
    derivable = {Need.MODEL, Need.FEATURES, Need.PROBABILITIES, Need.GRADIENTS, Need.DYNAMICS}
    for need in Need:
        if need not in needs or ctx.has(need):
            continue
        if not after_stages and ctx.dataset is not None and need in derivable:
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
    dynamics: Any = None,
    fraction: float | None = None,
    budget: int | None = None,
    balance: bool = True,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    device: str = "auto",
    feature_layer: str | None = None,
    network: str | None = None,
    selection_epochs: int | None = None,
    cache_dir: str | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    collate_fn: Any = None,
    dataset_id: str | None = None,
    variant: str = "default",
    sampler: str | None = None,
    sampler_options: Mapping[str, Any] | None = None,
    dynamics_options: Mapping[str, Any] | None = None,
    threads: int | None = None,
    host: PluginHost | None = None,
) -> Selection:
    """Select a coreset with ``method`` from a torch dataset or from precomputed arrays.

    :param method: a registered method name (see ``deepcore list-methods``).
    :param dataset: any map-style ``torch.utils.data.Dataset`` of ``(input, label)``. With
        ``model`` (any classifier ``nn.Module``, used as given in eval mode; features are the
        input of its final ``nn.Linear``, or of ``feature_layer``) the model's outputs feed the
        method; without it the engine trains ``network`` (a registered name, default lenet)
        for ``selection_epochs`` on the dataset and caches it under ``cache_dir``.
        ``labels`` skips reading labels from the dataset; ``batch_size``, ``num_workers``
        and ``collate_fn`` are the DataLoader's; ``dataset_id`` names it in cache keys.
    :param features: N x D features; ``labels``: N class ids; ``scores``: N scores;
        ``logits``/``probs``: N x C model outputs; ``dynamics``: per-epoch correctness
        (and loss, margin). Give what the method needs (instead of ``dataset``).
    :param fraction: coreset size as a fraction in (0, 1]; or ``budget``: an absolute size.
    :param balance: select per class (the default, as in the DeepCore paper).
    :param seed: drives every random choice; the same seed gives the same selection.
    :param options: method options (see the method's ``Options``).
    :param variant: ``default`` (each method as its paper defines it) or ``original`` (the
        original DeepCore code's rules, and its constant-rate selection model); ``options``
        still override single rules.
    :param sampler: how a score-based method picks from its ranking: ``top`` (its own end),
        ``stratified``, ``beta``, ``band`` or a plugin's (default: the method's own);
        ``sampler_options`` are that sampler's options.
    :param dynamics_options: with ``dataset`` and no ``model``: keep running statistics of
        the training dynamics (``window``, ``horizon``, ``decay``; ``{}`` for the defaults)
        instead of every epoch's values, for large datasets (default: the full history).
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``: where networks, kernels,
        neighbours and greedy loops run; an unavailable device is an error.
    :param threads: set this process up for CPU work as the CLI does: torch's and the BLAS
        libraries' threads (0: one per available CPU) and freed memory kept for reuse
        (:func:`~deepcore_core.engine.allocator.keep_freed_memory`); None: leave both.
    :returns: the :class:`Selection`.
    """
    from deepcore_core.context import check_seed
    from deepcore_core.user_inputs import DataOptions, dataset_context, resolve

    seed = check_seed(seed)
    if not isinstance(balance, bool):
        raise DeepcoreError(f"balance must be True or False, got {balance!r}")
    for what, given in (("options", options), ("sampler_options", sampler_options)):
        if given is not None and not isinstance(given, Mapping):
            raise DeepcoreError(
                f"{what} must be a mapping of option names to values, got {type(given).__name__}"
            )
    if threads is not None:
        from deepcore_core.engine.devices import setup_cpu

        setup_cpu(threads)

    from deepcore_core import distributed

    if distributed.launched():  # under torchrun: every process runs this call together
        distributed.start(device)
    host = host or get_host()
    selector = host.create_selector(method, dict(options or {}), variant)
    if dataset is not None:
        given = {"features": features, "scores": scores, "logits": logits, "probs": probs}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise DeepcoreError(f"give a dataset or precomputed arrays, not both ({extra[0]})")
        data = DataOptions(labels, batch_size, num_workers, collate_fn, dataset_id)
        ctx = dataset_context(
            host, dataset, model=model, feature_layer=feature_layer, network=network,
            selection_epochs=selection_epochs, cache_dir=cache_dir, data=data, seed=seed,
            balance=balance, device=device, variant=variant, running=dynamics_options,
        )  # fmt: skip
        name = ctx.dataset.name
    else:
        if model is not None:
            raise DeepcoreError("a model needs the dataset to run on: give dataset=...")
        if dynamics_options is not None:
            raise DeepcoreError("dynamics_options need a dataset the engine trains on")
        ctx = build_context(
            features=features, labels=labels, scores=scores, logits=logits, probs=probs,
            dynamics=dynamics, seed=seed, balance=balance, device=resolve(device),
        )  # fmt: skip
        name = None
    if sampler_options and not sampler:
        raise DeepcoreError("sampler_options need a sampler: give sampler=...")
    chosen = host.create_sampler(sampler, dict(sampler_options or {})) if sampler else None
    return run_selection(
        host, selector, ctx, fraction=fraction, budget=budget, dataset_name=name, sampler=chosen
    )


def scores(method: str, **inputs: Any) -> np.ndarray:
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
