"""The Python API as strict as the command line: bad data, bad models and failing disks get
one clear error before any work where possible, and nothing half-written stays behind."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepcore_core as dc
from deepcore_core import DeepcoreError, Need, Selector
from deepcore_core.errors import RunError
from deepcore_core.testing import Confidence, ImageBlobs, OddNet, host_with


class Nearest(Selector):
    """Test method: the k samples with the smallest feature norm (a picking method)."""

    name = "nearest"
    family = "test"
    needs = frozenset({Need.FEATURES})

    def pick(self, ctx, pool, k, rng):
        from deepcore_core import Pick

        return Pick(pool[np.argsort(np.linalg.norm(ctx.features[pool], axis=1))[:k]])


@pytest.fixture(scope="module")
def host():
    return host_with(Confidence, Nearest)


class WithNaN(ImageBlobs):
    """ImageBlobs whose sample 7 is NaN."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return (torch.full_like(x, float("nan")), y) if i == 7 else (x, y)


@pytest.mark.parametrize("method", ["confidence", "nearest"])
def test_a_nan_sample_is_named_on_the_dataset_path(host, method):
    with pytest.raises(DeepcoreError, match="for sample 7 are NaN or inf"):
        dc.select(method, dataset=WithNaN(n=30), model=OddNet(), budget=6, host=host)


def test_too_few_outputs_for_the_classes(host):
    labels = np.arange(30) % 5  # 5 classes; OddNet gives 3 outputs
    with pytest.raises(DeepcoreError, match="gives 3 outputs per sample but the labels have 5"):
        dc.select("confidence", dataset=ImageBlobs(n=30), model=OddNet(), labels=labels,
                  budget=6, host=host)  # fmt: skip

    class Five(ImageBlobs):
        def __getitem__(self, i):
            return super().__getitem__(i)[0], i % 5

    with pytest.raises(DeepcoreError, match="gives 3 outputs per sample but the labels have 5"):
        dc.train(OddNet(), Five(n=30, expose_targets=False), epochs=1, host=host)


def test_a_model_that_cannot_take_the_data(host):
    ds = ImageBlobs(n=30)
    with pytest.raises(DeepcoreError, match=r"cannot take the dataset's inputs \(torch.float32 .*"
                       r"torch.float64 parameters"):  # fmt: skip
        dc.select("confidence", dataset=ds, model=OddNet().double(), budget=3, host=host)
    rgb = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(400, 3))
    with pytest.raises(DeepcoreError, match=r"shape \(1, 12, 12\) per sample"):
        dc.select("confidence", dataset=ds, model=rgb, budget=3, host=host)
    with torch.device("meta"):
        ghost = OddNet()
    with pytest.raises(DeepcoreError, match="meta device"):
        dc.select("confidence", dataset=ds, model=ghost, budget=3, host=host)


@pytest.mark.parametrize("model", ["resnet18", [1, 2], lambda x: x])
def test_a_model_that_is_not_a_module(host, model):
    with pytest.raises(DeepcoreError, match="model must be a torch nn.Module"):
        dc.select("confidence", dataset=ImageBlobs(n=10), model=model, budget=3, host=host)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": float("inf")}, "lr must be a finite number, got inf"),
        ({"batch_size": -1}, "batch_size must be >= 1, got -1"),
        ({"num_workers": -1}, "num_workers must be >= 0, got -1"),
        ({"loader_batch_size": 0}, "loader_batch_size must be >= 1, got 0"),
        ({"collate_fn": 3}, "collate_fn must be callable, got int"),
    ],
)
def test_train_checks_what_the_cli_checks(host, kwargs, message):
    with pytest.raises(DeepcoreError, match=message):
        dc.train(OddNet(), ImageBlobs(n=10), epochs=1, host=host, **kwargs)


def test_an_empty_dataset(host):
    with pytest.raises(DeepcoreError, match=r"the dataset is empty \(0 samples\)"):
        dc.select("confidence", dataset=ImageBlobs(n=0), model=OddNet(), budget=1, host=host)


def test_a_diverged_training_is_a_run_error_naming_the_epoch(host):
    with pytest.raises(RunError, match=r"diverged in epoch \d \(the weights are not finite\)"):
        dc.train(OddNet(), ImageBlobs(n=30), epochs=4, lr=1e30, min_lr=0, host=host)


def test_a_cache_folder_that_cannot_be_written_fails_before_training(host, tmp_path, monkeypatch):
    def never(*a, **k):
        raise AssertionError("trained before checking the cache folder")

    monkeypatch.setattr("deepcore_core.engine.pretrain.train_model", never)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeepcoreError, match="'.*file' is not a folder"):
        dc.select("confidence", dataset=ImageBlobs(n=30), selection_network="mlp", budget=3,
                  cache_dir=str(tmp_path / "file" / "cache"), host=host)  # fmt: skip


def test_a_manifest_of_the_wrong_shape_is_recomputed_not_a_traceback(host, tmp_path, caplog):
    kw = {"selection_network": "mlp", "selection_epochs": 1, "budget": 3, "host": host,
          "cache_dir": str(tmp_path)}  # fmt: skip
    first = dc.select("confidence", dataset=ImageBlobs(n=30), **kw)
    (entry,) = (tmp_path / "selection-models").iterdir()
    (entry / "manifest.json").write_text(json.dumps({"key": "x", "files": [1, 2]}))
    again = dc.select("confidence", dataset=ImageBlobs(n=30), **kw)
    assert again.indices.tolist() == first.indices.tolist()


def stale(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_a_killed_runs_temporary_entries_are_swept_not_a_live_ones(host, tmp_path):
    models = tmp_path / "selection-models"
    models.mkdir()
    host_name, dead = socket.gethostname(), 2**22 + 12345  # beyond pid_max: not a process
    (models / f".tmp-{host_name}-{dead}-abc").mkdir()
    (models / f".tmp-{host_name}-{dead}-abc" / "model.pt").write_bytes(b"x" * 100)
    (models / f".tmp-{host_name}-{os.getpid()}-live").mkdir()  # this process: alive
    (models / ".tmp-otherhost-1-x").mkdir()  # another machine's: cannot be judged here
    dc.select("confidence", dataset=ImageBlobs(n=30), selection_network="mlp", budget=3,
              selection_epochs=1, cache_dir=str(tmp_path), host=host)  # fmt: skip
    assert stale(models) == sorted([f".tmp-{host_name}-{os.getpid()}-live", ".tmp-otherhost-1-x"])


def test_killed_at_random_points_the_next_run_leaves_the_cache_clean(tmp_path):
    """A real store killed with SIGKILL while training or writing; the next run completes
    and leaves no temporary entry behind."""
    cache = tmp_path / "cache"
    rng = np.random.default_rng(0)
    for delay in sorted(rng.uniform(1.0, 6.0, 3)):
        p = _train_selection_model(cache, tmp_path)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    p = _train_selection_model(cache, tmp_path)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert stale(cache) == []
    entries = [e for e in (cache / "selection-models").iterdir() if not e.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "model.pt").is_file()


def _train_selection_model(cache: Path, tmp_path: Path) -> subprocess.Popen:
    """A process that trains (and stores) digits' selection model: a method that needs it."""
    code = (
        "import numpy as np, deepcore_core as dc\n"
        "from deepcore_core.engine.pretrain import pretrain\n"
        "from deepcore_core.engine.config import PretrainSpec\n"
        "from deepcore_core.plugins import PluginHost\n"
        "from pathlib import Path\n"
        "h = PluginHost(load_entrypoints=False)\n"
        "d = h.datasets.load('digits', None)\n"
        f"spec = PretrainSpec('lenet', 6, cache_dir=Path({str(cache)!r}))\n"
        "pretrain(d, spec, 0, 'cpu', h.networks)\n"
    )
    env = {**os.environ, "DEEPCORE_LOAD_PLUGINS": "", "DEEPCORE_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_full_disk_while_saving_a_model_is_one_line_exit_1(tmp_path):
    """torch.save fails inside its zip writer on a full disk or a file-size limit (here a
    limit of 20 kB, below LeNet's checkpoint): one Error: line naming the path, exit 1,
    nothing half-written left."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    env = {**os.environ, "DEEPCORE_LOAD_PLUGINS": "", "DEEPCORE_PROGRESS": "0"}
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "deepcore_core", "-q", "run", "--method", "uniform", "--seed", "0",
         "--epochs", "1", "--output", str(out), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, preexec_fn=small_files, env=env,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: cannot write '"), err
    assert "no space left on the device, or a file-size limit" in err[0]
    assert stale(out) == []
