"""The built-in datasets and the dataset registry (plugins add more via ``register_datasets``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepcore_core.data import readers
from deepcore_core.data.sources import DatasetSplits, FolderSource, TensorSource
from deepcore_core.errors import DeepcoreError
from deepcore_core.progress import Progress
from deepcore_core.registry import Registry

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: how to load it and what it is."""

    name: str
    load: Callable[..., DatasetSplits]
    description: str
    needs_root: bool = True


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Split indices per class: ``round(test_fraction * N_c)`` of each class go to the test set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = round(test_fraction * idx.size)
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _tensor_splits(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    augment: str,
    classes: list[str] | None = None,
) -> DatasetSplits:
    if x_train.ndim == 3:
        x_train, x_test = x_train[:, None], x_test[:, None]
    num_classes = int(max(y_train.max(), y_test.max())) + 1

    def src(x: np.ndarray, y: np.ndarray) -> TensorSource:
        return TensorSource(
            torch.from_numpy(np.ascontiguousarray(x)),
            torch.from_numpy(y.astype(np.int64)),
            mean,
            std,
            augment,
        )

    return DatasetSplits(
        name,
        src(x_train, y_train),
        src(x_test, y_test),
        num_classes,
        channels=int(x_train.shape[1]),
        image_size=int(x_train.shape[2]),
        classes=classes or [str(c) for c in range(num_classes)],
    )


def load_digits(root: Path | None = None) -> DatasetSplits:
    """The 8x8 UCI digits shipped with deepcore (1,797 images; fixed stratified 80/20 split)."""
    with np.load(Path(__file__).with_name("digits.npz")) as z:
        images, labels = z["images"], z["labels"].astype(np.int64)
    tr, te = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    m = float(images[tr].mean() / 255.0)
    s = float(images[tr].std() / 255.0)
    return _tensor_splits(
        "digits", images[tr], labels[tr], images[te], labels[te], (m,), (s,), "none"
    )


_MNIST_HINT = (
    "download it on a connected machine (torchvision.datasets.{cls}(root, "
    "download=True)) and copy the IDX files here"
)


def _mnist_family(
    name: str, cls: str, prefix: str, mean: float, std: float, hint: str
) -> Callable[[Path], DatasetSplits]:
    def load(root: Path) -> DatasetSplits:
        subdirs = ["", "raw", f"{cls}/raw", cls]
        arrays = {}
        for split, stem in (("train", "train"), ("test", "t10k")):
            xf = readers.find_file(root, [f"{prefix}{stem}-images-idx3-ubyte"], subdirs, name, hint)
            yf = readers.find_file(root, [f"{prefix}{stem}-labels-idx1-ubyte"], subdirs, name, hint)
            x, y = readers.read_idx(xf), readers.read_idx(yf).astype(np.int64)
            if x.ndim != 3 or len(x) != len(y):
                raise DeepcoreError(
                    f"{name}: '{xf}' and '{yf}' do not match ({x.shape}, {y.shape})"
                )
            arrays[split] = (x.astype(np.uint8), y)
        return _tensor_splits(name, *arrays["train"], *arrays["test"], (mean,), (std,), "none")

    load.__doc__ = f"{cls} from IDX files (gzip or not) under the data root."
    return load


def load_qmnist(root: Path) -> DatasetSplits:
    """QMNIST from its IDX files (labels: column 0 of the int label matrix)."""
    hint = _MNIST_HINT.format(cls="QMNIST")
    subdirs = ["", "raw", "QMNIST/raw", "QMNIST"]
    arrays = {}
    for split in ("train", "test"):
        xf = readers.find_file(root, [f"qmnist-{split}-images-idx3-ubyte"], subdirs, "qmnist", hint)
        yf = readers.find_file(root, [f"qmnist-{split}-labels-idx2-int"], subdirs, "qmnist", hint)
        x, y = readers.read_idx(xf), readers.read_idx(yf)
        arrays[split] = (x.astype(np.uint8), np.asarray(y)[:, 0].astype(np.int64))
    return _tensor_splits("qmnist", *arrays["train"], *arrays["test"], (0.1308,), (0.3088,), "none")


def _cifar(
    name: str,
    folder: str,
    train_files: list[str],
    test_file: str,
    key: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Callable[[Path], DatasetSplits]:
    hint = (
        f"download it on a connected machine (torchvision.datasets.{name.upper()}(root, "
        f"download=True)) and copy the '{folder}' folder here"
    )

    def load(root: Path) -> DatasetSplits:
        def read(fname: str) -> tuple[np.ndarray, np.ndarray]:
            path = readers.find_file(root, [fname], [folder, ""], name, hint)
            return readers.read_cifar_batch(path, key)

        parts = [read(f) for f in train_files]
        xt, yt = read(test_file)
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        return _tensor_splits(name, x, y, xt, yt, mean, std, "crop_flip")

    load.__doc__ = f"{name.upper()} from its pickled python batches under the data root."
    return load


def load_svhn(root: Path) -> DatasetSplits:
    """SVHN from ``train_32x32.mat`` and ``test_32x32.mat`` (label 10 means digit 0)."""
    hint = (
        "download train_32x32.mat and test_32x32.mat on a connected machine "
        "(torchvision.datasets.SVHN(root, split=..., download=True)) and copy them here"
    )
    xtr, ytr = readers.read_svhn_mat(
        readers.find_file(root, ["train_32x32.mat"], ["", "SVHN"], "svhn", hint)
    )
    xte, yte = readers.read_svhn_mat(
        readers.find_file(root, ["test_32x32.mat"], ["", "SVHN"], "svhn", hint)
    )
    return _tensor_splits(
        "svhn", xtr, ytr, xte, yte, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), "none"
    )


def load_tiny_imagenet(root: Path, image_size: int = 64) -> DatasetSplits:
    """Tiny-ImageNet-200: ``train/<wnid>/images`` for training, the labelled ``val`` as test."""
    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    hint = "download tiny-imagenet-200.zip on a connected machine and unzip it here"
    wnids_file = base / "wnids.txt"
    if not wnids_file.is_file():
        raise DeepcoreError(f"tiny-imagenet: '{wnids_file}' not found; {hint}")
    wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    index = {w: k for k, w in enumerate(wnids)}
    train_paths, train_y = [], []
    for w in wnids:
        files = sorted((base / "train" / w / "images").glob("*.JPEG"))
        if not files:
            raise DeepcoreError(f"tiny-imagenet: no images in '{base / 'train' / w / 'images'}'")
        train_paths += files
        train_y += [index[w]] * len(files)
    ann = base / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise DeepcoreError(f"tiny-imagenet: '{ann}' not found; {hint}")
    val_paths, val_y = [], []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            val_paths.append(base / "val" / "images" / parts[0])
            val_y.append(index[parts[1]])
    x = readers.decode_images(train_paths, image_size)
    xt = readers.decode_images(val_paths, image_size)
    return _tensor_splits(
        "tiny-imagenet",
        x,
        np.array(train_y),
        xt,
        np.array(val_y),
        (0.4802, 0.4481, 0.3975),
        (0.2770, 0.2691, 0.2821),
        "crop_flip",
        classes=wnids,
    )


def load_imagenet(root: Path, image_size: int = 224, workers: int | None = None) -> DatasetSplits:
    """ImageNet (or any large tree) from ``train/<class>/`` and ``val/<class>/`` folders."""
    return _folder_splits("imagenet", root, image_size, workers, require_split=True)


def load_image_folder(
    root: Path, image_size: int = 32, in_memory: bool = True, workers: int | None = None
) -> DatasetSplits:
    """Any class-per-folder tree: ``train/`` + ``val/`` or ``test/``, else a stratified split.

    With ``in_memory`` (the default) images are decoded once, resized to ``image_size`` and
    kept as a tensor; otherwise they are decoded on the fly.
    """
    return _folder_splits(
        "folder", root, image_size, workers, require_split=False, in_memory=in_memory
    )


def _folder_splits(
    name: str,
    root: Path,
    image_size: int,
    workers: int | None,
    require_split: bool,
    in_memory: bool = False,
) -> DatasetSplits:
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        paths, y, classes = readers.list_class_folders(root / "train", name)
        tpaths, ty, tclasses = readers.list_class_folders(test_dir, name)
        if tclasses != classes:
            raise DeepcoreError(
                f"{name}: class folders differ between '{root / 'train'}' and '{test_dir}'"
            )
    elif require_split:
        raise DeepcoreError(
            f"{name}: expected '{root}/train/<class>/' and '{root}/val/<class>/' folders of images"
        )
    else:
        all_paths, all_y, classes = readers.list_class_folders(root, name)
        tr, te = stratified_split(np.array(all_y), 0.2, DIGITS_SPLIT_SEED)
        paths, y = [all_paths[i] for i in tr], [all_y[i] for i in tr]
        tpaths, ty = [all_paths[i] for i in te], [all_y[i] for i in te]
    if in_memory:
        x, xt = readers.decode_images(paths, image_size), readers.decode_images(tpaths, image_size)
        m = tuple(float(v) for v in x.mean(axis=(0, 2, 3)) / 255.0)
        s = tuple(float(v) for v in x.std(axis=(0, 2, 3)) / 255.0 + 1e-6)
        return _tensor_splits(name, x, np.array(y), xt, np.array(ty), m, s, "crop_flip", classes)
    return DatasetSplits(
        name,
        FolderSource(paths, y, image_size, IMAGENET_MEAN, IMAGENET_STD, workers),
        FolderSource(tpaths, ty, image_size, IMAGENET_MEAN, IMAGENET_STD, workers),
        len(classes),
        3,
        image_size,
        classes,
    )


BUILTIN_DATASETS = [
    DatasetInfo(
        "digits",
        load_digits,
        "UCI 8x8 digits, shipped with deepcore (1,438 train / 359 test)",
        needs_root=False,
    ),
    DatasetInfo(
        "mnist",
        _mnist_family("mnist", "MNIST", "", 0.1307, 0.3081, _MNIST_HINT.format(cls="MNIST")),
        "MNIST, IDX files",
    ),
    DatasetInfo("qmnist", load_qmnist, "QMNIST, IDX files"),
    DatasetInfo(
        "fashion-mnist",
        _mnist_family(
            "fashion-mnist",
            "FashionMNIST",
            "",
            0.2861,
            0.3530,
            _MNIST_HINT.format(cls="FashionMNIST") + " (or apt-get install dataset-fashion-mnist "
            "and use --data-root /usr/share/datasets/fashion-mnist)",
        ),
        "Fashion-MNIST, IDX files",
    ),
    DatasetInfo("svhn", load_svhn, "SVHN cropped digits, .mat files"),
    DatasetInfo(
        "cifar10",
        _cifar(
            "cifar10",
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch",
            "labels",
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
        ),
        "CIFAR-10, python batches",
    ),
    DatasetInfo(
        "cifar100",
        _cifar(
            "cifar100",
            "cifar-100-python",
            ["train"],
            "test",
            "fine_labels",
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
        ),
        "CIFAR-100, python batches",
    ),
    DatasetInfo("tiny-imagenet", load_tiny_imagenet, "Tiny-ImageNet-200 (val as test)"),
    DatasetInfo("imagenet", load_imagenet, "ImageNet train/ and val/ class folders"),
    DatasetInfo("folder", load_image_folder, "any class-per-folder image tree"),
]


class DatasetRegistry(Registry[DatasetInfo]):
    """Dataset name -> :class:`DatasetInfo`."""

    def __init__(self) -> None:
        super().__init__("dataset")

    def load(self, name: str, root: str | Path | None, **kwargs: Any) -> DatasetSplits:
        """Load ``name`` from ``root``; data never comes from the network."""
        info = self.get(name)
        if info.needs_root and root is None:
            raise DeepcoreError(f"dataset '{name}' needs --data-root (the folder with its files)")
        if root is not None:
            root = Path(root)  # a mistyped root is an error even where the dataset needs none
            if not root.exists() or (info.needs_root and not root.is_dir()):
                raise DeepcoreError(f"data root '{root}' does not exist or is not a folder")
        with Progress(1, f"loading {name}") as bar:  # shown from the first second
            data = info.load(root, **kwargs)
            bar.update(1)
        return data
