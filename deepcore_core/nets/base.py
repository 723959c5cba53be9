"""The common network interface: a body that yields penultimate features and a linear head."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from deepcore_core.errors import DeepcoreError
from deepcore_core.registry import Registry


class Network(nn.Module):
    """A classifier split into ``body`` (input -> N x D features) and ``head`` (D -> C).

    ``forward`` returns logits; :meth:`forward_with_features` returns ``(logits, features)``
    so the embedding engine gets both from one pass. ``cpu_batch``: the embedding pass's
    batch on a CPU where the data set none (128: a large network's activations then stay in
    the caches; a small one gains from fewer, larger batches).
    """

    def __init__(
        self, name: str, body: nn.Module, feature_dim: int, num_classes: int, cpu_batch: int = 128
    ) -> None:
        super().__init__()
        self.name = name
        self.cpu_batch = cpu_batch
        self.body = body
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch."""
        return self.head(self.body(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features for a batch."""
        h = self.body(x)
        return self.head(h), h


Builder = Callable[[int, int, int], nn.Module]


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    """A registered network: ``build(channels, num_classes, image_size) -> Network``."""

    name: str
    build: Callable[[int, int, int], Network]
    description: str
    min_size: int = 8
    max_size: int = 256
    torchvision_arch: str | None = None  #: name of the matching torchvision model, if any


class NetworkRegistry(Registry[NetworkInfo]):
    """Network name -> :class:`NetworkInfo` (names are case-insensitive)."""

    def __init__(self) -> None:
        super().__init__("network", case_insensitive=True)

    def build(
        self,
        name: str,
        channels: int,
        num_classes: int,
        image_size: int,
        pretrained: str | Path | None = None,
    ) -> Network:
        """Build ``name`` for the given input; optionally load torchvision weights from a file."""
        info = self.get(name)
        if not info.min_size <= image_size <= info.max_size:
            raise DeepcoreError(
                f"network '{info.name}' takes images of {info.min_size} to {info.max_size} "
                f"pixels, not {image_size}"
            )
        net = info.build(channels, num_classes, image_size)
        if pretrained is not None:
            load_pretrained(net, Path(pretrained), info)
        return net


def load_pretrained(net: Network, path: Path, info: NetworkInfo) -> None:
    """Load a torchvision state dict from a local file into ``net.body`` (shapes that match).

    A 3-channel first convolution is summed over colours for 1-channel inputs. The head is
    always new (it depends on the number of classes).
    """
    if info.torchvision_arch is None:
        raise DeepcoreError(f"network '{info.name}' has no torchvision weights to load")
    if not path.is_file():
        raise DeepcoreError(
            f"pretrained weights file '{path}' does not exist; save torchvision's "
            f"{info.torchvision_arch} weights (model.state_dict()) on a connected machine"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DeepcoreError(f"'{path}' is not a readable state dict: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = net.body.state_dict()
    loaded = {}
    for key, value in state.items():
        if key not in own or not isinstance(value, torch.Tensor):
            continue
        target = own[key]
        if value.shape == target.shape:
            loaded[key] = value
        elif (
            value.ndim == 4
            and value.shape[1] == 3
            and target.shape[1] == 1
            and (value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:])
        ):
            loaded[key] = value.sum(dim=1, keepdim=True)
    if not loaded:
        raise DeepcoreError(f"'{path}' has no weights that fit network '{info.name}'")
    net.body.load_state_dict(loaded, strict=False)
