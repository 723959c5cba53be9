"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from deepcore_core.errors import DeepcoreError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """Map ``auto|cpu|cuda`` (or ``cuda:N``) to a torch device; a clear error without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeepcoreError(
                f"device '{device}' was asked for but no CUDA GPU is available; "
                "use --device cpu or auto"
            )
        return torch.device(device)
    raise DeepcoreError(f"device must be one of auto, cpu, cuda, got '{device}'")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
