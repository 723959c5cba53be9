"""The side-by-side harness for the original code (``benchmarks/_original.py``): it imports a
checkout's modules without running its package ``__init__`` files, and lays out the IDX
files as torchvision reads them."""

from __future__ import annotations

import gzip
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _original


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """A stand-in checkout whose package ``__init__`` files fail on import."""
    root = tmp_path / "code" / "deepcore"
    for sub in ("", "methods", "nets", "datasets"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / "__init__.py").write_text("raise ImportError('not importable here')\n")
    (root / "methods" / "earlytrain.py").write_text("from .. import nets\nNETS = nets\n")
    (root / "nets" / "lenet.py").write_text("LeNet = 'lenet'\n")
    (root / "datasets" / "fashionmnist.py").write_text("def FashionMNIST(path):\n    return path\n")
    yield tmp_path / "code"
    for name in [m for m in sys.modules if m == "deepcore" or m.startswith("deepcore.")]:
        del sys.modules[name]
    sys.path.remove(str(tmp_path / "code"))


def test_modules_import_without_package_init(checkout: Path) -> None:
    mods = _original.load_original(checkout)
    assert mods["lenet"].LeNet == "lenet"
    assert mods["data"].FashionMNIST("x") == "x"
    early = importlib.import_module("deepcore.methods.earlytrain")
    assert early.NETS is mods["nets"]  # the relative import reaches the same package


def test_not_a_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a checkout of the original DeepCore"):
        _original.load_original(tmp_path)


def test_idx_files_are_laid_out_for_torchvision(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(_original.FILES):
        if i % 2:
            (data / name).write_bytes(bytes([i]) * 3)
        else:
            with gzip.open(data / f"{name}.gz", "wb") as fh:
                fh.write(bytes([i]) * 3)
    root = _original.raw_folder(data, tmp_path / "work")
    raw = root / "FashionMNIST" / "raw"
    assert [(raw / n).read_bytes() for n in _original.FILES] == [bytes([i]) * 3 for i in range(4)]
    assert not list(raw.glob(".*partial"))


def test_a_missing_idx_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no train-images-idx3-ubyte"):
        _original.raw_folder(tmp_path, tmp_path / "work")


def test_files_before_the_originals_fix_are_named(tmp_path: Path) -> None:
    methods = tmp_path / "deepcore" / "methods"
    methods.mkdir(parents=True)
    (methods / "earlytrain.py").write_text("loss = criterion(outputs, targets)\n")
    assert _original.pre_fix_files(tmp_path) == []
    before = (
        "loss = criterion(torch.nn.functional.softmax(outputs.requires_grad_(True), dim=1), y)\n"
    )
    (methods / "grand.py").write_text(before)
    (methods / "craig.py").write_text("loss = criterion(outputs.requires_grad_(True), y)\n")
    assert _original.pre_fix_files(tmp_path) == ["grand.py"]
