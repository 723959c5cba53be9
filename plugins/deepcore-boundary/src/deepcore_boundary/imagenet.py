"""Penultimate features of an ImageNet ResNet-18, as the original DeepCore code's Cal uses.

The weights are torchvision's ``resnet18-f37072fd.pth``, read from a local file (nothing is
downloaded). Images are resized to ``image_size`` (the original: 224) and a single-channel
image is repeated over three channels (the original replaced the first convolution with a
random one instead, which discards the ImageNet filters of that layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepcore_core import DeepcoreError, Progress, distributed

WEIGHTS_NAME = "resnet18-f37072fd.pth"


def default_weights() -> Path:
    """Where torchvision caches the ResNet-18 weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def resnet18_features(
    source: Any, n: int, weights: Path, image_size: int, device: str, batch_size: int = 128
) -> np.ndarray:
    """512-d average-pooled ResNet-18 features of every sample of ``source`` (N x 512)."""
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # a truncated or foreign file
        raise DeepcoreError(
            f"'{weights}' is not a torchvision ResNet-18 state dict: {exc}"
        ) from None
    model.fc = torch.nn.Identity()
    dev = torch.device(device)
    model = model.to(dev).eval()
    rows = distributed.shard(n)  # under torchrun each rank embeds its share
    out = np.empty((rows.stop - rows.start, 512), dtype=np.float32)
    order = torch.arange(rows.start, rows.stop)
    with torch.no_grad(), Progress(-(-len(order) // batch_size), "cal: ResNet-18 features") as bar:
        for x, _, idx in source.batches(order, batch_size, device=dev):
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = torch.nn.functional.interpolate(
                x, size=(image_size, image_size), mode="bilinear", align_corners=False
            )
            out[idx.numpy() - rows.start] = model(x).float().cpu().numpy()
            bar.update(1)
    return distributed.gather_rows(out, n)
