"""Lightning: a DataModule that trains on a coreset, selected once or every few epochs.

Needs ``lightning`` (``pip install 'deepcore-core[lightning]'``)::

    data = CoresetDataModule(train_set, "craig", fraction=0.1, every=5, batch_size=128)
    trainer = lightning.Trainer(max_epochs=50, reload_dataloaders_every_n_epochs=5)
    trainer.fit(module, datamodule=data)

Each time Lightning asks for the training loader (its first epoch, then every
``reload_dataloaders_every_n_epochs``), the module (or its ``model_attr`` submodule) selects
with its current weights through :func:`deepcore_core.select`, which gives the model back as
it found it (training mode, device, gradients, no hook). A weighted method's batches are
``(x, y, w)``: train with :func:`weighted_cross_entropy`, the engine's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from deepcore_core.errors import DeepcoreError

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - the message is the point
    raise DeepcoreError(
        "deepcore_core.lightning needs the lightning package: "
        "pip install 'deepcore-core[lightning]'"
    ) from None

__all__ = ["CoresetDataModule", "weighted_cross_entropy"]


def weighted_cross_entropy(logits: Any, y: Any, w: Any) -> Any:
    """The engine's weighted loss: ``sum(w * ce) / sum(w)`` over the batch."""
    import torch.nn.functional as F

    per = F.cross_entropy(logits, y, reduction="none")
    return (w * per).sum() / w.sum().clamp_min(1e-12)


class CoresetDataModule(pl.LightningDataModule):
    """Train on a coreset of ``train`` chosen by ``method`` with the module being trained.

    :param train: the training dataset (any dataset :func:`deepcore_core.select` takes).
    :param method: the selection method; ``fraction`` or ``budget`` its size.
    :param every: select again every this many epochs (give the Trainer the same
        ``reload_dataloaders_every_n_epochs``); None: once, before the first epoch.
    :param model_attr: the attribute of the LightningModule that is the classifier (None:
        the module itself, whose forward must give the logits).
    :param val: a validation dataset (optional); ``batch_size``, ``num_workers`` and
        ``collate_fn`` are the loaders'; ``seed`` drives the selection and the shuffling.
    :param settings: any other setting of :func:`deepcore_core.select` (``options``,
        ``sampler``, ``device``, ``collate_fn`` is passed on too, ...).
    """

    def __init__(
        self,
        train: Any,
        method: str,
        *,
        fraction: float | None = None,
        budget: int | None = None,
        every: int | None = None,
        model_attr: str | None = None,
        val: Any = None,
        batch_size: int = 128,
        num_workers: int = 0,
        collate_fn: Callable[..., Any] | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> None:
        super().__init__()
        if every is not None and every < 1:
            raise DeepcoreError(f"every must be >= 1 (epochs between selections), got {every}")
        self.train, self.val, self.method = train, val, method
        self.every, self.model_attr, self.seed = every, model_attr, seed
        self.size: dict[str, Any] = {"fraction": fraction, "budget": budget}
        self.loader: Mapping[str, Any] = {
            "batch_size": batch_size, "num_workers": num_workers, "collate_fn": collate_fn,
        }  # fmt: skip
        self.settings = settings
        self.selection: Any = None
        self.selected_at: list[int] = []  #: the epochs at which a selection was made

    def _trainer(self) -> Any:
        if self.trainer is None:
            raise DeepcoreError("CoresetDataModule selects inside Trainer.fit(datamodule=...)")
        return self.trainer

    def _model(self) -> Any:
        module = self._trainer().lightning_module
        return module if self.model_attr is None else getattr(module, self.model_attr)

    def train_dataloader(self) -> Any:
        """The coreset's loader, selecting first where it is time to."""
        import torch
        from torch.utils.data import DataLoader

        import deepcore_core as dc

        epoch = self._trainer().current_epoch
        due = self.every is not None and epoch % self.every == 0
        if self.selection is None or due:
            self.selection = dc.select(
                self.method, dataset=self.train, model=self._model(), seed=self.seed,
                collate_fn=self.loader["collate_fn"], **self.size, **self.settings,
            )  # fmt: skip
            self.selected_at.append(epoch)
        sel = self.selection
        data = sel.weighted(self.train) if sel.weights is not None else sel.subset(self.train)
        gen = torch.Generator().manual_seed(self.seed + epoch)
        return DataLoader(data, shuffle=True, generator=gen, **self.loader)

    def val_dataloader(self) -> Any:
        """The validation loader (empty when no ``val`` was given)."""
        from torch.utils.data import DataLoader

        return [] if self.val is None else DataLoader(self.val, **self.loader)
