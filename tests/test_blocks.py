"""Blockwise processing of large inputs: same results as whole-array code, memory maps kept."""

from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import DeepcoreError
from deepcore_core._io import load_array
from deepcore_core.blocks import map_rows, row_blocks
from deepcore_core.workflow import as_array, context_for_arrays


def test_blocks_cover_every_row_once():
    a = np.arange(1003 * 7, dtype=np.float32).reshape(1003, 7)
    starts = [lo for lo, b in row_blocks(a, cells=70)]
    assert starts == list(range(0, 1003, 10))
    assert np.array_equal(np.concatenate([b for _, b in row_blocks(a, cells=70)]), a)
    np.testing.assert_array_equal(map_rows(lambda b: b.max(1), a), a.max(1))


def test_memory_mapped_input_stays_mapped_and_checks_every_block(tmp_path, monkeypatch):
    import deepcore_core.blocks as blocks

    monkeypatch.setattr(blocks, "CELLS", 30)  # many blocks on small data
    rng = np.random.default_rng(0)
    x = rng.exponential(size=(500, 3)).astype(np.float32)
    p = x / x.sum(1, keepdims=True)
    np.save(tmp_path / "p.npy", p)
    mapped = load_array(tmp_path / "p.npy", "probs", mmap=True)
    assert isinstance(mapped, np.memmap)
    kept = as_array(mapped, "probabilities", 2, np.float32)
    assert np.shares_memory(kept, mapped)  # a view of the map, not a copy
    ctx = context_for_arrays(probs=mapped, labels=rng.integers(0, 3, 500))
    assert np.shares_memory(ctx.probs, mapped)
    bad = p.copy()
    bad[417, 1] = np.nan
    with pytest.raises(DeepcoreError, match="first at row 417"):
        as_array(bad, "probabilities", 2, np.float32)
    bad = p.copy()
    bad[333] = [0.5, 0.6, -0.1]
    with pytest.raises(DeepcoreError, match="non-negative and sum to 1"):
        context_for_arrays(probs=bad)


def test_blockwise_softmax_equals_whole_softmax(monkeypatch):
    import deepcore_core.blocks as blocks
    from deepcore_core.gradients import softmax

    z = np.random.default_rng(1).normal(size=(301, 4)) * 5
    whole = context_for_arrays(logits=z).probs
    monkeypatch.setattr(blocks, "CELLS", 12)
    np.testing.assert_array_equal(context_for_arrays(logits=z).probs, whole)
    np.testing.assert_array_equal(whole, softmax(z))
