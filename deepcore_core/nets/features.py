"""Any classifier ``nn.Module`` with the penultimate features the methods need.

The features are the input of the model's final ``nn.Linear`` (the last one in
``named_modules()`` order, or the one named by ``feature_layer``), captured by a forward
pre-hook, so every method (closed-form last-layer gradients, DeepFool, ...) works with a
model deepcore did not build. The model is used as given: eval mode, no training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepcore_core.errors import DeepcoreError


class FeatureModel(nn.Module):
    """Wraps ``model``: ``forward`` gives its logits, ``forward_with_features`` also the
    input of its final linear layer.

    :param model: a classifier returning N x C logits.
    :param feature_layer: the name of the final ``nn.Linear`` (default: found automatically).
    """

    def __init__(self, model: nn.Module, feature_layer: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.layer_name, layer = final_linear(model, feature_layer)
        self._features: torch.Tensor | None = None
        layer.register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._features = inputs[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits."""
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise DeepcoreError(
                f"the model must return N x C logits, got {type(out).__name__}"
                + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else "")
            )
        return out

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the final linear layer's input (flattened to N x D)."""
        self._features = None
        out = self.forward(x)
        if self._features is None:
            raise DeepcoreError(f"the model's layer '{self.layer_name}' was not used in forward")
        return out, self._features.flatten(1)


def final_linear(model: nn.Module, name: str | None = None) -> tuple[str, nn.Linear]:
    """The model's final ``nn.Linear`` (or the one called ``name``), with a clear error."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if name is not None:
        found = dict(model.named_modules()).get(name)
        if not isinstance(found, nn.Linear):
            valid = ", ".join(n for n, _ in linears) or "none"
            what = "no layer" if found is None else f"a {type(found).__name__}, not nn.Linear"
            raise DeepcoreError(f"feature_layer '{name}' is {what} (linear layers: {valid})")
        return name, found
    if not linears:
        raise DeepcoreError(
            f"the model ({type(model).__name__}) has no nn.Linear layer whose input could serve "
            "as penultimate features; give feature_layer=... or features directly"
        )
    return linears[-1]


def with_features(model: nn.Module, feature_layer: str | None = None) -> nn.Module:
    """``model`` itself if it already gives features (a deepcore network), else wrapped."""
    if hasattr(model, "forward_with_features") and feature_layer is None:
        return model
    return FeatureModel(model, feature_layer)
