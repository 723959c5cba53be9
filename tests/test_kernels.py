"""The pool kernels and the selection's scratch matrix they can be built in."""

from __future__ import annotations

import numpy as np
import torch

from deepcore_core import CosineBlocks
from deepcore_core.context import SelectionContext


def _context(n: int = 300, d: int = 6, c: int = 3) -> SelectionContext:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(n, c)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return SelectionContext(
        n=n,
        labels=rng.integers(0, c, size=n),
        features=rng.normal(size=(n, d)).astype(np.float32),
        probs=probs.astype(np.float32),
    )


def test_scratch_matrix_reuses_its_memory_and_grows_when_asked():
    ctx = _context()
    big = ctx.scratch_matrix(40, 40, "cpu")
    small = ctx.scratch_matrix(30, 20, "cpu")
    assert small.shape == (30, 20) and small.is_contiguous()
    assert small.data_ptr() == big.data_ptr()  # the same memory, no fresh pages
    bigger = ctx.scratch_matrix(50, 50, "cpu")
    assert bigger.shape == (50, 50) and bigger.dtype == torch.float32
    assert ctx.scratch_matrix(10, 10, "cpu").data_ptr() == bigger.data_ptr()


def test_kernels_in_the_scratch_matrix_equal_fresh_ones_pool_after_pool():
    ctx = _context()
    pools = [np.arange(0, 300, 2), np.arange(1, 120, 3), np.arange(250)]
    for source in ("gradients", "features"):
        for pool in pools:  # a smaller pool, then a larger one, in the same memory
            blocks = CosineBlocks(ctx, pool, source)
            for build in ("dense_tensor", "distances"):
                fresh = getattr(blocks, build)(block=64)
                reused = getattr(blocks, build)(block=64, reuse=True)
                assert reused.shape == (pool.size, pool.size)
                assert torch.equal(reused, fresh), (source, build, pool.size)
                assert torch.equal(reused, reused.T)  # mirrored: exactly symmetric
