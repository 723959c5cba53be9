"""Verified caches: a truncated, empty, missing or replaced file is never used, the entry is
named in one warning and recomputed; two processes filling one key leave a valid entry."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from deepcore_core import PluginHost
from deepcore_core.cache import CacheEntry
from deepcore_core.engine import pretrain as pretrain_mod
from deepcore_core.engine.config import PretrainSpec, TrainConfig
from deepcore_core.engine.embedding import cached_embedding

HOST = PluginHost(load_entrypoints=False)


@pytest.fixture(scope="module")
def digits():
    return HOST.datasets.load("digits", None)


def spec(tmp_path):
    return PretrainSpec("mlp", 1, TrainConfig(epochs=1, augment=False), cache_dir=tmp_path)


def train(digits, tmp_path, seed=0):
    return pretrain_mod.pretrain(digits, spec(tmp_path), seed, "cpu", HOST.networks)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.pt", truncate),
        ("model.pt", lambda p: p.write_bytes(b"")),
        ("model.pt", lambda p: p.unlink()),
        ("dynamics.npz", truncate),
    ],
)
def test_a_damaged_selection_model_is_retrained_with_one_warning(
    digits, tmp_path, caplog, name, damage
):
    first = train(digits, tmp_path)
    damage(first.folder / name)
    before = pretrain_mod.TRAINED_COUNT["n"]
    with caplog.at_level(logging.WARNING, logger="deepcore"):
        again = train(digits, tmp_path)
    assert pretrain_mod.TRAINED_COUNT["n"] == before + 1 and not again.cached
    (msg,) = warnings(caplog)
    assert f"selection-model cache entry '{first.folder}' is not usable" in msg and name in msg
    for a, b in zip(
        first.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)  # the same seed retrains the same model
    caplog.clear()
    assert train(digits, tmp_path).cached and warnings(caplog) == []


def test_an_embedding_replaced_by_other_numbers_is_recomputed(digits, tmp_path, caplog):
    done = train(digits, tmp_path)
    cpu = torch.device("cpu")
    emb = cached_embedding(done.model, digits.train, cpu, done.folder)
    path = done.folder / "embedding.npz"
    np.savez(path, features=emb.features + 1.0, logits=emb.logits)  # same shapes, other numbers
    with caplog.at_level(logging.WARNING, logger="deepcore"):
        again = cached_embedding(done.model, digits.train, cpu, done.folder)
    np.testing.assert_array_equal(again.features, emb.features)
    (msg,) = warnings(caplog)
    assert f"embedding cache entry '{done.folder}'" in msg and "checksum" in msg
    truncate(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepcore"):
        np.testing.assert_array_equal(
            cached_embedding(done.model, digits.train, cpu, done.folder).logits, emb.logits
        )
    assert len(warnings(caplog)) == 1
    assert CacheEntry(done.folder, done.folder.name).problem("embedding.npz") is None


FILL = """
import sys
from pathlib import Path
from deepcore_core import PluginHost
from deepcore_core.engine import pretrain
from deepcore_core.engine.config import PretrainSpec, TrainConfig
host = PluginHost(load_entrypoints=False)
data = host.datasets.load("digits", None)
spec = PretrainSpec("mlp", 1, TrainConfig(epochs=1, augment=False), cache_dir=Path(sys.argv[1]))
print(pretrain.pretrain(data, spec, 0, "cpu", host.networks).folder)
"""


def test_two_processes_filling_one_key_leave_a_valid_entry(tmp_path):
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FILL, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    folders = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and folders[0] == folders[1]
    folder = tmp_path / "selection-models" / folders[0].rsplit("/", 1)[1]
    entry = CacheEntry(folder, folder.name)
    assert entry.problem("model.pt") is None and entry.problem("dynamics.npz") is None
    leftovers = [p.name for p in entry.folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_an_entry_another_process_completed_first_is_kept(digits, tmp_path):
    first = train(digits, tmp_path)
    before = (first.folder / "model.pt").read_bytes()
    other = HOST.networks.build("mlp", digits.channels, digits.num_classes, digits.image_size)
    pretrain_mod._store(first.folder, first.folder.name, other, first.dynamics, {})
    assert (first.folder / "model.pt").read_bytes() == before
    assert [p.name for p in first.folder.parent.iterdir() if p.name.startswith(".")] == []
