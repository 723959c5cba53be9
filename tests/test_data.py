"""Each loader reads small files written here in the dataset's real on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from deepcore_core import DeepcoreError, PluginHost
from deepcore_core.data.sources import TensorSource, augment_batch


@pytest.fixture(scope="module")
def datasets():
    return PluginHost(load_entrypoints=False).datasets


def write_idx(path, array, gz):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    arr = np.asarray(array)
    head = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if gz else open
    with opener(str(path) + (".gz" if gz else ""), "wb") as fh:
        fh.write(head + body)


def mnist_files(root, prefix="", n=(12, 5), gz=True):
    rng = np.random.default_rng(0)
    for stem, k in (("train", n[0]), ("t10k", n[1])):
        write_idx(
            root / f"{prefix}{stem}-images-idx3-ubyte",
            rng.integers(0, 256, (k, 28, 28)).astype(np.uint8),
            gz,
        )
        write_idx(
            root / f"{prefix}{stem}-labels-idx1-ubyte", (np.arange(k) % 10).astype(np.uint8), gz
        )


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_family(tmp_path, datasets, name, gz):
    mnist_files(tmp_path, gz=gz)
    d = datasets.load(name, tmp_path)
    assert (len(d.train), len(d.test), d.channels, d.image_size) == (12, 5, 1, 28)
    assert d.train.labels.tolist() == [i % 10 for i in range(12)]


def test_mnist_torchvision_layout(tmp_path, datasets):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    mnist_files(raw, gz=False)
    assert len(datasets.load("mnist", tmp_path).train) == 12


def test_missing_and_corrupt_files(tmp_path, datasets):
    with pytest.raises(DeepcoreError, match="mnist: file 'train-images-idx3-ubyte' .* not found"):
        datasets.load("mnist", tmp_path)
    mnist_files(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(DeepcoreError, match="truncated or corrupt"):
        datasets.load("mnist", tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"garbage")
    with pytest.raises(DeepcoreError, match="not an IDX file"):
        datasets.load("mnist", tmp_path)


def test_qmnist(tmp_path, datasets):
    rng = np.random.default_rng(1)
    for split, k in (("train", 7), ("test", 3)):
        write_idx(
            tmp_path / f"qmnist-{split}-images-idx3-ubyte",
            rng.integers(0, 256, (k, 28, 28)).astype(np.uint8),
            True,
        )
        labels = np.zeros((k, 8), np.int32)
        labels[:, 0] = np.arange(k) % 10
        labels[:, 1] = 99
        write_idx(tmp_path / f"qmnist-{split}-labels-idx2-int", labels, True)
    d = datasets.load("qmnist", tmp_path)
    assert d.train.labels.tolist() == list(range(7)) and len(d.test) == 3


def cifar_batch(path, n, key, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    with open(path, "wb") as fh:
        pickle.dump({b"data": data, key.encode(): list(range(n))}, fh)
    return data


def test_cifar10(tmp_path, datasets):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    first = cifar_batch(folder / "data_batch_1", 4, "labels", 0)
    for i in range(2, 6):
        cifar_batch(folder / f"data_batch_{i}", 4, "labels", i)
    cifar_batch(folder / "test_batch", 3, "labels", 9)
    d = datasets.load("cifar10", tmp_path)
    assert (len(d.train), len(d.test), d.channels, d.image_size) == (20, 3, 3, 32)
    assert np.array_equal(d.train.images[0].numpy().reshape(-1), first[0])
    assert d.train.augment == "crop_flip"


def test_cifar100_and_corrupt(tmp_path, datasets):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    cifar_batch(folder / "train", 6, "fine_labels", 0)
    cifar_batch(folder / "test", 2, "fine_labels", 1)
    d = datasets.load("cifar100", tmp_path)
    assert d.train.labels.tolist() == list(range(6))
    (folder / "test").write_bytes(b"not a pickle")
    with pytest.raises(DeepcoreError, match="not a valid CIFAR batch"):
        datasets.load("cifar100", tmp_path)


def test_svhn(tmp_path, datasets):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    for split, k in (("train", 5), ("test", 2)):
        x = rng.integers(0, 256, (32, 32, 3, k)).astype(np.uint8)
        y = np.array([[10], [1], [2], [3], [4]][:k], dtype=np.uint8)
        scipy_io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        if split == "train":
            first = x[:, :, :, 0].transpose(2, 0, 1)
    d = datasets.load("svhn", tmp_path)
    assert d.train.labels.tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(d.train.images[0].numpy(), first)


def write_images(folder, count, color):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (20, 16), color).save(folder / f"img{i}.JPEG")


def test_tiny_imagenet(tmp_path, datasets):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    base.mkdir()
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for k, w in enumerate(wnids):
        write_images(base / "train" / w / "images", 3, (200 * k, 0, 0))
    write_images(base / "val" / "images", 2, (0, 0, 0))
    (base / "val" / "val_annotations.txt").write_text(
        "img0.JPEG\tn02\t0\t0\t1\t1\nimg1.JPEG\tn01\t0\t0\t1\t1\n"
    )
    d = datasets.load("tiny-imagenet", tmp_path)
    assert (len(d.train), len(d.test), d.image_size, d.num_classes) == (6, 2, 64, 2)
    assert d.test.labels.tolist() == [1, 0]
    assert d.train.images[3, 0].float().mean() > 150  # class n02 is red


def test_imagenet_and_folder(tmp_path, datasets):
    for split in ("train", "val"):
        for k, c in enumerate(["cat", "dog"]):
            write_images(tmp_path / split / c, 2, (100 * k, 50, 0))
    d = datasets.load("imagenet", tmp_path)
    assert (len(d.train), len(d.test), d.classes) == (4, 4, ["cat", "dog"])
    x, y, _ = next(d.train.batches(torch.arange(4), 4, augment=True))
    assert x.shape == (4, 3, 224, 224) and y.tolist() == [0, 0, 1, 1]
    flat = tmp_path / "flat"
    for c in ("a", "b", "c"):
        write_images(flat / c, 5, (10, 20, 30))
    f = datasets.load("folder", flat)
    assert (len(f.train), len(f.test), f.image_size) == (12, 3, 32)
    with pytest.raises(DeepcoreError, match="expected .*train/<class>/"):
        datasets.load("imagenet", flat)


def test_registry_errors(datasets, tmp_path):
    with pytest.raises(DeepcoreError, match="unknown dataset 'cifar'; did you mean 'cifar10'"):
        datasets.load("cifar", None)
    with pytest.raises(DeepcoreError, match="needs --data-root"):
        datasets.load("mnist", None)
    with pytest.raises(DeepcoreError, match="does not exist"):
        datasets.load("mnist", tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeepcoreError, match="is not a folder"):
        datasets.load("mnist", tmp_path / "file")
    with pytest.raises(DeepcoreError, match="data root '.*nope' does not exist"):
        datasets.load("digits", tmp_path / "nope")  # digits needs no root, but not a wrong one
    assert len(datasets.load("digits", tmp_path).train) == 1438


def test_digits_split_is_fixed_and_stratified(datasets):
    a, b = datasets.load("digits", None), datasets.load("digits", None)
    assert np.array_equal(a.train.labels, b.train.labels)
    assert (len(a.train), len(a.test)) == (1438, 359)
    counts = np.bincount(a.test.labels)
    assert counts.min() >= 35 and counts.max() <= 37


def test_batches_normalise_and_augment():
    imgs = torch.arange(2 * 1 * 8 * 8, dtype=torch.uint8).reshape(2, 1, 8, 8)
    src = TensorSource(imgs, torch.tensor([0, 1]), (0.5,), (0.25,), "crop_flip")
    x, y, idx = next(src.batches(torch.tensor([1, 0]), 2))
    assert torch.allclose(x[0], (imgs[1].float() / 255 - 0.5) / 0.25)
    assert y.tolist() == [1, 0] and idx.tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    aug = augment_batch(imgs.float(), "crop_flip", g)
    assert aug.shape == imgs.shape
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(aug, augment_batch(imgs.float(), "crop_flip", g2))
    rrc = augment_batch(torch.rand(3, 3, 16, 16), "rrc_flip", g)
    assert rrc.shape == (3, 3, 16, 16) and torch.isfinite(rrc).all()
