"""The settings model: every setting of ``select``, ``train`` and ``run`` in one place.

Each setting is a typed dataclass field with one default and one help text. The CLI builds
its options from these fields (typed, defaults shown in ``--help``), YAML files are checked
against them (``--config``), and the Python API builds them with :func:`build`. Training
defaults come from the engine's :class:`~deepcore_core.engine.config.TrainConfig` and
:class:`~deepcore_core.engine.config.PretrainSpec`, so each default is written once.

Names are shared: a key means the same in ``select`` and ``run``. A run's grid axes take
lists under plural names (``methods``, ``fractions``, ``seeds``, ``networks``), and accept
the singular names of ``select`` too (``method: kcenter``, ``fraction: 0.1``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from deepcore_core.budget import check_size
from deepcore_core.dynamics import RunningSpec
from deepcore_core.engine.config import (
    MACHINE_CPUS,
    THREADS,
    PretrainSpec,
    TrainConfig,
    bounds,
)
from deepcore_core.errors import DeepcoreError
from deepcore_core.options import accepts, convert_value, not_finite, scalar, type_name
from deepcore_core.rules import DEVICE, FRACTION, SEED, check_range

_TRAIN = TrainConfig()
_PRETRAIN = PretrainSpec()
Variant = Literal["default", "original"]
#: each job is a process that loads torch: past a few per CPU they only add memory
JOBS_HELP = "Training runs in parallel processes (at most four per CPU of this machine)."
THREADS_HELP = (
    "CPU threads for torch (0: the CPUs this process may use, shared among jobs; at most "
    "the machine's CPUs)."
)

#: The front ends' protocol, measured on digits and Fashion-MNIST (docs/results): LeNet with
#: batch norm and a short warm-up, which trains the 144 images of a 10% digits coreset without
#: the collapsed seeds plain LeNet at lr 0.1 gives. The engine's own defaults stay plain.
NETWORK = "lenet-bn"
WARMUP = 0.05
Protocol = Literal["iterations", "epochs"]

#: singular names accepted for a run's list settings
ALIASES = {"method": "methods", "fraction": "fractions", "seed": "seeds", "network": "networks"}


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    path: bool = False,
    cli: bool = True,
    **rule: Any,
) -> Any:
    """Declare a setting (a dataclass field with its help, flag name and value rule).

    :param flag: the CLI flag without dashes when it differs from the name (``method`` for
        ``methods``); for booleans, the ``--x/--no-x`` pair is made from it.
    :param path: a file or folder; relative paths in a YAML file resolve against its folder.
    :param cli: whether the setting is a CLI option (mappings are YAML/Python only).
    :param rule: the allowed values, checked whenever settings are made
        (:mod:`deepcore_core.rules`: ``min``, ``max``, ``above``, ``below``, or ``pattern``
        with ``allowed``).
    """
    meta = {"help": help, "flag": flag, "path": path, "cli": cli, **rule}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Settings:
    """Base of the settings dataclasses: checks every field's range after construction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            for item in value if isinstance(value, tuple) else (value,):
                name = each_item(f.name, f.metadata) if isinstance(value, tuple) else f.name
                check_range(name, item, f.metadata)
            if isinstance(value, tuple):  # a list setting: a repeat would be counted twice
                seen = [v for i, v in enumerate(value) if v in value[:i]]
                if seen:
                    flag = f.metadata.get("flag")
                    raise DeepcoreError(
                        f"{f.name}{f' (--{flag})' if flag else ''} lists {seen[0]!r} more than "
                        f"once: {list(value)}"
                    )
        self.validate()

    def validate(self) -> None:
        """Cross-field checks of a subclass (raise :class:`DeepcoreError`)."""


def each_item(key: str, meta: Mapping[str, Any]) -> str:
    """How an error names one item of a repeatable setting: ``each of seeds (--seed)``."""
    flag = meta.get("flag")
    return f"each of {key}" + (f" (--{flag})" if flag else "")


@dataclasses.dataclass(frozen=True)
class DataSettings(Settings):
    """The dataset and the selection model, shared by ``select`` and ``run``."""

    dataset: str | None = setting("digits", "Dataset (see list-datasets).")
    data_root: str | None = setting(None, "Folder with the dataset's files.", path=True)
    balance: bool | None = setting(
        None,
        "Select per class in proportion to class sizes (--balance) or from the whole dataset "
        "(--no-balance); default: each method's own pool (list-methods).",
    )
    selection_network: str = setting(NETWORK, "Network trained to select.")
    selection_epochs: int = setting(
        _PRETRAIN.epochs, "Epochs of selection-model training.", **bounds("epochs")
    )
    selection_augment: bool = setting(
        False,
        "Train the selection model with the dataset's augmentation, so its recorded dynamics "
        "are of augmented passes (the training-dynamics papers' recipe).",
    )
    selection_lr: float | None = setting(
        None, "Selection-model learning rate (default: the coreset lr).", **bounds("lr")
    )
    selection_schedule: Literal["cosine", "constant"] | None = setting(
        None, "Selection-model schedule (default: cosine; constant with --variant original)."
    )
    pretrained: str | None = setting(
        None, "Local torchvision weights for the selection network.", path=True
    )
    dynamics: Literal["full", "running"] = setting(
        "full",
        "Training dynamics kept: every epoch (full), or running window statistics for "
        "large datasets (running).",
    )
    dynamics_options: dict[str, Any] = setting(
        {}, "Running statistics' window, horizon and decay (a mapping).", cli=False
    )
    variant: Variant = setting(
        "default",
        "Rules as in each method's paper (default) or as in the original DeepCore code.",
    )
    sampler: str | None = setting(
        None,
        "How score-based methods pick from their ranking: top, stratified, beta, band, "
        "or a plugin's (default: each method's own).",
    )
    sampler_options: dict[str, Any] = setting({}, "The sampler's options (a mapping).", cli=False)
    device: str = setting("auto", "Where networks run: auto, cpu, cuda or cuda:N.", **DEVICE)
    threads: int = setting(0, THREADS_HELP, **THREADS)
    cache_dir: str | None = setting(
        None, "Selection-model cache (default $DEEPCORE_CACHE or ~/.cache/deepcore).", path=True
    )
    encoder: str | None = setting(
        None,
        "Where features come from: supervised (the selection model), simclr (self-supervised, "
        "trained here), a torchvision architecture, module:factory, timm:NAME, hf:DIR or a "
        "plugin's (list-encoders); default: supervised, or simclr with --no-labels.",
    )
    encoder_weights: str | None = setting(
        None, "Local weights file of the encoder (a state dict or a checkpoint).", path=True
    )
    encoder_options: dict[str, Any] = setting(
        {}, "The encoder's options (a mapping; see list-encoders).", cli=False
    )
    embedding_dtype: Literal["float32", "float16"] = setting(
        "float32", "How the embedding store keeps an encoder's embeddings."
    )
    no_labels: bool = setting(
        False,
        "Hide the labels from selection: features from the encoder, methods that need only "
        "features, pools over --clusters or the whole dataset.",
        switch=True,
    )
    clusters: int | None = setting(
        None, "Balance over this many k-means clusters of the features instead of classes.", min=1
    )
    dedup: float | None = setting(
        None,
        "Drop semantic near-duplicates first (SemDeDup): cosine similarity above 1 - EPS to a "
        "kept sample, in (0, 1).",
        above=0,
        below=1,
    )

    def validate(self) -> None:
        """The running statistics' options, when given, named weights files, and what the
        label settings allow."""
        self.running_spec()
        if self.encoder_weights is not None and not Path(self.encoder_weights).is_file():
            raise DeepcoreError(
                f"encoder weights file '{self.encoder_weights}' (--encoder-weights) does not exist"
            )
        if self.no_labels and self.encoder == "supervised":
            raise DeepcoreError(
                "encoder 'supervised' trains on the labels, which --no-labels hides: give "
                "--encoder simclr, a pretrained encoder, or leave --encoder out"
            )
        if self.no_labels and self.balance and self.clusters is None:
            raise DeepcoreError(
                "--balance splits by class and --no-labels hides the classes: give --clusters K "
                "to balance over clusters, or --no-balance"
            )
        if self.pretrained is not None and not Path(self.pretrained).is_file():
            # checked up front: a run whose methods train no selection model (uniform)
            # would otherwise never read it and quietly ignore the mistyped path
            raise DeepcoreError(
                f"pretrained weights file '{self.pretrained}' (--pretrained) does not exist"
            )

    def schedule_of_selection_model(self) -> str:
        """``selection_schedule``, else constant for the original variant, else cosine."""
        if self.selection_schedule:
            return self.selection_schedule
        return "constant" if self.variant == "original" else "cosine"

    def pretrain_spec(self, train: TrainConfig | None = None) -> PretrainSpec:
        """How the selection model is trained: ``train``'s optimiser, augmentation only with
        ``selection_augment``."""
        base = dataclasses.replace(
            train or _TRAIN, epochs=self.selection_epochs, augment=False, eval_every=0
        )
        if self.selection_lr is not None:
            lr = self.selection_lr
            base = dataclasses.replace(base, lr=lr, min_lr=min(base.min_lr, lr))
        base = dataclasses.replace(base, schedule=self.schedule_of_selection_model())
        return PretrainSpec(
            self.selection_network,
            self.selection_epochs,
            base,
            self.pretrained,
            Path(self.cache_dir) if self.cache_dir else None,
            self.running_spec(),
            self.selection_augment,
        )

    def running_spec(self) -> RunningSpec | None:
        """The running statistics to keep, or None for the full history."""
        if self.dynamics == "running":
            return RunningSpec.parse(dict(self.dynamics_options))
        if self.dynamics_options:
            raise DeepcoreError("dynamics_options need dynamics: running")
        return None


@dataclasses.dataclass(frozen=True)
class TrainSettings(Settings):
    """How coreset (and full-data) models are trained."""

    epochs: int = setting(_TRAIN.epochs, "Training epochs (the paper: 200).", **bounds("epochs"))
    iterations: int = setting(
        _TRAIN.iterations,
        "Train this many steps instead of --epochs (0: use epochs).",
        **bounds("iterations"),
    )
    warmup: float = setting(
        WARMUP, "Share of the steps with a linear learning-rate warm-up.", **bounds("warmup")
    )
    batch_size: int = setting(_TRAIN.batch_size, "Batch size.", **bounds("batch_size"))
    lr: float = setting(_TRAIN.lr, "Learning rate.", **bounds("lr"))
    min_lr: float = setting(
        _TRAIN.min_lr, "Final learning rate of the cosine (at most lr).", **bounds("min_lr")
    )
    momentum: float = setting(_TRAIN.momentum, "SGD momentum, in [0, 1).", **bounds("momentum"))
    weight_decay: float = setting(_TRAIN.weight_decay, "Weight decay.", **bounds("weight_decay"))
    nesterov: bool = setting(_TRAIN.nesterov, "Nesterov momentum.")
    augment: bool = setting(_TRAIN.augment, "Random crops and flips while training.")
    eval_every: int = setting(
        _TRAIN.eval_every,
        "Evaluate every k epochs (0: after the last only).",
        **bounds("eval_every"),
    )
    schedule: str | None = setting(
        None,
        "Prune during training: infobatch, rs2, adaptive or a plugin's (see list-schedules); "
        "trains by epochs.",
    )
    schedule_options: dict[str, Any] = setting(
        {}, "The schedule's options (a mapping; --schedule-option KEY=VALUE).", cli=False
    )

    def validate(self) -> None:
        """A schedule trains by epochs; its options need it."""
        super().validate()
        if self.schedule_options and not self.schedule:
            raise DeepcoreError("schedule_options need a schedule (--schedule NAME)")
        if self.schedule and self.iterations:
            raise DeepcoreError(
                f"schedule '{self.schedule}' trains by epochs; iterations "
                f"{self.iterations} cannot be kept (give --epochs only)"
            )

    def train_config(self, seed: int) -> TrainConfig:
        """The engine's training config for ``seed``."""
        return TrainConfig(
            epochs=self.epochs,
            iterations=self.iterations,
            warmup=self.warmup,
            batch_size=self.batch_size,
            lr=self.lr,
            min_lr=min(self.min_lr, self.lr),
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            augment=self.augment,
            eval_every=self.eval_every,
            seed=seed,
        )


@dataclasses.dataclass(frozen=True)
class SelectSettings(DataSettings):
    """``deepcore select``: one coreset from a dataset or from precomputed arrays."""

    dataset: str | None = setting(None, "Select from this dataset (see list-datasets).")
    method: str | None = setting(None, "Selection method (see list-methods).")
    fraction: float | None = setting(
        None, "Coreset size as a fraction of N, in (0, 1].", **FRACTION
    )
    budget: int | None = setting(None, "Coreset size as a count.", min=1)
    seed: int = setting(0, "Seed for every random choice.", **SEED)
    options: dict[str, Any] = setting({}, "Method options (a mapping).", cli=False)
    output: str = setting("selection.npz", "Where to write the selection (.npz).", path=True)
    features: str | None = setting(None, "N x D features (.npy).", path=True)
    labels: str | None = setting(None, "N class labels (.npy).", path=True)
    scores: str | None = setting(None, "N per-sample scores (.npy).", path=True)
    logits: str | None = setting(None, "N x C logits (.npy).", path=True)
    probs: str | None = setting(None, "N x C probabilities (.npy).", path=True)

    def validate(self) -> None:
        """Fraction and budget exclude each other."""
        super().validate()
        check_size(self.fraction, self.budget, required=False)

    def arrays(self) -> dict[str, str | None]:
        """The precomputed input files, by input name."""
        return {k: getattr(self, k) for k in ("features", "labels", "scores", "logits", "probs")}


@dataclasses.dataclass(frozen=True)
class TrainCommandSettings(TrainSettings):
    """``deepcore train``: one network on a saved selection."""

    selection: str | None = setting(None, "Selection file (.npz) to train on.", path=True)
    dataset: str | None = setting(None, "Dataset the selection was made on.")
    data_root: str | None = setting(None, "Folder with the dataset's files.", path=True)
    network: str = setting(NETWORK, "Network to train.")
    seed: int = setting(0, "Seed.", **SEED)
    device: str = setting("auto", "Where networks run: auto, cpu, cuda or cuda:N.", **DEVICE)
    threads: int = setting(0, THREADS_HELP, **THREADS)
    output: str | None = setting(None, "Write the result as JSON here.", path=True)


@dataclasses.dataclass(frozen=True)
class RunSettings(TrainSettings, DataSettings):
    """``deepcore run`` / ``benchmark``: methods x fractions x seeds x networks."""

    methods: tuple[str, ...] = setting((), "Method (repeatable; default: all).", flag="method")
    method_options: dict[str, Any] = setting(
        {}, "Options per method: {method: {key: value}}.", cli=False
    )
    fractions: tuple[float, ...] = setting(
        (0.1,), "Coreset fraction in (0, 1] (repeatable).", flag="fraction", **FRACTION
    )
    networks: tuple[str, ...] = setting(
        (),
        "Network trained on the coreset (repeatable; default: the selection network).",
        flag="network",
    )
    seeds: tuple[int, ...] = setting((0, 1, 2), "Seed (repeatable).", flag="seed", **SEED)
    protocol: Protocol = setting(
        "iterations",
        "How long each model trains: the full-data model's steps over --epochs, whatever the "
        "coreset's size (iterations; --iterations N sets the count), or --epochs passes over "
        "its own data, so smaller coresets train fewer steps (epochs).",
    )
    output: str | None = setting(None, "Output folder (default: runs/<dataset>).", path=True)
    include_full: bool = setting(True, "Train the full-data model too.", flag="full")
    jobs: int = setting(1, JOBS_HELP, min=1, max=4 * MACHINE_CPUS)

    def validate(self) -> None:
        """At least one seed, option mappings, and training settings the engine accepts."""
        super().validate()
        if not self.seeds:
            raise DeepcoreError("give at least one seed")
        if self.schedule and self.protocol == "iterations":
            raise DeepcoreError(
                f"schedule '{self.schedule}' trains by epochs and saves steps: give "
                "--protocol epochs (protocol iterations gives every model the same steps)"
            )
        if self.protocol == "epochs" and self.iterations:
            raise DeepcoreError(
                f"iterations {self.iterations} needs protocol iterations; protocol epochs "
                "trains each model for --epochs passes over its own data (give one of them)"
            )
        for m, opts in self.method_options.items():
            if not isinstance(opts, Mapping):
                raise DeepcoreError(f"method_options for '{m}' must be a mapping of options")
        self.pretrain_spec().config_for(0)  # the engine's own checks (min_lr <= lr, ...)

    def train_config(self, seed: int, train_size: int | None = None) -> TrainConfig:
        """The engine's training config for ``seed``; under protocol ``iterations`` without
        a count, the steps of ``epochs`` epochs over the full training set of ``train_size``
        samples (the same for every coreset)."""
        config = TrainSettings.train_config(self, seed)
        if self.protocol == "epochs" or self.iterations or train_size is None:
            return config
        steps = self.epochs * math.ceil(train_size / self.batch_size)
        return dataclasses.replace(config, iterations=steps)

    def targets(self) -> tuple[str, ...]:
        """The networks trained on each coreset."""
        return self.networks or (self.selection_network,)

    def out_dir(self) -> Path:
        """The output folder: ``output``, else ``runs/<dataset>``."""
        return Path(self.output) if self.output else Path("runs") / str(self.dataset)

    def pretrain_spec(self, train: TrainConfig | None = None) -> PretrainSpec:
        """The selection model's training: the coreset optimiser unless ``selection_lr``."""
        return DataSettings.pretrain_spec(self, train or self.train_config(0))

    def rules_key(self) -> dict[str, Any]:
        """The selection rules for run keys: ties broken by a seeded permutation (results
        that broke them by index have no such key and are not reused), and the variant and
        the selection-model schedule where they are not the defaults."""
        out: dict[str, Any] = {"ties": "seeded"}
        if self.sampler:
            out["sampler"] = {"name": self.sampler, "options": dict(self.sampler_options)}
        if self.variant != "default":
            out["variant"] = self.variant
        if self.selection_augment:
            out["selection_augment"] = True
        if self.schedule_of_selection_model() != "cosine":
            out["selection_schedule"] = self.schedule_of_selection_model()
        running = self.running_spec()
        if running is not None:
            out["dynamics"] = running.key()
        return {**out, **self.labels_key()}

    def labels_key(self) -> dict[str, Any]:
        """The encoder and label settings for run keys, where they are not the defaults."""
        from deepcore_core.encoders import file_checksum

        out: dict[str, Any] = {}
        if self.no_labels:
            out["labels"] = "hidden"
        encoder = self.encoder or ("simclr" if self.no_labels else None)
        if encoder not in (None, "supervised"):
            out["encoder"] = {"name": encoder, "options": dict(self.encoder_options)}
            if self.encoder_weights:
                out["encoder"]["weights"] = file_checksum(self.encoder_weights)
            if self.embedding_dtype != "float32":
                out["encoder"]["dtype"] = self.embedding_dtype
        if self.clusters:
            out["clusters"] = self.clusters
        if self.dedup:
            out["dedup"] = self.dedup
        return out

    def selection_lr_key(self) -> dict[str, float]:
        """The selection learning rate for run keys, only where it differs from ``lr``."""
        if self.selection_lr is None or self.selection_lr == self.lr:
            return {}
        return {"selection_lr": self.selection_lr}


#: the former name of :class:`RunSettings` (kept for one release)
ExperimentConfig = RunSettings


# -- building settings from mappings (YAML, Python) ---------------------------------------


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for a missing, unreadable or bad file."""
    p = Path(path)
    if not p.is_file():
        raise DeepcoreError(f"config file '{p}' does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except PermissionError:
        raise DeepcoreError(f"config file '{p}' is not readable (permission denied)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise DeepcoreError(f"config file '{p}' is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise DeepcoreError(f"config file '{p}' is not a text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeepcoreError(
            f"config file '{p}' must hold a mapping of keys, not {type(data).__name__}"
        )
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The settings of ``cls`` by name."""
    return {f.name: f for f in dataclasses.fields(cls)}


def canonical(cls: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Keys with ``-`` as ``_`` and aliases resolved; an unknown key is an error with a hint."""
    known = fields(cls)
    out: dict[str, Any] = {}
    for raw, value in values.items():
        key = str(raw).replace("-", "_")
        if key not in known and ALIASES.get(key) in known:
            key = ALIASES[key]
        if key not in known:
            close = difflib.get_close_matches(key, [*known, *ALIASES], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise DeepcoreError(
                f"unknown key '{raw}' in {source}{hint} (valid keys: {', '.join(sorted(known))})"
            )
        out[key] = value
    return out


def resolve_paths(cls: type, values: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``values`` with each relative path setting of ``cls`` resolved against ``folder``.

    What a YAML file's relative paths mean: relative to the file's folder, not the caller's.
    """
    known = fields(cls)
    out = dict(values)
    for key, v in values.items():
        meta = known[key].metadata if key in known else {}
        if meta.get("path") and isinstance(v, str) and not os.path.isabs(v):
            out[key] = os.path.normpath(folder / Path(v).expanduser())
    return out


def build(
    cls: type[Any],
    values: Mapping[str, Any] | None = None,
    source: str = "settings",
    *,
    text: bool = True,
) -> Any:
    """Build settings ``cls`` from a mapping: keys checked, values typed and range-checked.

    A list setting takes a scalar as a one-element list. Raises :class:`DeepcoreError`
    naming the bad key or value.

    :param text: read strings for other types as a command line's text (``"3"`` -> 3); off
        for Python callers, whose strings stay strings (and are refused where they do not fit).
    """
    kw = canonical(cls, values or {}, source)
    hints = typing.get_type_hints(cls)
    known = fields(cls)
    for key, value in kw.items():
        kw[key] = _typed(key, value, hints[key], known[key].metadata, text)
    try:
        return cls(**kw)
    except TypeError as exc:
        raise DeepcoreError(f"invalid {source}: {exc}") from None


def _typed(key: str, value: Any, tp: Any, meta: Mapping[str, Any], text: bool = True) -> Any:
    if get_origin(tp) is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_typed(each_item(key, meta), v, get_args(tp)[0], meta, text) for v in items)
    if get_origin(tp) is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise DeepcoreError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # a numpy scalar (np.int64(3)) as the Python number
    if text and isinstance(value, str) and not accepts(tp, str):
        value = scalar(value)  # "3" -> 3, as from a command line
    if isinstance(value, os.PathLike) and accepts(tp, str):
        value = os.fspath(value)
    ok, out = convert_value(value, tp)
    if not ok and accepts(tp, float) and not_finite(value):
        raise DeepcoreError(f"{key} must be a finite number, got {value!r}")
    if not ok:
        raise DeepcoreError(f"{key} must be {_describe(tp)}, got {value!r}")
    return out


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if get_origin(tp) in (Union, types.UnionType):
        parts = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(names.get(a, type_name(a)) for a in parts)
    return names.get(tp, type_name(tp))
