"""The user's own dataset as an engine source.

Rows may be ``(input, label, ...)`` tuples or mappings such as Hugging Face ``datasets`` rows
(:class:`RowFormat` names the keys; the defaults fit Hugging Face). Each batch is made by the
user's own ``collate_fn`` from the user's own rows, exactly as their DataLoader would, then
split into inputs and labels. Inputs are tensors, or PIL images with the user's transform
(which does any augmentation). Labels are read once: given, else from a ``targets``/``labels``
attribute or a label column, else by one pass over the dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepcore_core.data.sources import DatasetSplits
from deepcore_core.engine.config import LOADER_BATCH_SIZE
from deepcore_core.errors import DeepcoreError

#: the keys a mapping row's input and label are looked up under, first match wins
INPUT_KEYS = ("pixel_values", "image", "img", "input_ids", "input", "x")
LABEL_KEYS = ("label", "labels", "target", "y")
_ROWS = (
    "rows must be (input, label) tuples or mappings with an input and a label key "
    "(input_key=, label_key=; by default one of {inputs} and one of {labels})"
)


@dataclasses.dataclass(frozen=True)
class RowFormat:
    """Where a row's (and a collated batch's) input and label are.

    :ivar input_key: the input's key in mapping rows (None: the first of ``INPUT_KEYS``).
    :ivar label_key: the label's key in mapping rows (None: the first of ``LABEL_KEYS``).
    :ivar unlabeled: read inputs only (labels absent or ignored: ``no_labels``); a row may
        then be the input itself.
    """

    input_key: str | None = None
    label_key: str | None = None
    unlabeled: bool = False

    def split(self, row: Any) -> tuple[Any, Any]:
        """``(input, label)`` of a row or a collated batch (label None when unlabeled), or
        one error saying what rows must look like."""
        if self.unlabeled:
            if isinstance(row, Mapping):
                return row[self._key(row, self.input_key, INPUT_KEYS)], None
            return (row[0] if isinstance(row, tuple | list) and row else row), None
        if isinstance(row, Mapping):
            return row[self._key(row, self.input_key, INPUT_KEYS)], row[
                self._key(row, self.label_key, LABEL_KEYS)
            ]
        if isinstance(row, tuple | list) and len(row) >= 2:
            return row[0], row[1]
        raise DeepcoreError(f"got a row of type {type(row).__name__}; " + self._rows())

    def label_key_of(self, row: Mapping[str, Any]) -> str:
        """The label's key in a mapping row."""
        return self._key(row, self.label_key, LABEL_KEYS)

    def _key(self, row: Mapping[str, Any], given: str | None, defaults: tuple[str, ...]) -> str:
        keys = (given,) if given else defaults
        for key in keys:
            if key in row:
                return key
        what = "input" if defaults is INPUT_KEYS else "label"
        raise DeepcoreError(
            f"no {what} key {' or '.join(map(repr, keys))} in a row with keys "
            f"{sorted(map(str, row))}; " + self._rows()
        )

    def _rows(self) -> str:
        return _ROWS.format(inputs="/".join(INPUT_KEYS), labels="/".join(LABEL_KEYS))


class _Rows(Dataset):
    """Items ``order[i]`` of ``dataset``, as the dataset gives them (batched where it can)."""

    def __init__(self, dataset: Any, order: np.ndarray) -> None:
        self.dataset, self.order = dataset, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[int(self.order[i])]

    def __getitems__(self, idx: list[int]) -> list[Any]:
        """A batch of rows at once where the dataset reads them so (Hugging Face does)."""
        rows = [int(self.order[i]) for i in idx]
        many = getattr(self.dataset, "__getitems__", None)
        return list(many(rows)) if many is not None else [self.dataset[j] for j in rows]


class UserSource:
    """A user dataset with the engine's source interface (``batches``, ``labels``, ``subset``).

    :param dataset: a map-style dataset of rows (see :class:`RowFormat`).
    :param labels: the N labels, when reading them from the dataset would be slow.
    :param batch_size: the batch size of embedding and scoring passes.
    :param num_workers: DataLoader workers; ``collate_fn``: the DataLoader's collate function,
        given the user's own rows.
    :param rows: where the input and the label are in a row.
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
        rows: RowFormat = RowFormat(),
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise DeepcoreError(
                f"dataset must be a map-style torch Dataset (with __len__ and __getitem__), "
                f"got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise DeepcoreError("the dataset is empty (0 samples): nothing to select or train on")
        self.dataset = dataset
        self.indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
        self.batch_size, self.num_workers, self.collate_fn = batch_size, num_workers, collate_fn
        self.rows = rows
        self._labels = read_labels(dataset, labels, rows)[self.indices]

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
            _Rows(self.dataset, self.indices[pos]),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=device is not None and torch.device(device).type == "cuda",
        )
        start = 0
        for batch in loader:
            x, y = self.rows.split(batch)
            n = len(x) if y is None else len(y)
            if y is None:
                y = torch.full((n,), -1)
            idx = torch.as_tensor(pos[start : start + n])
            start += n
            if not isinstance(x, torch.Tensor):
                raise DeepcoreError(
                    f"the dataset's inputs batch to {type(x).__name__}, not a tensor; "
                    "give it a transform (e.g. torchvision ToTensor) or a collate_fn"
                )
            yield x.to(device or "cpu"), torch.as_tensor(y).long().to(device or "cpu"), idx


def read_labels(dataset: Any, labels: Any = None, rows: RowFormat = RowFormat()) -> np.ndarray:
    """The dataset's N labels: given, else its ``targets``/``labels`` attribute, else its
    label column (a Hugging Face dataset: read at once), else read row by row; all -1 when
    ``rows.unlabeled``."""
    if rows.unlabeled:
        return np.full(len(dataset), -1, np.int64)
    if labels is None:
        for attr in ("targets", "labels"):
            value = getattr(dataset, attr, None)
            if value is not None and not callable(value):
                labels = value
                break
    if labels is None and len(dataset) and hasattr(dataset, "column_names"):
        labels = _column(dataset, rows.label_key_of(dataset[0]))
    if labels is None:
        labels = [int(rows.split(dataset[i])[1]) for i in range(len(dataset))]
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


def _column(dataset: Any, key: str) -> np.ndarray:
    """A column of a Hugging Face dataset as numbers (its formatting may give tensors)."""
    values = list(dataset[key])
    return np.asarray([int(v) for v in values]) if values else np.empty(0, np.int64)


def class_names(dataset: Any, rows: RowFormat = RowFormat()) -> list[str] | None:
    """The class names a dataset declares: a Hugging Face ``ClassLabel``'s, or torchvision's
    ``classes``; None when it declares none."""
    features = getattr(dataset, "features", None)
    if isinstance(features, Mapping) and len(dataset):
        names = getattr(features.get(rows.label_key_of(dataset[0])), "names", None)
        if names:
            return [str(n) for n in names]
    names = getattr(dataset, "classes", None)
    if isinstance(names, list | tuple) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def fingerprint_name(dataset: Any, dataset_id: str | None, rows: RowFormat = RowFormat()) -> str:
    """A cheap name for caching: ``dataset_id``, else the class and a hash of two samples."""
    if dataset_id:
        return dataset_id
    h = hashlib.sha256(type(dataset).__qualname__.encode())
    for i in {0, len(dataset) - 1}:
        x = rows.split(dataset[i])[0]
        data = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        h.update(np.ascontiguousarray(data).tobytes())
    return f"{type(dataset).__name__}-{h.hexdigest()[:12]}"


def user_splits(source: UserSource, name: str, classes: list[str] | None = None) -> DatasetSplits:
    """A :class:`DatasetSplits` over the user's data (no test split: selection only).

    ``channels`` and ``image_size`` come from the first input when it is an image
    (C x H x W); otherwise they are 0 and training a selection model is refused.
    """
    x, _, _ = next(source.batches(torch.arange(min(1, len(source))), 1))
    image = x.ndim == 4
    k = int(source.labels.max()) + 1 if len(source) else 0  # 0 when unlabeled
    return DatasetSplits(
        name=name,
        train=source,  # type: ignore[arg-type]
        test=source,  # type: ignore[arg-type]
        num_classes=k,
        channels=int(x.shape[1]) if image else 0,
        image_size=int(x.shape[-1]) if image else 0,
        classes=classes or [str(c) for c in range(k)],
    )
