"""--threads: torch's CPU threads, never more in all than the CPUs the process may use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepcore_core import DeepcoreError, select
from deepcore_core.cli import create_app
from deepcore_core.engine import devices
from deepcore_core.testing import synthetic_inputs


@pytest.fixture(autouse=True)
def keep_threads(monkeypatch):
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "")  # restored afterwards (setup_cpu sets it)
    with threadpool_limits(None):  # restores the BLAS pools' threads afterwards
        yield
    torch.set_num_threads(before)


def test_default_shares_the_available_cpus(monkeypatch):
    monkeypatch.setattr(devices, "available_cpus", lambda: 8)
    assert devices.default_threads() == 8
    assert devices.default_threads(jobs=3) == 2
    assert devices.default_threads(jobs=16) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four torchrun processes on this machine
    assert devices.default_threads() == 2
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert devices.setup_cpu(0, jobs=4) == 2 and torch.get_num_threads() == 2
    assert devices.setup_cpu(1) == 1 and torch.get_num_threads() == 1
    from threadpoolctl import threadpool_info

    assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    with pytest.raises(DeepcoreError, match=r"threads must be in \[0, "):
        devices.setup_cpu(-1)


def test_blas_loaded_later_gets_the_thread_count_and_serial_blas_limits_it():
    import subprocess
    import sys

    # scipy's OpenBLAS loads on its first import: after setup_cpu, it must still get 1
    code = (
        "from deepcore_core.engine.devices import setup_cpu, serial_blas; setup_cpu(1); "
        "import scipy.linalg.blas; from threadpoolctl import threadpool_info as i; "
        "print(sorted({p['num_threads'] for p in i() if p['user_api'] == 'blas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"
    from threadpoolctl import threadpool_info

    def blas() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    import os

    n = min(2, os.cpu_count() or 1)  # never more than the machine's CPUs
    devices.setup_cpu(n)
    outside = blas()
    with devices.serial_blas():
        assert blas() == {1} and torch.get_num_threads() == n  # torch keeps its threads
    assert blas() == outside


def test_available_cpus_is_at_most_the_affinity():
    import os

    assert 1 <= devices.available_cpus() <= len(os.sched_getaffinity(0))


def test_cli_and_python_set_the_threads(tmp_path):
    d = synthetic_inputs()
    np.save(tmp_path / "y.npy", d["labels"])
    app = create_app()
    args = ["select", "--method", "uniform", "--labels", str(tmp_path / "y.npy")]
    args += ["--fraction", "0.2"]
    args += ["--output", str(tmp_path / "s.npz"), "--threads", "1"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert torch.get_num_threads() == 1
    r = CliRunner().invoke(app, [*args[:-1], "-2"])
    assert r.exit_code == 2 and "threads" in r.output
    import os

    too_many = str(100 * (os.cpu_count() or 1))  # thousands of OpenMP threads crashed the process
    r = CliRunner().invoke(app, [*args[:-1], too_many])
    assert r.exit_code == 2
    assert r.output == f"Error: threads must be in [0, {os.cpu_count()}], got {too_many}\n"
    with pytest.raises(
        DeepcoreError, match=rf"threads must be in \[0, {os.cpu_count()}\], got {too_many}"
    ):
        select("uniform", labels=d["labels"], fraction=0.2, threads=int(too_many))
    torch.set_num_threads(2)
    select("uniform", labels=d["labels"], fraction=0.2, threads=1)
    assert torch.get_num_threads() == 1
