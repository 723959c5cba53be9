"""Any classifier ``nn.Module`` with the penultimate features the methods need.

The features are the input of the model's final ``nn.Linear`` (the last one in
``named_modules()`` order, or the one named by ``feature_layer``), captured by a forward
pre-hook, so every method (closed-form last-layer gradients, DeepFool, ...) works with a
model deepcore did not build. The model is used as given: eval mode, no training, and
:func:`lent` gives it back as it was found.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
        self._hook = layer.register_forward_pre_hook(self._capture)
        self._layer = layer
        #: how far the logits are from the layer's affine map of the features (relative,
        #: measured on the first batch; None until then)
        self.affine_gap: float | None = None

    def check_last_layer(self) -> None:
        """Raise unless the logits are the feature layer's affine map of the features (as
        measured on the first batch): the assumption of every last-layer gradient."""
        gap = self.affine_gap
        if gap is not None and not gap <= AFFINE_TOLERANCE:
            raise DeepcoreError(
                f"the model's logits are not the output of its layer '{self.layer_name}' "
                f"(relative difference {gap:.3g} > {AFFINE_TOLERANCE:g}: two heads averaged, or "
                "a layer after it?), so last-layer gradients would be wrong; give "
                "feature_layer= the linear layer whose output is the logits, or use a method "
                "that needs only features or probabilities"
            )

    def release(self) -> None:
        """Remove the feature hook from the user's model."""
        self._hook.remove()

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
        h = self._features.flatten(1)
        if self.affine_gap is None:
            self.affine_gap = affine_gap(self._layer, h, out)
        return out, h


#: the relative difference between the logits and the feature layer's affine map above which
#: last-layer gradients are refused (float32 rounding stays far below it)
AFFINE_TOLERANCE = 1e-3


def probe(model: nn.Module, x: torch.Tensor, classes: int) -> None:
    """Run ``model`` once on ``x`` (eval mode, no gradients; its modes restored) and turn what
    breaks into one error naming both sides: inputs the model cannot take (channels, dtype,
    device) or fewer outputs than ``classes``."""
    modes = [(m, m.training) for m in model.modules()]
    first = next(model.parameters(), None)
    have = "no parameters" if first is None else f"{first.dtype} parameters on {first.device}"
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except (RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeepcoreError(
            f"the model cannot take the dataset's inputs ({x.dtype} of shape "
            f"{tuple(x.shape)[1:]} per sample on {x.device}; the model has {have}): {reason}"
        ) from None
    finally:
        for m, mode in modes:
            m.training = mode
    if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] < classes:
        raise DeepcoreError(
            f"the model gives {out.shape[1]} outputs per sample but the labels have {classes} "
            "classes: give a model with one output per class"
        )


def affine_gap(layer: nn.Linear, features: torch.Tensor, logits: torch.Tensor) -> float:
    """``max |layer(features) - logits| / max(max |logits|, 1)``: 0 where the logits are the
    layer's output, as the closed-form last-layer gradients assume."""
    with torch.no_grad():
        if features.shape[1] != layer.in_features or logits.shape[1] != layer.out_features:
            return float("inf")
        diff = (layer(features.to(layer.weight.dtype)) - logits).abs().max()
        return float(diff / logits.abs().max().clamp(min=1.0))


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


@contextlib.contextmanager
def lent(model: nn.Module, feature_layer: str | None, device: Any) -> Iterator[nn.Module]:
    """``model`` wrapped for its features, in eval mode on ``device`` and with its parameters'
    gradients off, for the block; afterwards as it was found, whatever happened in the block:
    every submodule's training mode, every parameter's and buffer's device, every
    parameter's ``requires_grad`` and ``.grad``, and no hook of ours left on it."""
    if not isinstance(model, nn.Module):
        raise DeepcoreError(
            "model must be a torch nn.Module (a classifier giving N x C logits), got "
            f"{type(model).__name__}"
        )
    if any(p.is_meta for p in model.parameters()):
        raise DeepcoreError(
            "the model's parameters are on the meta device (never materialized): load its "
            "weights first (e.g. load_state_dict(..., assign=True))"
        )
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.device, p.requires_grad, p.grad) for p in model.parameters()]
    buffers = [
        (m, name, b.device)
        for m in model.modules()
        for name, b in m._buffers.items()
        if b is not None
    ]
    wrapped = with_features(model, feature_layer)
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield wrapped.to(device).eval()
    finally:
        if isinstance(wrapped, FeatureModel):
            wrapped.release()
        for p, where, needs_grad, grad in params:
            if p.device != where:
                p.data = p.data.to(where)
            if grad is not None and grad.device != where:
                grad.data = grad.data.to(where)
            p.grad = grad
            p.requires_grad_(needs_grad)
        for m, name, where in buffers:
            buf = m._buffers[name]
            if buf is not None and buf.device != where:
                m._buffers[name] = buf.to(where)
        for m, mode in modes:
            m.training = mode
