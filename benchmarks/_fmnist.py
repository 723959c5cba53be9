"""Shared set-up for benchmarks: a LeNet trained briefly on Fashion-MNIST and its outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepcore_core.engine.embedding import compute_embedding
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.plugins import PluginHost


def fmnist_lenet(data_root: str, epochs: int = 3) -> dict[str, Any]:
    """Data, a LeNet trained ``epochs`` epochs (seed 0), and its training-set embedding."""
    host = PluginHost(load_entrypoints=False)
    data = host.datasets.load("fashion-mnist", data_root)
    torch.manual_seed(0)
    net = host.networks.build("lenet", 1, 10, 28)
    cpu = torch.device("cpu")
    net = train_model(net, data.train, TrainConfig(epochs=epochs, augment=False), cpu).model
    emb = compute_embedding(net, data.train, cpu)
    return {
        "data": data,
        "model": net.eval(),
        "features": emb.features,
        "probs": emb.probs,
        "labels": data.train.labels,
    }


def one_class(setup: dict[str, Any], label: int = 0) -> dict[str, np.ndarray]:
    """Features, probabilities and labels of one class."""
    idx = np.flatnonzero(setup["labels"] == label)
    return {
        "features": setup["features"][idx],
        "probs": setup["probs"][idx],
        "labels": setup["labels"][idx],
    }
