"""Test helpers for plugin authors: synthetic inputs and the ``check_selector`` suite.

Use it from a plugin's tests::

    from deepcore_core.testing import check_selector
    def test_conformance():
        check_selector(MySelector)

or opt in to its pytest fixtures with ``pytest_plugins = ["deepcore_core.testing"]``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepcore_core.budget import allocate, total_budget
from deepcore_core.errors import OptionError
from deepcore_core.hookspecs import hookimpl
from deepcore_core.options import original_values, parse_options
from deepcore_core.plugins import PluginHost
from deepcore_core.selection import Selection
from deepcore_core.selector import Need, ScoreSelector, Selector
from deepcore_core.workflow import context_for_arrays, run_selection

#: class sizes of the synthetic conformance data: uneven, with two tiny classes
CLASS_SIZES = (24, 16, 9, 2, 1)


def synthetic_inputs(
    class_sizes: tuple[int, ...] = CLASS_SIZES, dim: int = 6, seed: int = 0
) -> dict[str, np.ndarray]:
    """Gaussian blobs: ``features``, ``labels``, ``logits`` (matching the blobs), ``scores``,
    and ``dynamics`` (six epochs of per-sample correctness, loss, margin, largest other
    probability, sum of squared probabilities and prediction change)."""
    rng = np.random.default_rng(seed)
    c = len(class_sizes)
    centres = rng.normal(scale=4.0, size=(c, dim))
    labels = np.concatenate([np.full(s, k) for k, s in enumerate(class_sizes)]).astype(np.int64)
    rng.shuffle(labels)
    features = (centres[labels] + rng.normal(size=(labels.size, dim))).astype(np.float32)
    logits = -((features[:, None, :] - centres[None]) ** 2).sum(-1) / dim
    logits += rng.normal(scale=0.5, size=logits.shape)
    scores = rng.normal(size=labels.size)
    correct = rng.random((6, labels.size)) < np.linspace(0.3, 0.9, 6)[:, None]
    dynamics = {"correct": correct, "loss": rng.random(correct.shape).astype(np.float32)}
    for key, scale, shift in (("margin", 2, -1), ("max_other", 0.5, 0), ("sum_sq", 1, 0)):
        dynamics[key] = (scale * rng.random(correct.shape) + shift).astype(np.float32)
    change = (0.3 * rng.random(correct.shape)).astype(np.float32)
    change[0] = 0.0  # the first epoch has no previous one
    dynamics["change"] = change
    return {
        "features": features,
        "labels": labels,
        "logits": logits,
        "scores": scores,
        "dynamics": dynamics,
    }


class _Registrar:
    def __init__(self, cls: type[Selector]) -> None:
        self.cls = cls

    @hookimpl
    def register_selectors(self, register):
        register(self.cls)


def host_with(*classes: type[Selector], load_entrypoints: bool = False) -> PluginHost:
    """A fresh host in which each of ``classes`` is registered (unless already present)."""
    host = PluginHost(load_entrypoints=load_entrypoints)
    for cls in classes:
        if cls.name not in host.registry:
            host.register(_Registrar(cls), name=f"test-{cls.name}")
    return host


class Confidence(ScoreSelector):
    """A test method: the top class probability (needs probabilities only)."""

    name = "confidence"
    family = "test"
    needs = frozenset({Need.PROBABILITIES})

    def compute_scores(self, ctx: Any) -> np.ndarray:
        """The largest probability of each sample."""
        return np.asarray(ctx.probs).max(1)


class FeatureNorm(ScoreSelector):
    """A test method: the largest feature norms (needs features only, any pool)."""

    name = "feature-norm"
    family = "test"
    needs = frozenset({Need.FEATURES})
    default_balance = False

    def compute_scores(self, ctx: Any) -> np.ndarray:
        """Each sample's feature norm."""
        return np.linalg.norm(np.asarray(ctx.features, np.float64), axis=1)


class GradNorm(ScoreSelector):
    """A test method: the norm of the closed-form last-layer gradient (needs gradients)."""

    name = "grad-norm"
    family = "test"
    needs = frozenset({Need.GRADIENTS})

    def compute_scores(self, ctx: Any) -> np.ndarray:
        """Each sample's gradient-embedding norm."""
        return ctx.grad_embedding().norms()


def run_method(
    cls: type[Selector],
    inputs: Mapping[str, Any],
    *,
    fraction: float | None = None,
    budget: int | None = None,
    balance: bool = True,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    host: PluginHost | None = None,
    sampler: str | None = None,
) -> Selection:
    """Run ``cls`` on precomputed ``inputs`` through the full stage pipeline (``sampler``:
    a registered sampler's name, for a score-based method)."""
    host = host or host_with(cls)
    selector = cls(dict(options or {}))
    if "dataset" in inputs:
        ctx = dataset_context(inputs["dataset"], host, seed, balance, inputs.get("pretrain"))
    else:
        ctx = context_for_arrays(**inputs, seed=seed, balance=balance)
    chosen = host.create_sampler(sampler) if sampler else None
    return run_selection(host, selector, ctx, fraction=fraction, budget=budget, sampler=chosen)


_CACHE: list[str] = []


def synthetic_dataset(
    class_sizes: tuple[int, ...] = CLASS_SIZES, size: int = 8, seed: int = 0
) -> Any:
    """A tiny in-memory image dataset (uint8, 1 channel) whose classes differ in brightness."""
    import torch

    from deepcore_core.data import DatasetSplits, TensorSource

    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(s, k) for k, s in enumerate(class_sizes)]).astype(np.int64)
    rng.shuffle(labels)
    base = (labels[:, None, None, None] * 40 + 20).astype(np.float64)
    images = np.clip(base + rng.normal(scale=30, size=(labels.size, 1, size, size)), 0, 255)

    def src(x: np.ndarray, y: np.ndarray) -> TensorSource:
        return TensorSource(
            torch.from_numpy(x.astype(np.uint8)), torch.from_numpy(y), (0.5,), (0.25,)
        )

    return DatasetSplits(
        "synthetic",
        src(images, labels),
        src(images, labels),
        len(class_sizes),
        1,
        size,
        [str(c) for c in range(len(class_sizes))],
    )


def dataset_context(
    data: Any, host: PluginHost, seed: int = 0, balance: bool = True, pretrain: Any = None
) -> Any:
    """A selection context over ``data`` with a quick selection model (MLP, 1 epoch, cached
    in a temporary folder) unless ``pretrain`` says otherwise."""
    import tempfile
    from pathlib import Path

    from deepcore_core.context import SelectionContext
    from deepcore_core.engine.pretrain import PretrainSpec
    from deepcore_core.engine.training import TrainConfig

    if not _CACHE:
        _CACHE.append(tempfile.mkdtemp(prefix="deepcore-test-cache-"))
    spec = pretrain or PretrainSpec(
        "mlp", 1, TrainConfig(epochs=1, augment=False), cache_dir=Path(_CACHE[0])
    )
    return SelectionContext(
        n=len(data.train),
        labels=data.train.labels,
        seed=seed,
        balance=balance,
        dataset=data,
        pretrain=spec,
        networks=host.networks,
    )


def inputs_for(cls: type[Selector], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``inputs`` that ``cls`` needs (labels always; scores only if needed)."""
    keep = {"labels"}
    if cls.needs & {Need.FEATURES, Need.GRADIENTS}:
        keep.add("features")
    if cls.needs & {Need.PROBABILITIES, Need.GRADIENTS}:
        keep |= {"logits", "probs"}
    if Need.SCORES in cls.needs:
        keep.add("scores")
    if Need.DYNAMICS in cls.needs:
        keep.add("dynamics")
    return {k: v for k, v in inputs.items() if k in keep}


def check_selector(
    cls: type[Selector],
    inputs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    host: PluginHost | None = None,
) -> None:
    """Assert that ``cls`` follows the selector contract; raise AssertionError if not.

    Checks: metadata, options (defaults, unknown keys rejected), exact budget balanced and
    unbalanced, unique in-range indices, per-class counts, determinism for a seed, a budget
    of N, and tiny classes. ``inputs`` defaults to :func:`synthetic_inputs`; methods that
    need a trained model pass ``{"dataset": synthetic_dataset()}`` (a selection model is then
    trained on it).
    """
    _check_metadata(cls)
    inputs = dict(inputs) if inputs is not None else inputs_for(cls, synthetic_inputs())
    host = host or host_with(cls)
    labels = np.asarray(inputs["dataset"].train.labels if "dataset" in inputs else inputs["labels"])
    n = labels.size
    sizes = {int(c): int(k) for c, k in zip(*np.unique(labels, return_counts=True), strict=True)}

    def run(**kw: Any) -> Selection:
        return run_method(cls, inputs, options=options, host=host, **kw)

    for balance in (True, False):
        for fraction in (0.1, 0.3, 0.5):
            sel = run(fraction=fraction, balance=balance, seed=3)
            total = total_budget(n, fraction)
            idx = sel.indices
            assert idx.size == total, f"{cls.name}: {idx.size} selected, budget {total}"
            assert np.unique(idx).size == idx.size, f"{cls.name}: duplicate indices"
            assert idx.min() >= 0 and idx.max() < n, f"{cls.name}: index out of range"
            if sel.weights is not None:
                assert sel.weights.shape == idx.shape, f"{cls.name}: weights misaligned"
                assert np.isfinite(sel.weights).all(), f"{cls.name}: NaN or inf weights"
                assert (sel.weights >= 0).all(), f"{cls.name}: negative weights"
            if balance:
                got = {c: int((labels[idx] == c).sum()) for c in sizes}
                want = allocate(sizes, total)
                assert got == want, f"{cls.name}: per-class counts {got}, expected {want}"
            again = run(fraction=fraction, balance=balance, seed=3)
            assert np.array_equal(sel.indices, again.indices), f"{cls.name}: not deterministic"
            if sel.weights is not None:
                assert again.weights is not None, f"{cls.name}: weights only on one of two runs"
                assert np.allclose(sel.weights, again.weights), f"{cls.name}: weights differ"
        full = run(budget=n, balance=balance, seed=1)
        assert np.array_equal(np.sort(full.indices), np.arange(n)), f"{cls.name}: budget=N"
        one = run(budget=1, balance=balance, seed=1)
        assert one.indices.size == 1, f"{cls.name}: budget=1"
    tiny = [c for c, k in sizes.items() if k <= 2]
    sel = run(budget=len(sizes), balance=True, seed=0)
    for c in tiny:
        assert (labels[sel.indices] == c).sum() == 1, f"{cls.name}: tiny class {c} not covered"
    original = {**original_values(cls.Options), **(options or {})}
    if original != dict(options or {}):  # the original code's rules keep the contract too
        for balance in (True, False):
            kw: dict[str, Any] = {"fraction": 0.3, "balance": balance, "seed": 2}
            sel = run_method(cls, inputs, options=original, host=host, **kw)
            again = run_method(cls, inputs, options=original, host=host, **kw)
            assert sel.indices.size == total_budget(n, 0.3), f"{cls.name}: original budget"
            assert np.unique(sel.indices).size == sel.indices.size, f"{cls.name}: duplicates"
            assert np.array_equal(sel.indices, again.indices), f"{cls.name}: not deterministic"
    if issubclass(cls, ScoreSelector):  # any sampler can pick from the method's ranking
        for name in host.samplers.names():
            for balance in (True, False):
                kw = {"fraction": 0.3, "balance": balance, "seed": 4, "sampler": name}
                sel = run_method(cls, inputs, options=options, host=host, **kw)
                again = run_method(cls, inputs, options=options, host=host, **kw)
                what = f"{cls.name} with sampler {name}"
                assert sel.indices.size == total_budget(n, 0.3), f"{what}: budget"
                assert np.unique(sel.indices).size == sel.indices.size, f"{what}: duplicates"
                assert np.array_equal(sel.indices, again.indices), f"{what}: not deterministic"
                assert sel.meta["sampler"]["name"] == name, f"{what}: not recorded"


def _check_metadata(cls: type[Selector]) -> None:
    assert isinstance(cls, type) and issubclass(cls, Selector), f"{cls!r} is not a Selector"
    assert isinstance(cls.name, str) and cls.name, f"{cls.__name__}: empty name"
    assert isinstance(cls.family, str) and cls.family, f"{cls.name}: empty family"
    assert isinstance(cls.needs, frozenset), f"{cls.name}: needs must be a frozenset"
    assert all(isinstance(n, Need) for n in cls.needs), f"{cls.name}: needs must be Need values"
    assert cls.summary(), f"{cls.name}: the class needs a docstring (its summary)"
    assert dataclasses.is_dataclass(cls.Options), f"{cls.name}: Options must be a dataclass"
    fields = dataclasses.fields(cls.Options)
    for f in fields:
        assert f.default is not dataclasses.MISSING, f"{cls.name}: option {f.name} has no default"
    typing.get_type_hints(cls.Options)
    cls()  # defaults construct
    parse_options(cls.Options, {}, cls.name, "original")  # the original rules are valid values
    for f in fields:
        if "original" in f.metadata:
            assert f.metadata.get("why"), f"{cls.name}: option {f.name} needs a 'why'"
            assert f.metadata["original"] != f.default, f"{cls.name}: {f.name} differs in nothing"
    try:
        cls({"no_such_option_xyz": 1})
    except OptionError as exc:
        assert "no_such_option_xyz" in str(exc), f"{cls.name}: the error omits the bad option"
    else:
        raise AssertionError(f"{cls.name}: an unknown option was accepted")


try:  # fixtures for ``pytest_plugins = ["deepcore_core.testing"]``
    import pytest

    @pytest.fixture
    def deepcore_host() -> PluginHost:
        """A fresh plugin host with only the core's built-ins (no entry points)."""
        return PluginHost(load_entrypoints=False)

    @pytest.fixture
    def blobs() -> dict[str, np.ndarray]:
        """Synthetic conformance inputs (see :func:`synthetic_inputs`)."""
        return synthetic_inputs()

except ImportError:  # pragma: no cover - pytest is optional at run time
    pass


def check_end_to_end(method: str, tmp_path: Any, *options: str) -> str:
    """Run ``deepcore run`` on digits with ``method`` (quick settings) and return its output.

    Asserts that the command succeeds and that the method's row is in the table. The
    selection-model cache goes under ``tmp_path``. ``options`` are ``key=value`` strings.
    """
    import os
    from pathlib import Path

    from typer.testing import CliRunner

    from deepcore_core.cli import create_app

    args = [
        "run",
        "--method",
        method,
        "--epochs",
        "3",
        "--selection-epochs",
        "3",
        "--seed",
        "0",
        "--fraction",
        "0.1",
        "--output",
        str(Path(tmp_path) / "out"),
        "--cache-dir",
        str(Path(tmp_path) / "cache"),
    ]
    for opt in options:
        args += ["--option", opt]
    old = os.environ.get("DEEPCORE_PROGRESS")
    os.environ["DEEPCORE_PROGRESS"] = "0"
    try:
        result = CliRunner().invoke(create_app(), args)
    finally:
        if old is None:
            os.environ.pop("DEEPCORE_PROGRESS", None)
        else:
            os.environ["DEEPCORE_PROGRESS"] = old
    assert result.exit_code == 0, result.output
    assert f"| {method} |" in result.output, result.output
    return result.output


class ImageBlobs:
    """A map-style dataset deepcore never saw: grey 12 x 12 PIL images whose brightness
    depends on the class (3 classes), turned into tensors by a torchvision transform.

    :param expose_targets: give a ``targets`` attribute (else labels are read item by item).
    """

    def __init__(self, n: int = 90, seed: int = 0, expose_targets: bool = True) -> None:
        from PIL import Image
        from torchvision import transforms

        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 3, n)
        self.images = [
            Image.fromarray((rng.random((12, 12)) * 80 + 60 * y).astype(np.uint8)) for y in labels
        ]
        self._y = labels
        if expose_targets:
            self.targets = labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self._y)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.transform(self.images[i]), int(self._y[i])


def OddNet() -> Any:
    """A classifier deepcore never built: unusual layer names (``trunk``, ``decide``) and a
    hidden linear layer before the last; the same weights every call."""
    import torch
    from torch import nn

    class _OddNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.Tanh())
            self.decide = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decide(self.trunk(x))

    return _OddNet()
