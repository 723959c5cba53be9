"""Encoders: where a selection's features come from when they are not the selection model's.

``--encoder`` (YAML ``encoder:``, Python ``encoder=``) names one:

- ``supervised``: the selection model trained on the labels (the default with labels);
- ``simclr``: a self-supervised encoder the engine trains on the unlabeled pool
  (:mod:`deepcore_core.engine.simclr`; the default without labels);
- a torchvision architecture (``resnet18`` or ``torchvision:resnet18``), its classifier
  dropped, with ``--encoder-weights FILE``;
- ``module:factory`` (``mypkg.encoders:build``), a function returning an ``nn.Module``;
- ``timm:NAME`` with ``timm`` installed, and ``hf:DIR``, a Hugging Face ``transformers``
  model saved in a local folder (text or vision), pooled (``cls`` by default, or ``mean``);
- in Python, any ``nn.Module``;
- a plugin's (hook ``register_encoders``; ``deepcore list-encoders``).

An encoder gives one row per sample: tuples give their first item, mappings their
``pooler_output`` or ``last_hidden_state``, and ``pooling`` (``cls``, ``mean``) turns a
token or spatial map into a row. Embeddings are written to the embedding store
(:mod:`deepcore_core.embedding_store`), keyed by the encoder, a checksum of its weights, the
dataset and the transform.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import importlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from deepcore_core.errors import DeepcoreError
from deepcore_core.options import options_dict, parse_options

SUPERVISED = "supervised"
Pooling = Literal["none", "cls", "mean"]


@dataclasses.dataclass(frozen=True)
class PoolingOptions:
    """How a token or spatial map becomes one row per sample."""

    #: none (already batch x D), cls (the first token) or mean (over tokens or positions)
    pooling: Pooling = "none"


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file, for keys."""
    from deepcore_core.cache import sha256

    return sha256(Path(path))[:16]


def state_checksum(module: Any) -> str:
    """A hash of a module's class and state dict (its weights), for keys."""
    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, value in module.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_weights(module: Any, path: str | Path, what: str) -> None:
    """Load a state dict (or a checkpoint holding one under ``state_dict``, ``model`` or
    ``model_state_dict``) from a local file into ``module``; mismatched or missing keys are
    one error naming them."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise DeepcoreError(f"encoder weights file '{p}' (--encoder-weights) does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip or torch errors: one line
        raise DeepcoreError(f"encoder weights '{p}' could not be read: {exc}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise DeepcoreError(f"encoder weights '{p}' hold no state dict of tensors")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            problems.append(f"{label} keys {', '.join(keys[:3])}{more}")
    if problems:
        raise DeepcoreError(f"encoder weights '{p}' do not fit {what}: {'; '.join(problems)}")
    module.load_state_dict(state)


def pooled(out: Any, pooling: str, name: str) -> Any:
    """One row per sample from an encoder's output (see the module docstring)."""
    import torch

    if isinstance(out, tuple | list) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor) and hasattr(out, "get"):  # a mapping / ModelOutput
        pool = out.get("pooler_output")
        out = pool if pool is not None and pooling == "none" else out.get("last_hidden_state")
    if not isinstance(out, torch.Tensor):
        raise DeepcoreError(f"encoder '{name}' returned {type(out).__name__}, not a tensor")
    if out.ndim == 3 and pooling in ("cls", "mean"):
        out = out[:, 0] if pooling == "cls" else out.mean(1)
    elif out.ndim == 4 and pooling == "mean":
        out = out.mean((2, 3))
    if out.ndim != 2:
        hint = " (set the encoder option pooling: cls or mean)" if out.ndim in (3, 4) else ""
        raise DeepcoreError(
            f"encoder '{name}' gives outputs of shape {tuple(out.shape)} per batch; it must "
            f"give batch x D after pooling{hint}"
        )
    return out.float()


class Encoder(abc.ABC):
    """Base of an encoder: set ``name`` (and ``Options``), implement :meth:`module`.

    :param target: what the name points at (an architecture, a ``module:factory`` path).
    :param weights: a local weights file (``--encoder-weights``).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = PoolingOptions
    #: whether it takes ``name:target`` (``timm:vit_small_patch16_224``)
    takes_target: ClassVar[bool] = False

    def __init__(
        self, target: str | None = None, options: Any = None, weights: str | None = None
    ) -> None:
        if target and not self.takes_target:
            raise DeepcoreError(f"encoder '{self.name}' takes no ':{target}'")
        self.target, self.weights = target, weights
        self.options = parse_options(self.Options, dict(options or {}), self.name, kind="encoder")

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @property
    def label(self) -> str:
        """How records and messages name it (``name`` or ``name:target``)."""
        return f"{self.name}:{self.target}" if self.target else self.name

    def identity(self, ctx: Any) -> dict[str, Any]:
        """What determines its embeddings, for the store's key (name, target, options, a
        checksum of the weights file)."""
        weights = file_checksum(self.weights) if self.weights else None
        return {"encoder": self.label, "options": options_dict(self.options), "weights": weights}

    def transform(self, ctx: Any) -> str:
        """The input transform applied before the module, for the store's key."""
        return "dataset"

    @abc.abstractmethod
    def module(self, ctx: Any) -> Any:
        """The ``nn.Module`` (in eval mode, on ``ctx.device``) whose output, pooled, is the
        embedding of a batch of ``ctx.dataset``'s inputs."""

    def prepare(self, x: Any) -> Any:
        """The batch as the module takes it (the dataset's tensors by default)."""
        return x

    def release(self, module: Any) -> None:  # noqa: B027 (optional, nothing by default)
        """Called when the embedding pass is over (a user's module is given back as found)."""

    def describe(self) -> dict[str, Any]:
        """For selection records."""
        return {"name": self.label, "options": options_dict(self.options), "weights": self.weights}


class _WithWeights(Encoder):
    def _loaded(self, module: Any, ctx: Any) -> Any:
        if self.weights:
            load_weights(module, self.weights, f"encoder '{self.label}'")
        return module.eval().to(ctx.device)


def drop_head(module: Any) -> Any:
    """``module`` with its last ``nn.Linear`` replaced by the identity: its output is then
    the input of that layer (a torchvision classifier's penultimate features)."""
    from torch import nn

    last = None
    for name, child in module.named_modules():
        if isinstance(child, nn.Linear):
            last = name
    if last is None:
        return module
    parent = module
    *path, leaf = last.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, nn.Identity())
    return module


@dataclasses.dataclass(frozen=True)
class TorchvisionOptions(PoolingOptions):
    """A torchvision architecture's input."""

    size: int = 0  #: resize inputs to this side (0: as the dataset gives them)


class Torchvision(_WithWeights):
    """A torchvision architecture (classifier dropped), weights from --encoder-weights."""

    name = "torchvision"
    Options = TorchvisionOptions
    takes_target = True

    def module(self, ctx: Any) -> Any:
        import torchvision

        if not self.target:
            raise DeepcoreError("encoder 'torchvision' needs an architecture: torchvision:NAME")
        try:
            build = torchvision.models.get_model_builder(self.target)
        except ValueError:
            raise DeepcoreError(
                f"unknown torchvision architecture '{self.target}' (see "
                "torchvision.models.list_models())"
            ) from None
        net = build(weights=None)
        net = self._loaded(net, ctx)  # the weights include the head: dropped after loading
        self._channels = int(getattr(ctx.dataset, "channels", 3))
        return drop_head(net)

    def transform(self, ctx: Any) -> str:
        return f"dataset,channels3,size{self.options.size}"

    def prepare(self, x: Any) -> Any:
        import torch.nn.functional as F

        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.options.size:
            x = F.interpolate(x, size=(self.options.size,) * 2, mode="bilinear",
                              align_corners=False)  # fmt: skip
        return x


class Factory(_WithWeights):
    """A function returning an nn.Module (module:factory), weights from --encoder-weights."""

    name = "module"
    takes_target = True

    def module(self, ctx: Any) -> Any:
        path = self.target or ""
        mod_name, _, attr = path.rpartition(":")
        if not mod_name or not attr:
            raise DeepcoreError(f"encoder '{path}' must be a 'module:factory' path")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise DeepcoreError(f"encoder '{path}' could not be imported: {exc}") from None
        net = factory()
        if not hasattr(net, "state_dict") or not callable(net):
            raise DeepcoreError(f"encoder '{path}' returned {type(net).__name__}, not an nn.Module")
        return self._loaded(net, ctx)


class Timm(_WithWeights):
    """A timm model without its classifier (timm:NAME; needs timm), --encoder-weights.

    Grey images are repeated to the three channels timm's models take.
    """

    name = "timm"
    takes_target = True

    def module(self, ctx: Any) -> Any:
        try:
            import timm
        except ImportError:
            raise DeepcoreError("encoder 'timm:...' needs timm: pip install timm") from None
        if not self.target:
            raise DeepcoreError("encoder 'timm' needs a model name: timm:NAME")
        try:
            net = timm.create_model(self.target, pretrained=False, num_classes=0)
        except Exception as exc:
            raise DeepcoreError(f"timm has no model '{self.target}': {exc}") from None
        if self.weights:  # a checkpoint with the classifier: the head is not kept
            full = timm.create_model(self.target, pretrained=False)
            load_weights(full, self.weights, f"encoder '{self.label}'")
            state = {k: v for k, v in full.state_dict().items() if k in net.state_dict()}
            net.load_state_dict(state)
        return net.eval().to(ctx.device)

    def transform(self, ctx: Any) -> str:
        return "dataset,channels3"

    def prepare(self, x: Any) -> Any:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@dataclasses.dataclass(frozen=True)
class HuggingFaceOptions(PoolingOptions):
    """A transformers model's pooling (cls: the first token; mean: every token, padding
    included; none: the model's pooler output)."""

    pooling: Pooling = "cls"


class HuggingFace(Encoder):
    """A Hugging Face transformers model from a local folder (hf:DIR; text or vision).

    The batch goes in as the model's first argument (``input_ids`` of equal-length or padded
    text rows, or ``pixel_values``); ``pooling`` turns ``last_hidden_state`` into one row.
    """

    name = "hf"
    Options = HuggingFaceOptions
    takes_target = True

    def __init__(self, target: str | None = None, options: Any = None, weights: Any = None):
        if weights:
            raise DeepcoreError("encoder 'hf:DIR' reads its weights from DIR; give no weights file")
        super().__init__(target, options, None)

    def identity(self, ctx: Any) -> dict[str, Any]:
        folder = Path(self.target or "")
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        h = hashlib.sha256()
        for p in files:
            h.update(f"{p.relative_to(folder)}:{file_checksum(p)}".encode())
        return {**super().identity(ctx), "weights": h.hexdigest()[:16]}

    def module(self, ctx: Any) -> Any:
        try:
            import transformers
        except ImportError:
            raise DeepcoreError(
                "encoder 'hf:DIR' needs transformers: pip install transformers"
            ) from None
        folder = Path(self.target or "")
        if not folder.is_dir():
            raise DeepcoreError(f"encoder folder '{folder}' (hf:DIR) does not exist")
        try:
            net = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # a missing or broken config or weights file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DeepcoreError(f"encoder folder '{folder}' could not be loaded: {first}") from None
        return net.eval().to(ctx.device)


class UserModule(Encoder):
    """The user's own nn.Module, given in Python (encoder=module)."""

    name = "user"

    def __init__(self, module: Any, options: Any = None) -> None:
        super().__init__(None, options)
        self._module = module
        cls = type(module)
        self.target = None
        self._cls = f"{cls.__module__}.{cls.__qualname__}"

    @property
    def label(self) -> str:
        return f"user:{self._cls}"

    def identity(self, ctx: Any) -> dict[str, Any]:
        return {"encoder": self.label, "options": options_dict(self.options),
                "weights": state_checksum(self._module)}  # fmt: skip

    def module(self, ctx: Any) -> Any:
        first = next(iter(self._module.parameters()), None)
        self._found = (self._module.training, None if first is None else first.device)
        return self._module.eval().to(ctx.device)

    def release(self, module: Any) -> None:
        """The module's mode and device as they were found."""
        training, device = self._found
        module.train(training)
        if device is not None:
            module.to(device)


BUILTIN_ENCODERS: tuple[type[Encoder], ...] = (Torchvision, Factory, Timm, HuggingFace)


def make_encoder(
    registry: Any,
    spec: Any,
    options: Any = None,
    weights: str | None = None,
) -> Encoder | None:
    """The encoder ``spec`` names (None for ``supervised``); an ``nn.Module`` is the user's."""
    if spec is None or spec == SUPERVISED:
        if weights or options:
            raise DeepcoreError(
                "encoder_weights and encoder_options need an encoder (--encoder NAME)"
            )
        return None
    if not isinstance(spec, str):
        if not (hasattr(spec, "state_dict") and callable(spec)):
            raise DeepcoreError(
                f"encoder must be a name or an nn.Module, got {type(spec).__name__}"
            )
        if weights:
            raise DeepcoreError("encoder_weights applies to a named encoder, not a module")
        return UserModule(spec, options)
    if weights is not None and not Path(weights).is_file():
        raise DeepcoreError(f"encoder weights file '{weights}' (--encoder-weights) does not exist")
    name, sep, target = spec.partition(":")
    if sep and name in registry:
        return registry.get(name)(target, options, weights)
    if sep:  # a module:factory path
        return Factory(spec, options, weights)
    if spec in registry:
        return registry.get(spec)(None, options, weights)
    import torchvision

    if spec.lower() in torchvision.models.list_models():
        return Torchvision(spec.lower(), options, weights)
    known = ", ".join([SUPERVISED, *registry.names()])
    raise DeepcoreError(
        f"unknown encoder '{spec}': give {known}, a torchvision architecture or a "
        "module:factory path (see list-encoders)"
    )


def encode(ctx: Any) -> np.ndarray:
    """The encoder's embeddings of ``ctx.dataset``'s training split, from the embedding store
    (computed shard by shard when missing); records the ``embedding`` stage's cost (and an
    encoder trained here records ``selection_model``)."""
    import torch

    from deepcore_core.cost import measure
    from deepcore_core.data.sources import labels_or_none
    from deepcore_core.embedding_store import EmbeddingStore, store_key
    from deepcore_core.engine.config import default_cache_dir
    from deepcore_core.engine.embedding import default_batch_size
    from deepcore_core.selection import dataset_fingerprint

    enc: Encoder = ctx.encoder
    data = ctx.dataset
    if data is None:
        raise DeepcoreError(f"encoder '{enc.label}' embeds a dataset; give one (--dataset)")
    source = data.train
    module = enc.module(ctx)  # an encoder trained here records its own cost
    labels = labels_or_none(source)
    key = store_key({
        "encoder": enc.identity(ctx),
        "dataset": dataset_fingerprint(labels, len(source), data.name),
        "transform": enc.transform(ctx),
        "dtype": ctx.embedding_dtype,
    })  # fmt: skip
    cache = ctx.cache_dir or default_cache_dir()
    store = EmbeddingStore(Path(cache) / "embeddings" / key, key, len(source), ctx.embedding_dtype)
    device = torch.device(ctx.device)
    batch = getattr(source, "batch_size", None) or default_batch_size(device)
    pooling = getattr(enc.options, "pooling", "none")

    def rows(lo: int, hi: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for x, _, _ in source.batches(torch.arange(lo, hi), batch, device=device):
                try:
                    y = module(enc.prepare(x))
                except RuntimeError as exc:
                    first = str(exc).strip().splitlines()[0]
                    raise DeepcoreError(
                        f"encoder '{enc.label}' failed on a batch of shape {tuple(x.shape)}: "
                        f"{first}"
                    ) from None
                out.append(pooled(y, pooling, enc.label).cpu().numpy())
        return np.concatenate(out)

    try:
        with measure(ctx.device, len(source)) as cost:
            features = store.fill(rows, desc=f"embedding with {enc.label}")
    finally:
        enc.release(module)
    ctx.costs["embedding"] = cost
    ctx.extras.setdefault("encoder", {}).update(
        {**enc.describe(), "store": store.folder.name, "dim": int(features.shape[1])}
    )
    return features
