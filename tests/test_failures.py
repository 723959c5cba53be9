"""File and OS failures: one ``Error:`` line naming the path, the exit-code rule, nothing
half-written (exit 2: bad input or usage; exit 1: a failure while running)."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deepcore_core.cli import create_app
from deepcore_core.testing import synthetic_inputs


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "labels.npy", synthetic_inputs()["labels"])
    runner = CliRunner()
    app = create_app()
    return lambda *args: runner.invoke(app, list(args))


def last(r) -> str:
    return r.output.strip().splitlines()[-1]


SELECT = ["select", "--method", "uniform", "--labels", "labels.npy", "--budget", "5"]


def test_output_under_a_file_or_onto_a_folder_is_exit_2(cli, tmp_path):
    Path("file.npy").write_text("x")
    r = cli(*SELECT, "--output", "file.npy/x.npz")
    assert (
        r.exit_code == 2
        and last(r) == "Error: cannot write 'file.npy/x.npz': 'file.npy' is not a folder"
    )
    Path("dir.npz").mkdir()
    r = cli(*SELECT, "--output", "dir.npz")
    assert r.exit_code == 2 and last(r) == "Error: cannot write 'dir.npz': it is a folder"
    r = cli("run", "--output", "file.npy/sub", "--method", "uniform")
    assert r.exit_code == 2 and "'file.npy' is not a folder" in last(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz", "file.npy", "labels.npy"]


def test_disk_full_while_writing_is_exit_1_and_leaves_nothing(cli, tmp_path, monkeypatch):
    import deepcore_core._io as io_mod

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_mod.os, "fsync", full)
    r = cli(*SELECT, "--output", "s.npz")
    assert r.exit_code == 1
    assert last(r) == "Error: cannot write 's.npz': No space left on device"
    assert not list(tmp_path.glob("s.*")) and not list(tmp_path.glob(".s.*"))


def test_a_failed_sidecar_removes_the_selection(cli, tmp_path, monkeypatch):
    import deepcore_core._io as io_mod

    calls = {"n": 0}
    real = os.fsync

    def second_fails(fd):
        calls["n"] += 1
        if calls["n"] == 2:  # the .npz went through, the .json does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(io_mod.os, "fsync", second_fails)
    r = cli(*SELECT, "--output", "s.npz")
    assert r.exit_code == 1 and "cannot write 's.json'" in last(r)
    assert not list(tmp_path.glob("s.*")) and not list(tmp_path.glob(".s.*"))


def test_junk_selection_and_binary_results_are_one_line(cli, tmp_path):
    Path("junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    r = cli("train", "--selection", "junk.npz", "--dataset", "digits")
    assert r.exit_code == 2 and last(r).startswith("Error: 'junk.npz' is not a deepcore selection")
    np.save("x.npy", np.arange(10.0))
    r = cli("report", "x.npy")
    assert r.exit_code == 2 and last(r) == "Error: 'x.npy' is not a text file of run records"


def test_train_checks_its_output_before_training(cli, tmp_path, monkeypatch):
    import deepcore_core.engine.training as training

    def never(*a, **k):
        raise AssertionError("trained before checking the output")

    r = cli("select", "--dataset", "digits", "--method", "uniform", "--fraction", "0.1",
            "--output", "s.npz")  # fmt: skip
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(training, "train_model", never)
    Path("file.npy").write_text("x")
    r = cli("train", "--selection", "s.npz", "--dataset", "digits", "--output", "file.npy/r.json")
    assert r.exit_code == 2 and "'file.npy' is not a folder" in last(r)


def test_file_size_limit_in_report_is_one_line_exit_1(cli, tmp_path):
    r = cli("run", "--method", "uniform", "--seed", "0", "--epochs", "1", "--no-full",
            "--output", "out")  # fmt: skip
    assert r.exit_code == 0, r.output
    limit = 20_000  # report.md fits, the PNG does not

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run(
        [sys.executable, "-m", "deepcore_core", "report", "out", "--output", "rep"],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        env={**os.environ, "DEEPCORE_LOAD_PLUGINS": ""},
    )
    assert p.returncode == 1, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: cannot write 'rep/accuracy-lenet-bn.png'")
    assert not [f for f in Path("rep").iterdir() if f.name.startswith(".")]


def test_exit_code_rule_for_divergence_is_1(cli):
    r = cli("select", "--dataset", "digits", "--method", "uniform", "--fraction", "0.1",
            "--output", "s.npz")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli("train", "--selection", "s.npz", "--dataset", "digits", "--lr", "1e6", "--epochs", "2",
            "--min-lr", "0")  # fmt: skip
    assert r.exit_code == 1 and "training diverged" in last(r)


def test_an_unavailable_device_is_an_error_with_array_inputs_too(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = cli(*SELECT, "--device", "cuda", "--output", "c.npz")
    assert r.exit_code == 2 and "no CUDA GPU is available" in last(r)
    assert not Path("c.npz").exists()


def test_ctrl_c_is_exit_130_with_one_line_and_leaves_nothing(cli, tmp_path, monkeypatch):
    import deepcore_core.cli.select as select_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(select_mod, "make_selection", interrupted)
    r = cli(*SELECT, "--output", "s.npz")
    assert r.exit_code == 130
    assert last(r).startswith("Interrupted: finished work is saved")
    assert not list(tmp_path.glob("s.*")) and not list(tmp_path.glob(".s.*"))
