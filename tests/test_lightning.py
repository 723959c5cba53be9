"""The Lightning DataModule, with the real lightning package: selection once or every few
epochs from the module being trained, weights honoured, the module left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepcore_core import Pick, PluginHost, Selector, hookimpl
from deepcore_core.errors import DeepcoreError
from deepcore_core.testing import ImageBlobs

pl = pytest.importorskip("lightning.pytorch")

from deepcore_core.lightning import CoresetDataModule, weighted_cross_entropy  # noqa: E402


class EveryOtherWeighted(Selector):
    """Test method: the first k of each pool, weighted 2."""

    name = "first-weighted"
    family = "test"

    def pick(self, ctx, pool, k, rng):
        return Pick(pool[:k], np.full(k, 2.0))


class Reg:
    @hookimpl
    def register_selectors(self, register):
        register(EveryOtherWeighted)


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.BatchNorm1d(16),
                                 nn.ReLU(), nn.Linear(16, 3))  # fmt: skip
        self.batches: list[int] = []
        self.weights_seen: list[float] = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, i):
        assert self.training  # selection gave the module back in training mode
        x, y, *w = batch
        self.batches.append(len(y))
        if w:
            self.weights_seen += w[0].tolist()
            return weighted_cross_entropy(self(x), y, w[0].float())
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(data: CoresetDataModule, epochs: int, reload: int) -> Module:
    torch.manual_seed(0)
    module = Module()
    trainer = pl.Trainer(
        max_epochs=epochs, reload_dataloaders_every_n_epochs=reload, accelerator="cpu",
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return module


def test_selects_every_few_epochs_from_the_module_being_trained():
    data = CoresetDataModule(ImageBlobs(n=60), "uniform", budget=12, every=2, batch_size=5,
                             device="cpu")  # fmt: skip
    module = fit(data, epochs=4, reload=2)
    assert data.selected_at == [0, 2]
    assert module.batches == [5, 5, 2] * 4  # 12 samples per epoch
    assert module.training and not module.net[-1]._forward_pre_hooks


def test_weights_reach_the_training_step():
    host = PluginHost(load_entrypoints=False)
    host.register(Reg(), "test")
    data = CoresetDataModule(ImageBlobs(n=60), "first-weighted", budget=8, batch_size=4,
                             host=host, device="cpu")  # fmt: skip
    module = fit(data, epochs=2, reload=0)
    assert data.selected_at == [0] and set(module.weights_seen) == {2.0}
    assert len(module.weights_seen) == 16


def test_bad_every_is_refused():
    with pytest.raises(DeepcoreError, match="every must be >= 1"):
        CoresetDataModule(ImageBlobs(n=10), "uniform", budget=2, every=0)
