"""The user's own ``torch.utils.data.Dataset`` as an engine source.

Any map-style dataset yielding ``(input, label)`` works: tensors, or PIL images with the
user's transform (which does any augmentation). Labels are read once: given, else from a
``targets``/``labels`` attribute, else by one pass over the dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepcore_core.data.sources import DatasetSplits
from deepcore_core.engine.config import LOADER_BATCH_SIZE
from deepcore_core.errors import DeepcoreError


class _Indexed(Dataset):
    """Items ``order[i]`` of ``dataset`` as ``(x, y, index)``."""

    def __init__(self, dataset: Any, order: np.ndarray) -> None:
        self.dataset, self.order = dataset, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[Any, Any, int]:
        j = int(self.order[i])
        x, y = self.dataset[j][:2]
        return x, y, j


class UserSource:
    """A user dataset with the engine's source interface (``batches``, ``labels``, ``subset``).

    :param dataset: a map-style dataset of ``(input, label)`` items.
    :param labels: the N labels, when reading them from the dataset would be slow.
    :param batch_size: the batch size of embedding and scoring passes.
    :param num_workers: DataLoader workers; ``collate_fn``: the DataLoader's collate function.
    """

    augment = "user"  # augmentation, if any, is the dataset's own transform

    def __init__(
        self,
        dataset: Any,
        labels: Any = None,
        batch_size: int = LOADER_BATCH_SIZE,
        num_workers: int = 0,
        collate_fn: Callable[..., Any] | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise DeepcoreError(
                f"dataset must be a map-style torch Dataset (with __len__ and __getitem__), "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
        self.batch_size, self.num_workers, self.collate_fn = batch_size, num_workers, collate_fn
        self._labels = read_labels(dataset, labels)[self.indices]

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def labels(self) -> np.ndarray:
        """Labels as an int64 numpy array."""
        return self._labels

    def subset(self, indices: np.ndarray) -> UserSource:
        """The samples at ``indices``, in that order."""
        out = object.__new__(UserSource)
        out.__dict__.update(self.__dict__)
        idx = np.asarray(indices)
        out.indices, out._labels = self.indices[idx], self._labels[idx]
        return out

    def batches(
        self,
        order: torch.Tensor,
        batch_size: int,
        augment: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, idx)`` for consecutive slices of ``order`` (positions in this source)."""
        pos = np.asarray(order)
        loader = DataLoader(
            _Indexed(self.dataset, self.indices[pos]),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=device is not None and torch.device(device).type == "cuda",
        )
        start = 0
        for x, y, _ in loader:
            n = len(y)
            idx = torch.as_tensor(pos[start : start + n])
            start += n
            if not isinstance(x, torch.Tensor):
                raise DeepcoreError(
                    f"the dataset's inputs batch to {type(x).__name__}, not a tensor; "
                    "give it a transform (e.g. torchvision ToTensor) or a collate_fn"
                )
            yield x.to(device or "cpu"), torch.as_tensor(y).long().to(device or "cpu"), idx


def read_labels(dataset: Any, labels: Any = None) -> np.ndarray:
    """The dataset's N labels: given, else its ``targets``/``labels``, else read item by item."""
    if labels is None:
        for attr in ("targets", "labels"):
            value = getattr(dataset, attr, None)
            if value is not None and not callable(value):
                labels = value
                break
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.shape != (len(dataset),) or arr.dtype.kind not in "iub":
        raise DeepcoreError(
            f"labels must be {len(dataset)} whole numbers (one per sample), got shape "
            f"{arr.shape} of {arr.dtype}"
        )
    if arr.size and arr.min() < 0:
        raise DeepcoreError(f"labels must be non-negative class ids, got {int(arr.min())}")
    return arr.astype(np.int64)


def fingerprint_name(dataset: Any, dataset_id: str | None) -> str:
    """A cheap name for caching: ``dataset_id``, else the class and a hash of two samples."""
    if dataset_id:
        return dataset_id
    h = hashlib.sha256(type(dataset).__qualname__.encode())
    for i in {0, len(dataset) - 1}:
        x = dataset[i][0]
        data = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        h.update(np.ascontiguousarray(data).tobytes())
    return f"{type(dataset).__name__}-{h.hexdigest()[:12]}"


def user_splits(source: UserSource, name: str) -> DatasetSplits:
    """A :class:`DatasetSplits` over the user's data (no test split: selection only).

    ``channels`` and ``image_size`` come from the first input when it is an image
    (C x H x W); otherwise they are 0 and training a selection model is refused.
    """
    x, _, _ = next(source.batches(torch.arange(min(1, len(source))), 1))
    image = x.ndim == 4
    k = int(source.labels.max()) + 1 if len(source) else 0
    return DatasetSplits(
        name=name,
        train=source,  # type: ignore[arg-type]
        test=source,  # type: ignore[arg-type]
        num_classes=k,
        channels=int(x.shape[1]) if image else 0,
        image_size=int(x.shape[-1]) if image else 0,
        classes=[str(c) for c in range(k)],
    )
