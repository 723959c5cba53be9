"""Readers for each dataset's own on-disk format. Offline only: nothing is downloaded."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core.errors import DeepcoreError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_IDX_TYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def find_file(root: Path, names: list[str], subdirs: list[str], dataset: str, hint: str) -> Path:
    """Return the first existing ``root/subdir/name`` (each name also tried with ``.gz``)."""
    tried = []
    for sub in subdirs:
        for name in names:
            for candidate in (name, name + ".gz"):
                p = root / sub / candidate
                tried.append(p)
                if p.is_file():
                    return p
    where = ", ".join(sorted({str(root / s) for s in subdirs}))
    raise DeepcoreError(f"{dataset}: file '{names[0]}' (or .gz) not found under {where}; {hint}")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST family's format), gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DeepcoreError(f"'{path}' could not be read: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DeepcoreError(f"'{path}' is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DeepcoreError(
            f"'{path}' is truncated or corrupt: expected {int(np.prod(dims))} values, "
            f"found {body.size}"
        )
    return body.reshape(dims)


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled CIFAR batch: images N x 3 x 32 x 32 (uint8) and labels."""
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key.encode()], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as exc:
        raise DeepcoreError(f"'{path}' is not a valid CIFAR batch file: {exc}") from None
    if len(labels) != len(data):
        raise DeepcoreError(f"'{path}' is corrupt: {len(data)} images but {len(labels)} labels")
    return data, labels


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat`` file: images N x 3 x 32 x 32 and labels (10 -> 0)."""
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn/submodlib
        raise DeepcoreError("reading SVHN .mat files needs scipy: pip install scipy") from None
    try:
        mat = loadmat(path)
        x = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
        y = mat["y"].astype(np.int64).reshape(-1) % 10
    except (OSError, ValueError, KeyError) as exc:
        raise DeepcoreError(f"'{path}' is not a valid SVHN .mat file: {exc}") from None
    return x, y


def list_class_folders(root: Path, dataset: str) -> tuple[list[Path], list[int], list[str]]:
    """List ``root/<class>/**/<image>`` files: paths, labels (sorted class order), classes."""
    if not root.is_dir():
        raise DeepcoreError(f"{dataset}: folder '{root}' does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DeepcoreError(f"{dataset}: '{root}' has no class folders (expected {root}/<class>/)")
    paths, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [k] * len(files)
    if not paths:
        raise DeepcoreError(f"{dataset}: no image files under '{root}'")
    return paths, labels, classes


def decode_images(paths: list[Path], size: int) -> np.ndarray:
    """Decode image files to a uint8 array N x 3 x size x size (resized when needed)."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                rgb = im.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                out[i] = np.asarray(rgb).transpose(2, 0, 1)
        except (OSError, UnidentifiedImageError) as exc:
            raise DeepcoreError(f"'{p}' is not a readable image: {exc}") from None
    return out
