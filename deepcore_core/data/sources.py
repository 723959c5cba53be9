"""Training data as the engine sees it: sources that yield normalised, augmented batches.

:class:`TensorSource` keeps a whole dataset in memory as one uint8 tensor (on the training
device when it is a GPU) and normalises and augments whole batches at once, so small and
medium datasets never touch PIL in the training loop. :class:`FolderSource` decodes image
files on the fly (for ImageNet-sized trees) with DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

AUGMENTATIONS = ("none", "crop_flip", "rrc_flip")


class TensorSource:
    """An in-memory image dataset.

    :param images: uint8 tensor N x C x H x W.
    :param targets: int64 labels (N,).
    :param mean: per-channel means in [0, 1]; ``std``: per-channel standard deviations.
    :param augment: the training augmentation: ``none``, ``crop_flip`` (pad by H/8 with
        reflection, random crop, horizontal flip; CIFAR) or ``rrc_flip``
        (random-resized-crop and flip; ImageNet-style).
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: str = "none",
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 tensor N x C x H x W")
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        self.images = images
        self.targets = targets.to(torch.int64)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labels(self) -> np.ndarray:
        """Labels as an int64 numpy array."""
        return self.targets.cpu().numpy()

    @property
    def device(self) -> torch.device:
        """Where the images live."""
        return self.images.device

    def _replace(self, images: torch.Tensor, targets: torch.Tensor) -> TensorSource:
        out = object.__new__(TensorSource)
        out.__dict__.update(self.__dict__)
        out.images, out.targets = images, targets
        return out

    def to(self, device: torch.device | str) -> TensorSource:
        """A copy whose tensors live on ``device`` (the whole dataset moves once)."""
        return self._replace(self.images.to(device), self.targets.to(device))

    def subset(self, indices: np.ndarray) -> TensorSource:
        """The samples at ``indices``, in that order."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64, device=self.images.device)
        return self._replace(self.images[idx], self.targets[idx])

    def batches(
        self,
        order: torch.Tensor,
        batch_size: int,
        augment: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, idx)`` for consecutive slices of ``order`` (dataset indices)."""
        device = torch.device(device) if device is not None else self.images.device
        mean, std = self.mean.to(device), self.std.to(device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = self.images[idx.to(self.images.device)].to(device, non_blocking=True)
            y = self.targets[idx.to(self.targets.device)].to(device, non_blocking=True)
            x = x.float().div_(255.0)
            if augment and self.augment != "none":
                x = augment_batch(x, self.augment, generator)
            yield (x - mean) / std, y, idx


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """Augment a float batch (N x C x H x W) with per-sample random crops and flips."""
    n, c, h, w = x.shape
    gdev = generator.device if generator is not None else torch.device("cpu")

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).to(x.device)

    if kind == "crop_flip":
        pad = max(1, h // 8)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = (rand(n) * (2 * pad + 1)).long().clamp_(max=2 * pad)
        ox = (rand(n) * (2 * pad + 1)).long().clamp_(max=2 * pad)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bidx = torch.arange(n, device=x.device)[:, None, None, None]
        cidx = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]
    elif kind == "rrc_flip":
        # Random-resized-crop (scale 0.08-1, ratio 3/4-4/3) through one batched affine grid.
        area = 0.08 + 0.92 * rand(n)
        log_r = np.log(3 / 4) + (np.log(4 / 3) - np.log(3 / 4)) * rand(n)
        ratio = torch.exp(log_r)
        sw = torch.sqrt(area * ratio).clamp(max=1.0)
        sh = torch.sqrt(area / ratio).clamp(max=1.0)
        tx = (rand(n) * 2 - 1) * (1 - sw)
        ty = (rand(n) * 2 - 1) * (1 - sh)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, tx, sh, ty
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)
    flip = rand(n) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class FolderSource:
    """Image files decoded on the fly (PIL), for datasets too large to hold in memory.

    Training batches use random-resized-crop and flip to ``image_size``; evaluation resizes
    the short side to ``image_size * 8/7`` and centre-crops (the ImageNet protocol).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        targets: Sequence[int],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        workers: int | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
        self.image_size = image_size
        self.mean, self.std = list(mean), list(std)
        self.workers = workers if workers is not None else min(4, len(os.sched_getaffinity(0)))
        self.augment = "rrc_flip"

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> np.ndarray:
        """Labels as an int64 numpy array."""
        return self.targets.numpy()

    def subset(self, indices: np.ndarray) -> FolderSource:
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices)
        return FolderSource(
            [self.paths[i] for i in idx],
            self.targets.numpy()[idx],
            self.image_size,
            self.mean,
            self.std,
            self.workers,
        )

    def _transform(self, augment: bool):
        from torchvision import transforms as T

        norm = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        if augment:
            return T.Compose(
                [T.RandomResizedCrop(self.image_size), T.RandomHorizontalFlip(), *norm]
            )
        return T.Compose(
            [T.Resize(round(self.image_size * 8 / 7)), T.CenterCrop(self.image_size), *norm]
        )

    def batches(
        self,
        order: torch.Tensor,
        batch_size: int,
        augment: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, idx)`` for consecutive slices of ``order``, decoded by workers."""
        from PIL import Image

        transform = self._transform(augment)
        paths, targets = self.paths, self.targets

        class _Items(torch.utils.data.Dataset):
            def __len__(self) -> int:
                return len(order)

            def __getitem__(self, i: int):
                j = int(order[i])
                with Image.open(paths[j]) as im:
                    return transform(im.convert("RGB")), targets[j], j

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator else 0
        loader = torch.utils.data.DataLoader(
            _Items(),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.workers,
            worker_init_fn=functools.partial(_seed_worker, seed),
            pin_memory=device is not None and torch.device(device).type == "cuda",
        )
        for x, y, idx in loader:
            yield x.to(device or "cpu", non_blocking=True), y.to(device or "cpu"), idx


def _seed_worker(seed: int, worker: int) -> None:
    torch.manual_seed(seed + worker)


Source = TensorSource | FolderSource


class Relabelled:
    """A source whose labels are replaced (pseudo-labels from clustering), inputs as given."""

    def __init__(self, source: Any, labels: np.ndarray) -> None:
        if len(labels) != len(source):
            raise ValueError(f"{len(labels)} labels for {len(source)} samples")
        self.source = source
        self.targets = torch.as_tensor(np.asarray(labels, np.int64))

    def __len__(self) -> int:
        return len(self.source)

    @property
    def labels(self) -> np.ndarray:
        """The replacement labels."""
        return self.targets.numpy()

    def subset(self, indices: np.ndarray) -> Relabelled:
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices)
        return Relabelled(self.source.subset(idx), self.targets.numpy()[idx])

    def batches(
        self, order: torch.Tensor, batch_size: int, *args: Any, **kw: Any
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The source's batches with the replacement labels."""
        for x, _, idx in self.source.batches(order, batch_size, *args, **kw):
            yield x, self.targets[idx.cpu()].to(x.device), idx


def relabelled(source: Any, labels: np.ndarray) -> Any:
    """``source`` with ``labels`` in place of its own (an in-memory source stays one)."""
    if isinstance(source, TensorSource):
        return source._replace(source.images, torch.as_tensor(np.asarray(labels, np.int64)))
    return Relabelled(source, labels)


def labels_or_none(source: Any) -> np.ndarray | None:
    """A source's labels, or None where it has none (an unlabeled collection) or they are
    not class ids."""
    try:
        y = np.asarray(source.labels)
    except Exception:  # a user's dataset without labels may fail in any way
        return None
    return y if y.ndim == 1 and y.dtype.kind in "iu" and (y >= 0).all() else None


def on_device(source: Source, device: torch.device) -> Source:
    """``source`` moved to a CUDA ``device`` when it is held in memory; else unchanged."""
    if device.type == "cuda" and isinstance(source, TensorSource):
        return source.to(device)
    return source


@dataclasses.dataclass
class DatasetSplits:
    """A loaded dataset: train and test sources plus what networks need to know."""

    name: str
    train: Source
    test: Source
    num_classes: int
    channels: int
    image_size: int
    classes: list[str]
