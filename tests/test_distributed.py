"""Two CPU processes under torchrun (gloo): the same selections, DDP training, clean failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepcore_core import Selection
from deepcore_core.dynamics import load_dynamics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("DEEPCORE_INTEGRATION"), reason="integration only"),
]

ENV = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCORE_")}  # every plugin
ENV.update({"OMP_NUM_THREADS": "1", "DEEPCORE_PROGRESS": "0"})
# one thread everywhere: float reductions (and so near-ties) do not depend on thread counts
COMMON = ["--dataset", "digits", "--selection-epochs", "3", "--device", "cpu", "--threads", "1"]


def one(*args: str) -> subprocess.CompletedProcess[str]:
    """``deepcore`` in one process."""
    cmd = [sys.executable, "-m", "deepcore_core", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)


def torchrun_cmd(*args: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "deepcore_core", *args,
    ]  # fmt: skip


def two(*args: str) -> subprocess.CompletedProcess[str]:
    """``deepcore`` as two processes under torchrun."""
    return subprocess.run(torchrun_cmd(*args), capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A selection model (with dynamics and embedding) trained once by one process."""
    folder = tmp_path_factory.mktemp("cache")
    out = folder / "warm.npz"
    r = one(
        "select",
        *COMMON,
        "--method",
        "margin",
        "--fraction",
        "0.1",
        "--cache-dir",
        str(folder),
        "--output",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    return folder


CASES = [
    ("margin", []),
    ("forgetting", []),
    ("aum", []),
    ("kcenter", []),
    ("herding", []),
    ("graph-cut", []),
    ("craig", []),
    ("gradmatch", []),
    ("glister", []),
    ("deepfool", ["--option", "max_iter=5"]),
    ("kcenter", ["--no-balance", "--option", "distributed=greedi", "--option", "parts=2"]),
    ("facility-location", ["--no-balance", "--option", "distributed=greedi"]),
]


@pytest.mark.parametrize(("method", "extra"), CASES, ids=lambda c: str(c))
def test_two_processes_select_what_one_process_selects(cache, tmp_path, method, extra):
    if "greedi" in extra and "parts=2" not in extra:
        extra_one = [*extra, "--option", "parts=2"]  # two processes: two parts
    else:
        extra_one = extra
    args = ["select", *COMMON, "--method", method, "--fraction", "0.1", "--cache-dir", str(cache)]
    r1 = one(*args, *extra_one, "--output", str(tmp_path / "one.npz"))
    assert r1.returncode == 0, r1.stderr
    r2 = two(*args, *extra, "--output", str(tmp_path / "two.npz"))
    assert r2.returncode == 0, r2.stderr
    a, b = Selection.load(tmp_path / "one.npz"), Selection.load(tmp_path / "two.npz")
    np.testing.assert_array_equal(a.indices, b.indices)
    if a.weights is not None:
        np.testing.assert_allclose(a.weights, b.weights)
    assert r2.stdout.count("selected ") == 1  # rank 0 alone reports


def test_sharded_embedding_equals_one_process(cache, tmp_path):
    for f in cache.rglob("embedding.npz"):
        f.unlink()  # two processes embed their halves and gather them
    args = ["select", *COMMON, "--method", "margin", "--fraction", "0.2", "--cache-dir", str(cache)]
    r2 = two(*args, "--output", str(tmp_path / "two.npz"))
    assert r2.returncode == 0, r2.stderr
    assert len(list(cache.rglob("embedding.npz"))) == 1  # written once, by rank 0
    r1 = one(*args, "--output", str(tmp_path / "one.npz"))
    assert r1.returncode == 0, r1.stderr
    a, b = Selection.load(tmp_path / "one.npz"), Selection.load(tmp_path / "two.npz")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)


def test_ddp_training_records_every_sample_once_and_trains_as_well(tmp_path):
    base = ["--dataset", "digits", "--device", "cpu", "--method", "uniform", "--fraction", "0.5"]
    base += ["--seed", "0", "--epochs", "20", "--lr", "0.05", "--selection-epochs", "4"]
    base += ["--method", "forgetting"]
    r1 = one("run", *base, "--cache-dir", str(tmp_path / "c1"), "--output", str(tmp_path / "r1"))
    assert r1.returncode == 0, r1.stderr
    r2 = two("run", *base, "--cache-dir", str(tmp_path / "c2"), "--output", str(tmp_path / "r2"))
    assert r2.returncode == 0, r2.stderr
    rows = {}
    for name in ("r1", "r2"):
        lines = (tmp_path / name / "results.jsonl").read_text().splitlines()
        assert len(lines) == 3  # full, uniform, forgetting: each written once
        rows[name] = {json.loads(x)["key"]["method"]: json.loads(x)["accuracy"] for x in lines}
        assert len(list((tmp_path / name / "selections").rglob("*.npz"))) == 2
    for method in ("full", "uniform"):
        assert rows["r2"][method] > 0.8
        assert abs(rows["r1"][method] - rows["r2"][method]) < 0.06
    (dyn,) = [load_dynamics(p) for p in (tmp_path / "c2").rglob("dynamics.npz")]
    p_true = np.exp(-dyn.loss.astype(np.float64))
    assert dyn.loss.shape == (4, 1438) and (dyn.loss > 0).all()  # every sample recorded
    # a sample recorded twice would sum two probabilities: p_y + max_other and sum p^2 <= 1
    assert (p_true + dyn.max_other <= 1 + 1e-5).all() and (dyn.sum_sq <= 1 + 1e-5).all()
    assert (dyn.change[0] == 0).all() and (dyn.change[1:] > 0).mean() > 0.99


def test_a_killed_rank_fails_the_job_cleanly(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--dataset", "digits", "--device", "cpu", "--method", "uniform"]
    args += ["--fraction", "0.5", "--epochs", "400", "--selection-epochs", "2"]
    args += ["--cache-dir", str(tmp_path / "c"), "--output", str(out), "--seed", "0"]
    proc = subprocess.Popen(
        torchrun_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    workers: list[int] = []
    deadline = time.time() + 120
    while time.time() < deadline and len(workers) < 2:
        time.sleep(1)
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        workers = [int(p) for p in found.stdout.split()]
    assert len(workers) == 2, "torchrun did not start two workers"
    time.sleep(8)  # into the training
    os.kill(workers[-1], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=120)  # no hang: the job ends
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the job hung after a rank was killed")
    assert proc.returncode != 0
    assert "another process of this torchrun job failed" in err or "ChildFailedError" in err
    results = out / "results.jsonl"
    if results.exists():  # whatever was written is whole
        for line in results.read_text().splitlines():
            json.loads(line)
