from __future__ import annotations

import json

import numpy as np
import pytest

from deepcore_core import DeepcoreError, Selection, dataset_fingerprint


def test_round_trip(tmp_path):
    sel = Selection(
        np.array([4, 1, 7]), np.array([1.0, 2.0, 0.5]), np.arange(10.0), {"method": "x", "seed": 3}
    )
    path = sel.save(tmp_path / "s.npz")
    back = Selection.load(path)
    assert back.indices.tolist() == [4, 1, 7] and back.indices.dtype == np.int64
    assert back.weights.tolist() == [1.0, 2.0, 0.5]
    assert back.scores.tolist() == list(range(10))
    assert back.meta["method"] == "x" and back.meta["format_version"] == 1
    side = json.loads((tmp_path / "s.json").read_text())
    assert side["size"] == 3 and side["seed"] == 3
    assert not list(tmp_path.glob(".*tmp"))


def test_invalid_selections():
    with pytest.raises(ValueError, match="unique"):
        Selection(np.array([1, 1]))
    with pytest.raises(ValueError, match="align"):
        Selection(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="integer"):
        Selection(np.array([1.5]))


def test_save_needs_npz_and_load_checks(tmp_path):
    with pytest.raises(DeepcoreError, match=r"must end in \.npz"):
        Selection(np.array([1])).save(tmp_path / "s.txt")
    with pytest.raises(DeepcoreError, match="does not exist"):
        Selection.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(DeepcoreError, match="not a deepcore selection file"):
        Selection.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(DeepcoreError, match="no .npy or .npz header; deepcore select writes them"):
        Selection.load(tmp_path / "junk.npz")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import deepcore_core.selection as mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mod.np, "savez_compressed", boom)
    with pytest.raises(OSError):
        Selection(np.array([1])).save(tmp_path / "s.npz")
    assert list(tmp_path.iterdir()) == []


def test_fingerprint():
    y = np.array([0, 1, 1])
    assert dataset_fingerprint(y, 3, "d") == dataset_fingerprint(y.astype(np.int32), 3, "d")
    assert dataset_fingerprint(y, 3, "d") != dataset_fingerprint(y[::-1], 3, "d")
    assert dataset_fingerprint(y, 3, "d") != dataset_fingerprint(y, 3, "e")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from deepcore_core._io import _UMASK, atomic_write

    with atomic_write(tmp_path / "x.json", "w") as fh:
        fh.write("{}")
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~_UMASK
    assert os.umask(_UMASK) == _UMASK  # reading it left it unchanged


def test_load_indices_reads_arrays_and_selections_with_one_line_errors(tmp_path):
    from deepcore_core import load_indices

    np.save(tmp_path / "a.npy", np.array([5, 1, 5, 3]))
    (tmp_path / "a.txt").write_text("5 1 3")
    Selection(np.array([3, 1, 5])).save(tmp_path / "s.npz")
    for name in ("a.npy", "a.txt", "s.npz"):
        assert load_indices(tmp_path / name, 6, "initial set").tolist() == [1, 3, 5]
    (tmp_path / "one.txt").write_text("4\n")
    assert load_indices(tmp_path / "one.txt", 6, "initial set").tolist() == [4]
    np.save(tmp_path / "f.npy", np.array([0.5]))
    np.save(tmp_path / "m.npy", np.zeros((2, 2), dtype=np.int64))
    (tmp_path / "junk.npy").write_text("junk")
    for name, why in [
        ("a.npy", r"outside \[0, 4\)"),
        ("f.npy", "1-D array of sample indices, got shape .* of float64"),
        ("m.npy", r"got shape \(2, 2\)"),
        ("junk.npy", "no .npy or .npz header; write it with numpy.save"),
        ("none.npz", "initial set file .* does not exist"),
    ]:
        with pytest.raises(DeepcoreError, match=why):
            load_indices(tmp_path / name, 4, "initial set")


def test_export_indices_and_scores(tmp_path):
    """`deepcore export`: sorted int64 indices, and a CSV of every sample with a kept column."""
    from typer.testing import CliRunner

    from deepcore_core.cli import create_app
    from deepcore_core.plugins import PluginHost

    scores = np.array([0.5, 0.1, 0.9, 0.3])
    Selection(np.array([2, 0]), np.array([2.0, 1.5]), scores, {"n": 4, "method": "m"}).save(
        tmp_path / "s.npz"
    )
    app = create_app(PluginHost(load_entrypoints=False))
    out_i, out_s = tmp_path / "i.npy", tmp_path / "s.csv"
    args = ["export", str(tmp_path / "s.npz"), "--indices", str(out_i), "--scores", str(out_s)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    idx = np.load(out_i)
    assert idx.dtype == np.int64 and idx.tolist() == [0, 2]
    rows = [line.split(",") for line in out_s.read_text().splitlines()]
    assert rows[0] == ["index", "score", "kept", "weight"]
    assert rows[1:] == [["0", "0.5", "1", "1.5"], ["1", "0.1", "0", ""], ["2", "0.9", "1", "2.0"],
                        ["3", "0.3", "0", ""]]  # fmt: skip
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "s.npz")])
    assert bad.exit_code == 2 and "nothing to export" in bad.output
    wrong = CliRunner().invoke(app, ["export", str(tmp_path / "s.npz"), "--scores", "x.txt"])
    assert wrong.exit_code == 2 and "'x.txt' must end in .csv" in wrong.output
    Selection(np.array([1]), None, None, {"n": 4}).save(tmp_path / "t.npz")
    none = CliRunner().invoke(app, ["export", str(tmp_path / "t.npz"), "--scores", str(out_s)])
    assert none.exit_code == 2 and "has no per-sample scores" in none.output
